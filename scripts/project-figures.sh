#!/usr/bin/env bash
# Prints the size figures of the project as one Markdown table (issue 11's closing note):
#   crates      distinct crates the library links (`cargo tree -e normal`, dev-dependencies excluded)
#   build       wall and CPU time of a clean `cargo build --release --lib` in a scratch target directory
#               (only with --build: it takes minutes; timing is printed, never asserted)
#   .so size    target/release/libpve_entraid.so as `make build` leaves it
#   lines       production code without blank and comment-only lines: Rust `src/` up to each file's
#               `#[cfg(test)]`; Perl modules, CLI, XS glue and the integration tool
# Usage: bash scripts/project-figures.sh [--build]
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

crates=$(cargo tree -e normal --prefix none -p pve-entraid | sed 's/ (\*)$//' | sort -u | wc -l)

build="(run with --build)"
so=target/release/libpve_entraid.so
if [ "${1:-}" = "--build" ]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    # Wall time depends on what else runs on the machine; CPU time (user + system) less so.
    TIMEFORMAT='%R %U %S'
    times=$( { time CARGO_TARGET_DIR="$scratch" cargo build --release --lib -p pve-entraid --quiet 2>/dev/null; } 2>&1 )
    read -r wall user sys <<<"$times"
    build=$(awk -v w="$wall" -v u="$user" -v s="$sys" -v n="$(nproc)" \
        'BEGIN { printf "%.0f s wall, %.0f s CPU (user+system), %d cores", w, u + s, n }')
    so="$scratch/release/libpve_entraid.so"
fi

[ -f "$so" ] || cargo build --release --lib -p pve-entraid --quiet
so_size="$(( $(stat -c %s "$so") / 1024 )) KiB"

# Rust: code lines before the unit tests of each file.
rust_lines=$(for f in src/*.rs src/*/*.rs; do
    [ -f "$f" ] || continue
    awk '/^#\[cfg\(test\)\]/ { exit } !/^[[:space:]]*$/ && !/^[[:space:]]*\/\// { n++ } END { print n + 0 }' "$f"
done | awk '{ s += $1 } END { print s }')

# Perl (and the XS glue): code lines, without POD and comments.
perl_files=$(find perl/PVE perl/bin perl/xs integrate -type f \( -name '*.pm' -o -name '*.xs' -o -path '*/bin/*' -o -path 'integrate/*' \) | sort)
perl_lines=$(for f in $perl_files; do
    awk '/^=[a-z]/ { pod = 1 } /^=cut/ { pod = 0; next } !pod && !/^[[:space:]]*$/ && !/^[[:space:]]*#/ { n++ } END { print n + 0 }' "$f"
done | awk '{ s += $1 } END { print s }')

printf '| figure | value |\n| --- | --- |\n'
printf '| crates linked (cargo tree -e normal) | %s |\n' "$crates"
printf '| clean release build of the library | %s |\n' "$build"
printf '| libpve_entraid.so | %s |\n' "$so_size"
printf '| Rust production lines (src/) | %s |\n' "$rust_lines"
printf '| Perl production lines (perl/, integrate/) | %s |\n' "$perl_lines"
printf '| commit | %s |\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
