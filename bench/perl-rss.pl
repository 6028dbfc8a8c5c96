#!/usr/bin/perl
# RSS a Perl process gains by loading PVE::EntraID::XS and libpve_entraid.so (VmRSS from
# /proc/self/status before and after), then after a first call. JSON is loaded first because
# every PVE daemon has it already. Prints table rows in bench/run.sh's format.
use strict;
use warnings;

use JSON;
use Time::HiRes qw(time);

sub rss_kib {
    open(my $fh, '<', '/proc/self/status') or die "cannot read /proc/self/status: $!\n";
    while (my $line = <$fh>) {
	return $1 if $line =~ m/^VmRSS:\s+(\d+)\s+kB/;
    }
    die "no VmRSS in /proc/self/status\n";
}

my $encoded = JSON->new->encode({ warm => 1 }); # JSON's own lazy parts are loaded now

my $before = rss_kib();
my $start = time();
require PVE::EntraID::XS;
my $version = PVE::EntraID::XS::version();
my $load_ms = (time() - $start) * 1000;
my $loaded = rss_kib();

# A first call (map: pure, no I/O) touches the JSON parser and mapping code of the library.
my $request = JSON->new->encode({
    realm => 'entra',
    config => { tenant => '11111111-2222-3333-4444-555555555555',
	client_id => 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', client_secret => 'unused' },
    claims => { oid => '0a1b2c3d-0000-4000-8000-00000000a11c', tid => '11111111-2222-3333-4444-555555555555',
	sub => 's', upn => 'alice@contoso.example', groups => [], roles => [] },
    groups => [], username => 'alice@contoso.example', pin => undef,
});
my ($rc) = PVE::EntraID::XS::call('map', $request);
die "map call failed with result $rc\n" if $rc != 0;
my $called = rss_kib();

printf("| RSS added to Perl by loading PVE::EntraID::XS + library | %d KiB (%.2f MB); %d KiB after a first call | <= 5 MB |\n",
    $loaded - $before, ($loaded - $before) / 1024, $called - $before);
printf("| library load time from Perl (require PVE::EntraID::XS) | %.2f ms (%s) | - |\n", $load_ms, $version);
