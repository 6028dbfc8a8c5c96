#!/usr/bin/perl -T
# the hooked REAL PVE::AccessControl registers 'entraid' beside pam/pve/openid/ldap/ad and
# runs PVE::Auth::Plugin->init(); entraid declares no property another type declares

use strict;
use warnings;

use UpstreamTest;
use Test::More;

my @warnings;
local $SIG{__WARN__} = sub { push @warnings, @_ };
setup_etc_pve();
load_pve();
is_deeply(\@warnings, [], "hooked PVE::AccessControl ($PVE) loads without a warning") or diag(@warnings);

my $pdata = PVE::Auth::Plugin->private();
# with the upstream realm plugin interface (contrib/upstream, tests/upstream/native) PVE's loader
# registers the drop-in PVE::Auth::Custom::EntraID, a subclass of the module
my $entraid = $UpstreamTest::TREE =~ m{/upstream-native/} ? 'PVE::Auth::Custom::EntraID' : 'PVE::Auth::EntraID';
is_deeply({ map { $_ => $pdata->{plugins}->{$_} } keys %{ $pdata->{plugins} } }, {
    ad => 'PVE::Auth::AD', ldap => 'PVE::Auth::LDAP', openid => 'PVE::Auth::OpenId',
    pam => 'PVE::Auth::PAM', pve => 'PVE::Auth::PVE', entraid => $entraid,
}, 'realm types after init(): the upstream five and entraid');
ok($entraid->isa('PVE::Auth::EntraID'), "entraid: $entraid");
is_deeply($pdata->{propertyList}->{type}->{enum}, [qw(ad entraid ldap openid pam pve)],
    'init() put entraid into the type enum');

# no property clash (init() would die on a duplicate, but say which one)
my %ours = %{ PVE::Auth::EntraID->properties() };
for my $class (map { $pdata->{plugins}->{$_} } qw(pam pve openid ldap ad)) {
    my @clash = grep { exists $class->properties()->{$_} } sort keys %ours;
    is_deeply(\@clash, [], "no property declared by both entraid and $class");
}
for my $opt (sort keys %{ PVE::Auth::EntraID->options() }) {
    ok($pdata->{propertyList}->{$opt}, "option '$opt' is a property some realm type declares");
}

# API schemas built by the real SectionConfig
my $create = PVE::Auth::Plugin->createSchema();
my $update = PVE::Auth::Plugin->updateSchema();
for my $p (sort keys %ours) {
    ok($create->{properties}->{$p}, "create schema has '$p'");
    ok($update->{properties}->{$p}, "update schema has '$p'");
}
is($create->{properties}->{'client-key'}->{type}, PVE::Auth::OpenId->properties()->{'client-key'}->{type},
    'client-key is the real openid property');

# the realm is mounted under /access like openid (API path of the hook)
my ($handler, $info) = PVE::API2::AccessControl->find_handler('POST', '/entraid/login', {});
is($handler, 'PVE::API2::EntraID', 'POST /access/entraid/login resolves to PVE::API2::EntraID');
($handler) = PVE::API2::AccessControl->find_handler('POST', '/entraid/auth-url', {});
is($handler, 'PVE::API2::EntraID', 'POST /access/entraid/auth-url resolves to PVE::API2::EntraID');
($handler) = PVE::API2::AccessControl->find_handler('POST', '/openid/login', {});
is($handler, 'PVE::API2::OpenId', 'openid still mounted');

# defect 6: what entraid inherits from the REAL openid type
my $openid = PVE::Auth::OpenId->properties();
is($update->{properties}->{scopes}->{default}, $openid->{scopes}->{default},
    "scopes default is upstream openid's ('$openid->{scopes}->{default}')");
my $check = sub { my ($k, $v) = @_; eval { PVE::Auth::EntraID->check_value('entraid', $k, $v, 'entra') }; $@ };
ok($check->('acr-values', 'urn:a urn:b'), 'acr-values with a space is refused upstream');
ok(!$check->('acr-values', 'urn:a'), 'a single acr value is accepted');
ok($check->('autocreate', 'yes'), "boolean 'yes' is refused upstream");
ok(!$check->('autocreate', '1'), "boolean '1' is accepted");

done_testing();
