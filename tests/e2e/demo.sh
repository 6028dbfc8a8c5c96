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
exec perl -I tests/pve-doubles -I perl -I perl/blib/lib -I perl/blib/arch -I perl/t/lib \
    tests/e2e/demo-login.pl
