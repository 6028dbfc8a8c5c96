#!/usr/bin/env bash
# The test node (`make test-node`): per distribution (DISTS, default "trixie bookworm": Proxmox VE 9, 8),
# a fresh copy of the node root (tests/node/node-root.sh, cached per day), the project's .deb
# (debian/build-deb.sh --reuse), then tests/node/node.sh in a private mount + PID + UTS +
# network namespace: nothing of the node is reachable from outside or reaches out.
# Prints "ok"/"not ok" per check and a final "N passed, N failed" line; exits 1 on failure.
# Needs root (mmdebstrap, chroot, unshare, FUSE).
set -uo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
. scripts/deb-root.sh
. scripts/upstream-env.sh

passed=0
failed=0
count() {
    local line
    while IFS= read -r line; do
        case "$line" in
            "ok - "*) passed=$((passed + 1)); echo "ok - [$1] ${line#ok - }" ;;
            "not ok - "*) failed=$((failed + 1)); echo "not ok - [$1] ${line#not ok - }" ;;
            *) echo "$line" ;;
        esac
    done
}
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; shift; for l in "$@"; do printf '#   %s\n' "$l"; done; }

arch="$(dpkg --print-architecture)"
version="$(dpkg-parsechangelog -l debian/changelog -S Version)"
[ -x target/release/entra-emulator ] || cargo build --release -p entra-emulator >&2 || exit 1

test_dist() {
    local dist="$1" pve out tarball root deb t0 log
    case "$dist" in trixie) pve=pve9 ;; bookworm) pve=pve8 ;; esac
    out="build/node/$dist"
    mkdir -p "$out"
    t0=$SECONDS
    if ! tarball="$(bash tests/node/node-root.sh "$dist" 2>"$out/node-root.err")"; then
        not_ok "[$dist] node root made" "$(tail -n 30 "$out/node-root.err")"
        return
    fi
    echo "# [$dist] node root: $tarball ($((SECONDS - t0)) s)"
    t0=$SECONDS
    deb="build/deb/$dist/pve-entraid_$version+${pve}_$arch.deb"
    # PVE_ENTRAID_NODE_DEBS: a directory with the packages built before (build-deb --reuse
    # rebuilds on any change of the working tree)
    if [ -n "${PVE_ENTRAID_NODE_DEBS:-}" ]; then
        deb="$PVE_ENTRAID_NODE_DEBS/$(basename "$deb")"
        [ -f "$deb" ] || { not_ok "[$dist] package $deb there"; return; }
    elif ! bash debian/build-deb.sh --reuse "$dist" >"$out/build-deb.log" 2>&1; then
        not_ok "[$dist] package builds" "$(tail -n 20 "$out/build-deb.log")"
        return
    fi
    echo "# [$dist] package: $deb ($((SECONDS - t0)) s)"
    if ! (cd tests/browser && node frontend.js "$pve") >"$out/frontend.log" 2>&1; then
        not_ok "[$dist] web UI built (tests/browser/frontend.js)" "$(tail -n 20 "$out/frontend.log")"
        return
    fi
    root="$out/root"
    deb_root_unpack "$tarball" "$root"
    t0=$SECONDS
    log="$out/node.log"
    count "$dist" < <(unshare --mount --pid --fork --uts --net --propagation private \
        bash tests/node/node.sh "$repo/$root" "$(realpath "$deb")" "$repo/target/release/entra-emulator" "$pve" 2>&1 \
        | tee "$log")
    echo "# [$dist] node: $((SECONDS - t0)) s (log: $log)"
    grep -q '^\(not \)\?ok - ' "$log" || not_ok "[$dist] the node started" "$(tail -n 30 "$log")"
    [ -n "${PVE_ENTRAID_KEEP_NODE:-}" ] || rm -rf "$root"
}

for dist in ${DISTS:-trixie bookworm}; do
    deb_root_dist_check "$dist"
    test_dist "$dist"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
