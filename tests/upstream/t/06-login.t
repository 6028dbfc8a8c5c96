#!/usr/bin/perl -T
# a full Entra ID login through the REAL API stack (auth_handler, rest_handler, RESTHandler)
# against the bundled emulator: the ticket is a real RSA ticket (authkey made by the real
# code) that the real verify_ticket accepts and the real auth_handler lets in

use strict;
use warnings;

use Digest::SHA qw(sha256);
use MIME::Base64 qw(encode_base64url);

use UpstreamTest;
use Test::More;

my $REDIRECT = 'https://pve1.example.com:8006';

# admins may audit '/', so the login answer names the cluster (as upstream's /access/ticket)
setup_etc_pve(cluster => 'lab', users => "user:root\@pam:1:0:::root\@example.com:::\n"
    . "group:admins::Admins:\n\nacl:1:/:\@admins:PVEAuditor:\n");
load_pve();
start_emulator(optional_claims => \@OPTIONAL_CLAIMS);
my ($rticket, $rcsrf) = login_ticket('root@pam');

my $res = http_request('POST', '/access/domains', {
    realm => 'entra', type => 'entraid', 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID,
    'client-key' => $SECRET, autocreate => 1, 'groups-map' => "$ALICE_GROUP=admins",
    'groups-autocreate' => 1,
}, ticket => $rticket, csrf => $rcsrf);
is($res->{status}, 200, 'realm added through the real Domains API') or diag($res->{message});

# the browser binding of the login state (issue 10.1), sent when the API has it
my $props = sub { PVE::API2::EntraID->map_method_by_name($_[0])->{parameters}->{properties} };
my $key = join('', map { chr(int(rand(256))) } 1 .. 32);
my %bind_hash = $props->('auth_url')->{'binding-hash'} ? ('binding-hash' => encode_base64url(sha256($key))) : ();
my %bind_key = $props->('login')->{'binding-key'} ? ('binding-key' => encode_base64url($key)) : ();

# one anonymous login as the web UI does it; returns the rest_handler response
sub login {
    my ($realm, $user, %opt) = @_;
    my $r = http_request('POST', '/access/entraid/auth-url',
        { realm => $realm, 'redirect-url' => $REDIRECT, %bind_hash });
    return $r if $r->{status} != 200;
    my ($code, $state) = browser_authorize($r->{data}, $user);
    return http_request('POST', '/access/entraid/login', {
        code => $code, state => $state, 'redirect-url' => $REDIRECT, %bind_key,
        ($opt{send_realm} // 1) ? (realm => $realm) : (),
    });
}

$res = login('entra', 'alice@contoso.example');
is($res->{status}, 200, 'POST /access/entraid/login without a ticket logs alice in') or diag($res->{message});
my $data = $res->{data} // {};
my $userid = 'alice@contoso.example@entra';
is($data->{username}, $userid, 'username');
ok(-f '/etc/pve/authkey.pub' && -f '/etc/pve/priv/authkey.key', 'RSA authkey created by the real code');
like($data->{ticket}, qr/^PVE:\Q$userid\E:[0-9A-F]{8}::/, 'a PVE ticket');
my ($verified) = PVE::AccessControl::verify_ticket($data->{ticket});
is($verified, $userid, 'the real verify_ticket accepts it');
PVE::AccessControl::verify_csrf_prevention_token($userid, $data->{CSRFPreventionToken});
pass('the real CSRF check accepts its CSRFPreventionToken');
my $auth = auth_handler('GET', '/access/permissions', $data->{ticket}, $data->{CSRFPreventionToken});
is($auth->{userid}, $userid, 'the real auth_handler lets the new ticket in');
$res = http_request('GET', '/access/permissions', {}, ticket => $data->{ticket}, csrf => $data->{CSRFPreventionToken});
is($res->{status}, 200, 'and the user can call the API with it');

my $users = PVE::Cluster::cfs_read_file('user.cfg');
ok($users->{users}->{$userid}->{enable}, 'user autocreated, enabled (real user.cfg writer)');
ok($users->{groups}->{admins}->{users}->{$userid}, 'mapped group created and joined');

# a second login of the same user reuses the account
$res = login('entra', 'alice@contoso.example');
is($res->{status}, 200, 'second login');
# (the first login's permissions were computed before its group membership existed, as upstream)
is($res->{data}->{clustername}, 'lab', 'clustername from the cluster info, for a user with Sys.Audit on /');

# --- one broken entraid realm must not affect another realm's logins (defect 3)
my $domains = slurp('/etc/pve/domains.cfg');
spew('/etc/pve/domains.cfg', $domains
    . "entraid: aaa-broken\n\tclient-id $CLIENT_ID\n\ttenant-id organizations\n\n");
$res = login('entra', 'alice@contoso.example', send_realm => 1);
is($res->{status}, 200, 'login naming its realm works beside a broken realm') or diag($res->{message});
# defect 3 fixed by requiring the realm (the web UI sends it): only that realm is read
$res = login('entra', 'alice@contoso.example', send_realm => 0);
is($res->{status}, 400, 'login without realm is refused by the schema, not by another realm');

# --- a restriction that cannot be read refuses that realm's logins (fail closed, defect 1)
spew('/etc/pve/domains.cfg', $domains
    . "entraid: locked\n\tclient-id $CLIENT_ID\n\ttenant-id $TENANT\n\tautocreate 1\n"
    . "\trequired-groups 00000000-0000-4000-8000-000000000000\n\n");
PVE::Tools::file_set_contents('/etc/pve/priv/entraid/locked.secret', $SECRET, 0600);
$res = login('locked', 'alice@contoso.example');
{
    isnt($res->{status}, 200, 'alice (not in required-groups) is refused');
    ok(!PVE::Cluster::cfs_read_file('user.cfg')->{users}->{'alice@contoso.example@locked'}, 'no user created');
}
$res = login('entra', 'alice@contoso.example');
is($res->{status}, 200, 'the other realm still logs in');

# --- an app registration without the optional claim `upn` (Entra's v2.0 default): the default
# username-claim refuses the login, the journal says what to configure, no user is made; no
# fallback to preferred_username, also not in a multi-tenant realm (which refuses that claim)
emulator_control('{"optional_claims": {"idToken": []}}');
http_request('POST', '/access/domains', {
    realm => 'multi', type => 'entraid', 'tenant-id' => 'organizations', 'allowed-tenants' => $TENANT,
    'client-id' => $CLIENT_ID, 'client-key' => $SECRET, autocreate => 1,
}, ticket => $rticket, csrf => $rcsrf);
for my $realm ('entra', 'multi') {
    $res = login($realm, 'bob@contoso.example');
    is($res->{status}, 401, "$realm: no upn claim, no login");
    like($res->{message} // '', qr/\(token\.missing_claim, reference [0-9a-f]{8}\)/, 'with its code');
    like($UpstreamTest::SYSLOG[-1], qr/no `upn` claim for the user name.*optional claim `upn`/, 'the journal names the fix');
    ok(!grep({ /^bob/ } keys %{ PVE::Cluster::cfs_read_file('user.cfg')->{users} }), 'no user made');
}
emulator_control(JSON::encode_json({ optional_claims => { idToken => \@OPTIONAL_CLAIMS } }));
$res = login('multi', 'bob@contoso.example');
is($res->{status}, 200, 'with the optional claim the multi-tenant realm logs bob in') or diag($res->{message});
is($res->{data}->{username}, 'bob@contoso.example@multi', 'named by his upn');

# --- failures answer without a ticket and without details
$res = http_request('POST', '/access/entraid/login', { code => 'x', state => 'garbage', 'redirect-url' => $REDIRECT, realm => 'entra', %bind_key });
isnt($res->{status}, 200, 'a forged state is refused');
ok(!$res->{data}, 'no ticket');
unlike(join(' ', grep { defined } $res->{message}, @UpstreamTest::SYSLOG), qr/\Q$SECRET\E/, 'no secret in the answer or the journal');

done_testing();
