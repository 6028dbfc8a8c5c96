#!/usr/bin/env bash
# `make demo`: one Entra ID login end to end against the bundled emulator, through the real
# Perl plugin, its API handlers and the Rust library (see tests/e2e/demo-login.pl).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
if [ ! -x target/release/entra-emulator ] || [ ! -e target/release/libpve_entraid.so ]; then
    echo "demo: build first: cargo build --release --workspace" >&2
    exit 1
fi
if [ ! -e perl/blib/arch/auto/PVE/EntraID/XS/XS.so ]; then
    bash perl/build.sh
fi
# on the real upstream PVE 9 code (PVE_ENTRAID_PVE=pve8 for PVE 8) through the contract harness
exec perl -T -I tests/upstream/lib -I perl/t/lib \
    tests/e2e/demo-login.pl
