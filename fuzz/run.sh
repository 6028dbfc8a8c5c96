#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 45) and fails on
# any crash, leak or timeout libFuzzer reports. `make test-fuzz` and CI call this.
# Total cost on 2 cores: ~75 s to install cargo-fuzz once, ~2-3 min to build the targets with
# ASan, then FUZZ_SECONDS per target.
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

cargo fuzz build --release 2>&1 | tail -n 3
bin_dir="$fuzz_dir/target/$(rustc -vV | sed -n 's/^host: //p')/release"
status=0
for target in "${targets[@]}"; do
    echo "fuzz: $target for ${seconds}s"
    log="$fuzz_dir/artifacts/$target.log"
    mkdir -p "$fuzz_dir/artifacts/$target"
    # The library may create files relative to the working directory when a mutated request
    # names a relative cache_dir/state_key_file: run inside a scratch directory.
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
[ "$status" -eq 0 ] && echo "fuzz: all targets ran with 0 crashes"
exit "$status"
