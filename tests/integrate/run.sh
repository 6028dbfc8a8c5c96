#!/usr/bin/env bash
# Tests of integrate/pve-entraid-integrate on fixture copies of the PVE files it hooks.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v prove >/dev/null || bash scripts/install-deps.sh
perl -c integrate/pve-entraid-integrate
podchecker integrate/pve-entraid-integrate
exec prove tests/integrate/t/
