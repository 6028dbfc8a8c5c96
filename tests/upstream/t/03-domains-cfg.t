#!/usr/bin/perl -T
# domains.cfg through the REAL PVE::Cluster/SectionConfig: pam, pve, openid, ldap, ad and
# entraid sections, entraid using every property it has, survive read and write unchanged

use strict;
use warnings;

use UpstreamTest;
use Test::More;

setup_etc_pve();
load_pve();

my %CREDENTIAL = map { $_ => 1 } qw(client-key client-cert client-cert-key);

my @opts = grep { !$CREDENTIAL{$_} } sort keys %{ PVE::Auth::EntraID->options() };
ok(exists $ENTRAID_SAMPLE{$_}, "test has a sample value for entraid option '$_'") for @opts;

my $entra = "entraid: entra\n" . join('', map { "\t$_ $ENTRAID_SAMPLE{$_}\n" } grep { exists $ENTRAID_SAMPLE{$_} } @opts);
my $text = "pam: pam\n\tcomment Linux PAM standard authentication\n\n"
    . "pve: pve\n\tcomment Proxmox VE authentication server\n\n"
    . "openid: oidc\n\tclient-id pve\n\tissuer-url https://idp.example.com/realms/pve\n\tautocreate 1\n\n"
    . "ldap: ldap1\n\tbase_dn dc=example,dc=com\n\tserver1 ldap.example.com\n\tuser_attr uid\n\n"
    . "ad: ad1\n\tdomain example.com\n\tserver1 dc1.example.com\n\n"
    . "$entra\n"
    . "entraid: entra2\n\tclient-id $CLIENT_ID\n\ttenant-id contoso.example\n\n";
spew('/etc/pve/domains.cfg', $text);

my @warnings;
my $cfg = do {
    local $SIG{__WARN__} = sub { push @warnings, @_ };
    PVE::Cluster::cfs_read_file('domains.cfg');
};
is_deeply([sort keys %{ $cfg->{ids} }], [qw(ad1 entra entra2 ldap1 oidc pam pve)], 'every section parsed');
for my $k (sort keys %ENTRAID_SAMPLE) {
    next if !grep { $_ eq $k } @opts;
    is($cfg->{ids}->{entra}->{$k}, $ENTRAID_SAMPLE{$k}, "entraid '$k' read back");
}
{
    is_deeply(\@warnings, [], 'parsing warns about nothing') or diag(@warnings);
}
is($cfg->{ids}->{oidc}->{'issuer-url'}, 'https://idp.example.com/realms/pve', 'openid section intact');
is($cfg->{ids}->{ldap1}->{base_dn}, 'dc=example,dc=com', 'ldap section intact');
is($cfg->{ids}->{ad1}->{domain}, 'example.com', 'ad section intact');

PVE::Cluster::cfs_write_file('domains.cfg', $cfg);
my $written = slurp('/etc/pve/domains.cfg');
for my $type ([pam => 'pam'], [pve => 'pve'], [openid => 'oidc'], [ldap => 'ldap1'], [ad => 'ad1'], [entraid => 'entra2']) {
    is(section_of($written, @$type), section_of($text, @$type), "$type->[0] section written back unchanged");
}
my $entra_written = section_of($written, 'entraid', 'entra') // '';
for my $k (@opts) {
    like($entra_written, qr/^\t\Q$k $ENTRAID_SAMPLE{$k}\E$/m, "entraid '$k' written back");
}
PVE::Cluster::cfs_write_file('domains.cfg', PVE::Cluster::cfs_read_file('domains.cfg'));
is(slurp('/etc/pve/domains.cfg'), $written, 'a second read/write cycle changes no byte');
unlike($written, qr/client-key|s3cr/, 'no credential in domains.cfg');

done_testing();
