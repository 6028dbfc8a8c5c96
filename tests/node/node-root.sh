#!/usr/bin/env bash
# The root of the test node (tests/node/run.sh), cached per day like the other roots
# (scripts/deb-root.sh): a clean Debian root of DIST holding the pinned upstream sources of every
# repository pvedaemon and pveproxy load (tests/upstream/VERSIONS, fetched by
# scripts/upstream-env.sh), installed as tests/deb/pve-root.sh
# installs them: equivs packages under the upstream package names, Depends on the Debian Perl
# libraries their debian/control lists. pve-cluster's C parts are built inside the root with
# Debian's build dependencies: pmxcfs (run as `pmxcfs -l`) and the PVE::IPCC XS that talks to it.
# What cannot be built here is in tests/node/standins.list (with the reason).
#
#   package (upstream source)        files
#   libpve-common-perl ...           src/PVE/**.pm -> /usr/share/perl5/PVE/ (every Perl repository)
#   libpve-access-control            + src/pveum -> /usr/sbin/
#   pve-cluster                      src/PVE/**.pm, IPCC.so, Cluster/IPCConst.pm (its Makefiles'
#                                    recipes), pmxcfs, pvecm
#   pve-manager                      PVE/**.pm, pvecfg.pm, bin/{pvedaemon,pveproxy,pvesh},
#                                    www/index.html.tpl
#   pve-entraid-test-standins        tests/upstream/standins/PVE/RS/{TFA,OpenId}.pm,
#                                    Proxmox/RS/CalendarEvent.pm, tests/node/standins.list
#
# usage: tests/node/node-root.sh DIST      prints the cached tarball (made if absent)
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
PVE_ROOT_FUNCTIONS_ONLY=1 . "$repo/tests/deb/pve-root.sh"

# package name -> upstream repository (every repository of the pinned trees but the toolkit)
NODE_PKGS=(libpve-common-perl libpve-access-control pve-cluster libpve-http-server-perl
    libpve-storage-perl libpve-guest-common-perl libpve-network-perl libpve-apiclient-perl
    pve-firewall pve-ha-manager qemu-server pve-container pve-manager)
src_of() {
    case "$1" in
        libpve-common-perl) echo pve-common ;;
        libpve-access-control) echo pve-access-control ;;
        libpve-http-server-perl) echo pve-http-server ;;
        libpve-storage-perl) echo pve-storage ;;
        libpve-guest-common-perl) echo pve-guest-common ;;
        libpve-network-perl) echo pve-network ;;
        libpve-apiclient-perl) echo pve-apiclient ;;
        *) echo "$1" ;;
    esac
}
STANDIN_PKGS=("${NODE_PKGS[@]}")

# Debian Perl libraries of every binary package of the source (pve-cluster: four packages)
perl_depends() {
    awk '/^[^ \t]/ { on = 0 } /^Depends:/ { on = 1; sub(/^Depends:/, "") } on { print }' "$1" \
        | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/\[.*//; s/[[:space:]]//g' | grep -E '^lib.*-perl$' | sort -u
}

# where pve-cluster's C parts are built inside the root (node_build)
BUILD=/root/node-build

files_of() {
    local pkg="$1" tree="$2" rel
    local d="$tree/src"
    [ "$pkg" != pve-manager ] || d="$tree"
    # the HA simulator (Gtk) is its own package, not loaded by the daemons
    (cd "$d" && find PVE -name '*.pm' ! -path 'PVE/HA/Sim/*' | sort) | while read -r rel; do
        echo "$d/$rel /usr/share/perl5/$(dirname "$rel")/"
    done
    case "$pkg" in
        libpve-access-control) echo "$tree/src/pveum /usr/sbin/" ;;
        pve-manager)
            for b in pvedaemon pveproxy pvesh; do echo "$tree/bin/$b /usr/bin/"; done
            echo "$tree/www/index.html.tpl /usr/share/pve-manager/"
            ;;
        pve-cluster)
            echo "$NODE_ROOT$BUILD/pve-cluster/src/pmxcfs/pmxcfs /usr/bin/"
            echo "$tree/src/PVE/pvecm /usr/bin/"
            echo "$NODE_ROOT$BUILD/pve-cluster/src/PVE/IPCC.so $(chroot "$NODE_ROOT" perl -MConfig -e 'print $Config{vendorarch}')/auto/PVE/IPCC/"
            ;;
    esac
}

# pve-root.sh's (pvecfg.pm of pve-manager), kept under another name for the override below
eval "$(declare -f generated_files | sed '1s/^generated_files/_pve_root_generated_files/')"
generated_files() {
    case "$1" in
        pve-cluster) mkdir -p "$3/Cluster"
            awk -f "$2/src/PVE/Cluster/IPCConst.pm.awk" "$2/src/pmxcfs/cfs-ipc-ops.h" > "$3/Cluster/IPCConst.pm"
            echo "$3/Cluster/IPCConst.pm /usr/share/perl5/PVE/Cluster/" ;;
        *) _pve_root_generated_files "$@" ;;
    esac
}

# pve-cluster's pmxcfs and IPCC.so, with its Makefiles, in the root
node_build() {
    local root="$1" tree="$2"
    rm -rf "${root:?}$BUILD"
    mkdir -p "$root$BUILD"
    cp -a "$tree" "$root$BUILD/pve-cluster"
    chroot "$root" make -C "$BUILD/pve-cluster/src/pmxcfs" pmxcfs >"$root$BUILD/make.log" 2>&1 \
        && chroot "$root" make -C "$BUILD/pve-cluster/src/PVE" IPCC.so >>"$root$BUILD/make.log" 2>&1 \
        || { tail -n 40 "$root$BUILD/make.log" >&2; deb_root_die "pve-cluster build failed"; }
}

# the stand-ins: the harness's proxmox-perl-rs ones that the node uses, tests/node/standins/
# (modules that must do something at load time) and standins.list's
node_standins() {
    local dir="$1" mod rest rel
    mkdir -p "$dir/PVE/RS" "$dir/Proxmox/RS"
    cp "$repo/tests/upstream/standins/PVE/RS/TFA.pm" "$repo/tests/upstream/standins/PVE/RS/OpenId.pm" "$dir/PVE/RS/"
    cp "$repo/tests/upstream/standins/Proxmox/RS/CalendarEvent.pm" "$dir/Proxmox/RS/"
    cp -a "$repo/tests/node/standins/." "$dir/"
    grep -v '^#' "$repo/tests/node/standins.list" | while read -r mod rest; do
        [ -n "$mod" ] || continue
        rel="$(sed 's|::|/|g' <<<"$mod").pm"
        mkdir -p "$dir/$(dirname "$rel")"
        cat > "$dir/$rel" <<EOF
package $mod;
# TEST NODE STAND-IN for $rest (tests/node/standins.list)
use strict;
use warnings;
our \$AUTOLOAD;
sub import { }
sub AUTOLOAD {
    my \$name = \$AUTOLOAD;
    return if \$name =~ /::DESTROY\$/;
    die "\$name: not available on the test node (stand-in for $rest)\\n";
}
1;
EOF
    done
}

# customize hook of mmdebstrap
node_into_root() {
    local dist="$1" root="$2" pve pkg tree debs
    pve="$(pve_of "$dist")"
    export NODE_ROOT="$root"
    node_build "$root" "$upstream/$pve/pve-cluster"
    debs="$(mktemp -d)"
    chroot "$root" apt-cache pkgnames | sort -u > "$debs/available"
    for pkg in "${NODE_PKGS[@]}"; do
        tree="$upstream/$pve/$(src_of "$pkg")"
        build_standin "$dist" "$pkg" "$(upstream_version "$tree")" "$debs/out" "$debs/available"
    done
    standins="$debs/standins"
    node_standins "$standins"
    build_standin "$dist" pve-entraid-test-standins 1.0 "$debs/out" "$debs/available"
    mkdir -p "$root/root/standins"
    cp "$debs"/out/*.deb "$root/root/standins/"
    chroot "$root" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /root/standins/*.deb' \
        > "$debs/apt.log" 2>&1 || { tail -n 40 "$debs/apt.log" >&2; deb_root_die "stand-ins do not install"; }
    chroot "$root" apt-get clean
    rm -rf "$debs" "$root/root/standins" "${root:?}$BUILD"
}

if [ "${1:-}" = --hook ]; then
    node_into_root "$2" "$3"
    exit 0
fi

dist="${1:-trixie}"
deb_root_dist_check "$dist"
pve="$(pve_of "$dist")"
for tool in mmdebstrap equivs-build git; do
    command -v "$tool" >/dev/null 2>&1 || deb_root_die "'$tool' not found: run scripts/install-deps.sh"
done

key="$( { cat "$0" "$repo/tests/deb/pve-root.sh" "$repo/scripts/deb-root.sh" "$repo/tests/node/standins.list";
    (cd "$repo/tests/node/standins" && find . -type f | sort | xargs cat);
    grep "^$pve " "$repo/tests/upstream/VERSIONS"; cat "$repo/tests/upstream/standins/PVE/RS/"*.pm \
    "$repo/tests/upstream/standins/Proxmox/RS/"*.pm; echo "$dist"; } | sha256sum | cut -c1-64)"
tarball="$(deb_root_tarball "$dist" node "$key")"
if [ ! -f "$tarball" ]; then
    echo "node-root[$dist]: making $tarball (mmdebstrap, pmxcfs build, $pve sources)" >&2
    # build: pve-cluster's Build-Depends for pmxcfs and the IPCC XS; run: FUSE, PAM logins,
    # the tools the daemons call (pvecm updatecerts: ssh-keygen, faketime), the UI's fonts, curl
    # for the checks inside the node
    deb_root_mmdebstrap "$dist" "$tarball" \
        --include=perl,ca-certificates,openssl,gcc,make,pkgconf,libc6-dev,libperl-dev,libcpg-dev,libcmap-dev,libcorosync-common-dev,libquorum-dev,libqb-dev,libfuse-dev,libglib2.0-dev,libsqlite3-dev,librrd-dev,iproute2,procps,curl,busybox,passwd,login,openssh-client,faketime,fonts-font-awesome \
        --customize-hook="bash '$repo/tests/node/node-root.sh' --hook '$dist' \"\$1\""
    deb_root_prune "$dist" node "$tarball"
fi
echo "$tarball"
