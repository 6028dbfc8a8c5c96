#!/usr/bin/env bash
# A "PVE-shaped" Debian root for the install tests, cached like the build roots
# (scripts/deb-root.sh): a clean Debian root of DIST plus the REAL upstream Proxmox VE Perl
# and web files of the pinned upstream trees <pve9|pve8> (scripts/upstream-env.sh, pinned by
# tests/upstream/VERSIONS), installed by stand-in packages built with
# equivs under the names of the PVE packages that ship them:
#
#   package (upstream source)                files, at the paths the upstream Makefiles use
#   libpve-common-perl (pve-common)          src/PVE/**.pm            -> /usr/share/perl5/PVE/
#   libpve-access-control (pve-access-ctl)   src/PVE/**.pm, src/pveum -> /usr/share/perl5/PVE/, /usr/sbin/
#   libpve-cluster-perl (pve-cluster)        src/PVE/**.pm but IPCC.pm, Cluster/IPCConst.pm made
#                                            from pmxcfs/cfs-ipc-ops.h as its Makefile does
#   libpve-http-server-perl (pve-http-srv)   src/PVE/**.pm
#   pve-manager (pve-manager)                PVE/**.pm, PVE/pvecfg.pm (from .in as its Makefile
#                                            does), www/index.html.tpl -> /usr/share/pve-manager/
#   pve-entraid-test-standins                tests/upstream/standins: what cannot run here,
#                                            pmxcfs's PVE::IPCC and proxmox-perl-rs (see there)
#
# Each stand-in has the upstream version and Depends on the Debian Perl libraries its
# upstream debian/control lists (those Debian has; Proxmox's own are the stand-ins above), so
# apt pulls exactly what real PVE pulls from Debian. Owning the files through dpkg also means a
# stand-in "upgrade" replaces them the way a PVE upgrade does, firing pve-entraid's triggers.
#
# usage: tests/deb/pve-root.sh DIST             prints the cached tarball (made if absent)
#        STANDIN_DEPENDS=... tests/deb/pve-root.sh --standin DIST PKG VERSION OUTDIR [OVERRIDE_SRC OVERRIDE_DEST]
#            builds one stand-in .deb with those Depends (OVERRIDE: ship OVERRIDE_SRC at
#            OVERRIDE_DEST instead of the upstream file; the install test's upgrade simulation)
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
. "$repo/scripts/deb-root.sh"
. "$repo/scripts/upstream-env.sh"
upstream="$PVE_ENTRAID_UPSTREAM"
standins="$repo/tests/upstream/standins"

pve_of() { case "$1" in trixie) echo pve9 ;; bookworm) echo pve8 ;; esac; }

# the upstream tree and version of a stand-in package
src_of() {
    case "$1" in
        libpve-common-perl) echo pve-common ;;
        libpve-access-control) echo pve-access-control ;;
        libpve-cluster-perl) echo pve-cluster ;;
        libpve-http-server-perl) echo pve-http-server ;;
        pve-manager) echo pve-manager ;;
    esac
}
STANDIN_PKGS=(libpve-common-perl libpve-access-control libpve-cluster-perl libpve-http-server-perl pve-manager)

upstream_version() { # first changelog line: "libpve-access-control (9.1.1) trixie; ..."
    sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$1/debian/changelog"
}

# "SRC DESTDIR/" lines for equivs' Files: field
files_of() {
    local pkg="$1" tree="$2" d rel
    case "$pkg" in
        libpve-common-perl | libpve-access-control | libpve-cluster-perl | libpve-http-server-perl)
            d="$tree/src"
            (cd "$d" && find PVE -name '*.pm' | sort) | while read -r rel; do
                [ "$pkg:$rel" != libpve-cluster-perl:PVE/IPCC.pm ] || continue
                echo "$d/$rel /usr/share/perl5/$(dirname "$rel")/"
            done
            ;;
        pve-manager)
            (cd "$tree" && find PVE -name '*.pm' | sort) | while read -r rel; do
                echo "$tree/$rel /usr/share/perl5/$(dirname "$rel")/"
            done
            echo "$tree/www/index.html.tpl /usr/share/pve-manager/"
            ;;
    esac
    [ "$pkg" != libpve-access-control ] || echo "$tree/src/pveum /usr/sbin/"
}

# build-time products of the upstream Makefiles, made the same way
generated_files() {
    local pkg="$1" tree="$2" gen="$3"
    case "$pkg" in
        libpve-cluster-perl)
            mkdir -p "$gen/Cluster"
            awk -f "$tree/src/PVE/Cluster/IPCConst.pm.awk" "$tree/src/pmxcfs/cfs-ipc-ops.h" > "$gen/Cluster/IPCConst.pm"
            echo "$gen/Cluster/IPCConst.pm /usr/share/perl5/PVE/Cluster/"
            ;;
        pve-manager)
            sed "s/@VERSION@/$(upstream_version "$tree" | cut -d- -f1)/;s/@PVERELEASE@/$(upstream_version "$tree" | cut -d. -f1)/;s/@PACKAGE@/pve-manager/;s/@REPOID@/standin/" \
                "$tree/PVE/pvecfg.pm.in" > "$gen/pvecfg.pm"
            echo "$gen/pvecfg.pm /usr/share/perl5/PVE/"
            ;;
    esac
}

# the Debian Perl libraries among an upstream binary package's Depends (names only)
perl_depends() {
    local control="$1" pkg="$2"
    awk -v pkg="$pkg" '
        /^Package:/ { in_pkg = ($2 == pkg) }
        /^[^ \t]/ { on = 0 }
        in_pkg && /^Depends:/ { on = 1; sub(/^Depends:/, "") }
        in_pkg && on { print }
    ' "$control" | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/\[.*//; s/[[:space:]]//g' \
        | grep -E '^lib.*-perl$' | sort -u
}

# equivs-build one stand-in; AVAILABLE: file with the DIST's package names (filter)
build_standin() {
    local dist="$1" pkg="$2" version="$3" outdir="$4" available="$5" over_src="${6:-}" over_dest="${7:-}"
    local pve tree work deps files
    pve="$(pve_of "$dist")"
    work="$(mktemp -d)"
    if [ "$pkg" = pve-entraid-test-standins ]; then
        [ -d "$standins" ] || deb_root_die "$standins missing (the upstream harness's stand-ins)"
        # PVE/Cluster/IPCConst.pm: libpve-cluster-perl has the real one, made from pmxcfs's header
        files="$( (cd "$standins" && find . -name '*.pm' ! -path ./PVE/Cluster/IPCConst.pm | sort) | while read -r rel; do
            rel="${rel#./}"; echo "$standins/$rel /usr/share/perl5/$(dirname "$rel")/"; done)"
        deps=""
    else
        tree="$upstream/$pve/$(src_of "$pkg")"
        mkdir -p "$work/gen"
        files="$(files_of "$pkg" "$tree"; generated_files "$pkg" "$tree" "$work/gen")"
        if [ -n "${STANDIN_DEPENDS+set}" ]; then
            deps="$STANDIN_DEPENDS"
        else
            deps="$(perl_depends "$tree/debian/control" "$pkg" | grep -xF -f <(cat "$available"; printf '%s\n' "${STANDIN_PKGS[@]}" libpve-rs-perl libproxmox-rs-perl) | paste -sd, | sed 's/,/, /g')"
        fi
        if [ -n "$over_src" ]; then
            mkdir -p "$work/over"
            cp "$over_src" "$work/over/$(basename "$over_dest")"
            files="$(awk -v d="$(dirname "$over_dest")/" -v b="$(basename "$over_dest")" -v n="$work/over/$(basename "$over_dest")" '
                { k = split($1, p, "/"); if ($2 == d && p[k] == b) print n " " d; else print }' <<<"$files")"
        fi
    fi
    {
        echo "Section: misc"
        echo "Priority: optional"
        echo "Standards-Version: 4.6.2"
        echo "Package: $pkg"
        echo "Version: $version"
        echo "Architecture: all"
        echo "Maintainer: pve-entraid tests <tests@invalid>"
        [ -z "$deps" ] || echo "Depends: $deps"
        # the proxmox-perl-rs packages whose modules it carries (the upstream Depends name them)
        [ "$pkg" != pve-entraid-test-standins ] || echo "Provides: libpve-rs-perl, libproxmox-rs-perl"
        echo "Description: TEST STAND-IN for $pkg ($pve upstream files)"
        echo " Built by tests/deb/pve-root.sh from the pinned upstream sources of $pve; not Proxmox's package."
        printf 'Files:'
        sed '/^$/d; s/^/ /' <<<"$files"
    } > "$work/$pkg.ctl"
    (cd "$work" && equivs-build "$pkg.ctl" >"$work/equivs.log" 2>&1) \
        || { cat "$work/equivs.log" >&2; deb_root_die "equivs-build $pkg failed"; }
    mkdir -p "$outdir"
    mv "$work"/"${pkg}"_*.deb "$outdir/"
    rm -rf "$work"
}

# customize hook of mmdebstrap: build the stand-ins against the root's package list, install
standins_into_root() {
    local dist="$1" root="$2" pve tree pkg debs
    pve="$(pve_of "$dist")"
    debs="$(mktemp -d)"
    chroot "$root" apt-cache pkgnames | sort -u > "$debs/available"
    for pkg in "${STANDIN_PKGS[@]}"; do
        tree="$upstream/$pve/$(src_of "$pkg")"
        build_standin "$dist" "$pkg" "$(upstream_version "$tree")" "$debs/out" "$debs/available"
    done
    build_standin "$dist" pve-entraid-test-standins 1.0 "$debs/out" "$debs/available"
    mkdir -p "$root/root/standins"
    cp "$debs"/out/*.deb "$root/root/standins/"
    chroot "$root" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /root/standins/*.deb' 
    chroot "$root" apt-get clean
    rm -rf "$debs" "$root/root/standins"
}

# sourced by tests/node/node-root.sh for the functions above
[ -z "${PVE_ROOT_FUNCTIONS_ONLY:-}" ] || return 0

case "${1:-}" in
    --standin)
        shift
        # STANDIN_DEPENDS: the Depends of the stand-in installed in the root (an upgrade keeps them)
        [ -n "${STANDIN_DEPENDS+set}" ] || deb_root_die "--standin needs STANDIN_DEPENDS"
        build_standin "$1" "$2" "$3" "$4" /dev/null "${5:-}" "${6:-}"
        exit 0
        ;;
    --hook)
        standins_into_root "$2" "$3"
        exit 0
        ;;
esac

dist="${1:-trixie}"
deb_root_dist_check "$dist"
pve="$(pve_of "$dist")"
for tool in mmdebstrap equivs-build; do
    command -v "$tool" >/dev/null 2>&1 || deb_root_die "'$tool' not found: run scripts/install-deps.sh"
done
if [ ! -f "$upstream/$pve/pve-access-control/src/PVE/AccessControl.pm" ]; then
    # a machine without the pinned trees (CI on a fresh checkout) fetches them once
    echo "pve-root[$dist]: no upstream tree $upstream/$pve, fetching the pinned commits" >&2
    bash "$repo/scripts/fetch-upstream.sh" "$upstream" >&2
fi
[ -d "$standins" ] || deb_root_die "$standins missing (the upstream harness's stand-ins)"

key="$( { cat "$0" "$repo/scripts/deb-root.sh"; grep "^$pve " "$repo/tests/upstream/VERSIONS";
    (cd "$standins" && find . -type f | sort | xargs sha256sum); echo "$dist"; } | sha256sum | cut -c1-64)"
tarball="$(deb_root_tarball "$dist" pve "$key")"
if [ ! -f "$tarball" ]; then
    echo "pve-root[$dist]: making $tarball (mmdebstrap + $pve stand-ins)" >&2
    # ca-certificates: our package depends on it; openssl: PVE creates its keys with it
    deb_root_mmdebstrap "$dist" "$tarball" \
        --include=perl,ca-certificates,openssl \
        --customize-hook="bash '$repo/tests/deb/pve-root.sh' --hook '$dist' \"\$1\""
    deb_root_prune "$dist" pve "$tarball"
fi
echo "$tarball"
