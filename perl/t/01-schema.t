#!/usr/bin/perl
# The realm type's schema: its properties, no clash with other realm types, init() works.
use strict;
use warnings;

use Test::More;
use EntraTest;

setup_cluster();
require PVE::Auth::Plugin;
require PVE::Auth::OpenId;
require PVE::Auth::PVE;
require PVE::Auth::EntraID;

my $pdata = PVE::Auth::Plugin->private();
is($pdata->{plugins}->{entraid}, 'PVE::Auth::EntraID', 'entraid registered beside the built-in types');
is($pdata->{plugins}->{openid}, 'PVE::Auth::OpenId', 'openid registered in the same init()');

my $opts = $pdata->{options}->{entraid};
my @expected = qw(tenant-id client-id client-key cloud allowed-tenants username-claim autocreate
    groups-map groups-autocreate groups-sync required-groups allow-guests prompt acr-values scopes
    default comment client-cert client-cert-key tfa sync-defaults-options sync-users
    allow-loopback-redirect workload-map app-id-uri);
for my $p (@expected) {
    ok($opts->{$p}, "option $p");
    ok($pdata->{propertyList}->{$p}, "property $p is registered");
}
is_deeply([sort keys %$opts], [sort @expected], 'no other options');
ok(!$opts->{'tenant-id'}->{optional} && !$opts->{'client-id'}->{optional}, 'tenant-id and client-id required');
ok($opts->{'username-claim'}->{fixed}, 'username-claim fixed like openid (changing it renames users)');

# properties registered by other realm types are only listed in options()
my %foreign;
for my $class (qw(PVE::Auth::OpenId PVE::Auth::PVE)) {
    $foreign{$_} = $class for keys %{ $class->properties() };
}
for my $p (sort keys %{ PVE::Auth::EntraID->properties() }) {
    ok(!$foreign{$p}, "entraid does not redefine '$p'");
}
# nor with the real ldap/ad types
my @ldap_ad = map { keys %{ $_->properties() } } qw(PVE::Auth::LDAP PVE::Auth::AD);
ok(scalar(@ldap_ad) > 10, 'ldap/ad properties read from the real modules');
my %ours = %{ PVE::Auth::EntraID->properties() };
ok(!grep({ $ours{$_} } @ldap_ad), 'no clash with ldap/ad properties');

for my $p (qw(client-id client-key autocreate username-claim prompt scopes acr-values groups-autocreate)) {
    is($foreign{$p}, 'PVE::Auth::OpenId', "'$p' reused from openid");
}

# the real SectionConfig on a redefinition: init() dies, for every daemon
{
    package Dup::Base;
    use base 'PVE::SectionConfig';
    my $data = { propertyList => { type => { description => 't' } } };
    sub private { return $data; }
    package Dup::OpenId;
    use base 'Dup::Base';
    sub type { 'openid' }
    sub properties { PVE::Auth::OpenId->properties() }
    package Dup::Bad;
    use base 'Dup::Base';
    sub type { 'bad' }
    sub properties { { 'client-id' => { type => 'string' } } }
}
Dup::OpenId->register();
Dup::Bad->register();
eval { Dup::Base->init() };
like($@, qr/duplicate property 'client-id'/, 'a redefined property makes init() die (why entraid reuses)');

# the login endpoints are world-accessible and run in pvedaemon, like /access/openid
require PVE::API2::EntraID;
for my $name (qw(auth_url login)) {
    my $info = PVE::API2::EntraID->map_method_by_name($name);
    is($info->{permissions}->{user}, 'world', "$name: user => world");
    ok($info->{protected}, "$name: protected");
    is($info->{method}, 'POST', "$name: POST");
}
is_deeply([sort keys %{ PVE::API2::EntraID->map_method_by_name('login')->{returns}->{properties} }],
    [sort qw(username ticket CSRFPreventionToken cap clustername NeedTFA)], 'login returns the /access/ticket shape');

# schemas the Domains API builds
my $create = PVE::Auth::Plugin->createSchema();
is($create->{properties}->{'tenant-id'}->{format}, 'pve-entraid-tenant', 'create schema has tenant-id');
my $update = PVE::Auth::Plugin->updateSchema();
ok($update->{properties}->{'groups-map'}, 'update schema has groups-map');

# value checks of the schema (what the API enforces); parsing domains.cfg keeps a bad
# restriction instead (tests/upstream/t/plugin-restrictions.t)
my $check = sub {
    my ($k, $v) = @_;
    eval { PVE::Auth::EntraID->PVE::SectionConfig::check_value('entraid', $k, $v, 'entra') };
    $@;
};
is($check->('tenant-id', $TENANT), '', 'tenant GUID accepted');
is($check->('tenant-id', 'contoso.onmicrosoft.com'), '', 'verified domain accepted');
is($check->('tenant-id', 'organizations'), '', 'organizations accepted');
like($check->('tenant-id', 'not a tenant'), qr/neither a tenant GUID/, 'bad tenant refused');
is($check->('groups-map', "$ALICE_GROUP=admins;PVE.Admin=ops"), '', 'groups-map accepted');
like($check->('groups-map', "$ALICE_GROUP=bad/group"), qr/is not '<group GUID or app role>=<PVE group>'/, 'bad PVE group name in groups-map refused');
like($check->('groups-map', "$ALICE_GROUP"), qr/is not '<group GUID/, 'groups-map entry without = refused');
like($check->('allowed-tenants', 'x'), qr/'x' is not a GUID/, 'allowed-tenants must be GUIDs');
is($check->('allowed-tenants', $TENANT), '', 'a GUID is accepted');
like($check->('cloud', 'mars'), qr/enumeration/, 'unknown cloud refused');
like($check->('client-key', "a\nb"), qr/line feed/, 'line feed in a value refused');

# what the settings mean is the library's to decide, at add/update as at login
eval { PVE::Auth::EntraID::check_realm_settings('entra', { 'tenant-id' => 'common', 'client-id' => $CLIENT_ID }) };
like($@, qr/^realm config: `allowed-tenants` is required when tenant-id is organizations or common$/,
    'common tenant needs allowed-tenants');
eval { PVE::Auth::EntraID::check_realm_settings('entra', { 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID,
    'username-claim' => 'nickname' }) };
like($@, qr/^`config.username-claim` must be one of `upn`, `preferred_username`, `email`, `oid`$/,
    'unknown username-claim refused');
eval { PVE::Auth::EntraID::check_realm_settings('entra', { 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID }) };
is($@, '', 'a complete realm passes');
# a refusal that is not the library's own answer still refuses the change
eval { PVE::Auth::EntraID::check_realm_settings('entra', { 'tenant-id' => 'organizations', 'client-id' => $CLIENT_ID,
    'allowed-tenants' => 'not-a-guid' }) };
like($@, qr/^realm 'entra' refuses logins: its 'allowed-tenants' in domains\.cfg is invalid/,
    'an invalid restriction refuses the change');

done_testing();
