#!/usr/bin/perl -T
# an older Proxmox VE whose realm types lack a property entraid borrows (openid's
# groups-autocreate came with libpve-access-control 8.2.1, the release matrix found it): the
# hooked PVE::AccessControl still loads, with its own realm types and a warning naming the
# property, instead of dying in PVE::Auth::Plugin->init() (which takes every daemon down)

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
setup_etc_pve();
eval { load_pve() };
is($@, '', "the hooked PVE::AccessControl ($PVE) loads");
my $plugins = PVE::Auth::Plugin->private()->{plugins};
is_deeply([sort keys %$plugins], [qw(ad ldap openid pam pve)], 'with the upstream realm types, without entraid');
like(join('', @warnings), qr/realm type 'entraid' not available: .*lack the properties groups-autocreate/,
    'the warning names the missing property');
ok(PVE::Auth::Plugin->lookup('openid'), 'init() ran: the types are usable');

done_testing();
