#!/usr/bin/perl -T
# entraid realm settings through the REAL PVE::API2::Domains: the 'tfa' option (issue 9.5),
# inherited openid properties (9.6), no mutable user name claim in multi-tenant realms and
# identity pins that outlive the realm (10.3), certificates as PEM text only (10.9)

use strict;
use warnings;

use UpstreamTest;
use Test::More;

setup_etc_pve();
load_pve();

my $priv = '/etc/pve/priv/entraid';
my $base = { type => 'entraid', 'client-id' => $CLIENT_ID, 'client-key' => $SECRET };
my sub add { api_call('POST', '/access/domains', { %$base, @_ }) }
my sub modify { my $realm = shift; api_call('PUT', "/access/domains/$realm", {@_}) }
my sub section { PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{ $_[0] } }

# 9.5: what the real realm dialog sends for "Require TFA"
add(realm => 'entra', 'tenant-id' => $TENANT, tfa => 'type=oath');
is(section('entra')->{tfa}, 'type=oath', 'tfa accepted on add');
modify('entra', delete => 'tfa');
ok(!defined(section('entra')->{tfa}), 'tfa deleted');
modify('entra', tfa => 'type=oath,digits=8');
is(section('entra')->{tfa}, 'type=oath,digits=8', 'tfa set on update');

# 9.6: inherited openid properties behave as upstream declares them
my $schema = PVE::Auth::Plugin->createSchema()->{properties};
is(PVE::Auth::EntraID::library_config('entra', section('entra'))->{scopes}, $schema->{scopes}->{default},
    "without 'scopes' the library asks for upstream's default ($schema->{scopes}->{default})");
modify('entra', scopes => 'openid profile');
is(PVE::Auth::EntraID::library_config('entra', section('entra'))->{scopes}, 'openid profile', 'scopes set');
eval { modify('entra', 'acr-values' => 'c1 c2') };
like("$@", qr/acr-values/, 'acr-values: one value, no spaces (upstream pattern)');
modify('entra', 'acr-values' => 'c1');
for my $word (qw(true yes)) {
    eval { modify('entra', 'allow-guests' => $word) };
    like("$@", qr/allow-guests/, "API refuses boolean '$word' (only 0/1, as upstream)");
}

# 10.3: email/preferred_username are editable by any tenant's admin
for my $claim (qw(email preferred_username)) {
    eval { add(realm => "org-$claim", 'tenant-id' => 'organizations', 'allowed-tenants' => $TENANT,
        'username-claim' => $claim) };
    like("$@", qr/`username-claim` must be upn or oid in an organizations or common realm/,
        "organizations realm refuses username-claim $claim");
    ok(!section("org-$claim"), 'and is not added');
}
add(realm => 'org', 'tenant-id' => 'common', 'allowed-tenants' => $TENANT, 'username-claim' => 'oid');
is(section('org')->{'username-claim'}, 'oid', 'common realm with username-claim oid');
add(realm => 'single', 'tenant-id' => $TENANT, 'username-claim' => 'email');
eval { modify('single', 'tenant-id' => 'organizations', 'allowed-tenants' => $TENANT) };
like("$@", qr/`username-claim` must be upn or oid/, 'a realm keyed on email cannot become multi-tenant');
is(section('single')->{'tenant-id'}, $TENANT, 'and stays single-tenant');

# 10.3: pins stay when the realm is deleted (PVE keeps its users too)
my $pins = { 'alice@contoso.com' => { tid => $TENANT, oid => $ALICE_OID } };
PVE::Auth::EntraID::write_identity_pins('entra', $pins);
api_call('DELETE', '/access/domains/entra');
ok(!-e "$priv/entra.secret", 'realm delete removes the secret');
is_deeply(PVE::Auth::EntraID::read_identity_pins('entra'), $pins, 'realm delete keeps the identity pins');
add(realm => 'entra', 'tenant-id' => $TENANT);
is_deeply(PVE::Auth::EntraID::read_identity_pins('entra'), $pins, 'the realm added again has the same pins');

# 10.9: certificate credentials are PEM text; a path is refused without reading it
my $tmp = '/etc/pve/test-cert';
system('sh', '-c', "openssl req -x509 -newkey rsa:2048 -nodes -keyout $tmp.key -out $tmp.crt"
    . " -subj /CN=pve-entraid-test -days 2 2>/dev/null") == 0 or die "openssl failed\n";
my ($cert, $key) = (slurp("$tmp.crt"), slurp("$tmp.key"));
my %answer;
for my $path ('/etc/pve/pve-www.key', '/nonexistent/file.pem', "$tmp.key") {
    eval { modify('entra', 'client-cert' => $path, 'client-cert-key' => $path) };
    $answer{$path} = "$@";
}
like($answer{'/etc/pve/pve-www.key'}, qr/client-cert must be PEM text/, 'a path is refused');
is($answer{'/nonexistent/file.pem'}, $answer{'/etc/pve/pve-www.key'}, 'same answer for a missing path');
is($answer{"$tmp.key"}, $answer{'/etc/pve/pve-www.key'}, 'same answer for a readable PEM key path');
ok(-e "$priv/entra.secret" && !-e "$priv/entra.crt", 'nothing changed');
eval { modify('entra', 'client-cert' => $key, 'client-cert-key' => $key) };
like("$@", qr/client-cert must be PEM text/, 'a key is no certificate');
modify('entra', 'client-cert' => $cert, 'client-cert-key' => $key);
is(slurp("$priv/entra.crt"), $cert, 'certificate stored from its PEM text');
is(slurp("$priv/entra.key"), $key, 'key stored from its PEM text');
is((stat("$priv/entra.key"))[2] & 07777, 0600, 'key file is 0600');
ok(!-e "$priv/entra.secret", 'the secret it replaces is removed');
my ($crlf_cert, $crlf_key) = map { s/\n/\r\n/gr } ($cert, $key);
modify('entra', 'client-cert' => $crlf_cert, 'client-cert-key' => $crlf_key);
is(slurp("$priv/entra.crt"), $cert, 'PEM pasted with CRLF line ends is stored with LF');
unlike(slurp('/etc/pve/domains.cfg'), qr/BEGIN|client-cert/, 'no certificate in domains.cfg');
is(PVE::Auth::EntraID::library_config('entra', section('entra'))->{client_cert_file}, "$priv/entra.crt",
    'the library reads the stored certificate');

done_testing();
