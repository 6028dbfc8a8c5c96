# Shared set-up of the end-to-end scripts (demo.sh, load.sh); source it, then call
# `e2e_exec NAME SCRIPT`: checks that the library and the emulator are built, builds the XS
# module if needed, and runs the Perl SCRIPT with the project's modules and the PVE stand-ins.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

e2e_exec() {
    local name="$1" script="$2"
    if [ ! -x target/release/entra-emulator ] || [ ! -e target/release/libpve_entraid.so ]; then
        echo "$name: build first: cargo build --release --workspace" >&2
        exit 1
    fi
    if [ ! -e perl/blib/arch/auto/PVE/EntraID/XS/XS.so ]; then
        bash perl/build.sh
    fi
    exec perl -I tests/pve-doubles -I perl -I perl/blib/lib -I perl/blib/arch -I perl/t/lib "$script"
}
