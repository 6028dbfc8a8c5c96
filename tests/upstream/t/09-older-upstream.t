#!/usr/bin/perl -T
# an older Proxmox VE whose realm types lack a property entraid borrows (openid's
# groups-autocreate came with libpve-access-control 8.2.1, the release matrix found it): the
# hooked PVE::AccessControl loads with entraid registered, which declares the property itself
# (PVE::Auth::EntraID's $borrowed_fallback), and an entraid realm using it is read and written
# back whole (before, the type was refused and such a node dropped entraid realms)

use strict;
use warnings;

use UpstreamTest;
use Test::More;

require PVE::Auth::OpenId;
# openid as before 8.2.1: neither declares nor uses groups-autocreate
for my $method (qw(properties options)) {
    my $upstream = PVE::Auth::OpenId->can($method);
    no strict 'refs';
    no warnings 'redefine';
    *{"PVE::Auth::OpenId::$method"} = sub {
        my $res = { %{ $upstream->(@_) } };
        delete $res->{'groups-autocreate'};
        return $res;
    };
}
my @warnings;
local $SIG{__WARN__} = sub { push @warnings, @_ };
my $realm = "entraid: corp\n\ttenant-id 72f988bf-86f1-41af-91ab-2d7cd011db47\n"
    . "\tclient-id 11111111-2222-3333-4444-555555555555\n\tgroups-autocreate 1\n\n";
setup_etc_pve(domains => "pam: pam\n\tcomment Linux PAM standard authentication\n\n"
    . "pve: pve\n\tcomment Proxmox VE authentication server\n\n" . $realm);
eval { load_pve() };
is($@, '', "the hooked PVE::AccessControl ($PVE) loads");
my $plugins = PVE::Auth::Plugin->private()->{plugins};
is_deeply([sort keys %$plugins], [qw(ad entraid ldap openid pam pve)], 'with entraid registered');
is(join('', @warnings), '', 'without a warning');
is(PVE::Auth::Plugin->private()->{propertyList}->{'groups-autocreate'}->{type}, 'boolean',
    'entraid declares groups-autocreate itself');
ok(!PVE::Auth::OpenId->properties()->{'groups-autocreate'}, 'openid still does not');
my $cfg = PVE::Cluster::cfs_read_file('domains.cfg');
is($cfg->{ids}->{corp}->{'groups-autocreate'}, 1, 'an entraid realm with groups-autocreate is read');
PVE::Cluster::cfs_write_file('domains.cfg', $cfg);
like(slurp('/etc/pve/domains.cfg'), qr/^entraid: corp\n(?:\t[^\n]*\n)*\tgroups-autocreate 1\n/m,
    'and written back whole');

done_testing();
