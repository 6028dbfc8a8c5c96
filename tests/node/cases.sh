#!/bin/bash
# The test node's cases that change the node under a signed-in browser: tests/node/browser.js
# runs each step in the root (node.sh copies this file to /root) between its sign-ins. Prints
# "ok - ..." / "not ok - ..." lines.
#   cases.sh prev          apt installs the package's previous version over the installed one
#   cases.sh upgrade       apt installs the package (/root/pve-entraid_*.deb) over the previous one
#   cases.sh tfa SECRET    realm entra requires TFA; alice gets a TOTP entry with SECRET (base32)
#
# The previous version is the package itself repacked (dpkg-deb) with its version lowered to
# <upstream>~prev+pveN and pve-entraid-integrate's version (the node marker, the ?ver= of the
# UI's script tag in index.html.tpl) to <upstream>~prev: the upgrade goes through dpkg,
# the maintainer scripts, pve-manager's trigger and the daemons' reload, not through a data
# migration between two releases.
set -uo pipefail

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; shift; for l in "$@"; do printf '#   %s\n' "$l"; done; }
check() {
    local name="$1" output
    shift
    if output="$("$@" 2>&1)"; then ok "$name"; else not_ok "$name" "$output"; fi
}

deb="$(ls /root/pve-entraid_*.deb)"
units=/usr/lib/systemd/system
realm=entra
user=alice@contoso.example@entra

# "DAEMON MASTER WORKER..." per daemon (its unit's PIDFile, the workers' command line)
daemons() {
    local d master
    for d in pvedaemon pveproxy; do
        master="$(cat "$(sed -n 's/^PIDFile=//p' "$units/$d.service")" 2>/dev/null)"
        echo "$d $master $(pgrep -d ' ' -x -f "$d worker")"
    done
}
# the worker pids of a daemons() state, one a line, sorted
workers_of() { awk '{ for (i = 3; i <= NF; i++) print $i }' <<<"$1" | sort; }
# new_workers BEFORE AFTER: the workers in AFTER that were not in BEFORE (the root has no /dev/fd)
new_workers() {
    local w old
    old="$(workers_of "$1")"
    for w in $(workers_of "$2"); do grep -qx "$w" <<<"$old" || echo "$w"; done
}
# the libraries of the package (the XS binding and the Rust library)
libraries() { dpkg -L pve-entraid | grep '\.so$'; }

# the workers each daemon runs (PVE::Service::pvedaemon's and pveproxy's max_workers; the node
# sets no MAX_WORKERS)
WORKERS=3
# wait_reloaded BEFORE: until each daemon's master is the one in BEFORE and runs WORKERS workers
# that are not in BEFORE (old workers may still finish the connections they have open, as
# PVE::Daemon's leave_children_open_on_reload lets them); then pveproxy answers. Prints the state.
wait_reloaded() {
    local before="$1" n=300 now
    while :; do
        now="$(daemons)"
        if perl -e 'my %b = map { my ($d, $m, @w) = split " "; ($d => [$m, @w]) } split /\n/, $ARGV[0];
                for (split /\n/, $ARGV[1]) { my ($d, $m, @w) = split " "; my ($bm, @bw) = @{$b{$d}};
                    my %old = map { $_ => 1 } @bw; my @new = grep { !$old{$_} } @w;
                    exit 1 if $m ne $bm || @new < $ARGV[2] } exit 0' "$before" "$now" "$WORKERS" \
            && curl -sf -o /dev/null --cacert /etc/pve/pve-root-ca.pem https://pve-node:8006/; then
            echo "$now"
            return 0
        fi
        n=$((n - 1))
        [ "$n" -gt 0 ] || { echo "$now"; return 1; }
        sleep 0.1
    done
}

# install DEB [APT OPTIONS]: apt installs it, waits for the daemons' reload; checks
install() {
    local pkg="$1" before hups after out rc version
    shift
    version="$(dpkg-deb -f "$pkg" Version)"
    before="$(daemons)"
    hups="$(grep -c 'send HUP to' /var/log/syslog)"
    cp /etc/pve/domains.cfg /tmp/domains.cfg.before
    out="$(apt-get install -y -q --no-install-recommends "$@" "$pkg" 2>&1)"
    rc=$?
    echo "$out" > "/var/log/apt-$(basename "$pkg" .deb).out"
    if [ "$rc" = 0 ]; then
        ok "apt installs pve-entraid $version over $(cat /tmp/installed-version)"
    else
        not_ok "apt installs pve-entraid $version over $(cat /tmp/installed-version)" "$(tail -n 20 <<<"$out")"
        return 1
    fi
    check "dpkg ran pve-manager's trigger (its postinst reloads the daemons)" \
        grep -q '^Processing triggers for pve-entraid-test-reload ' <<<"$out"
    if after="$(wait_reloaded "$before")"; then
        ok "the trigger reloaded pvedaemon and pveproxy: same masters, $WORKERS new workers each ($(echo $before | tr -s ' ') -> $(echo $after | tr -s ' '))"
    else
        not_ok "the trigger reloaded pvedaemon and pveproxy: same masters, $WORKERS new workers each" "before: $before" "after 30 s: $after"
    fi
    check "syslog: the daemons' restart sent each master HUP (PVE::Daemon, by the units' ExecReload)" \
        bash -c '[ "$(grep -c "send HUP to" /var/log/syslog)" -ge $(($1 + 2)) ] || { tail -n 20 /var/log/syslog; exit 1; }' _ "$hups"
    # the new code is what the workers run: each maps the installed libraries, none the replaced
    # ones (which /proc shows as "(deleted)")
    check "every new worker maps the installed libraries, none the replaced ones" \
        perl -e 'my @libs = split " ", shift; my @bad; @ARGV or die "no new worker\n";
            for my $pid (@ARGV) { open(my $fh, "<", "/proc/$pid/maps") or next; my $maps = join("", <$fh>);
                for (@libs) { push @bad, "$pid: $_ not mapped" if $maps !~ m{ \Q$_\E$}m;
                    push @bad, "$pid: the replaced $_ still mapped" if $maps =~ m{ \Q$_\E \(deleted\)$}m } }
            die join("\n", @bad) . "\n" if @bad' "$(libraries | paste -sd' ')" \
            $(new_workers "$before" "$after")
    check "domains.cfg unchanged, realm $realm in it" \
        bash -c 'cmp /tmp/domains.cfg.before /etc/pve/domains.cfg && grep -qx "entraid: $1" /etc/pve/domains.cfg' _ "$realm"
    check "pve-entraid-integrate status: every hook applied, the node marker says $(dpkg-deb -f "$pkg" Version | sed 's/+pve[0-9]*$//')" \
        bash -c 'out="$(pve-entraid-integrate status)" || { echo "$out"; exit 1; }; grep -q "^node .* pve-entraid $1$" <<<"$out" || { echo "$out"; exit 1; }' \
        _ "$(sed 's/+pve[0-9]*$//' <<<"$version")"
    echo "$version" > /tmp/installed-version
}

case "${1:-}" in
    prev)
        dpkg-query -W -f '${Version}' pve-entraid > /tmp/installed-version
        work="$(mktemp -d)"
        dpkg-deb -R "$deb" "$work/pkg"
        sed -i 's/^\(Version: .*\)+\(pve[0-9]*\)$/\1~prev+\2/' "$work/pkg/DEBIAN/control"
        sed -i "s/^our \$VERSION = '\(.*\)';/our \$VERSION = '\1~prev';/" "$work/pkg/usr/sbin/pve-entraid-integrate"
        (cd "$work/pkg" && sed -i "s|\([0-9a-f]*\)  usr/sbin/pve-entraid-integrate$|$(md5sum usr/sbin/pve-entraid-integrate | cut -d' ' -f1)  usr/sbin/pve-entraid-integrate|" DEBIAN/md5sums)
        mkdir -p /root/prev
        prev="/root/prev/pve-entraid_$(dpkg-deb -f "$deb" Version | sed 's/+\(pve[0-9]*\)$/~prev+\1/')_$(dpkg-deb -f "$deb" Architecture).deb"
        dpkg-deb -b -Zgzip -z1 --root-owner-group "$work/pkg" "$prev" >/dev/null || { not_ok "the previous version repacked"; exit 1; }
        rm -rf "$work"
        install "$prev" --allow-downgrades
        ;;
    upgrade)
        install "$deb"
        ;;
    tfa)
        check "pveum realm modify $realm --tfa type=oath (the realm requires TFA)" \
            pveum realm modify "$realm" --tfa type=oath
        # as PVE itself adds a TOTP entry (PVE::AccessControl's add_old_totp_keys): the TFA
        # config under its lock, its add_totp_entry, written back to priv/tfa.cfg
        check "$user gets a TOTP entry in priv/tfa.cfg (PVE::AccessControl::lock_tfa_config)" \
            perl -MPVE::AccessControl -MPVE::Cluster=cfs_read_file,cfs_write_file -e '
                my ($user, $secret) = @ARGV;
                PVE::AccessControl::lock_tfa_config(sub {
                    my $tfa = cfs_read_file("priv/tfa.cfg");
                    $tfa->add_totp_entry($user, "phone",
                        "otpauth://totp/Proxmox%20VE:$user?digits=6&period=30&algorithm=SHA1&secret=$secret");
                    cfs_write_file("priv/tfa.cfg", $tfa);
                });
                die $@ if $@;
                cfs_read_file("priv/tfa.cfg")->authentication_challenge($user) =~ /"totp"/
                    or die "no TOTP challenge for $user\n"' "$user" "$2"
        ;;
    *)
        echo "usage: $0 prev|upgrade|tfa SECRET" >&2
        exit 2
        ;;
esac
