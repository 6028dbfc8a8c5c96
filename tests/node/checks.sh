#!/bin/bash
# The checks inside the test node (tests/node/node.sh copies this into the root and runs it
# there, with the daemons started). Prints "ok - ..." / "not ok - ..." lines.
#   checks.sh NODE
set -uo pipefail

node="$1"
base="https://$node:8006/api2/json"
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; shift; for l in "$@"; do printf '#   %s\n' "$l"; done; }
# check NAME CMD...: ok when CMD exits 0; its output is shown on failure
check() {
    local name="$1" output
    shift
    if output="$("$@" 2>&1)"; then ok "$name"; else not_ok "$name" "$output"; fi
}
json() { perl -MJSON -e 'my $d = decode_json(join "", <STDIN>); for (split m{/}, $ARGV[0]) { $d = ref $d eq "ARRAY" ? $d->[$_] : $d->{$_} } print ref $d ? encode_json($d) : $d // ""' "$1"; }

# --- the node's own TLS: the certificate pvecm updatecerts made, signed by the node's CA ---
check "pveproxy serves the node certificate (pve-ssl.pem, signed by pve-root-ca.pem) for $node" \
    bash -c 'curl -sf --cacert /etc/pve/pve-root-ca.pem -o /dev/null "https://$1:8006/"' _ "$node"

# --- root@pam through pveproxy -> pvedaemon (PAM) ---
answer="$(curl -s --cacert /etc/pve/pve-root-ca.pem --data-urlencode username=root@pam \
    --data-urlencode password=node-test-root "$base/access/ticket")"
ticket="$(json data/ticket <<<"$answer" 2>/dev/null)"
csrf="$(json data/CSRFPreventionToken <<<"$answer" 2>/dev/null)"
check "POST /access/ticket as root@pam (PAM) gives a ticket" test -n "$ticket"
check "GET /nodes with that ticket names $node" \
    bash -c 'curl -sf --cacert /etc/pve/pve-root-ca.pem -b "PVEAuthCookie=$1" "$2/nodes" | grep -q "\"node\":\"$3\""' _ "$ticket" "$base" "$node"
check "GET /access/domains lists pam and pve" \
    bash -c 'd="$(curl -sf --cacert /etc/pve/pve-root-ca.pem "$1/access/domains")"; grep -q "\"realm\":\"pam\"" <<<"$d" && grep -q "\"realm\":\"pve\"" <<<"$d"' _ "$base"

# --- an Entra ID realm against the emulator, which the node reaches as login.microsoftonline.com
# (its /etc/hosts, its trust store): the product's own cloud URLs, no test override ---
tenant=11111111-2222-3333-4444-555555555555
client=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
admins=6f7e8d9c-1111-4111-8111-000000000001
check "pveum realm add entra --type entraid (autocreate, groups map)" \
    pveum realm add entra --type entraid --tenant-id "$tenant" --client-id "$client" \
        --autocreate 1 --groups-map "$admins=admins" --groups-autocreate 1 --groups-sync 1 \
        --comment 'Contoso (Entra ID)'
check "pve-entraid set-secret entra (from standard input)" \
    bash -c 'printf "%s\n" "s3cr~et.Value_with~tilde" | pve-entraid set-secret entra'
check "the node trusts the emulator as login.microsoftonline.com (system trust store)" \
    curl -sf -o /dev/null "https://login.microsoftonline.com/$tenant/v2.0/.well-known/openid-configuration"

# api_login HINT SOURCE_IP: the browser's steps with curl from SOURCE_IP (an address of the
# namespace that is neither the node's nor loopback, so that rhost shows PVEClientIP came
# through): auth-url, the emulator's authorize (signs HINT in, redirects with code and state),
# login. Prints login's answer.
api_login() {
    local hint="$1" src="$2" key hash url location code state
    key="$(perl -MMIME::Base64=encode_base64url -e 'open my $r, "<", "/dev/urandom" or die; read($r, my $b, 32) == 32 or die; my $k = encode_base64url($b); print $k')"
    hash="$(perl -MMIME::Base64=encode_base64url,decode_base64url -MDigest::SHA=sha256 -e 'print encode_base64url(sha256(decode_base64url($ARGV[0])))' "$key")"
    url="$(curl -s --interface "$src" --cacert /etc/pve/pve-root-ca.pem --data-urlencode realm=entra \
        --data-urlencode "redirect-url=https://$node:8006" --data-urlencode "binding-hash=$hash" \
        "$base/access/entraid/auth-url" | json data)" || return 1
    [ -n "$url" ] || { echo "auth-url gave no URL" >&2; return 1; }
    location="$(curl -s -o /dev/null -w '%{redirect_url}' "$url&login_hint=$hint")"
    code="$(perl -MURI -e 'my %q = URI->new($ARGV[0])->query_form; print $q{code} // ""' "$location")"
    state="$(perl -MURI -e 'my %q = URI->new($ARGV[0])->query_form; print $q{state} // ""' "$location")"
    [ -n "$code" ] || { echo "authorize redirected to '$location'" >&2; return 1; }
    curl -s --interface "$src" --cacert /etc/pve/pve-root-ca.pem --data-urlencode "code=$code" \
        --data-urlencode "state=$state" --data-urlencode realm=entra \
        --data-urlencode "redirect-url=https://$node:8006" --data-urlencode "binding-key=$key" \
        "$base/access/entraid/login"
}

client_ip=192.0.2.11
answer="$(api_login alice@contoso.example "$client_ip" 2>&1)"
ticket="$(json data/ticket <<<"$answer" 2>/dev/null)"
if [ -n "$ticket" ]; then ok "API login through pveproxy: auth-url, emulator authorize, login give a ticket"
else not_ok "API login through pveproxy: auth-url, emulator authorize, login give a ticket" "$answer"; fi
check "the ticket is alice@contoso.example@entra's" grep -q '"username":"alice@contoso.example@entra"' <<<"$answer"
check "pvedaemon logged the login with rhost=$client_ip (PVEClientIP forwarded by pveproxy)" \
    grep -qE "entraid login; realm=entra user=alice@contoso.example@entra .*rhost=(::ffff:)?$client_ip( |$)" /var/log/syslog
check "GET /access/permissions with the ticket answers for the user" \
    bash -c 'curl -sf --cacert /etc/pve/pve-root-ca.pem -b "PVEAuthCookie=$1" "$2/access/permissions" | grep -q "\"data\""' _ "$ticket" "$base"
check "user.cfg: alice@contoso.example@entra created, in group admins" \
    bash -c 'grep -q "^user:alice@contoso.example@entra:" /etc/pve/user.cfg && grep -q "^group:admins:.*alice@contoso.example@entra" /etc/pve/user.cfg'
