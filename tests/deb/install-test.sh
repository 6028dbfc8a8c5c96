#!/bin/bash
# Runs INSIDE a PVE-shaped root (tests/deb/pve-root.sh), without network, as root, the way an
# admin uses the package: apt install, pveum, a PVE upgrade, apt purge. Everything here is
# the root's own Debian (its perl, apt, dpkg) and the real upstream PVE files the stand-in
# packages installed; /etc/pve is a plain directory (pmxcfs cannot run here; the stand-in
# PVE::IPCC answers from it, see tests/upstream/standins/PVE/IPCC.pm).
#
# usage (in the root): install-test.sh PERL_VERSION DEB UPGRADE_DEB UPGRADE_FILE
#   PERL_VERSION  the distribution's perl (5.40 / 5.36): the XS module must sit in its @INC
#   UPGRADE_DEB   libpve-access-control, newer, shipping UPGRADE_FILE as PVE/AccessControl.pm
# Prints "ok - ..." / "not ok - ..." lines; the host's tests/deb/run.sh counts them.
set -u

perl_version="$1" deb="$2" upgrade_deb="$3" upgrade_file="$4"
node="$(uname -n)"
tenant=11111111-2222-3333-4444-555555555555
client=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
secret='s3cr~et.Value_only-in-priv'
hooked="/usr/share/perl5/PVE/AccessControl.pm /usr/share/perl5/PVE/API2/AccessControl.pm
    /usr/share/perl5/PVE/API2/Domains.pm /usr/share/perl5/PVE/API2/Jobs/RealmSync.pm
    /usr/share/perl5/PVE/HTTPServer.pm /usr/share/pve-manager/index.html.tpl"

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; shift; printf '%s\n' "$@" | sed 's/^/#   /'; }
check() {
    local name="$1" out
    shift
    if out="$("$@" 2>&1)"; then ok "$name"; else not_ok "$name" "$out"; fi
}

# the upstream files as their packages installed them, for the byte-for-byte comparison
mkdir -p /root/pristine
for f in $hooked; do cp --parents -p "$f" /root/pristine/; done

# /etc/pve of a standalone node (what pmxcfs -l shows after 'pvecm' set-up)
mkdir -p "/etc/pve/nodes/$node" /etc/pve/priv/lock
chmod 0700 /etc/pve/priv
ln -sfn "nodes/$node" /etc/pve/local
printf 'pam: pam\n\tcomment Linux PAM standard authentication\n\npve: pve\n\tcomment Proxmox VE authentication server\n\n' \
    > /etc/pve/domains.cfg
echo 'user:root@pam:1:0:::root@example.com:::' > /etc/pve/user.cfg
echo 'keyboard: en-us' > /etc/pve/datacenter.cfg

# --- install ---
if out="$(apt-get install -y --no-install-recommends "$deb" 2>&1)"; then
    ok "apt install $(basename "$deb") (offline: every Depends is satisfied in the root)"
else
    not_ok "apt install $(basename "$deb")" "$out"
    exit 0
fi
check "postinst printed no warning" bash -c '! grep -i "pve-entraid: warning" <<<"$1"' _ "$out"
check "dpkg: pve-entraid installed and configured, no triggers pending" \
    bash -c 'dpkg-query -W -f="\${Status}" pve-entraid | grep -qx "install ok installed" && [ -z "$(dpkg --audit)" ]'
for f in $hooked; do
    check "postinst applied the hook to the real upstream $f" grep -q 'pve-entraid hook begin' "$f"
done
check "pve-entraid-integrate status: every hook applied" pve-entraid-integrate status
check "node marker /etc/pve/nodes/$node/pve-entraid written" test -s "/etc/pve/nodes/$node/pve-entraid"

# --- the distribution's perl, under -T like pvedaemon/pveproxy ---
check "perl is $perl_version" bash -c 'perl -e "printf q(%vd), \$^V" | grep -q "^$1\."' _ "$perl_version"
xs="$(perl -T -MPVE::EntraID::XS -e 'print $INC{"PVE/EntraID/XS.pm"}, " ", PVE::EntraID::XS::version()' 2>&1)"
check "perl -T loads PVE::EntraID::XS from perl $perl_version's vendorarch ($xs)" \
    bash -c '[[ "$1" == /usr/lib/x86_64-linux-gnu/perl5/$2/PVE/EntraID/XS.pm\ pve-entraid/* ]]' _ "$xs" "$perl_version"
check "perl -T: the hooked PVE::AccessControl registers the realm type entraid" \
    perl -T -e 'use strict; use PVE::AccessControl;
        my $p = PVE::Auth::Plugin->lookup("entraid");
        die "entraid not registered\n" if !$p || $p ne "PVE::Auth::EntraID";
        die "PVE::Auth::EntraID from $INC{q(PVE/Auth/EntraID.pm)}\n"
            if $INC{"PVE/Auth/EntraID.pm"} ne "/usr/share/perl5/PVE/Auth/EntraID.pm";'
# PVE::API2 (pve-manager) mounts PVE::API2::AccessControl at "access"; loading all of PVE::API2
# needs qemu-server, pve-storage, ... so the same registration is made on a root handler here
check "pve-manager's PVE::API2 mounts PVE::API2::AccessControl at /access" \
    perl -0777 -ne 'exit(/subclass => "PVE::API2::AccessControl",\s*path => .access.,/ ? 0 : 1)' /usr/share/perl5/PVE/API2.pm
check "perl -T: PVE::API2::EntraID is mounted at /access/entraid (login, auth-url)" \
    perl -T -e 'package Root; use strict; use base "PVE::RESTHandler"; use PVE::API2::AccessControl;
        Root->register_method({ subclass => "PVE::API2::AccessControl", path => "access" });
        for my $path ("/access/entraid/login", "/access/entraid/auth-url") {
            my ($handler, $info) = Root->find_handler("POST", $path, {});
            die "POST $path: " . ($handler // "no handler") . "\n" if ($handler // "") ne "PVE::API2::EntraID" || !$info;
        }'

# --- the real pveum ---
if out="$(pveum realm add entra --type entraid --tenant-id "$tenant" --client-id "$client" \
    --client-key "$secret" --comment 'Entra ID' 2>&1)"; then
    ok "pveum realm add entra --type entraid"
else
    not_ok "pveum realm add entra --type entraid" "$out"
fi
check "domains.cfg has the entraid realm with its tenant" \
    bash -c 'grep -qx "entraid: entra" /etc/pve/domains.cfg && grep -qP "^\ttenant-id $1\$" /etc/pve/domains.cfg' _ "$tenant"
check "pveum realm list shows entra of type entraid" bash -c 'pveum realm list --output-format json | grep -q "\"realm\":\"entra\",\"type\":\"entraid\"\|\"type\":\"entraid\".*\"realm\":\"entra\""'
check "the secret is only in /etc/pve/priv/entraid/ (mode 0600)" \
    bash -c 'test "$(grep -rlF -- "$1" /etc/pve)" = /etc/pve/priv/entraid/entra.secret \
        && test "$(stat -c %a /etc/pve/priv/entraid/entra.secret)" = 600' _ "$secret"
check "the other realms are kept" bash -c 'grep -qx "pam: pam" /etc/pve/domains.cfg && grep -qx "pve: pve" /etc/pve/domains.cfg'

# --- a PVE upgrade replaces a hooked file: dpkg fires the file trigger, postinst re-applies ---
if out="$(apt-get install -y --no-install-recommends "$upgrade_deb" 2>&1)"; then
    ok "apt install $(basename "$upgrade_deb") (simulated PVE upgrade)"
else
    not_ok "apt install $(basename "$upgrade_deb")" "$out"
fi
check "dpkg ran pve-entraid's trigger for the replaced file" \
    bash -c 'grep -q "Processing triggers for pve-entraid" <<<"$1"' _ "$out"
check "the upgraded PVE/AccessControl.pm has the hook again" \
    grep -q 'pve-entraid hook begin' /usr/share/perl5/PVE/AccessControl.pm
check "pve-entraid-integrate status after the upgrade: every hook applied" pve-entraid-integrate status
cp -p "$upgrade_file" /root/pristine/usr/share/perl5/PVE/AccessControl.pm

# --- purge ---
if out="$(apt-get purge -y pve-entraid 2>&1)"; then
    ok "apt purge pve-entraid"
else
    not_ok "apt purge pve-entraid" "$out"
fi
check "prerm warned that domains.cfg still has an entraid realm" bash -c 'grep -q "entraid. realms" <<<"$1"' _ "$out"
for f in $hooked; do
    check "purge restored $f byte for byte" cmp "/root/pristine$f" "$f"
done
check "purge left none of the package's files" \
    bash -c 'for p in /usr/lib/pve-entraid /usr/sbin/pve-entraid /usr/share/perl5/PVE/Auth/EntraID.pm \
        /var/cache/pve-entraid /var/lib/pve-entraid "/etc/pve/nodes/$1/pve-entraid" \
        /usr/share/pve-manager/js/pve-entraid.js; do test ! -e "$p" || { echo "left: $p"; exit 1; }; done' _ "$node"
check "purge kept the realm secret and domains.cfg (cluster configuration)" \
    bash -c 'test -f /etc/pve/priv/entraid/entra.secret && grep -qx "entraid: entra" /etc/pve/domains.cfg'
check "perl -T loads the restored PVE::AccessControl without entraid" \
    perl -T -e 'use PVE::AccessControl; die "entraid still registered\n" if eval { PVE::Auth::Plugin->lookup("entraid") };'
exit 0
