#!/usr/bin/env bash
# Tests of integrate/pve-entraid-integrate on copies of the REAL upstream files it hooks, for
# PVE 9 and PVE 8 (or the one version given: pve9|pve8), through the contract harness.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v prove >/dev/null || bash scripts/install-deps.sh
perl -c integrate/pve-entraid-integrate
podchecker integrate/pve-entraid-integrate
PVE_ENTRAID_TEST_LIB="tests/integrate/lib" exec bash tests/upstream/run.sh "${1:-all}" tests/integrate/t
