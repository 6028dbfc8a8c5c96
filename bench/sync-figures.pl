#!/usr/bin/perl
# Realm sync figure (issue 12): one pve_entraid_sync_directory call through the XS binding
# against the bundled emulator holding 10,000 users in 1,000 mapped groups, with 50 ms added
# to every emulator request. Prints Graph requests, wall time and the process's peak RSS.
#   perl -I perl/blib/lib -I perl/blib/arch -I <pve-common>/src bench/sync-figures.pl EMULATOR

use strict;
use warnings;

use File::Temp;
use IPC::Open2;
use JSON::PP;
use Time::HiRes qw(time);

use PVE::EntraID::Lib;

my ($emulator) = @ARGV;
my ($USERS, $GROUPS, $LATENCY_MS) = (10_000, 1_000, 50);
my $TENANT = '11111111-2222-3333-4444-555555555555';
my $CLIENT_ID = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';

my $group = sub { sprintf('6f7e8d9c-2222-4222-8222-%012d', $_[0]) };
my @users = map { {
    upn => "user$_\@contoso.example", oid => sprintf('0f000000-0000-4000-8000-%012d', $_),
    given_name => 'User', family_name => "$_", email => "user$_\@contoso.example",
    groups => [$group->($_ % $GROUPS)],
} } 1 .. $USERS;
my $tmp = File::Temp->newdir();
my $cfg = "$tmp/directory.json";
open(my $fh, '>', $cfg) or die;
print $fh encode_json({ users => \@users, latency_ms => $LATENCY_MS });
close($fh);

my $pid = open2(my $out, my $in, $emulator, '--listen', '127.0.0.1:0', '--config', $cfg);
my ($url) = (<$out> // '') =~ m!(http://127\.0\.0\.1:\d+)! or die "emulator did not start\n";

my $hwm = sub { open(my $s, '<', '/proc/self/status') or return 0; local $/; (<$s> =~ m/^VmHWM:\s+(\d+)/m)[0] };
my $before = $hwm->();
my $t0 = time();
my $res = PVE::EntraID::Lib::call('sync_directory', {
    realm => 'entra',
    config => {
        'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID, client_secret => 's3cr~et.Value_with~tilde',
        authority => $url, graph_url => $url,
        'groups-map' => join(';', map { $group->($_) . '=' . sprintf('g%04d', $_) } 0 .. $GROUPS - 1),
    },
});
my $wall = time() - $t0;
my $after = $hwm->();
kill('TERM', $pid);
waitpid($pid, 0);

die "expected $USERS users, got " . scalar(@{ $res->{users} }) . "\n" if @{ $res->{users} } != $USERS;
printf("\n| realm sync (%d users in %d groups, %d ms per Graph request) | value |\n| --- | --- |\n",
    $USERS, $GROUPS, $LATENCY_MS);
printf("| Graph requests (+1 token request) | %d |\n", $res->{requests});
printf("| wall time | %.1f s |\n", $wall);
printf("| peak RSS of the process (before the call) | %.1f MiB (%.1f MiB) |\n", $after / 1024, $before / 1024);
