# Clean Debian roots for building and install-testing the package (sourced, not run).
#
# A root is made by mmdebstrap from Debian's registry (the mirror the host's apt uses), packed
# as a tarball and cached under $PVE_ENTRAID_ROOTS (default /var/cache/pve-entraid-roots),
# keyed by distribution, kind, day and a hash of everything that decides its contents. Each
# use unpacks a fresh copy, so a run never sees what an earlier run left behind.
#
#   deb_root_dist_check DIST          trixie (Proxmox VE 9) or bookworm (Proxmox VE 8)
#   deb_root_tarball DIST KIND KEY    path of the cached tarball (made by the caller if absent)
#   deb_root_mmdebstrap DIST OUT ARGS make OUT with mmdebstrap (ARGS: --include=, hooks, ...)
#   deb_root_unpack TARBALL DIR       a fresh root in DIR
#   deb_root_run DIR CMD...           CMD chrooted in DIR, own mount/pid namespace, NO network
#   deb_root_run_net DIR CMD...       the same with the host's network (apt downloads only)
#
# Needs root (mmdebstrap's root mode, chroot, unshare), as the CI runs.

DEB_ROOTS="${PVE_ENTRAID_ROOTS:-/var/cache/pve-entraid-roots}"

deb_root_die() { echo "deb-root: $*" >&2; exit 1; }

deb_root_dist_check() {
    case "$1" in
        trixie | bookworm) ;;
        *) deb_root_die "unknown DIST '$1': trixie (Proxmox VE 9) or bookworm (Proxmox VE 8)" ;;
    esac
}

# The Debian archive the host's apt uses (deb822 URIs: or one-line deb entries), so that the
# roots come from the same registry; PVE_ENTRAID_MIRROR overrides.
deb_root_mirror() {
    if [ -n "${PVE_ENTRAID_MIRROR:-}" ]; then
        echo "$PVE_ENTRAID_MIRROR"
        return
    fi
    local m
    m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -oE '(https?|file)://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ')"
    echo "${m%/}" | grep . || echo http://deb.debian.org/debian
}

# cache path: <dist>-<kind>-<day>-<key>.tar; other days' tarballs of the same dist/kind go
deb_root_tarball() {
    local dist="$1" kind="$2" key="$3" day
    day="$(date -u +%Y%m%d)"
    echo "$DEB_ROOTS/$dist-$kind-$day-${key:0:16}.tar"
}

deb_root_prune() {
    local dist="$1" kind="$2" keep="$3" f
    for f in "$DEB_ROOTS/$dist-$kind-"*.tar "$DEB_ROOTS/$dist-$kind-"*.tar.log; do
        [ -e "$f" ] && [ "$f" != "$keep" ] && [ "$f" != "$keep.log" ] && rm -f "$f"
    done
    return 0
}

# main + updates + security: bookworm's rustc-web 1.96 is in bookworm-security
deb_root_mmdebstrap() {
    local dist="$1" out="$2"
    shift 2
    local mirror
    mirror="$(deb_root_mirror)"
    mkdir -p "$DEB_ROOTS"
    # unsafe-io: no fsync per file, the root is thrown away if anything fails
    mmdebstrap --variant=apt --mode=root --format=tar \
        --skip=cleanup/apt/lists --dpkgopt=force-unsafe-io --aptopt='Acquire::Languages "none"' \
        "$@" "$dist" "$out.tmp" \
        "deb $mirror $dist main" \
        "deb $mirror $dist-updates main" \
        "deb ${mirror%/debian}/debian-security $dist-security main" \
        >"$out.log" 2>&1 \
        || { tail -n 30 "$out.log" >&2; rm -f "$out.tmp"; deb_root_die "mmdebstrap $dist failed (log: $out.log)"; }
    mv "$out.tmp" "$out"
}

deb_root_unpack() {
    local tarball="$1" dir="$2"
    rm -rf "$dir"
    mkdir -p "$dir"
    tar -C "$dir" -xf "$tarball"
}

# /dev bound, fresh /proc and /tmp, hostname pve-entraid-test (PVE's node name comes from it)
_deb_root_run() {
    local net="$1" dir="$2"
    shift 2
    local flags=(--mount --pid --fork --uts)
    [ "$net" = 1 ] || flags+=(--net)
    unshare "${flags[@]}" /bin/sh -ec '
        dir="$1"; shift
        hostname pve-entraid-test
        mount --rbind /dev "$dir/dev"
        mount -t proc proc "$dir/proc"
        mount -t tmpfs tmpfs "$dir/tmp"
        [ ! -e /etc/resolv.conf ] || cp -L /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
        exec chroot "$dir" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
    ' _ "$dir" "$@"
}
deb_root_run() { _deb_root_run 0 "$@"; }
deb_root_run_net() { _deb_root_run 1 "$@"; }
