#!/usr/bin/env bash
# The test node itself; tests/node/run.sh runs it in a private mount + PID + UTS + network
# namespace (nothing it starts can reach or be reached from outside; 192.0.2.10 is TEST-NET-1 on a veth
# pair whose both ends are in that namespace). It starts what a booted Proxmox VE node runs for the API:
# pmxcfs -l on /etc/pve, pvecm updatecerts (pve-cluster's and pveproxy's ExecStartPre), then
# pvedaemon and pveproxy from pve-manager's own service code, installs the project's .deb with
# apt, and runs the checks (tests/node/checks.sh) in the root. Prints TAP-like "ok"/"not ok".
#
# Microsoft is the bundled emulator (EMULATOR, the host's binary run in the namespace) on
# 127.0.0.1:443 under login.microsoftonline.com and graph.microsoft.com: the root resolves those
# names to it and trusts its CA, as a node trusts the real ones, so the product runs unchanged.
#
# usage (inside the namespace): tests/node/node.sh ROOT DEB EMULATOR PVE
#   PVE: pve9 or pve8, the web UI built for it by tests/browser/frontend.js
set -euo pipefail

root="$1"
deb="$2"
emulator="$3"
pve="$4"
here="$(cd "$(dirname "$0")" && pwd)"
NODE=pve-node
NODE_IP=192.0.2.10

# a stage that failed ends the node (its output went to stderr before)
die() { echo "not ok - $*"; exit 1; }
in_root() {
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
# wait_for SECONDS TEST...: poll until TEST succeeds
wait_for() {
    local n=$(($1 * 10))
    shift
    while ! "$@" 2>/dev/null; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || return 1
        sleep 0.1
    done
}

# --- the namespace: host name, loopback, the node's address ---
hostname "$NODE"
ip link set lo up
ip link add node0 type veth peer name node0-peer
ip addr add "$NODE_IP/24" dev node0
ip link set node0 up
ip link set node0-peer up
# the "browser" of the checks: a second address, so that rhost proves PVEClientIP
ip addr add 192.0.2.11/24 dev node0
# the soak's clients (tests/node/checks.sh): one address per ten logins
for i in $(seq 100 199); do ip addr add "192.0.2.$i/24" dev node0; done

# --- the root's own /dev (the host's device nodes bound one by one: nothing the node does, such
# as syslogd's /dev/log, reaches the host's /dev), /proc, /sys, /run, /tmp ---
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs "$root/dev"
for d in null zero full random urandom tty fuse; do
    touch "$root/dev/$d"
    mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs tmpfs "$root/dev/shm"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys" 2>/dev/null || true
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
chmod 1777 "$root/tmp"
mkdir -p "$root/run/lock" && chmod 1777 "$root/run/lock"

MICROSOFT="login.microsoftonline.com graph.microsoft.com"
printf '127.0.0.1 localhost %s\n%s %s.test %s\n' "$MICROSOFT" "$NODE_IP" "$NODE" "$NODE" > "$root/etc/hosts"
echo "$NODE" > "$root/etc/hostname"

# --- Microsoft: the emulator over TLS, its throw-away CA in the root's trust store ---
emu="$root/root/emulator"
mkdir -p "$emu"
names=()
for n in $MICROSOFT; do names+=(--tls-name "$n"); done
"$emulator" --listen 127.0.0.1:443 --tls-dir "$emu" "${names[@]}" >"$emu/out" 2>&1 &
wait_for 10 grep -q '^listening on https://login.microsoftonline.com$' "$emu/out" || { cat "$emu/out" >&2; die "emulator did not start"; }
cp "$emu/ca.pem" "$root/usr/local/share/ca-certificates/entra-emulator.crt"
in_root update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed"

# --- syslog: busybox syslogd on the root's /dev/log, into /var/log/syslog ---
in_root busybox syslogd -O /var/log/syslog
wait_for 10 test -S "$root/dev/log" || die "syslogd did not start"

# --- pmxcfs in local mode on /etc/pve ---
mkdir -p "$root/etc/pve" "$root/var/lib/pve-cluster" "$root/run/pve"
chgrp 33 "$root/run/pve" && chmod 0750 "$root/run/pve"
t0=$(date +%s.%N)
in_root pmxcfs -l >"$root/var/log/pmxcfs.out" 2>&1 || { cat "$root/var/log/pmxcfs.out" >&2; die "pmxcfs -l failed"; }
wait_for 20 test -e "$root/etc/pve/.version" || { tail -n 20 "$root/var/log/syslog" >&2; die "pmxcfs: /etc/pve not mounted"; }
echo "ok - pmxcfs -l (built from pve-cluster in the root) mounted /etc/pve ($(awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$t0}") s)"

# sshd's host keys (pvecm updatecerts puts them into the node's known hosts)
in_root ssh-keygen -A >/dev/null
# pve-cluster.service's ExecStartPost and pveproxy's ExecStartPre: node certificate, authkey
in_root pvecm updatecerts --force --silent >"$root/var/log/updatecerts.out" 2>&1 \
    || { cat "$root/var/log/updatecerts.out" >&2; die "pvecm updatecerts failed"; }
echo "ok - pvecm updatecerts made the node certificate"

# --- root@pam's password (PAM of the root) ---
echo 'root:node-test-root' | in_root chpasswd

# --- pve-manager's reload of the daemons on its dpkg trigger, on a node without systemd: a
# stand-in package with pve-manager's own debian/triggers (interest in pve-api-updates and in
# /usr/share/perl5/PVE) and its postinst's "triggered" branch (both from the pinned source),
# pvedaemon's and pveproxy's unit files, and tests/node/systemctl for systemd's reload (the real
# systemctl diverted: in a root without systemd it ignores every command) ---
reload_standin() {
    local mgr="$PVE_ENTRAID_UPSTREAM/$pve/pve-manager" pkg="$root/root/reload-standin"
    mkdir -p "$pkg/DEBIAN" "$pkg/usr/lib/systemd/system" "$pkg/usr/bin"
    cp "$mgr/services/pvedaemon.service" "$mgr/services/pveproxy.service" "$pkg/usr/lib/systemd/system/"
    cp "$here/systemctl" "$pkg/usr/bin/systemctl"
    printf '%s\n' '#!/bin/sh' 'set -e' \
        'dpkg-divert --package pve-entraid-test-reload --rename --divert /usr/bin/systemctl.real --add /usr/bin/systemctl >/dev/null' \
        > "$pkg/DEBIAN/preinst"
    cp "$mgr/debian/triggers" "$pkg/DEBIAN/triggers"
    {
        printf '#!/bin/sh\n# pve-manager'"'"'s debian/postinst (%s), its "triggered" branch\ncase "$1" in\n' "$pve"
        sed -n '/^  triggered)/,/exit 0;;/p' "$mgr/debian/postinst"
        printf 'esac\nexit 0\n'
    } > "$pkg/DEBIAN/postinst"
    grep -q 'deb-systemd-invoke reload-or-try-restart pvedaemon.service' "$pkg/DEBIAN/postinst" \
        || die "no \"triggered\" branch reloading pvedaemon in $mgr/debian/postinst"
    chmod 0755 "$pkg/DEBIAN/preinst" "$pkg/DEBIAN/postinst" "$pkg/usr/bin/systemctl"
    printf '%s\n' "Package: pve-entraid-test-reload" "Version: 1.0" "Architecture: all" \
        "Maintainer: pve-entraid tests <tests@invalid>" \
        "Description: TEST STAND-IN for pve-manager's reload on its trigger (tests/node/node.sh)" \
        > "$pkg/DEBIAN/control"
    dpkg-deb -b --root-owner-group "$pkg" "$root/root/pve-entraid-test-reload.deb" >/dev/null || die "dpkg-deb of the reload stand-in failed"
    rm -rf "$pkg"
    in_root apt-get install -y -q --no-install-recommends /root/pve-entraid-test-reload.deb >"$root/var/log/apt-reload.out" 2>&1 \
        || { tail -n 30 "$root/var/log/apt-reload.out" >&2; die "apt install of the reload stand-in failed"; }
}
reload_standin
echo "ok - pve-manager's trigger (its debian/triggers, its postinst's reload) installed as a stand-in package"

# --- the project's package, with apt ---
cp "$deb" "$root/root/"
in_root apt-get install -y -q --no-install-recommends "/root/$(basename "$deb")" >"$root/var/log/apt-entraid.out" 2>&1 \
    || { tail -n 30 "$root/var/log/apt-entraid.out" >&2; die "apt install of $(basename "$deb") failed"; }
echo "ok - apt installed $(basename "$deb") (postinst, hooks)"

# --- the web UI's static files where pveproxy serves them from (it lists them at start). Not
# packages: pve-manager's and the toolkit's JavaScript as tests/browser/frontend.js builds them
# from the pinned sources (their Makefiles' concatenation), ExtJS 6.2 GPL from the npm registry
# in libjs-extjs's layout (Proxmox's ExtJS 7 is not in Debian), fonts-font-awesome from Debian ---
install_www() {
    local built="$here/../browser/.build/$pve" up="$PVE_ENTRAID_UPSTREAM/$pve"
    local ext="$here/../browser/node_modules/extjs-gpl/build" wt="$root/usr/share/javascript/proxmox-widget-toolkit"
    local mgr="$root/usr/share/pve-manager" js="$root/usr/share/javascript/extjs"
    [ -f "$built/pvemanagerlib.js" ] || die "no $built/pvemanagerlib.js (node tests/browser/frontend.js $pve)"
    mkdir -p "$wt/themes" "$mgr/js" "$js/crisp/resources" "$js/locale"
    cp "$built/proxmoxlib.js" "$wt/"
    cp -r "$up/proxmox-widget-toolkit/src/css" "$up/proxmox-widget-toolkit/src/images" "$wt/"
    cp "$built/pvemanagerlib.js" "$up/pve-manager/www/u2f-api.js" "$mgr/js/"
    cp -r "$up/pve-manager/www/css" "$up/pve-manager/www/images" "$mgr/"
    cp "$ext/ext-all.js" "$ext/ext-all-debug.js" "$ext/packages/charts/classic/charts.js" \
        "$ext/packages/charts/classic/charts-debug.js" "$js/"
    cp "$ext/packages/charts/classic/crisp/resources/charts-all.css" "$js/crisp/resources/"
    cp -r "$ext/classic/theme-crisp" "$js/"
    cp "$ext/classic/locale/locale-en.js" "$js/locale/"
}
install_www

# --- the daemons, as their units start them ---
mkdir -p "$root/var/log/pveproxy" "$root/var/lib/pve-manager"
chown 33:33 "$root/var/log/pveproxy"
in_root pvedaemon start >"$root/var/log/pvedaemon.out" 2>&1 || { cat "$root/var/log/pvedaemon.out" >&2; die "pvedaemon start failed"; }
in_root pveproxy start >"$root/var/log/pveproxy.out" 2>&1 || { cat "$root/var/log/pveproxy.out" >&2; die "pveproxy start failed"; }
wait_for 30 in_root curl -skf -o /dev/null "https://$NODE:8006/" \
    || { tail -n 30 "$root/var/log/syslog" >&2; die "pveproxy does not answer on $NODE:8006"; }
echo "ok - pvedaemon and pveproxy started (pve-manager's service code), https://$NODE:8006 answers"

cp "$here/checks.sh" "$root/root/checks.sh"
in_root bash /root/checks.sh "$NODE" "${PVE_ENTRAID_NODE_SOAK:-0}"

# --- a browser on the real login window (Chromium of the host, in this namespace); between its
# sign-ins it runs tests/node/cases.sh in the root: the upgrade and the TFA cases ---
cp "$here/cases.sh" "$root/root/cases.sh"
node "$here/browser.js" "https://$NODE:8006" "$NODE_IP" 'Contoso (Entra ID)' "$root"
