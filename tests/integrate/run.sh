#!/usr/bin/env bash
# Tests of integrate/pve-entraid-integrate on copies of the REAL upstream files it hooks, for
# PVE 9 and PVE 8 (or the one version given: pve9|pve8), through the contract harness; then the
# upstream patch series (contrib/upstream) applied to both trees, where the tool applies no hook
# and the contract tests pass on its drop-ins (tests/upstream/native/run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v prove >/dev/null || bash scripts/install-deps.sh
perl -c integrate/pve-entraid-integrate
podchecker integrate/pve-entraid-integrate
PVE_ENTRAID_TEST_LIB="tests/integrate/lib" bash tests/upstream/run.sh "${1:-all}" tests/integrate/t
bash tests/upstream/native/run.sh "${1:-all}"
