#!/usr/bin/perl -T
# the REAL pveum (pve-access-control/src/pveum) manages entraid realms on the hooked node,
# and `pve-entraid check` works as a fresh process, like an admin runs it

use strict;
use warnings;

use UpstreamTest;
use Test::More;

setup_etc_pve();
load_pve();
my $url = start_emulator(optional_claims => \@OPTIONAL_CLAIMS);
my $priv = '/etc/pve/priv/entraid';

my ($rc, $out) = run_pveum('realm', 'add', 'entra', '--type', 'entraid', '--tenant-id', $TENANT,
    '--client-id', $CLIENT_ID, '--client-key', $SECRET, '--autocreate', '1', '--comment', 'Contoso');
is($rc, 0, "pveum realm add --type entraid ($PVE)") or diag($out);
my $domains = slurp('/etc/pve/domains.cfg');
like($domains, qr/^entraid: entra\n(?:\t.*\n)*\ttenant-id \Q$TENANT\E$/m, 'realm in domains.cfg');
unlike($domains, qr/\Q$SECRET\E|client-key/, 'secret not in domains.cfg');
is(slurp("$priv/entra.secret"), $SECRET, 'secret in priv/entraid');

($rc, $out) = run_pveum('realm', 'list', '--output-format', 'json');
is($rc, 0, 'pveum realm list');
like($out, qr/"realm":"entra"/, 'lists the realm');
like($out, qr/"type":"entraid"/, 'with its type');
unlike($out, qr/\Q$SECRET\E/, 'no secret listed');

($rc, $out) = run_pveum('realm', 'modify', 'entra', '--groups-map', "$ALICE_GROUP=admins", '--groups-sync', '1');
is($rc, 0, 'pveum realm modify') or diag($out);
like(slurp('/etc/pve/domains.cfg'), qr/^\tgroups-sync 1$/m, 'change written');
{
    ($rc, $out) = run_pveum('realm', 'modify', 'entra', '--required-groups', $ALICE_GROUP);
    is($rc, 0, 'pveum realm modify --required-groups') or diag($out);
}

($rc, $out) = run_pveum('realm', 'add', 'bad', '--type', 'entraid', '--tenant-id', 'not a tenant', '--client-id', $CLIENT_ID, '--client-key', 'x');
isnt($rc, 0, 'pveum refuses a bad tenant-id');
like($out, qr/tenant-id/, 'naming the property');

# pve-entraid check REALM in a fresh process; the test-only authority override is a package
# variable (never the environment), so a one-line wrapper sets it before running the CLI
my $cli = $UpstreamTest::CLI;
my $check = sub {
    return run_perl({}, '-e', 'require PVE::Auth::EntraID; $PVE::Auth::EntraID::AUTHORITY_OVERRIDE = shift;'
        . ' $PVE::Auth::EntraID::GRAPH_OVERRIDE = $PVE::Auth::EntraID::AUTHORITY_OVERRIDE;'
        . ' my ($cli) = shift =~ m/^(.*)$/; $0 = $cli; do $cli; die $@ if $@; exit(main::run(@ARGV));', $url, $cli, @_);
};
($rc, $out) = $check->('version');
is($rc, 0, 'pve-entraid version') or diag($out);
{
    ($rc, $out) = $check->('check', 'entra', '--redirect-url', 'https://pve1.example.com:8006');
    is($rc, 0, 'pve-entraid check of a good realm exits 0') or diag($out);
    like($out, qr/all checks passed/, 'and says so');
    like($out, qr/^ok\s+username\s+username-claim upn: user names are the ID token's `upn` claim \(which Entra issues only as an optional claim/m,
        'and which claim names the users, and what Entra must issue');
}
($rc, $out) = $check->('check', 'pam');
is($rc, 1, 'check of a non-entraid realm exits 1');

($rc, $out) = run_pveum('realm', 'delete', 'entra');
is($rc, 0, 'pveum realm delete') or diag($out);
unlike(slurp('/etc/pve/domains.cfg'), qr/entra/, 'section removed');
ok(!-e "$priv/entra.secret", 'secret removed');

done_testing();
