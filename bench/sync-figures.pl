#!/usr/bin/perl
# Realm sync figures (issue 12): one pve_entraid_sync_directory call through the XS binding
# against the bundled emulator holding 10,000 users, with 50 ms added to every emulator request,
# once per way of choosing the users: the members of 1,000 mapped groups (sync-users mapped),
# and every user assigned to the app on its own (sync-users assigned, the costliest assignment:
# no group to list them by). Prints Graph requests, wall time and the process's peak RSS.
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
my $SECRET = 's3cr~et.Value_with~tilde';

my $group = sub { sprintf('6f7e8d9c-2222-4222-8222-%012d', $_[0]) };
my @users = map { {
    upn => "user$_\@contoso.example", oid => sprintf('0f000000-0000-4000-8000-%012d', $_),
    given_name => 'User', family_name => "$_", email => "user$_\@contoso.example",
    groups => [$group->($_ % $GROUPS)],
} } 1 .. $USERS;
my $tmp = File::Temp->newdir();
my $cfg = "$tmp/directory.json";
open(my $fh, '>', $cfg) or die;
print $fh encode_json({
    # the emulator's default alice without her app role, so that only these users are assigned
    users => [@users, { upn => 'alice@contoso.example', oid => '0a1b2c3d-0000-4000-8000-00000000a11c' }],
    latency_ms => $LATENCY_MS,
    apps => [{ client_id => $CLIENT_ID, secret => $SECRET, assigned => [map { $_->{oid} } @users], assignment_required => \1 }],
});
close($fh);

my $pid = open2(my $out, my $in, $emulator, '--listen', '127.0.0.1:0', '--config', $cfg);
# also when a figure dies; the emulator's exit status must not become this script's
END { if ($pid) { local $?; kill('TERM', $pid); waitpid($pid, 0); } }
my ($url) = (<$out> // '') =~ m!(http://127\.0\.0\.1:\d+)! or die "emulator did not start\n";

my $hwm = sub { open(my $s, '<', '/proc/self/status') or return 0; local $/; (<$s> =~ m/^VmHWM:\s+(\d+)/m)[0] };
my $groups_map = join(';', map { $group->($_) . '=' . sprintf('g%04d', $_) } 0 .. $GROUPS - 1);
printf("\n| realm sync (%d users, %d ms per Graph request) | Graph requests (+1 token request) | wall time | peak RSS (before the call) |\n"
    . "| --- | --- | --- | --- |\n", $USERS, $LATENCY_MS);
for my $case (
    ["members of $GROUPS mapped groups (sync-users mapped)", { 'groups-map' => $groups_map }],
    ["each assigned to the app on its own (sync-users assigned)", { 'sync-users' => 'assigned' }],
) {
    my ($what, $options) = @$case;
    my $before = $hwm->();
    my $t0 = time();
    my $res = PVE::EntraID::Lib::call('sync_directory', {
        realm => 'entra',
        config => {
            'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID, client_secret => $SECRET,
            authority => $url, graph_url => $url, %$options,
        },
    });
    my $wall = time() - $t0;
    my $after = $hwm->();
    die "$what: expected $USERS users, got " . scalar(@{ $res->{users} }) . "\n" if @{ $res->{users} } != $USERS;
    printf("| %s | %d | %.1f s | %.1f MiB (%.1f MiB) |\n", $what, $res->{requests}, $wall, $after / 1024, $before / 1024);
}
