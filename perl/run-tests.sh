#!/usr/bin/env bash
# Runs the Perl tests (perl/t) against the PVE test doubles and the freshly built XS module.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ ! -e perl/blib/arch/auto/PVE/EntraID/XS/XS.so ]; then
    bash perl/build.sh
fi
exec prove -r -I tests/pve-doubles -I perl -I perl/blib/lib -I perl/blib/arch -I perl/t/lib perl/t
