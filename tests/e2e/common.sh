# Shared set-up of the end-to-end scripts (demo.sh, load.sh); source it, then call
# `e2e_exec NAME SCRIPT`: checks that the library and the emulator are built, builds the XS
# module if needed, and runs the Perl SCRIPT under perl -T on the real upstream PVE 9 code
# (PVE_ENTRAID_PVE=pve8 for PVE 8) through the contract harness.
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
    . scripts/upstream-env.sh
    exec perl -T -I tests/upstream/lib -I perl/t/lib "$script"
}
