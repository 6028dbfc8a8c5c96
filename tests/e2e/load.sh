#!/usr/bin/env bash
# Load test: LOAD_LOGINS (200) logins through the Perl path in LOAD_WORKERS (8) forked workers
# sharing /etc/pve and the disk caches, against the emulator with LOAD_LATENCY_MS (50) of
# latency. Asserts correctness, prints timing (see tests/e2e/load.pl).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
if [ ! -x target/release/entra-emulator ] || [ ! -e target/release/libpve_entraid.so ]; then
    echo "load: build first: cargo build --release --workspace" >&2
    exit 1
fi
if [ ! -e perl/blib/arch/auto/PVE/EntraID/XS/XS.so ]; then
    bash perl/build.sh
fi
# on the real upstream PVE 9 code (PVE_ENTRAID_PVE=pve8 for PVE 8) through the contract harness
exec perl -T -I tests/upstream/lib -I perl/t/lib \
    tests/e2e/load.pl
