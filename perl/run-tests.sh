#!/usr/bin/env bash
# Runs the Perl tests (perl/t) on the REAL upstream PVE code through the contract harness
# (tests/upstream), under perl -T, for PVE 9 and PVE 8 (or the one version given: pve9|pve8).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ ! -e perl/blib/arch/auto/PVE/EntraID/XS/XS.so ]; then
    bash perl/build.sh
fi
PVE_ENTRAID_TEST_LIB="perl/t/lib:perl:perl/blib/lib:perl/blib/arch" \
    exec bash tests/upstream/run.sh "${1:-all}" perl/t
