#!/usr/bin/env bash
# `make bench`, the test node's part: the figures of a real Proxmox VE 9 node (tests/node: pmxcfs,
# pvedaemon, pveproxy from the pinned sources, the package installed with apt), beside the
# in-process ones of bench/run.sh. Prints one Markdown table of the "# figure:" lines the node's
# checks print (tests/node/checks.sh): a full login through pveproxy at 0 and 50 ms IdP latency,
# logins/s at 8 concurrent and the daemons' CPU per login over a soak of BENCH_NODE_LOGINS
# (default 200). Timing is printed, never asserted.
#
# Runs the node only when it can without building one: as root, with the package in
# $PVE_ENTRAID_NODE_DEBS or build/deb/trixie (make test-deb, or bash debian/build-deb.sh trixie)
# and a node root in the cache (tests/node/node-root.sh trixie, made by make test-node); else it
# prints one line saying what is missing and how to get it.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
. scripts/deb-root.sh

skip() { echo; echo "test node figures: skipped, $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (mmdebstrap, chroot, unshare, FUSE): run make bench as root"
arch="$(dpkg --print-architecture)"
version="$(dpkg-parsechangelog -l debian/changelog -S Version)"
debs="${PVE_ENTRAID_NODE_DEBS:-$repo/build/deb/trixie}"
[ -f "$debs/pve-entraid_$version+pve9_$arch.deb" ] \
    || skip "no package pve-entraid_$version+pve9_$arch.deb in $debs: build it with 'bash debian/build-deb.sh trixie' (or make test-deb)"
ls "$DEB_ROOTS"/trixie-node-*.tar >/dev/null 2>&1 \
    || skip "no node root in $DEB_ROOTS: make one with 'bash tests/node/node-root.sh trixie' (4-11 min, or make test-node)"

logins="${BENCH_NODE_LOGINS:-200}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "bench: the test node (PVE 9), $logins logins ..." >&2
DISTS=trixie PVE_ENTRAID_NODE_DEBS="$debs" PVE_ENTRAID_NODE_SOAK="$logins" bash tests/node/run.sh >"$log" 2>&1
rc=$?
echo
echo "test node (Proxmox VE 9: pveproxy -> pvedaemon -> the package; the emulator as Microsoft; $(nproc) core(s), load $(cut -d' ' -f1 /proc/loadavg))"
echo
printf '| figure | value |\n| --- | --- |\n'
sed -n 's/^# figure: \(.*\): \([^:]*\)$/| \1 | \2 |/p' "$log"
echo "$(tail -n 1 "$log") (tests/node/run.sh)"
if [ "$rc" -ne 0 ]; then
    grep -A 8 '^not ok' "$log" | head -n 40
    exit 1
fi
