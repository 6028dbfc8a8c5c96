#!/usr/bin/perl
# RSS a Perl process (a pvedaemon worker) gains by loading PVE::EntraID::XS and
# libpve_entraid.so (VmRSS from /proc/self/status before and after), then after a first call,
# then after real logins over TLS against the emulator given as the first argument (its CA is
# trusted through SSL_CERT_FILE, set by bench/run.sh to the system's CA bundle plus the
# emulator's CA, so the trust store is as large as a node's): connection pool, trust store and
# caches included. JSON, HTTP::Tiny and IO::Socket::SSL are loaded first because every PVE
# daemon has them already. The browser's part of a login (following the authorize redirect)
# runs in a child process, as it does not run in the worker. The anonymous share (RssAnon) is
# what each worker pays for itself; file pages of the library are shared by all workers.
# Prints table rows in bench/run.sh's format.
use strict;
use warnings;

use Digest::SHA qw(sha256);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::SSL;
use JSON;
use MIME::Base64 qw(encode_base64url);
use POSIX ();
use Time::HiRes qw(time);

my $emulator = shift @ARGV;

# (VmRSS, RssAnon) in KiB.
sub rss_kib {
    open(my $fh, '<', '/proc/self/status') or die "cannot read /proc/self/status: $!\n";
    my %kib = map { m/^(\w+):\s+(\d+)\s+kB/ ? ($1 => $2) : () } <$fh>;
    die "no VmRSS/RssAnon in /proc/self/status\n" if !defined($kib{VmRSS}) || !defined($kib{RssAnon});
    return ($kib{VmRSS}, $kib{RssAnon});
}

# "N KiB (M MB; A KiB anonymous)" for the growth from $from to $to.
sub growth {
    my ($from, $to) = @_;
    my ($rss, $anon) = ($to->[0] - $from->[0], $to->[1] - $from->[1]);
    return sprintf("%d KiB (%.2f MB; %d KiB anonymous)", $rss, $rss / 1024, $anon);
}

# The browser: follows the authorize URL in a child process; returns the redirect's query.
sub browse {
    my ($url) = @_;
    pipe(my $reader, my $writer) or die "pipe: $!\n";
    my $pid = fork() // die "fork: $!\n";
    if (!$pid) {
	close($reader);
	my $browser = HTTP::Tiny->new(max_redirect => 0, verify_SSL => 1,
	    SSL_options => { SSL_ca_file => $ENV{SSL_CERT_FILE} });
	my $res = $browser->get($url);
	print $writer ($res->{status} == 302 ? "ok $res->{headers}->{location}" : "$res->{status} $res->{content}");
	close($writer);
	POSIX::_exit(0);
    }
    close($writer);
    my $answer = do { local $/; <$reader> };
    waitpid($pid, 0);
    die "authorize: $answer\n" if $answer !~ m/^ok [^?]*\?(.*)$/;
    return $1;
}

my $encoded = JSON->new->encode({ warm => 1 }); # JSON's own lazy parts are loaded now

my $before = [rss_kib()];
my $start = time();
require PVE::EntraID::XS;
my $version = PVE::EntraID::XS::version();
my $load_ms = (time() - $start) * 1000;
my $loaded = [rss_kib()];

# A first call (map: pure, no I/O) touches the JSON parser and mapping code of the library.
my $request = JSON->new->encode({
    realm => 'entra',
    config => { 'tenant-id' => '11111111-2222-3333-4444-555555555555',
	'client-id' => 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', client_secret => 'unused' },
    claims => { oid => '0a1b2c3d-0000-4000-8000-00000000a11c', tid => '11111111-2222-3333-4444-555555555555',
	sub => 's', upn => 'alice@contoso.example', groups => [], roles => [] },
    groups => [], username => 'alice@contoso.example',
});
my ($rc) = PVE::EntraID::XS::call('map', $request);
die "map call failed with result $rc\n" if $rc != 0;
my $called = [rss_kib()];

printf("| RSS added to Perl by loading PVE::EntraID::XS + library | %s; %s after a first call | - |\n",
    growth($before, $loaded), growth($before, $called));

if ($emulator) {
    my $dir = tempdir(CLEANUP => 1);
    my $tenant = '11111111-2222-3333-4444-555555555555';
    my $base = {
	realm => 'entra', cache_dir => "$dir/cache", state_key_file => "$dir/priv/state.key",
	config => { 'tenant-id' => $tenant, 'client-id' => 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
	    client_secret => 's3cr~et.Value_with~tilde', authority => $emulator, graph_url => $emulator },
    };
    my $logins = 10;
    my $after_first;
    for (1 .. $logins) {
	# The browser binding (issue 10.1): 32 random bytes, their SHA-256 at auth-url.
	my $binding = join('', map { chr(int(rand(256))) } 1 .. 32);
	my ($rc, $auth) = PVE::EntraID::XS::call('auth_url', encode_json({ %$base,
	    redirect_url => 'https://pve1.example:8006', binding_hash => encode_base64url(sha256($binding)) }));
	die "auth_url failed ($rc): $auth\n" if $rc != 0;
	my $url = decode_json($auth)->{result}->{url} . '&login_hint=alice%40contoso.example';
	my $query = browse($url);
	my %p = map { my ($k, $v) = split(/=/, $_, 2); $v =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge; ($k => $v) } split(/&/, $query);
	($rc, my $answer) = PVE::EntraID::XS::call('login', encode_json({ %$base,
	    code => $p{code}, state => $p{state}, binding_key => encode_base64url($binding) }));
	die "login failed ($rc): $answer\n" if $rc != 0;
	$after_first //= [rss_kib()];
    }
    my $after = [rss_kib()];
    printf("| RSS added per worker after %d real logins over TLS (pool, trust store of %d CAs, caches) | %s; %s after the first login | <= 5 MB |\n",
	$logins, ca_count(), growth($before, $after), growth($before, $after_first));
}
sub ca_count {
    open(my $fh, '<', $ENV{SSL_CERT_FILE} // '/etc/ssl/certs/ca-certificates.crt') or return 0;
    return scalar(grep { m/BEGIN CERTIFICATE/ } <$fh>);
}

printf("| library load time from Perl (require PVE::EntraID::XS) | %.2f ms (%s) | - |\n", $load_ms, $version);
