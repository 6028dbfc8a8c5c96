#!/usr/bin/perl -T
# the REAL PVE::HTTPServer::auth_handler (hooked) lets exactly POST /access/entraid/auth-url
# and POST /access/entraid/login through without a ticket, and nothing else new

use strict;
use warnings;

use UpstreamTest;
use Test::More;

setup_etc_pve();
load_pve();

sub anonymous_ok {
    my ($method, $uri) = @_;
    my $res = eval { auth_handler($method, $uri, undef, undef) };
    return $@ ? 0 : 1;
}

my %expect = (
    'POST /access/entraid/auth-url' => 1,
    'POST /access/entraid/login' => 1,
    'GET /access/entraid/login' => 0,
    'GET /access/entraid/auth-url' => 0,
    'PUT /access/entraid/login' => 0,
    'DELETE /access/entraid/login' => 0,
    'POST /access/entraid' => 0,
    'GET /access/entraid' => 0,
    'POST /access/entraid/other' => 0,
    'POST /access/entraid/login/x' => 0,
    'POST /access/entraid/LOGIN' => 0,
    'POST /access/entraid/login/' => 0,
    'POST /access/domains' => 0,
    'PUT /access/domains/entra' => 0,
    'POST /access/users' => 0,
    # upstream's own anonymous calls, unchanged by the hook
    'POST /access/openid/login' => 1,
    'POST /access/openid/auth-url' => 1,
    'POST /access/ticket' => 1,
    'GET /access/domains' => 1,
);
my %got = map { $_ => anonymous_ok(split(/ /, $_)) } keys %expect;
is_deeply(\%got, \%expect, "$PVE auth_handler: anonymous calls are exactly upstream's plus the two entraid POSTs");

my $err = do { eval { auth_handler('GET', '/access/entraid/login', undef, undef) }; $@ };
like(ref($err) ? $err->{msg} : $err, qr/No ticket/, 'other entraid calls without a ticket: "No ticket"');

# the same calls on a node WITHOUT pve-entraid (unmodified upstream HTTPServer): the entraid
# POSTs need a ticket there, so the hook is what opens them
my ($rc, $out) = run_perl({ inc => [UpstreamTest::pristine_inc()] }, '-e', q{
    use PVE::RPCEnvironment; use PVE::HTTPServer;
    my $server = bless { rpcenv => PVE::RPCEnvironment->init('priv') }, 'PVE::HTTPServer';
    for my $call (@ARGV) {
        my ($m, $u) = split(/ /, $call);
        my $ok = eval { $server->auth_handler($m, $u, undef, undef, undef, '127.0.0.1'); 1 } ? 1 : 0;
        print "$call=$ok\n";
    }
}, 'POST /access/entraid/login', 'POST /access/entraid/auth-url', 'POST /access/openid/login');
is($out =~ s/^(?!POST ).*\n//mgr, "POST /access/entraid/login=0\nPOST /access/entraid/auth-url=0\nPOST /access/openid/login=1\n",
    'unhooked upstream HTTPServer: entraid calls need a ticket, openid ones do not') or diag($out);

# with a ticket made by the real code, the user's calls pass (and CSRF is required by the
# real code only for non-root euids, so root passes without it as pvedaemon does)
my ($ticket, $csrf) = login_ticket('root@pam');
my $res = auth_handler('GET', '/access/entraid', $ticket, $csrf);
is($res->{userid}, 'root@pam', 'a real ticket authenticates any call');
$err = do { eval { auth_handler('GET', '/access/entraid', "PVE:root\@pam:4F00AA00::forged", undef) }; $@ };
like(ref($err) ? $err->{msg} : $err, qr/Authentication failed/, 'a forged ticket is refused');

done_testing();
