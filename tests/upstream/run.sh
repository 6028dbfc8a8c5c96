#!/usr/bin/env bash
# Runs tests on the REAL upstream Proxmox VE Perl through the contract harness
# (tests/upstream/lib/UpstreamTest.pm), under perl -T, once per PVE version.
#   tests/upstream/run.sh [pve9|pve8|all] [test files or dirs, default tests/upstream/t]
# Environment: PVE_ENTRAID_UPSTREAM (dir with pve9/ and pve8/; scripts/upstream-env.sh fetches
# the pinned trees when unset or incomplete), PVE_ENTRAID_PERL_BIN (default perl),
# PVE_ENTRAID_TEST_LIB (':'-separated extra -I dirs for the tests, e.g. perl/t/lib).
# Needs root (private mount namespace with a tmpfs /etc/pve per test file).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
which="${1:-all}"
[ $# -gt 0 ] && shift
case "$which" in
    all) versions="pve9 pve8" ;;
    pve9|pve8) versions="$which" ;;
    *) echo "usage: $0 [pve9|pve8|all] [tests...]" >&2; exit 2 ;;
esac
[ $# -gt 0 ] || set -- tests/upstream/t
perl="${PVE_ENTRAID_PERL_BIN:-perl}"
. scripts/upstream-env.sh
# the XS binding of the project's library (tests that only need the integrate tool skip it)
if [ -e target/release/libpve_entraid.so ] && [ ! -e perl/blib/arch/auto/PVE/EntraID/XS/XS.so ]; then
    bash perl/build.sh
fi
inc="-I$root/tests/upstream/lib"
IFS=: read -r -a extra <<< "${PVE_ENTRAID_TEST_LIB:-}"
for d in "${extra[@]}"; do [ -n "$d" ] && inc="$inc -I$(cd "$d" && pwd)"; done
for v in $versions; do
    echo "== $v ($PVE_ENTRAID_UPSTREAM/$v)"
    PVE_ENTRAID_PVE="$v" prove -r --exec "$perl -T $inc" "$@"
done
