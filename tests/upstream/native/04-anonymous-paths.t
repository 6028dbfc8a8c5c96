#!/usr/bin/perl -T
# Review 3: the calls a realm plugin names in unauthenticated_api_calls (contrib/upstream
# pve-access-control 0003, pve-manager 0001) are allowed without a ticket at exactly
# /access/<type>/<path> with exactly that method; no prefix, traversal, doubled slash,
# trailing slash, other method or other realm type gets through auth_handler without one.

use strict;
use warnings;

use UpstreamTest;
use Test::More;

setup_etc_pve();
my ($root, $rc, $out) = install_hooks();
is($rc, 0, 'apply exits 0') or diag($out);
load_pve(root => $root);

ok(eval { auth_handler('POST', '/access/entraid/login', undef, undef); 1 }, 'POST /access/entraid/login anonymous');
ok(eval { auth_handler('POST', '/access/entraid/auth-url', undef, undef); 1 }, 'POST /access/entraid/auth-url anonymous');

for my $call (
    ['GET', '/access/entraid/login'],
    ['PUT', '/access/entraid/login'],
    ['DELETE', '/access/entraid/auth-url'],
    ['post', '/access/entraid/login'],
    ['POST', '/access/entraidx/login'],
    ['POST', '/access/entrai/login'],
    ['POST', '/access/entraid/login/'],
    ['POST', '/access/entraid//login'],
    ['POST', '/access//entraid/login'],
    ['POST', '/access/entraid/login/x'],
    ['POST', '/access/entraid/loginx'],
    ['POST', '/access/entraid/../ticket'],
    ['POST', '/access/entraid/../users'],
    ['GET', '/access/entraid/../users'],
    ['POST', '/access/entraid/./login'],
    ['POST', '/access/entraid/login?x=1'],
    ['POST', '/access/entraid/%6cogin'],
    ['POST', "/access/entraid/login\n"],
    ['POST', '/access/openid/../entraid/login'],
    ['POST', '/access/pam/login'],
    ['POST', '/access/pve/login'],
    ['POST', '/access/users'],
    ['POST', '/access/domains/entraid'],
    ['POST', '/nodes/x/access/entraid/login'],
    ['POST', '/access/entraid'],
) {
    my ($method, $path) = @$call;
    ok(!eval { auth_handler($method, $path, undef, undef); 1 }, "$method $path needs a ticket");
}

done_testing();
