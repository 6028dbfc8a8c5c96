# pve-entraid — top-level entry points. Each area owns the script a target calls.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: deps build demo test test-rust test-header test-perl test-upstream test-integrate test-browser test-load test-releases test-releases-sample test-fresh test-deb test-node test-fuzz bench deb clean

# Installs everything on a fresh Debian 12 machine (idempotent, fast when done).
deps:
	bash scripts/install-deps.sh

build: deps
	cargo build --release --workspace
	bash perl/build.sh

# Main job: a full Entra-style login end to end against the bundled IdP emulator.
demo: build
	bash tests/e2e/demo.sh

# Every test.
test: deps
	$(MAKE) test-header test-rust test-perl test-upstream test-releases-sample test-integrate test-browser test-load test-fresh test-fuzz test-deb test-node
	@echo "make test: all suites passed"

test-header:
	bash scripts/check-header.sh

test-rust:
	cargo test --workspace --release

test-perl: build
	bash perl/run-tests.sh

# contract tests on the real upstream Proxmox VE Perl, PVE 9 and PVE 8 (tests/upstream)
test-upstream: build
	bash tests/upstream/run.sh all

# every Proxmox VE release since 8.0 (tests/releases/RELEASES), one row at a time; RECORD=1
# writes the outcomes to tests/releases/RESULTS and the table into README.md
test-releases: build
	bash tests/releases/run.sh --all $(if $(RECORD),--record)

# the oldest and the newest release of each major (part of make test)
test-releases-sample: build
	bash tests/releases/run.sh --sample

test-integrate: build
	bash tests/integrate/run.sh

test-browser:
	bash tests/browser/run.sh

# 200 concurrent logins through the Perl path in forked workers (asserts correctness, prints timing).
test-load: build
	bash tests/e2e/load.sh

# `make demo` in a copy of the checkout with no ../shared beside it (fetches the pinned sources)
test-fresh: build
	bash tests/e2e/fresh-clone.sh

test-fuzz:
	bash fuzz/run.sh

# both packages (trixie/PVE 9, bookworm/PVE 8): built, linted and install-tested in clean roots
test-deb:
	bash tests/deb/run.sh

# a Proxmox VE node in a network namespace: pmxcfs, pvedaemon, pveproxy from the pinned sources,
# the package installed with apt, logins through pveproxy, PVE 9 and 8 (tests/node; after test-deb,
# whose packages it reuses)
test-node: build
	bash tests/node/run.sh

# in-process figures, the project's size, then a real node's (tests/node; skipped with a line
# saying how when there is no package or node root yet)
bench: build
	bash bench/run.sh
	bash scripts/project-figures.sh
	bash bench/node.sh

# DIST=trixie (Proxmox VE 9, default) or DIST=bookworm (Proxmox VE 8) -> build/deb/$(DIST)/
DIST ?= trixie
deb: deps
	bash debian/build-deb.sh $(DIST)

clean:
	cargo clean
	rm -rf build perl/blib
