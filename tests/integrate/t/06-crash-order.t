#!/usr/bin/perl -T
# Review 3: apply interrupted between two file writes (power loss, a killed dpkg): the state
# it leaves must not expose the Entra ID login (api-mount, http-unauthenticated) while the
# realm-api and realm-sync-job checks are missing. Here apply is killed (_exit, no cleanup)
# right after its k-th write of a hooked file.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

use IntegrateTest;

my $dir = tempdir(CLEANUP => 1);
spew("$dir/CrashAfterWrites.pm", <<'PM');
package CrashAfterWrites;
use POSIX ();
my $left = $ENV{PVE_ENTRAID_CRASH_AFTER};
BEGIN {
    *CORE::GLOBAL::rename = sub {
        my $ok = CORE::rename($_[0], $_[1]);
        POSIX::_exit(9) if $ok && $_[1] =~ m{/usr/share/} && $_[1] !~ m{/var/lib/pve-entraid/} && --$left <= 0;
        return $ok;
    };
}
1;
PM

my %file = (
    'api-mount' => '/usr/share/perl5/PVE/API2/AccessControl.pm',
    'http-unauthenticated' => '/usr/share/perl5/PVE/HTTPServer.pm',
    'realm-api' => '/usr/share/perl5/PVE/API2/Domains.pm',
    'realm-sync-job' => '/usr/share/perl5/PVE/API2/Jobs/RealmSync.pm',
);

for my $k (1 .. 5) {
    my $root = make_root('pve1');
    my ($rc, $out);
    {
        local $ENV{PERL5OPT} = "-I$dir -MCrashAfterWrites";
        local $ENV{PVE_ENTRAID_CRASH_AFTER} = $k;
        ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
    }
    is($rc, 9, "killed after write $k") or diag($out);
    my %in = map { $_ => block_count(slurp("$root$file{$_}")) > 0 } keys %file;
    my @exposed = grep { $in{$_} } qw(api-mount http-unauthenticated);
    my @checks_missing = grep { !$in{$_} } qw(realm-api realm-sync-job);
    ok(!@exposed || !@checks_missing,
        "killed after write $k: no login hook (@exposed) without the checks (missing: @checks_missing)");
}

done_testing();
