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

# The bench crate is a workspace of its own; its lock file is a fresh copy of the root's on
# every run (so it measures the dependency versions the library ships with and can never go
# stale); it is not tracked (.gitignore), so a run leaves the tree clean.
# Its own target directory: the two workspaces unify features differently (the root's
# dev-dependencies), and a shared directory would let one overwrite the other's artifacts.
cp Cargo.lock bench/Cargo.lock
export CARGO_TARGET_DIR="$root/target/bench-crate"
export PVE_ENTRAID_LIB="$root/target/release/libpve_entraid.so"
echo "bench: building (release) ..." >&2
(cd bench && cargo bench --quiet --bench figures --no-run 2>&1 | sed '/Executable/d' >&2)

echo
echo "pve-entraid figures on $(nproc) core(s), $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r)"
echo
(cd bench && cargo bench --quiet --bench figures)
# Perl RSS after real logins: the emulator binary over TLS, its throw-away CA as the trust store.
[ -x target/release/entra-emulator ] || cargo build --release -p entra-emulator --quiet
tls_dir="$(mktemp -d)"
target/release/entra-emulator --tls-dir "$tls_dir" --port-file "$tls_dir/port" >/dev/null &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null; rm -rf "$tls_dir"' EXIT
for _ in $(seq 100); do [ -s "$tls_dir/port" ] && break; sleep 0.1; done
# A node's trust store: the system CA bundle (when there is one) plus the emulator's CA.
cat /etc/ssl/certs/ca-certificates.crt "$tls_dir/ca.pem" > "$tls_dir/bundle.pem" 2>/dev/null || cp "$tls_dir/ca.pem" "$tls_dir/bundle.pem"
SSL_CERT_FILE="$tls_dir/bundle.pem" perl -I"$root/perl/blib/lib" -I"$root/perl/blib/arch" bench/perl-rss.pl \
    "https://127.0.0.1:$(cat "$tls_dir/port")"
# realm sync (issue 12): 10,000 users, in 1,000 groups or assigned one by one, 50 ms per Graph request (bench/sync-figures.pl)
cargo build --release -p entra-emulator --quiet
. scripts/upstream-env.sh
upstream="$PVE_ENTRAID_UPSTREAM"
perl -I"$root/perl" -I"$root/perl/blib/lib" -I"$root/perl/blib/arch" -I"$upstream/pve9/pve-common/src" \
    bench/sync-figures.pl "$root/target/release/entra-emulator"
