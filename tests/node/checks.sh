#!/bin/bash
# The checks inside the test node (tests/node/node.sh copies this into the root and runs it
# there, with the daemons started). Prints "ok - ..." / "not ok - ..." lines.
#   checks.sh NODE [SOAK]     SOAK: that many more logins, 8 at a time, with the daemons' RSS
set -uo pipefail

node="$1"
soak="${2:-0}"
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
# the app registration's ID token optional claims (README, step 5): `upn` for the default
# username-claim, the names for PVE's first and last name; Entra issues none unless configured
check "the app registration issues the optional claims upn, given_name, family_name" \
    curl -sf -o /dev/null -H 'Content-Type: application/json' -d '{"optional_claims": {"idToken": [
        {"name": "upn", "additionalProperties": ["include_externally_authenticated_upn"]},
        {"name": "given_name"}, {"name": "family_name"}]}}' https://login.microsoftonline.com/_emu/control
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
    local hint="$1" src="$2" realm="${3:-entra}" key hash url location code state
    key="$(perl -MMIME::Base64=encode_base64url -e 'open my $r, "<", "/dev/urandom" or die; read($r, my $b, 32) == 32 or die; my $k = encode_base64url($b); print $k')"
    hash="$(perl -MMIME::Base64=encode_base64url,decode_base64url -MDigest::SHA=sha256 -e 'print encode_base64url(sha256(decode_base64url($ARGV[0])))' -- "$key")"
    url="$(curl -s --interface "$src" --cacert /etc/pve/pve-root-ca.pem --data-urlencode "realm=$realm" \
        --data-urlencode "redirect-url=https://$node:8006" --data-urlencode "binding-hash=$hash" \
        "$base/access/entraid/auth-url" | json data)" || return 1
    [ -n "$url" ] || { echo "auth-url gave no URL" >&2; return 1; }
    location="$(curl -s -o /dev/null -w '%{redirect_url}' "$url&login_hint=$hint")"
    code="$(perl -MURI -e 'my %q = URI->new($ARGV[0])->query_form; print $q{code} // ""' "$location")"
    state="$(perl -MURI -e 'my %q = URI->new($ARGV[0])->query_form; print $q{state} // ""' "$location")"
    [ -n "$code" ] || { echo "authorize redirected to '$location'" >&2; return 1; }
    curl -s --interface "$src" --cacert /etc/pve/pve-root-ca.pem --data-urlencode "code=$code" \
        --data-urlencode "state=$state" --data-urlencode "realm=$realm" \
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

# --- latency of a full login through pveproxy (auth-url, the emulator's authorize, login;
# discovery and keys already cached by the logins above), median of 5, with the emulator's
# round trips at 0 and 50 ms (its latency_ms control) ---
login_ms() {
    local i t0 t1 all=()
    for i in 1 2 3 4 5; do
        t0="$(date +%s%N)"
        api_login alice@contoso.example "$client_ip" | grep -q '"ticket":"PVE:' || { echo failed; return; }
        t1="$(date +%s%N)"
        all+=($(((t1 - t0) / 1000000)))
    done
    printf '%s\n' "${all[@]}" | sort -n | sed -n 3p
}
emu_latency() {
    curl -sf -o /dev/null -H 'Content-Type: application/json' -d "{\"latency_ms\": $1}" \
        https://login.microsoftonline.com/_emu/control
}
emu_latency 0 && fast="$(login_ms)" && emu_latency 50 && slow="$(login_ms)" && emu_latency 0
# "# figure: WHAT: VALUE" lines are what `make bench` prints of the node (bench/node.sh)
echo "# figure: full login through pveproxy, IdP latency 0 ms (median of 5): $fast ms"
echo "# figure: full login through pveproxy, IdP latency 50 ms (median of 5): $slow ms"
check "logins through pveproxy with 0 and 50 ms IdP latency succeed" \
    bash -c '[ "$1" -gt 0 ] && [ "$2" -gt "$1" ]' _ "${fast:-0}" "${slow:-0}"

# --- soak: SOAK logins through pveproxy, 8 concurrent; pvedaemon's workers before/after. The
# product's anonymous budgets (30 logins per client address and realm at once, 300 per realm)
# hold on a node: the soak spreads its logins over realms soak0.. (250 each) and the addresses
# 192.0.2.100-199 (10 each), as many users of several realms would come ---
[ "$soak" -gt 0 ] || exit 0
realms=$(( (soak + 249) / 250 ))
for r in $(seq 0 $((realms - 1))); do
    pveum realm add "soak$r" --type entraid --tenant-id "$tenant" --client-id "$client" --autocreate 1 >/dev/null \
        && printf '%s\n' "s3cr~et.Value_with~tilde" | pve-entraid set-secret "soak$r" >/dev/null \
        || not_ok "soak realm soak$r added"
done
rss_of() { # "pid:rss_kB" of each process whose command line is $1
    local p
    for p in $(pgrep -x -f "$1"); do echo "$p:$(awk '/^VmRSS/ {print $2}' /proc/$p/status)"; done
}
cpu_of() { # utime+stime ticks of the daemons' processes (masters and workers)
    local p t=0
    for p in $(pgrep -f '^(pvedaemon|pveproxy)'); do
        t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat)))
    done
    echo "$t"
}
export -f api_login json
export base node
for i in $(seq 8); do api_login alice@contoso.example "$client_ip" >/dev/null 2>&1; done  # warm every worker
before="$(rss_of 'pvedaemon worker')"
cpu0="$(cpu_of)"
t0="$(date +%s.%N)"
# one line per login: 1 with a ticket, else 0 (the answer goes to /tmp/soak-failures)
answers="$(seq 0 $((soak - 1)) | xargs -P 8 -I{} bash -c 'a="$(api_login alice@contoso.example "192.0.2.$((100 + $1 % 100))" "soak$(($1 % $0))" 2>&1)"
    if grep -q "\"ticket\":\"PVE:" <<<"$a"; then echo 1; else echo "$a" >>/tmp/soak-failures; echo 0; fi' "$realms" {})"
t1="$(date +%s.%N)"
cpu1="$(cpu_of)"
after="$(rss_of 'pvedaemon worker')"
good="$(grep -cx 1 <<<"$answers")"
hz="$(getconf CLK_TCK)"
echo "# soak: $soak logins ($realms realms) at 8 concurrent in $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s"
echo "# figure: logins through pveproxy at 8 concurrent ($soak logins): $(awk "BEGIN{printf \"%.1f\", $soak / ($t1 - $t0)}")/s"
echo "# figure: pvedaemon + pveproxy CPU per login (their utime+stime over the soak; curl's own not counted): $(awk "BEGIN{printf \"%.1f\", ($cpu1 - $cpu0) * 1000 / $hz / $soak}") ms"
echo "# figure: pvedaemon workers' RSS growth over the soak (same pid): $(perl -e 'my %b = map { split /:/ } split " ", $ARGV[0]; my %a = map { split /:/ } split " ", $ARGV[1];
    my @d = map { sprintf("%+.1f", ($a{$_} - $b{$_}) / 1024) } grep { exists $a{$_} } sort keys %b; print @d ? join(", ", @d) . " MB" : "no worker lived through it"' "$before" "$after")"
echo "# pvedaemon workers pid:RSS kB before: $(echo $before) after: $(echo $after)"
check "soak: all $soak logins through pveproxy got a ticket" \
    bash -c '[ "$1" = "$2" ] || { echo "$1 of $2"; head -c 2000 /tmp/soak-failures; exit 1; }' _ "$good" "$soak"
check "soak: no daemon worker died or was killed (syslog)" \
    bash -c '! grep -E "(pvedaemon|pveproxy)\[[0-9]+\]: .*(died|exit status [1-9]|killed|signal)" /var/log/syslog'
# a leak shows as growth per login in a worker that served the whole soak (same pid)
check "soak: no pvedaemon worker that served the soak grew by more than 16 MB" \
    perl -e 'my %b = map { split /:/ } split " ", $ARGV[0]; my %a = map { split /:/ } split " ", $ARGV[1];
        my @same = grep { exists $a{$_} } keys %b; @same or die "no worker lived through the soak\n";
        for (@same) { die "worker $_ grew from $b{$_} to $a{$_} kB\n" if $a{$_} - $b{$_} > 16384 }' "$before" "$after"
