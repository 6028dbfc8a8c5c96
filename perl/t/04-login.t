#!/usr/bin/perl
# The full path: auth-url -> emulator (the Entra stand-in) -> login, and what a login writes:
# autocreated users, mapped and synced groups, identity pins; and the login gates.
use strict;
use warnings;

use JSON;
use Test::More;
use EntraTest;

my $dir = setup_cluster(cluster => 'lab');
start_emulator(optional_claims => \@OPTIONAL_CLAIMS);
my $priv = "$dir/priv/entraid";
my $other_group = '99999999-0000-4000-8000-000000000099';

# a realm sorted before 'entra', so a login without 'realm' has to skip it by its state
add_realm('aaa');
add_realm('entra', autocreate => 1, 'groups-sync' => 1,
    'groups-map' => "$ALICE_GROUP=admins;PVE.Admin=ops;$other_group=auditors");

open(my $fh, '>>', "$dir/user.cfg") or die $!;
print $fh "\ngroup:admins:root\@pam::\ngroup:auditors:::\ngroup:manual:::\n";
close($fh);

my $redirect = 'https://pve1.example.com:8006';

sub start_login {
    my ($hint, $realm) = @_;
    my $url = api_call('auth_url', { realm => $realm // 'entra', 'redirect-url' => $redirect, 'binding-hash' => $BINDING_HASH });
    return browser_authorize($url, $hint);
}

sub login_as {
    my ($hint, %extra) = @_;
    my ($code, $state) = start_login($hint, $extra{realm});
    return api_call('login', { realm => 'entra', code => $code, state => $state,
        'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY, %extra });
}

sub error_of_call {
    my ($code) = @_;
    eval { $code->() };
    return $@;
}

my $url = api_call('auth_url', { realm => 'entra', 'redirect-url' => $redirect, 'binding-hash' => $BINDING_HASH });
like($url, qr{^http://127\.0\.0\.1:\d+/\Q$TENANT\E/oauth2/v2\.0/authorize\?}, 'auth-url returns the authorize URL');
like($url, qr/[?&]client_id=\Q$CLIENT_ID\E(&|$)/, 'with the client id');
like($url, qr/[?&]code_challenge_method=S256/, 'with PKCE');
unlike($url, qr/\Q$SECRET\E|s3cr/, 'never with the secret');

# first login of alice: autocreate, mapped groups, pin
my ($code, $state) = start_login('alice@contoso.example');
my $res = api_call('login', { realm => 'entra', code => $code, state => $state, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY });
my $userid = 'alice@contoso.example@entra';
is($res->{username}, $userid, 'user id from upn and realm');
like($res->{ticket}, qr/^PVE:\Q$userid\E:[0-9A-F]{8}::\S+$/, 'PVE ticket');
is(PVE::AccessControl::verify_ticket($res->{ticket}), $userid, 'ticket verifies for the user');
like($res->{CSRFPreventionToken}, qr/^[0-9A-F]{8}:\S+$/, 'CSRF prevention token');
is(ref($res->{cap}), 'HASH', 'cap object like /access/ticket');
is_deeply([sort keys %$res], [sort qw(username ticket CSRFPreventionToken cap)], 'exactly the ticket shape');

my $usercfg = PVE::Cluster::cfs_read_file('user.cfg');
my $alice = $usercfg->{users}->{$userid};
ok($alice && $alice->{enable}, 'user autocreated and enabled');
is($alice->{email}, 'alice@contoso.example', 'email from the token');
is($alice->{firstname}, 'Alice', 'first name from given_name');
ok(defined($alice->{lastname}) && $alice->{lastname} ne '', 'last name from family_name');
is_deeply([sort keys %{ $alice->{groups} }], ['admins'], 'mapped into the existing group only');
ok(!$usercfg->{groups}->{ops}, 'mapped group not created without groups-autocreate');
ok($usercfg->{groups}->{admins}->{users}->{'root@pam'}, 'existing members kept');

my $pins = decode_json(slurp("$priv/entra.identities.json"));
is_deeply($pins, { 'alice@contoso.example' => { tid => $TENANT, oid => $ALICE_OID } }, 'identity pinned to tid+oid');
is((stat("$priv/entra.identities.json"))[2] & 07777, 0600, 'pins file mode 0600');
like(join("\n", @UpstreamTest::SYSLOG), qr/entraid login; realm=entra user=\Q$userid\E oid=\Q$ALICE_OID\E tid=\Q$TENANT\E/,
    'success logged with realm, user, oid, tid');

# the same state and code again
my $err = error_of_call(sub { api_call('login', { realm => 'entra', code => $code, state => $state, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY }) });
is($err->{code}, 400, 'replayed state is a 400');
like("$err", qr/\(state\.replayed, reference [0-9a-f]{8}\)/, 'with code state.replayed');

# sync: only groups the map manages lose members; 'manual' is untouched
update_realm('entra', 'groups-autocreate' => 1);
PVE::AccessControl::lock_user_config(sub {
    my $cfg = PVE::Cluster::cfs_read_file('user.cfg');
    for my $g (qw(auditors manual)) {
        $cfg->{groups}->{$g}->{users}->{$userid} = 1;
        $cfg->{users}->{$userid}->{groups}->{$g} = 1;
    }
    PVE::Cluster::cfs_write_file('user.cfg', $cfg);
});
$res = login_as('alice@contoso.example');
is($res->{username}, $userid, 'second login');
$usercfg = PVE::Cluster::cfs_read_file('user.cfg');
is_deeply([sort keys %{ $usercfg->{users}->{$userid}->{groups} }], [qw(admins manual ops)],
    'auditors (managed, lost) removed; ops autocreated; manual (unmanaged) kept');
ok(!$usercfg->{groups}->{auditors}->{users}->{$userid}, 'membership gone from the group line too');
is($usercfg->{groups}->{ops}->{comment}, 'Entra ID (entra)', 'autocreated group says where it comes from');

# identity pin: same user name, another oid -> refused, nothing written
my $user_before = slurp("$dir/user.cfg");
my $other_pin = { 'alice@contoso.example' => { tid => $TENANT, oid => '0a1b2c3d-0000-4000-8000-0000000000ff' } };
PVE::Tools::file_set_contents("$priv/entra.identities.json", encode_json($other_pin), 0600);
$err = error_of_call(sub { login_as('alice@contoso.example') });
is($err->{code}, 403, 'other identity with the same user name is a 403');
like("$err", qr/\(identity\.pin_mismatch, reference [0-9a-f]{8}\)/, 'with code identity.pin_mismatch');
is(slurp("$dir/user.cfg"), $user_before, 'user.cfg untouched');
is_deeply(decode_json(slurp("$priv/entra.identities.json")), $other_pin, 'pins untouched');
like($UpstreamTest::SYSLOG[-1], qr/^err: entraid login failure; ref=[0-9a-f]{8} realm=entra user=alice\@contoso.example\@entra oid=\Q$ALICE_OID\E tid=\Q$TENANT\E .*code=identity\.pin_mismatch/,
    'failure logged with realm, user, oid, tid and code');
# the right pin again (a user that exists without a pin would need an admin's approval)
PVE::Tools::file_set_contents("$priv/entra.identities.json",
    encode_json({ 'alice@contoso.example' => { tid => $TENANT, oid => $ALICE_OID } }), 0600);
my $pins_before = slurp("$priv/entra.identities.json");

# required-groups gate
{
    ok(eval { update_realm('entra', 'required-groups' => $other_group); 1 }, 'required-groups stored') or diag($@);
    $err = error_of_call(sub { login_as('alice@contoso.example') });
    is(ref($err) && $err->{code}, 403, 'user outside required-groups is a 403');
    like("$err", qr/\(access\.denied, reference [0-9a-f]{8}\)/, 'with code access.denied');
    is(slurp("$priv/entra.identities.json"), $pins_before, 'no pin written for a refused login');
    eval { update_realm('entra', 'required-groups' => "$other_group;PVE.Admin") };
    is(eval { login_as('alice@contoso.example')->{username} }, $userid, 'app role satisfies required-groups');
    eval { update_realm('entra', delete => 'required-groups') };
}

# guests
$err = error_of_call(sub { login_as('guest@fabrikam.example') });
is($err->{code}, 403, 'guest refused');
like("$err", qr/\(access\.guest, reference [0-9a-f]{8}\)/, 'with code access.guest');
ok(!grep({ /fabrikam/ } keys %{ PVE::Cluster::cfs_read_file('user.cfg')->{users} }), 'no guest user created');

# no autocreate: unknown users are refused, and the realm parameter pins the realm
$err = error_of_call(sub { login_as('alice@contoso.example', realm => 'aaa') });
is($err->{code}, 403, 'realm without autocreate refuses an unknown user');
like("$err", qr/\baccess denied \(access\.denied, reference [0-9a-f]{8}\)$/, 'saying only that, to an anonymous caller');
like($UpstreamTest::SYSLOG[-1], qr/code=access\.denied msg=user '\S+' does not exist and realm 'aaa' does not autocreate/,
    'syslog says why');

# group overage: bob's 250 groups come from Graph
$res = login_as('bob@contoso.example');
is($res->{username}, 'bob@contoso.example@entra', 'user with group overage logs in (Graph lookup)');

# clustername only for users with Sys.Audit on / (the cluster 'lab' of setup_cluster)
ok(!exists(login_as('alice@contoso.example')->{clustername}), 'no clustername without Sys.Audit');

unlike(join("\n", @UpstreamTest::SYSLOG), qr/\Q$SECRET\E/, 'no secret in any syslog line');

done_testing();
