#!/usr/bin/perl -T
# pve-entraid-login (cli/) against the REAL upstream PVE code (PVE_ENTRAID_PVE=pve9|pve8): the
# program talks https to a small front in this process that hands each request to the real
# auth_handler and rest_handler and answers it with PVE's real 'json' formatter, as pveproxy
# does; the browser is a headless HTTP client signing in at the bundled emulator (whose app has
# the redirect URI http://localhost) and following its redirect to the program's listener.
use strict;
use warnings;

use UpstreamTest;

use Fcntl qw(:mode);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::SSL;
use IPC::Open3;
use JSON;
use MIME::Base32;
use PVE::OTP;
use Symbol qw(gensym);
use Test::More;

delete @ENV{qw(http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY)};
my $LOGIN = UpstreamTest::untaint($ENV{PVE_ENTRAID_LOGIN} // "$REPO/target/release/pve-entraid-login", 'path');
plan(skip_all => "$LOGIN missing: run cargo build --release --workspace") if !-x $LOGIN;

setup_etc_pve(users => "user:root\@pam:1:0:::root\@example.com:::\ngroup:admins::Admins:\n\n"
    . "acl:1:/:\@admins:PVEAuditor:\n");
load_pve();
spew('/etc/pve/emu.json', encode_json({ apps => [
    { client_id => $CLIENT_ID, secret => $SECRET, redirect_uris => ['http://localhost'] } ] }));
start_emulator(config => '/etc/pve/emu.json', optional_claims => \@OPTIONAL_CLAIMS);
api_call('POST', '/access/domains', { realm => 'entra', type => 'entraid', 'tenant-id' => $TENANT,
    'client-id' => $CLIENT_ID, 'client-key' => $SECRET, autocreate => 1, 'groups-map' => "$ALICE_GROUP=admins" });

# --- the node's certificate: a CA and a node certificate, as PVE's pve-root-ca / pve-ssl -------

my $tls = '/etc/pve/front';
mkdir($tls);
system("openssl req -x509 -newkey rsa:2048 -nodes -keyout $tls/ca.key -out $tls/ca.pem -days 2"
    . " -subj /CN=test-root-ca -addext basicConstraints=critical,CA:TRUE 2>/dev/null") == 0 or die "CA\n";
system("openssl req -newkey rsa:2048 -nodes -keyout $tls/node.key -out $tls/node.csr -subj /CN=pve1 2>/dev/null") == 0
    or die "CSR\n";
spew("$tls/ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n");
system("openssl x509 -req -in $tls/node.csr -CA $tls/ca.pem -CAkey $tls/ca.key -CAcreateserial -days 2"
    . " -extfile $tls/ext -out $tls/node.pem 2>/dev/null") == 0 or die "node certificate\n";
my ($fingerprint) = `openssl x509 -in $tls/node.pem -noout -fingerprint -sha256` =~ m/=((?:[0-9A-F]{2}:){31}[0-9A-F]{2})$/m
    or die "no fingerprint\n";

my $front = IO::Socket::SSL->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 8, ReuseAddr => 1,
    SSL_server => 1, SSL_cert_file => "$tls/node.pem", SSL_key_file => "$tls/node.key")
    or die "front: $IO::Socket::SSL::SSL_ERROR\n";
my $NODE_URL = 'https://127.0.0.1:' . $front->sockport();

require PVE::APIServer::Formatter;
require PVE::APIServer::Formatter::Standard;
my @REQUESTS; # "METHOD path" of each request the front served

my sub form_decode {
    my ($s) = @_;
    my %p;
    for (split(/&/, $s // '')) {
        my ($k, $v) = map { my $x = $_ // ''; $x =~ tr/+/ /; $x =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge; $x } split(/=/, $_, 2);
        $p{$k} = $v;
    }
    return \%p;
}

# one request on one connection: the real auth_handler + rest_handler, the real json formatter
my sub serve_one {
    my $conn = $front->accept() or return; # a client that refused our certificate
    $conn->timeout(10);
    my $buf = '';
    while ($buf !~ m/\r\n\r\n/) {
        my $n = sysread($conn, $buf, 65536, length($buf));
        last if !$n;
    }
    my ($head, $body) = split(/\r\n\r\n/, $buf, 2);
    my ($len) = $head =~ m/^content-length:\s*(\d+)/mi;
    while (length($body // '') < ($len // 0)) {
        my $n = sysread($conn, $body, $len - length($body), length($body)) or last;
    }
    my ($method, $target) = $head =~ m/^(\S+) (\S+)/;
    my ($path) = $target =~ m!^/api2/json(/[^?]*)!;
    push @REQUESTS, "$method " . ($path // $target);
    my $params = form_decode($body);
    my $res = http_request($method, $path // '/', $params, client_ip => '127.0.0.1');
    my $formatter = PVE::APIServer::Formatter::get_formatter('json', $method, $path);
    my ($raw, $ct) = $formatter->($res, $res->{data}, $params, $path, undef, {});
    (my $reason = $res->{message} // 'OK') =~ s/\s+/ /g;
    print $conn "HTTP/1.1 $res->{status} $reason\r\nContent-Type: $ct\r\nContent-Length: "
        . length($raw) . "\r\nConnection: close\r\n\r\n$raw";
    $conn->close(SSL_fast_shutdown => 1);
}

# the browser: Entra's sign-in (emulator) for $user, then its redirect to the program
my sub browser {
    my ($url, $user, $how, $stdin, $signed_in) = @_;
    my (undef, undef, $location) = browser_authorize($url, $user);
    $signed_in->() if $signed_in;
    return $location if $how eq 'paste' && print $stdin "$location\n";
    # a request without this login's state first: refused, the login goes on
    (my $stray = $location) =~ s/state=[^&]*/state=forged/;
    my $r = HTTP::Tiny->new->get($stray);
    is($r->{status}, 400, 'the listener refuses a callback without its state');
    $r = HTTP::Tiny->new->get($location);
    is($r->{status}, 200, 'the listener answers the browser');
    like($r->{content}, qr/You can close this window/, 'with a page saying so');
    return $location;
}

# Runs pve-entraid-login with @args against the front, acting as the browser (browser =>
# 'get' | 'paste', user => login_hint, signed_in => called when Entra redirected it) and typing
# a TFA code (totp => a sub returning it) when asked.
# Returns (exit code, stdout, stderr, the redirect the browser was sent to).
sub cli {
    my (%opt) = @_;
    my $err = gensym;
    my $pid = open3(my $in, my $out, $err, $LOGIN, @{ $opt{args} });
    $in->autoflush(1);
    my $sel = IO::Select->new($front, $out, $err);
    my ($stdout, $stderr, $location) = ('', '');
    my %open = (out => 1, err => 1);
    my $deadline = time() + 60;
    while (($open{out} || $open{err}) && time() < $deadline) {
        for my $fh ($sel->can_read(1)) {
            if ($fh == $front) {
                serve_one();
                next;
            }
            my $n = sysread($fh, my $chunk, 65536);
            if (!$n) {
                $sel->remove($fh);
                $open{$fh == $out ? 'out' : 'err'} = 0;
                next;
            }
            if ($fh == $out) {
                $stdout .= $chunk;
                next;
            }
            $stderr .= $chunk;
            if (!$location && $stderr =~ m/^\s+(http\S+\/authorize\?\S+)$/m) {
                $location = browser($1, $opt{user} // 'alice@contoso.example', $opt{browser} // 'get', $in, $opt{signed_in});
            }
            if (defined($opt{totp}) && $stderr =~ m/Enter totp code for user \S+: \z/) {
                print $in $opt{totp}->() . "\n";
            }
        }
    }
    close($in);
    waitpid($pid, 0);
    return ($? >> 8, $stdout, $stderr, $location);
}

my sub env_of {
    my ($text) = @_;
    my %env;
    while ($text =~ m/^export (\w+)='((?:[^']|'\\'')*)'$/mg) {
        (my $v = $2) =~ s/'\\''/'/g;
        $env{$1} = $v;
    }
    return \%env;
}

my $USER = 'alice@contoso.example@entra';
my @PIN = ('--fingerprint', $fingerprint);

# --- the realm does not allow it: refused with its code, and the program says what to do -----

my ($rc, $stdout, $stderr) = cli(args => ['--realm', 'entra', '--no-browser', @PIN, $NODE_URL]);
is($rc, 1, 'realm without allow-loopback-redirect: the program fails');
like($stderr, qr/\(request\.redirect_not_allowed, reference [0-9a-f]{8}\)/, 'with the stable code of the node');
like($stderr, qr/allow-loopback-redirect/, 'and what an administrator does about it');
is($stdout, '', 'no credentials');

api_call('PUT', '/access/domains/entra', { 'allow-loopback-redirect' => 1 });
like(slurp('/etc/pve/domains.cfg'), qr/^\tallow-loopback-redirect 1$/m, 'the option in domains.cfg');

# --- TLS: the node certificate is verified ------------------------------------------------------

@REQUESTS = ();
($rc, $stdout, $stderr) = cli(args => ['--realm', 'entra', '--no-browser', $NODE_URL]);
is($rc, 1, 'a certificate no trusted CA issued: refused');
like($stderr, qr/--fingerprint/, 'the program names --fingerprint and --ca');
(my $wrong = $fingerprint) =~ s/^(.)/$1 eq 'A' ? 'B' : 'A'/e;
($rc, $stdout, $stderr) = cli(args => ['--realm', 'entra', '--no-browser', '--fingerprint', $wrong, $NODE_URL]);
is($rc, 1, 'another pinned fingerprint: refused');
like($stderr, qr/\Q$fingerprint\E, not the pinned one/, 'naming the fingerprint seen');
ok(!grep({ m/entraid/ } @REQUESTS), 'no API request reached the node');

# --- the login: env for the tools --------------------------------------------------------------

($rc, $stdout, $stderr, my $location) = cli(args => ['--realm', 'entra', '--no-browser', @PIN, $NODE_URL]);
is($rc, 0, 'login with the pinned node certificate') or diag($stderr);
like($location, qr!^http://localhost:\d+/?\?code=!, 'Entra sent the browser to http://localhost:<port>');
my $env = env_of($stdout);
my $ticket = $env->{PROXMOX_VE_AUTH_TICKET} // '';
is(PVE::AccessControl::verify_ticket($ticket), $USER, 'PROXMOX_VE_AUTH_TICKET: a ticket the real verify_ticket accepts');
PVE::AccessControl::verify_csrf_prevention_token($USER, $env->{PROXMOX_VE_CSRF_PREVENTION_TOKEN});
pass('PROXMOX_VE_CSRF_PREVENTION_TOKEN: the real CSRF check accepts it');
is(auth_handler('POST', '/access/acl', $ticket, $env->{PROXMOX_VE_CSRF_PREVENTION_TOKEN})->{userid}, $USER,
    'the real auth_handler lets the ticket and token in (pveproxy)');
is($env->{PROXMOX_VE_ENDPOINT}, "$NODE_URL/", 'PROXMOX_VE_ENDPOINT (bpg)');
is_deeply([@$env{qw(PM_API_URL PM_USER PM_PASS)}], ["$NODE_URL/api2/json", $USER, $ticket], 'PM_* (Telmate, proxmox-api-go)');
is_deeply([@$env{qw(PROXMOX_URL PROXMOX_USERNAME PROXMOX_PASSWORD)}], ["$NODE_URL/api2/json", $USER, $ticket], 'PROXMOX_* (Packer)');
# what Telmate and Packer do with them: log in with the ticket as the password
my $relogin = api_call('POST', '/access/ticket', { username => $env->{PM_USER}, password => $env->{PM_PASS} }, user => undef);
is(PVE::AccessControl::verify_ticket($relogin->{ticket}), $USER, 'the real /access/ticket takes PM_PASS as the password');
is_deeply([grep { m/entraid|ticket/ } @REQUESTS], ['POST /access/entraid/auth-url', 'POST /access/entraid/login'],
    'one auth-url and one login call');

# --- a browser on another machine: the address it ended on is pasted --------------------------

@REQUESTS = ();
($rc, $stdout, $stderr) = cli(args => ['--realm', 'entra', '--no-browser', '--format', 'json', @PIN, $NODE_URL], browser => 'paste');
is($rc, 0, 'login with the pasted address') or diag($stderr);
my $json = eval { decode_json($stdout) } // {};
is(PVE::AccessControl::verify_ticket($json->{ticket} // ''), $USER, '--format json: ticket');
is($json->{username}, $USER, 'username');
ok($json->{CSRFPreventionToken} && $json->{url} eq $NODE_URL, 'CSRFPreventionToken and url');
ok(abs($json->{expires} - (time() + 7200)) < 60, 'expires: two hours from now');

# --- the credential file (0600) and --renew through PVE's own /access/ticket -------------------

my $file = '/etc/pve/front/creds';
($rc, $stdout, $stderr) = cli(args => ['--realm', 'entra', '--no-browser', '--ca', "$tls/ca.pem", '--output', $file, $NODE_URL]);
is($rc, 0, 'login trusting the CA file (--ca)') or diag($stderr);
is($stdout, '', 'nothing on stdout with --output');
is((stat($file))[2] & 07777, 0600, 'the credential file has mode 0600');
my $first = env_of(slurp($file));
is(PVE::AccessControl::verify_ticket($first->{PROXMOX_VE_AUTH_TICKET}), $USER, 'with a valid ticket');
sleep(1); # a ticket names its second
@REQUESTS = ();
($rc, $stdout, $stderr) = cli(args => ['--renew', '--output', $file, @PIN]);
is($rc, 0, '--renew') or diag($stderr);
my $renewed = env_of(slurp($file));
isnt($renewed->{PROXMOX_VE_AUTH_TICKET}, $first->{PROXMOX_VE_AUTH_TICKET}, 'a new ticket');
is(PVE::AccessControl::verify_ticket($renewed->{PROXMOX_VE_AUTH_TICKET}), $USER, 'that the real verify_ticket accepts');
is_deeply(\@REQUESTS, ['POST /access/ticket'], 'from /access/ticket alone (no browser, no Entra)');
is((stat($file))[2] & 07777, 0600, 'the renewed file has mode 0600');
# a ticket older than PVE's two hours is not renewed
my $old = PVE::AccessControl::assemble_ticket($USER);
$old =~ s/:([0-9A-F]{8})::/sprintf(':%08X::', hex($1) - 7300)/e;
(my $stale = slurp($file)) =~ s/\Q$renewed->{PROXMOX_VE_AUTH_TICKET}\E/$old/g;
spew($file, $stale);
($rc, $stdout, $stderr) = cli(args => ['--renew', '--output', $file, @PIN]);
is($rc, 1, 'an expired ticket is not renewed');
like($stderr, qr/expired .*sign in again/, 'the program says to sign in again');

# --- a second factor: asked for as PVE's CLI does, completed through /access/ticket -------------

my $secret = 'JBSWY3DPEHPK3PXP';
spew('/etc/pve/priv/tfa.cfg', encode_json({ users => { $USER => { totp => [
    { description => 'phone', created => time(), enable => JSON::true,
      entry => "otpauth://totp/alice?secret=$secret" } ] } } }));
@REQUESTS = ();
my $totp = sub { PVE::OTP::hotp(MIME::Base32::decode_rfc3548($secret), int(time() / 30)) };
($rc, $stdout, $stderr) = cli(args => ['--realm', 'entra', '--no-browser', @PIN, $NODE_URL], totp => $totp);
is($rc, 0, 'login with a TOTP') or diag($stderr);
like($stderr, qr/Enter totp code for user \Q$USER\E: /, 'the program asked for the TOTP code');
$env = env_of($stdout);
is(PVE::AccessControl::verify_ticket($env->{PROXMOX_VE_AUTH_TICKET} // ''), $USER, 'a full ticket, not the challenge');
is_deeply([grep { m/entraid|ticket/ } @REQUESTS],
    ['POST /access/entraid/auth-url', 'POST /access/entraid/login', 'POST /access/ticket'], 'completed through /access/ticket');
($rc, $stdout, $stderr) = cli(args => ['--realm', 'entra', '--no-browser', @PIN, $NODE_URL], totp => sub { '000000' eq $totp->() ? '111111' : '000000' });
is($rc, 1, 'a wrong TOTP code: refused');
is($stdout, '', 'no credentials');
unlink('/etc/pve/priv/tfa.cfg');

# --- the realm stops allowing it: refused, also a login started before ------------------------

($rc, $stdout, $stderr) = cli(args => ['--realm', 'entra', '--no-browser', @PIN, $NODE_URL],
    signed_in => sub { api_call('PUT', '/access/domains/entra', { delete => 'allow-loopback-redirect' }) });
is($rc, 1, 'option deleted between auth-url and login: the login is refused');
like($stderr, qr{/access/entraid/login: .*\(request\.redirect_not_allowed, reference}, 'by login, with request.redirect_not_allowed');
is($stdout, '', 'no credentials');
($rc, $stdout, $stderr) = cli(args => ['--realm', 'entra', '--no-browser', @PIN, $NODE_URL]);
is($rc, 1, 'option deleted: refused again');
like($stderr, qr{/access/entraid/auth-url: .*\(request\.redirect_not_allowed, reference}, 'by auth-url');

done_testing();
