#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 45) and fails on
# any crash, leak or timeout libFuzzer reports. `make test-fuzz` and CI call this.
# Cost on 2 cores: ~75 s to install cargo-fuzz once, ~3-5 min for a first build of the targets
# with ASan (seconds when only the library changed), then FUZZ_SECONDS per target.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir"

seconds="${FUZZ_SECONDS:-45}"
targets=(abi_request id_token)

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address ...) to rustc. The project builds
# with stable Rust, whose compiler accepts them when RUSTC_BOOTSTRAP=1 is set.
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (once, ~75 s)"
    if ! cargo install cargo-fuzz --locked --quiet; then
        # Without libFuzzer, the bounded random-input test of the hostile suite stands in,
        # so CI still exercises the same parsers with garbage.
        echo "fuzz: cargo-fuzz unavailable; running the libFuzzer-free random-input test instead"
        cd "$fuzz_dir/.."
        exec cargo test --release --test hostile random_input
    fi
fi

# Seeds are regenerated each run; what libFuzzer adds to corpus/ stays local (gitignored).
perl "$fuzz_dir/gen-seeds.pl" "$fuzz_dir/corpus"

mkdir -p "$fuzz_dir/artifacts"
if ! cargo fuzz build --release >"$fuzz_dir/artifacts/build.log" 2>&1; then
    echo "fuzz: building the targets failed:" >&2
    tail -n 40 "$fuzz_dir/artifacts/build.log" >&2
    exit 1
fi
bin_dir="$fuzz_dir/target/$(rustc -vV | sed -n 's/^host: //p')/release"
status=0
for target in "${targets[@]}"; do
    echo "fuzz: $target for ${seconds}s"
    log="$fuzz_dir/artifacts/$target.log"
    mkdir -p "$fuzz_dir/artifacts/$target"
    # Belt and braces: the library takes absolute paths only and the harness confines them to
    # /tmp/pve-entraid-fuzz, but a scratch working directory keeps any stray file out of the tree.
    scratch="$(mktemp -d)"
    if (cd "$scratch" && "$bin_dir/$target" "$fuzz_dir/corpus/$target" \
            -artifact_prefix="$fuzz_dir/artifacts/$target/" -max_total_time="$seconds" \
            -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 >"$log" 2>&1); then
        grep -E '^(Done|stat::number_of_executed_units)' "$log" | tail -n 1 | sed "s/^/fuzz: $target: /"
    else
        status=1
        echo "fuzz: $target FAILED; last lines of $log:" >&2
        tail -n 30 "$log" >&2
    fi
    rm -rf "$scratch"
done
rm -rf /tmp/pve-entraid-fuzz # state key and caches the abi_request harness let requests create
[ "$status" -eq 0 ] && echo "fuzz: all targets ran with 0 crashes"
exit "$status"
