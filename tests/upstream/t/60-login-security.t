#!/usr/bin/perl -T
# The login path's security rules on the REAL upstream PVE code (PVE_ENTRAID_PVE=pve9|pve8):
# browser-bound state, realm isolation, TFA through the real /access/ticket, identity pins of
# pre-created users, safe claim values in user.cfg, tenant-scoped group keys, and what
# anonymous callers are told.
use strict;
use warnings;

use UpstreamTest;

use JSON;
use MIME::Base32;
use PVE::OTP;
use Test::More;

setup_etc_pve();
load_pve();

# users with hostile claim values (issue 10.4)
my $MALLORY_OID = '0c0c0c0c-0000-4000-8000-00000000c0c0';
my $COMMA_OID = '0d0d0d0d-0000-4000-8000-00000000d0d0';
my $emu_config = '/etc/pve/emu.json';
spew($emu_config, encode_json({ users => [
    { upn => 'mallory@contoso.example', oid => $MALLORY_OID, name => 'Mallory', given_name => 'Mallory',
      family_name => 'M', email => "mallory\@contoso.example\nacl:1:/:\@admins:Administrator:",
      groups => [], generated_groups => 0, roles => [], acct => 0, idp => undef, tid => $TENANT },
    { upn => 'bob@pve,x', oid => $COMMA_OID, name => 'Comma', given_name => 'C', family_name => 'C',
      email => 'comma@contoso.example', groups => [], generated_groups => 0, roles => [], acct => 0,
      idp => undef, tid => $TENANT },
]}));
start_emulator(config => $emu_config, optional_claims => \@OPTIONAL_CLAIMS);


my $redirect = 'https://pve1.example.com:8006';
# the browser binding: 32 bytes 0x42, base64url, and its SHA-256
my $KEY = 'QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI';
my $HASH = 'Ql7U5KNrMOohuQ4hxxLGSeghTCm36vaAidEDnG5VOEw';
my $OTHER_KEY = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8';

sub add_realm {
    my ($realm, %opt) = @_;
    return api_call('POST', '/access/domains', { realm => $realm, type => 'entraid',
        'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID, 'client-key' => $SECRET, %opt });
}

sub auth_url {
    my ($realm, %opt) = @_;
    return api_call('POST', '/access/entraid/auth-url',
        { realm => $realm, 'redirect-url' => $redirect, 'binding-hash' => $HASH, %opt });
}

sub start_login {
    my ($realm, $hint) = @_;
    my ($code, $state) = browser_authorize(auth_url($realm), $hint);
    return { realm => $realm, code => $code, state => $state, 'redirect-url' => $redirect, 'binding-key' => $KEY };
}

sub finish_login { return api_call('POST', '/access/entraid/login', $_[0]); }

sub login_as { return finish_login(start_login(@_)); }

sub failure {
    my ($code) = @_;
    my $res = eval { $code->() };
    return $@ || die "expected a failure, got " . encode_json($res) . "\n";
}

sub user_cfg { return PVE::Cluster::cfs_read_file('user.cfg'); }

add_realm('entra', autocreate => 1, 'groups-map' => "$ALICE_GROUP=admins");
api_call('POST', '/access/groups', { groupid => 'admins' });

# --- 10.1 the state is bound to the browser that started the login -------------------------

my $err = failure(sub { api_call('POST', '/access/entraid/auth-url', { realm => 'entra', 'redirect-url' => $redirect }) });
ok($err->{errors}->{'binding-hash'}, 'auth-url requires binding-hash');
$err = failure(sub { auth_url('entra', 'binding-hash' => 'x' x 42) });
ok($err->{errors}->{'binding-hash'}, 'binding-hash must be 43 base64url characters');

my $planted = start_login('entra', 'alice@contoso.example');
$err = failure(sub { finish_login({ %$planted, 'binding-key' => undef }) });
ok($err->{errors}->{'binding-key'}, 'login requires binding-key');
$err = failure(sub { finish_login({ %$planted, 'binding-key' => $OTHER_KEY }) });
is($err->{code}, 400, 'code and state planted in another browser: 400');
like("$err", qr/\(state\.binding_mismatch, reference [0-9a-f]{8}\)/, 'with code state.binding_mismatch');
ok(!user_cfg()->{users}->{'alice@contoso.example@entra'}, 'nobody logged in');
my $res = finish_login($planted);
is($res->{username}, 'alice@contoso.example@entra', 'the browser with the key still completes its login');
is(PVE::AccessControl::verify_ticket($res->{ticket}), 'alice@contoso.example@entra', 'real ticket');

# --- 9.3 one broken realm never blocks another -----------------------------------------------

# 'aaa' sorts first and cannot work: a hand-written multi-tenant section without its tenants
spew('/etc/pve/domains.cfg', slurp('/etc/pve/domains.cfg')
    . "entraid: aaa\n\tclient-id $CLIENT_ID\n\ttenant-id organizations\n\n");
$err = failure(sub { auth_url('aaa') });
like("$err", qr/\(config\.invalid, reference/, 'the broken realm fails on its own');
$res = login_as('entra', 'alice@contoso.example');
is($res->{username}, 'alice@contoso.example@entra', 'another realm logs in while aaa is broken');
my $req = start_login('entra', 'alice@contoso.example');
delete $req->{realm};
$err = failure(sub { finish_login($req) });
ok($err->{errors}->{realm}, 'login requires the realm (the web UI sends it)');

# --- 10.4 claim values cannot break user.cfg -------------------------------------------------

$res = login_as('entra', 'mallory@contoso.example');
is($res->{username}, 'mallory@contoso.example@entra', 'user with a multi-line e-mail claim logs in');
my $text = slurp('/etc/pve/user.cfg');
unlike($text, qr/^acl:/m, 'no acl line injected into user.cfg');
my $mallory = user_cfg()->{users}->{'mallory@contoso.example@entra'};
ok($mallory && !defined($mallory->{email}), 'the invalid e-mail is left out');

$err = failure(sub { login_as('entra', 'bob@pve,x') });
is($err->{code}, 403, "UPN 'bob\@pve,x': 403");
like("$err", qr/\(access\.denied, reference [0-9a-f]{8}\)/, 'with code access.denied');
like($SYSLOG[-1], qr/code=access\.denied .*user name from Entra contains one of the characters/,
    'the reason is in syslog');
ok(!grep({ m/bob\@pve/ } keys %{ user_cfg()->{users} }), 'no user created');
ok(!user_cfg()->{groups}->{admins}->{users}->{'bob@pve'}, "no group member 'bob\@pve'");

# --- 10.2 TFA: the real /access/ticket completes what entraid login started ------------------

my $secret = 'JBSWY3DPEHPK3PXP';
spew('/etc/pve/priv/tfa.cfg', encode_json({ users => { 'alice@contoso.example@entra' => { totp => [
    { description => 'phone', created => time(), enable => JSON::true,
      entry => "otpauth://totp/alice?secret=$secret" } ] } } }));
$res = login_as('entra', 'alice@contoso.example');
is($res->{NeedTFA}, 1, 'user with a TOTP entry: NeedTFA');
like($res->{ticket}, qr/^PVE:!tfa!/, 'a !tfa! challenge ticket, like /access/ticket');
ok(!exists($res->{cap}), 'no permissions yet');
is($res->{username}, 'alice@contoso.example@entra', 'username');
ok(!PVE::AccessControl::verify_ticket($res->{ticket}, 1), 'the challenge ticket is no login ticket');
my $totp = PVE::OTP::hotp(MIME::Base32::decode_rfc3548($secret), int(time() / 30));
my $wrong = $totp eq '000000' ? '111111' : '000000';
$err = failure(sub { api_call('POST', '/access/ticket', { username => $res->{username},
    'tfa-challenge' => $res->{ticket}, password => "totp:$wrong" }) });
is($err->{code}, 401, 'a wrong TOTP code is refused by the real /access/ticket');
$res = login_as('entra', 'alice@contoso.example');
my $second = api_call('POST', '/access/ticket', { username => $res->{username},
    'tfa-challenge' => $res->{ticket}, password => "totp:$totp" });
is(PVE::AccessControl::verify_ticket($second->{ticket}), 'alice@contoso.example@entra',
    'the real /access/ticket turns challenge + TOTP into a full ticket for the entraid user');
ok($second->{cap}, 'with permissions');
unlink('/etc/pve/priv/tfa.cfg');

api_call('PUT', '/access/domains/entra', { tfa => 'type=oath' });
# a login refused for a missing second factor writes nothing (issue 19.5): alice, taken out of
# her mapped group by hand, is not put back; bob, new, is neither created nor pinned
my $cfg = user_cfg();
delete $cfg->{groups}->{admins}->{users}->{'alice@contoso.example@entra'};
delete $cfg->{users}->{'alice@contoso.example@entra'}->{groups}->{admins};
PVE::Cluster::cfs_write_file('user.cfg', $cfg);
my ($users_before, $pins_before) = (slurp('/etc/pve/user.cfg'), slurp('/etc/pve/priv/entraid/entra.identities.json'));
$err = failure(sub { login_as('entra', 'alice@contoso.example') });
is($err->{code}, 403, 'realm requires TFA, user has none: refused');
like("$err", qr/\(access\.denied, reference/, 'access.denied');
$err = failure(sub { login_as('entra', 'bob@contoso.example') });
is($err->{code}, 403, 'realm requires TFA, a new user (who has no second factor): refused');
like("$err", qr/\(access\.denied, reference/, 'access.denied');
like($SYSLOG[-1], qr/requires a second factor/, 'syslog says why');
is(slurp('/etc/pve/user.cfg'), $users_before, 'user.cfg unchanged: alice not back in admins, bob not created');
is(slurp('/etc/pve/priv/entraid/entra.identities.json'), $pins_before, 'no pin written');
# nor when a former user of bob's name left only a disabled entry: PVE would not ask for it
spew('/etc/pve/priv/tfa.cfg', encode_json({ users => { 'bob@contoso.example@entra' => { totp => [
    { description => 'old phone', created => time(), enable => JSON::false,
      entry => "otpauth://totp/bob?secret=$secret" } ] } } }));
$err = failure(sub { login_as('entra', 'bob@contoso.example') });
is($err->{code}, 403, 'realm requires TFA, a new user whose name has only a disabled entry: refused');
is(slurp('/etc/pve/user.cfg'), $users_before, 'user.cfg unchanged: bob not created');
is(slurp('/etc/pve/priv/entraid/entra.identities.json'), $pins_before, 'no pin written');
# a user who has a second factor gets the challenge, and the login's changes
spew('/etc/pve/priv/tfa.cfg', encode_json({ users => { 'alice@contoso.example@entra' => { totp => [
    { description => 'phone', created => time(), enable => JSON::true,
      entry => "otpauth://totp/alice?secret=$secret" } ] } } }));
$res = login_as('entra', 'alice@contoso.example');
is($res->{NeedTFA}, 1, 'realm requires TFA, user has a TOTP entry: NeedTFA');
ok(user_cfg()->{groups}->{admins}->{users}->{'alice@contoso.example@entra'}, 'and her mapped group again');
# bob is new, but a former user of his name (his identity: pins stay) left a TOTP entry
spew('/etc/pve/priv/tfa.cfg', encode_json({ users => { 'bob@contoso.example@entra' => { totp => [
    { description => 'phone', created => time(), enable => JSON::true,
      entry => "otpauth://totp/bob?secret=$secret" } ] } } }));
$res = login_as('entra', 'bob@contoso.example');
is($res->{NeedTFA}, 1, 'realm requires TFA, a new user whose name has a TOTP entry: NeedTFA');
ok(user_cfg()->{users}->{'bob@contoso.example@entra'}, 'and bob is created');
unlink('/etc/pve/priv/tfa.cfg');
api_call('PUT', '/access/domains/entra', { delete => 'tfa' });

# --- 10.3 pre-created users are not pinned to whoever signs in first -------------------------

add_realm('closed');   # autocreate off: users exist only when an admin created them
api_call('POST', '/access/users', { userid => 'alice@contoso.example@closed' });
$err = failure(sub { login_as('closed', 'alice@contoso.example') });
is($err->{code}, 403, 'pre-created user without a pin: 403');
like("$err", qr/\(identity\.pin_mismatch, reference/, 'identity.pin_mismatch');
like($SYSLOG[-1], qr/tid \Q$TENANT\E, oid \Q$ALICE_OID\E/, 'syslog names the identity to approve');
ok(!-e '/etc/pve/priv/entraid/closed.identities.json', 'nothing pinned');
# what `pve-entraid pin` seeds
spew('/etc/pve/priv/entraid/closed.identities.json',
    encode_json({ 'alice@contoso.example' => { tid => $TENANT, oid => $ALICE_OID } }), 0600);
is(login_as('closed', 'alice@contoso.example')->{username}, 'alice@contoso.example@closed',
    'after the admin approved the identity, the user logs in');
api_call('POST', '/access/users', { userid => 'mallory@contoso.example@closed' });
spew('/etc/pve/priv/entraid/closed.identities.json',
    encode_json({ 'mallory@contoso.example' => { tid => $TENANT, oid => $ALICE_OID } }), 0600);
$err = failure(sub { login_as('closed', 'mallory@contoso.example') });
like("$err", qr/\(identity\.pin_mismatch, reference/, 'another identity than the approved one: refused');

add_realm('byoid', 'username-claim' => 'oid');
api_call('POST', '/access/users', { userid => "$ALICE_OID\@byoid" });
is(login_as('byoid', 'alice@contoso.example')->{username}, "$ALICE_OID\@byoid",
    'username-claim oid: the pre-created user is the identity, first login pins it');
is_deeply(decode_json(slurp('/etc/pve/priv/entraid/byoid.identities.json'))->{$ALICE_OID},
    { tid => $TENANT, oid => $ALICE_OID }, 'pinned');

# --- 10.10 tenant-scoped group keys are accepted by the real schema -------------------------

api_call('PUT', '/access/domains/entra', { 'groups-map' => "$TENANT:PVE.Admin=admins;$ALICE_GROUP=admins" });
like(section_of(slurp('/etc/pve/domains.cfg'), 'entraid', 'entra'), qr/groups-map \Q$TENANT\E:PVE\.Admin=admins/,
    'a <tid>:<role> key is stored');

# --- 10.8 anonymous callers get a generic message; the detail is in syslog -------------------

$req = start_login('entra', 'alice@contoso.example');
emulator_control('{"fail_next": {"endpoint": "token", "mode": "aadsts:7000222", "count": 1}}');
@SYSLOG = ();
$err = failure(sub { finish_login($req) });
my ($ref) = "$err" =~ m/\(idp\.error, reference ([0-9a-f]{8})\)/;
ok($ref, 'generic message with code and reference');
unlike("$err", qr/AADSTS|7000222|expired|correlation|secret/i, 'no AADSTS, hint or correlation id for the anonymous caller');
my ($line) = grep { m/ref=\Q$ref\E / } @SYSLOG;
like($line // '', qr/code=idp\.error aadsts=7000222 correlation_id=\S+/, 'syslog has the detail under the same reference');

$err = failure(sub { auth_url('nosuch') });
unlike("$err", qr/nosuch|does not exist/, 'an unknown realm is not confirmed to anonymous callers');
like("$err", qr/\(request\.invalid, reference/, 'request.invalid');

unlike(join("\n", @SYSLOG), qr/\Q$SECRET\E/, 'no secret in syslog');

done_testing();
