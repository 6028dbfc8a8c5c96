#!/usr/bin/env bash
# `make bench`: prints the figures of docs/DESIGN.md's issue 6 as one Markdown table.
# Timing is printed, never asserted (a slow CI machine is not a bug).
#   Rust bench (bench/benches/figures): IdP requests per login, ID-token validations per
#     second, auth-url/login latency through the C ABI, library load time;
#   Perl (bench/perl-rss.pl): RSS added to a Perl process by PVE::EntraID::XS + the library.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# The library and its XS binding as `make build` leaves them (cheap when up to date).
cargo build --release -p pve-entraid --quiet
[ -f perl/blib/arch/auto/PVE/EntraID/XS/XS.so ] || bash perl/build.sh

# The bench crate is a workspace of its own; its lock file starts as a copy of the root's so
# that it measures the dependency versions the library ships with.
# Its own target directory: the two workspaces unify features differently (the root's
# dev-dependencies), and a shared directory would let one overwrite the other's artifacts.
[ -f bench/Cargo.lock ] || cp Cargo.lock bench/Cargo.lock
export CARGO_TARGET_DIR="$root/target/bench-crate"
export PVE_ENTRAID_LIB="$root/target/release/libpve_entraid.so"
echo "bench: building (release) ..." >&2
(cd bench && cargo bench --quiet --bench figures --no-run 2>&1 | sed '/Executable/d' >&2)

echo
echo "pve-entraid figures on $(nproc) core(s), $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r)"
echo
(cd bench && cargo bench --quiet --bench figures)
perl -I"$root/perl/blib/lib" -I"$root/perl/blib/arch" bench/perl-rss.pl
# realm sync (issue 12): 10,000 users in 1,000 groups, 50 ms per Graph request (bench/sync-figures.pl)
cargo build --release -p entra-emulator --quiet
upstream="${PVE_ENTRAID_UPSTREAM:-$root/../shared/upstream}"
[ -d "$upstream/pve9/pve-common/src" ] || bash scripts/fetch-upstream.sh "$upstream"
perl -I"$root/perl" -I"$root/perl/blib/lib" -I"$root/perl/blib/arch" -I"$upstream/pve9/pve-common/src" \
    bench/sync-figures.pl "$root/target/release/entra-emulator"
