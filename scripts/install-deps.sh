#!/usr/bin/env bash
# Installs what building and testing pve-entraid needs on Debian 12 (bookworm).
# Idempotent: asks apt only for packages that are missing. Each area keeps its own section.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PATH="$HOME/.cargo/bin:$PATH"

need_apt=()
want() { for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need_apt+=("$p"); done; }

# --- core build (Rust library, XS) ---
want build-essential pkg-config ca-certificates perl libjson-perl

# --- perl (plugin, XS, prove) ---
# prove/Test::More, the C toolchain (core section) and perl.h (libperl5.36, pulled in by perl)
# build and test the XS binding; JSON and HTTP::Tiny come from libjson-perl and perl itself.
want libtest-simple-perl libperl5.36

# --- integrate ---
# perl brings prove, podchecker and Test::More for tests/integrate
want perl

# --- upstream contract tests (tests/upstream, perl/t, tests/integrate) ---
# Perl modules the REAL upstream trees (pve9, pve8 of tests/upstream/VERSIONS) load: the Depends of
# pve-access-control, pve-common, pve-cluster, pve-http-server and pve-manager (debian/control)
# that Debian has; proxmox-perl-rs and pmxcfs are stood in for (tests/upstream/standins).
# unshare/mount (util-linux), hostname and openssl run the private /etc/pve per test.
want libauthen-pam-perl libcrypt-openssl-random-perl libcrypt-openssl-rsa-perl libjson-perl \
    libjson-xs-perl libmime-base32-perl libnet-ldap-perl libnet-ssleay-perl liburi-perl libuuid-perl \
    libanyevent-perl libanyevent-http-perl libclone-perl libdevel-cycle-perl libfilesys-df-perl \
    libhttp-daemon-perl libhttp-message-perl libio-stringy-perl liblinux-inotify2-perl \
    libnet-dbus-perl libnet-ip-perl libnetaddr-ip-perl libstring-shellquote-perl libtimedate-perl \
    libwww-perl libyaml-libyaml-perl libdigest-hmac-perl libcrypt-ssleay-perl libhtml-parser-perl \
    libhttp-date-perl libio-socket-ssl-perl util-linux hostname openssl git

# --- browser test ---
# Debian's Chromium; playwright-core and a GPL ExtJS classic build come from npm, pinned by
# tests/browser/package-lock.json, into tests/browser/node_modules (no browser download).
# The real PVE frontend needs what a node has: Template Toolkit renders index.html.tpl as
# pveproxy does, marked.js is the last part of proxmoxlib.js, Font Awesome its icons.
want chromium libtemplate-perl libjs-marked fonts-font-awesome
if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm
fi
browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
if ! cmp -s "$browser_dir/package-lock.json" "$browser_dir/node_modules/.pve-entraid-installed"; then
    (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$browser_dir/package-lock.json" "$browser_dir/node_modules/.pve-entraid-installed"
fi

# --- debian packaging ---
# The package is built and install-tested in clean Debian roots (debian/build-deb.sh,
# tests/deb): mmdebstrap makes them from Debian's registry, equivs the PVE stand-in packages;
# the toolchain, debhelper and lintian live in those roots, not here. The host needs
# dpkg-dev (dpkg-parsechangelog), readelf/nm for tests/deb, git to list the build inputs.
want dpkg-dev binutils git mmdebstrap equivs

# --- bench / fuzz ---
# libfuzzer-sys compiles libFuzzer with the C++ compiler. cargo-fuzz itself is installed by
# fuzz/run.sh on first use (cargo install cargo-fuzz --locked: ~75 s once), so that `make deps`
# stays quick for everyone who does not fuzz. bench/ needs nothing beyond the core build.
want g++

if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# Rust: the rustup toolchain when present, else bookworm-security's rustc-web/cargo-web.
if ! command -v cargo >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq rustc-web cargo-web
fi
echo "install-deps: ok ($(cargo --version))"
