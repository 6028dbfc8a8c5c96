#!/usr/bin/perl
# Load test (tests/e2e/load.sh): many Entra logins at once through the real Perl path
# (PVE::API2::EntraID -> PVE::EntraID::Lib -> XS -> libpve_entraid) in forked workers that share
# one /etc/pve (tmpfs, real upstream PVE code) and one cache_dir, against the emulator with injected latency.
# Asserts correctness (every login succeeds, every state is used exactly once, no cache file
# is corrupt afterwards); prints timing, never asserts it.
use strict;
use warnings;

use JSON;
use POSIX ();
use Test::More;
use Time::HiRes qw(time);

use EntraTest;

my $logins = $ENV{LOAD_LOGINS} // 200;
my $workers = $ENV{LOAD_WORKERS} // 8;
my $latency_ms = $ENV{LOAD_LATENCY_MS} // 50;
my $redirect = 'https://pve1.example.com:8006';
my $user = 'alice@contoso.example';

my $dir = setup_cluster();
my $emulator = start_emulator(optional_claims => \@OPTIONAL_CLAIMS);
add_realm('entra', autocreate => 1, 'groups-map' => "$ALICE_GROUP=admins", 'groups-autocreate' => 1);
emulator_control(encode_json({ latency_ms => 0 + $latency_ms }));
my $cache_dir = $PVE::Auth::EntraID::CACHE_DIR;
# The logins and replays all come from one (unknown) client address within seconds: far beyond
# the anonymous budget, which this test is not about (tests/upstream/t/61-rate-limit.t is); the
# shared table is still taken from on every call.
$PVE::Auth::EntraID::RATE_LIMITS_OVERRIDE = { map { $_ => { burst => 16000, per_minute => 16000 } } qw(address realm) };
my $results_dir = "$dir/load-results";
mkdir($results_dir) or die "mkdir $results_dir: $!\n";

# Runs $job->($worker_index) in $workers forked processes that start together; returns the
# decoded results each wrote. The parent never calls the library itself, so every worker
# starts with a cold memory cache, like freshly forked pveproxy workers.
sub run_workers {
    my ($phase, $job) = @_;
    pipe(my $gate_r, my $gate_w) or die "pipe: $!\n";
    my @pids;
    for my $n (0 .. $workers - 1) {
	my $pid = fork() // die "fork: $!\n";
	if ($pid == 0) {
	    close($gate_w);
	    sysread($gate_r, my $byte, 1); # returns when the parent closes the gate
	    my $out = eval { $job->($n) };
	    $out = [{ ok => 0, error => "worker died: $@" }] if $@;
	    open(my $fh, '>', "$results_dir/$phase-$n.json") or POSIX::_exit(2);
	    print $fh encode_json($out);
	    close($fh);
	    # _exit: no END blocks in the child (they would stop the shared emulator)
	    POSIX::_exit(0);
	}
	push @pids, $pid;
    }
    close($gate_r);
    my $start = time();
    close($gate_w);
    for my $pid (@pids) {
	waitpid($pid, 0);
	die "$phase worker $pid exited with status $?\n" if $? != 0;
    }
    my $wall = time() - $start;
    my @all;
    for my $n (0 .. $workers - 1) {
	push @all, @{ decode_json(slurp("$results_dir/$phase-$n.json")) };
    }
    return (\@all, $wall);
}

sub error_code {
    my ($err) = @_;
    my $lib = PVE::EntraID::Lib::error_of($err);
    return $lib->{code} if $lib && $lib->{code};
    return $1 if "$err" =~ m/\(([a-z]+\.[a-z_]+)\)\s*$/;
    return "$err";
}

sub ms_percentile {
    my ($p, @values) = @_;
    my @sorted = sort { $a <=> $b } @values;
    my $rank = int(($p / 100) * @sorted + 0.999999);
    $rank = 1 if $rank < 1;
    return sprintf('%.1f ms', $sorted[$rank - 1] * 1000);
}

# Phase 1: $logins complete logins, spread over the workers.
my ($done, $wall) = run_workers('login', sub {
    my ($n) = @_;
    my @mine;
    for (my $i = $n; $i < $logins; $i += $workers) {
	my %r = (worker => $n);
	eval {
	    my $t0 = time();
	    my $url = api_call('auth_url', { realm => 'entra', 'redirect-url' => $redirect, 'binding-hash' => $BINDING_HASH });
	    $r{auth_s} = time() - $t0;
	    ($r{code}, $r{state}) = browser_authorize($url, $user);
	    my $t1 = time();
	    my $res = api_call('login', { realm => 'entra', code => $r{code}, state => $r{state}, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY });
	    $r{login_s} = time() - $t1;
	    $r{flow_s} = time() - $t0;
	    $r{username} = $res->{username};
	    $r{ok} = $res->{ticket} && PVE::AccessControl::verify_ticket($res->{ticket}) eq $res->{username} ? 1 : 0;
	};
	($r{ok}, $r{error}) = (0, error_code($@)) if $@;
	push @mine, \%r;
    }
    return \@mine;
});

is(scalar(@$done), $logins, "$logins logins ran in $workers workers");
my @failed = grep { !$_->{ok} } @$done;
is(scalar(@failed), 0, 'every login succeeded')
    or diag(join("\n", map { "worker $_->{worker}: " . ($_->{error} // 'no ticket') } @failed[0 .. ($#failed < 9 ? $#failed : 9)]));
is(scalar(grep { ($_->{username} // '') ne "$user\@entra" } grep { $_->{ok} } @$done), 0,
    "every ticket is for $user\@entra");
my %state_uses;
$state_uses{ $_->{state} }++ for grep { defined $_->{state} } @$done;
is(scalar(keys %state_uses), $logins, 'every login had its own state');
is(scalar(grep { $_ != 1 } values %state_uses), 0, 'no state was handed out twice');

# Phase 2: every used state again, each in a worker other than the one that used it, all at
# once: each must be refused as replayed (single use holds across processes).
my @used = grep { $_->{ok} } @$done;
my ($replays) = run_workers('replay', sub {
    my ($n) = @_;
    my @mine;
    for my $r (grep { ($_->{worker} + 1) % $workers == $n } @used) {
	my $res = eval { api_call('login', { realm => 'entra', code => $r->{code}, state => $r->{state}, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY }) };
	push @mine, { state => $r->{state}, code => $@ ? error_code($@) : 'accepted' };
    }
    return \@mine;
});
is(scalar(@$replays), scalar(@used), 'every used state was replayed');
my @not_replayed = grep { $_->{code} ne 'state.replayed' } @$replays;
is(scalar(@not_replayed), 0, 'every replay was refused with state.replayed')
    or diag(join(', ', map { $_->{code} } @not_replayed[0 .. ($#not_replayed < 9 ? $#not_replayed : 9)]));

# The shared caches after all that: every file parses, no temporary file was left behind.
opendir(my $dh, $cache_dir) or die "opendir $cache_dir: $!\n";
my @files = grep { !m/^\.\.?$/ } readdir($dh);
closedir($dh);
my @json = grep { m/\.json$/ } @files;
ok(scalar(grep { m/discovery/ } @json) && scalar(grep { m/jwks/ } @json), "discovery and JWKS caches written: @json");
for my $file (@json) {
    my $doc = eval { decode_json(slurp("$cache_dir/$file")) };
    ok(ref($doc) eq 'HASH', "cache file $file parses");
}
# The consumed-state store: one file per used state under consumed/<expiry minute>/.
my $consumed = () = glob("$cache_dir/consumed/*/*");
cmp_ok($consumed, '>=', scalar(@used), 'consumed-state store remembers every used state');
is_deeply([grep { m/\.tmp\./ } @files], [], 'no temporary cache files left');
my $usercfg = PVE::Cluster::cfs_read_file('user.cfg');
ok($usercfg->{users}->{"$user\@entra"}, 'user.cfg still parses and holds the autocreated user');
ok(ref(eval { decode_json(slurp("$dir/priv/entraid/entra.identities.json")) }) eq 'HASH', 'identity pins still parse');

my $stats = decode_json(HTTP::Tiny->new->get("$emulator/_emu/stats")->{content});
my @ok = grep { $_->{ok} } @$done;
printf("load: %d logins, %d workers, IdP latency %d ms, wall %.1f s (%.1f logins/s)\n",
    $logins, $workers, $latency_ms, $wall, $logins / $wall);
printf("load: auth-url p50 %s p99 %s | login p50 %s p99 %s | whole flow (incl. browser) p50 %s p99 %s\n",
    (map { (ms_percentile(50, @$_), ms_percentile(99, @$_)) }
	[map { $_->{auth_s} } @ok], [map { $_->{login_s} } @ok], [map { $_->{flow_s} } @ok]));
printf("load: IdP requests: %s\n", join(', ', map { "$_ $stats->{$_}" } sort keys %$stats));

done_testing();
