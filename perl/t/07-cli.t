#!/usr/bin/perl
# pve-entraid check/version against the emulator.
use strict;
use warnings;

use Test::More;
use EntraTest;

my $dir = setup_cluster();
start_emulator(optional_claims => \@OPTIONAL_CLAIMS);
add_realm('entra');

my $cli = "$EntraTest::ROOT/perl/bin/pve-entraid";
do $cli or die "loading $cli failed: $@";

sub run_cli {
    my (@args) = @_;
    my $out = '';
    open(my $fh, '>', \$out) or die $!;
    my $old = select($fh);
    my $rc = main::run(@args);
    select($old);
    close($fh);
    return ($rc, $out);
}

my ($rc, $out) = run_cli('version');
is($rc, 0, 'version exits 0');
like($out, qr{^pve-entraid/\d}, 'prints the library version');

($rc, $out) = run_cli('check', 'entra', '--redirect-url', 'https://pve1.example.com:8006');
is($rc, 0, 'check of a good realm exits 0') or diag($out);
like($out, qr/^ok\s+discovery\b/m, 'discovery ok');
like($out, qr/^ok\s+jwks\b/m, 'jwks ok');
like($out, qr/^ok\s+credentials\b/m, 'credentials ok');
like($out, qr/all checks passed/, 'summary');

update_realm('entra', 'client-key' => 'wrong-secret');
($rc, $out) = run_cli('check', 'entra', '--redirect-url', 'https://pve1.example.com:8006');
is($rc, 1, 'wrong secret: exit 1');
like($out, qr/^FAIL\s+credentials\b/m, 'credentials step fails');
like($out, qr/^\s+fix: \S/m, 'with a fix');
unlike($out, qr/wrong-secret/, 'without printing the secret');

($rc, $out) = run_cli('check', 'entra', '--redirect-url', 'http://pve1.example.com:8006');
like($out, qr/^FAIL\s+redirect_url\b/m, 'plain http redirect URL flagged');

{
    local *STDERR;
    my $errout = '';
    open(STDERR, '>', \$errout) or die $!;
    ($rc) = run_cli('check', 'pam');
    is($rc, 1, 'non-entraid realm: exit 1');
    like($errout, qr/not 'entraid'/, 'explained');
    ($rc) = run_cli('check', 'nosuch');
    is($rc, 1, 'unknown realm: exit 1');
    ($rc) = run_cli('frobnicate');
    is($rc, 2, 'bad usage: exit 2');
}

is(system("podchecker -warnings '$cli' >/dev/null 2>&1") >> 8, 0, 'POD is valid (man page source)');

done_testing();
