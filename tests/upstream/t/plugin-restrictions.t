#!/usr/bin/perl -T
# required-groups / allowed-tenants through the REAL JSONSchema, Domains API and
# SectionConfig (issue 9.1), and a realm whose restrictions cannot be parsed: it refuses its
# own logins, keeps the restriction in domains.cfg, and leaves other realms alone

use strict;
use warnings;

use UpstreamTest;
use Test::More;

setup_etc_pve();
load_pve();

my $G2 = '99999999-8888-4777-8666-555555555555';

# upstream check_format reads 'X-list' as a list of 'X'
is_deeply(PVE::JSONSchema::check_format('pve-entraid-group-list', "$ALICE_GROUP,PVE.Admin"),
    [$ALICE_GROUP, 'PVE.Admin'], 'pve-entraid-group-list is a list of pve-entraid-group');
is_deeply(PVE::JSONSchema::check_format('pve-entraid-guid-list', "$TENANT;$G2"), [$TENANT, $G2],
    'pve-entraid-guid-list is a list of pve-entraid-guid');
eval { PVE::JSONSchema::check_format('pve-entraid-guid-list', "$TENANT,contoso.com") };
like($@, qr/'contoso\.com' is not a GUID/, 'a bad item is named');

# the real Domains API (pveum realm add/modify)
my $base = { type => 'entraid', 'client-id' => $CLIENT_ID, 'client-key' => $SECRET };
api_call('POST', '/access/domains', { %$base, realm => 'entra', 'tenant-id' => $TENANT,
    'required-groups' => "$ALICE_GROUP,PVE.Admin" });
api_call('POST', '/access/domains', { %$base, realm => 'partners', 'tenant-id' => 'organizations',
    'allowed-tenants' => "$TENANT,$G2" });
my $cfg = PVE::Cluster::cfs_read_file('domains.cfg');
is($cfg->{ids}->{entra}->{'required-groups'}, "$ALICE_GROUP,PVE.Admin", 'required-groups set through the API');
is($cfg->{ids}->{partners}->{'allowed-tenants'}, "$TENANT,$G2", 'allowed-tenants set through the API');
api_call('PUT', '/access/domains/entra', { 'required-groups' => 'PVE.Admin' });
is(PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{entra}->{'required-groups'}, 'PVE.Admin',
    'required-groups modified through the API');
eval { api_call('PUT', '/access/domains/entra', { 'required-groups' => 'a=b' }) };
like("$@", qr/required-groups/, 'a bad group is refused by the API');

my $lib = PVE::Auth::EntraID::library_config('entra', $cfg->{ids}->{entra});
is($lib->{'required-groups'}, "$ALICE_GROUP,PVE.Admin", 'the library gets the required groups as PVE stores them');
require PVE::EntraID::Lib;
ok(eval { PVE::EntraID::Lib::call('check_config', { realm => 'entra', config => $lib }) }, 'and reads them')
    or diag($@);

# hand-written sections with restrictions that cannot be parsed
my %bad = (
    'required-groups' => "$ALICE_GROUP,not=a;group",
    'allowed-tenants' => "$TENANT,contoso.com",
    'tenant-id' => 'not a tenant!',
    tfa => 'type=sms',
);
my $text = slurp('/etc/pve/domains.cfg');
for my $key (sort keys %bad) {
    my %s = ('tenant-id' => $TENANT, 'client-id' => $CLIENT_ID, $key => $bad{$key});
    $text .= "entraid: bad-$key\n" . join('', map { "\t$_ $s{$_}\n" } sort keys %s) . "\n";
}
spew('/etc/pve/domains.cfg', $text);
my @warnings;
$cfg = do {
    local $SIG{__WARN__} = sub { push @warnings, @_ };
    PVE::Cluster::cfs_read_file('domains.cfg');
};
for my $key (sort keys %bad) {
    my $realm = "bad-$key";
    is($cfg->{ids}->{$realm}->{$key}, $bad{$key}, "$realm: the unparsable '$key' is kept");
    ok((grep { m/realm '\Q$realm\E': invalid '\Q$key\E' kept/ } @warnings), "$realm: parsing warns")
        or diag(@warnings);
    eval { PVE::Auth::EntraID::library_config($realm, $cfg->{ids}->{$realm}) };
    like($@, qr/realm '\Q$realm\E' refuses logins: its '\Q$key\E' in domains\.cfg is invalid/,
        "$realm: its logins are refused with a clear error");
}
ok(eval { PVE::Auth::EntraID::library_config('entra', $cfg->{ids}->{entra}) },
    'another realm still logs in') or diag($@);

# a change of another realm writes domains.cfg: the bad values stay as they were
{
    local $SIG{__WARN__} = sub {};
    api_call('PUT', '/access/domains/entra', { comment => 'changed' });
}
my $written = slurp('/etc/pve/domains.cfg');
for my $key (sort keys %bad) {
    like(section_of($written, 'entraid', "bad-$key") // '', qr/^\t\Q$key $bad{$key}\E$/m,
        "bad-$key: '$key' written back unchanged");
}
# a bad line of a setting that does not restrict logins is still dropped like upstream does
spew('/etc/pve/domains.cfg', "$written\nentraid: other\n\tclient-id $CLIENT_ID\n\ttenant-id $TENANT\n\tprompt a b\n\n");
{
    local $SIG{__WARN__} = sub {};
    ok(!defined(PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{other}->{prompt}),
        'an unparsable prompt is dropped');
}

done_testing();
