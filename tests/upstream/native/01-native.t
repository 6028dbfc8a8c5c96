#!/usr/bin/perl -T
# On trees with the upstream patch series (contrib/upstream, applied by native/run.sh):
# pve-entraid-integrate applies no hook but installs the drop-ins, the realm type comes from
# PVE's realm plugin loader, /access/entraid from the plugin's api_subclass, the anonymous calls
# from its unauthenticated_api_calls, the UI script from the js/plugins directory; revert removes
# the drop-ins. The contract tests run.sh runs beside this one then pass with no hook applied.

use strict;
use warnings;

use UpstreamTest;
use Template;
use Test::More;

my @FILES = sort keys %UpstreamTest::HOOK_SOURCES;
my %upstream = map { $_ => slurp("$TREE/$UpstreamTest::HOOK_SOURCES{$_}") } @FILES;
like($upstream{'/usr/share/perl5/PVE/AccessControl.pm'}, qr{PVE/Auth/Custom}, "$PVE tree has the patch series")
    or BAIL_OUT('not a tree with contrib/upstream applied: run tests/upstream/native/run.sh');

my $SHIM = '/usr/share/perl5/PVE/Auth/Custom/EntraID.pm';
my $JS = '/usr/share/pve-manager/js/plugins/pve-entraid.js';

setup_etc_pve();
my ($root, $rc, $out) = install_hooks();
is($rc, 0, 'apply exits 0') or diag($out);
like($out, qr/^\Q$_\E: has the upstream realm plugin interface, hook '[\w-]+' not needed$/m, "apply: $_ needs no hook")
    for @FILES;
is(slurp("$root$_"), $upstream{$_}, "$_: no hook, upstream's bytes") for @FILES;
ok(!-e "$root/var/lib/pve-entraid/backup$_.orig", "$_: no backup") for @FILES;
like(slurp("$root$SHIM"), qr/^package PVE::Auth::Custom::EntraID;$/m, 'the realm plugin drop-in');
unlike(slurp("$root$SHIM"), qr/sub api_subclass/, 'integrated: nothing switched off in it');
is(readlink("$root$JS"), '../pve-entraid.js', 'the UI script drop-in');
is(slurp("$root/etc/pve/nodes/$NODE/pve-entraid"), "pve-entraid 0.1.0\n", 'node marker: integrated');

($rc, $out) = UpstreamTest::run_integrate($root, 'status', '--node', $NODE);
is($rc, 0, 'status exits 0') or diag($out);
like($out, qr/^hook \S+\s+\Q$_\E\s+native$/m, "status: $_ native") for @FILES;


# PVE as pvedaemon loads it, the drop-in through the real loader
load_pve(root => $root);
my $plugin = PVE::Auth::Plugin->lookup('entraid');
is($plugin, 'PVE::Auth::Custom::EntraID', 'realm type entraid registered by the loader');
ok($plugin->isa('PVE::Auth::EntraID'), 'from the project\'s module');
my $index = api_call('GET', '/access', {});
ok((grep { $_->{subdir} eq 'entraid' } @$index), '/access lists entraid (api_subclass)');
my $sub = api_call('GET', '/access/entraid', {});
is_deeply([sort map { $_->{subdir} } @$sub], ['auth-url', 'login', 'token'], '/access/entraid mounted');
ok(eval { auth_handler('POST', '/access/entraid/login', undef, undef); 1 }, 'POST /access/entraid/login anonymous');
ok(!eval { auth_handler('GET', '/access/entraid', undef, undef); 1 }, 'GET /access/entraid needs a ticket');

# the hook's list and the plugin's are one fact: the same calls
my $hooked = '';
for my $hook_file ("$TREE/$UpstreamTest::HOOK_SOURCES{'/usr/share/perl5/PVE/HTTPServer.pm'}") {
    my $tool = slurp($UpstreamTest::INTEGRATE);
    my ($lines) = $tool =~ m/^sub anonymous_call_conditions \{\n\s*my \@calls = \(\n(.*?)\n\s*\);/ms;
    $hooked = join(',', sort map { m{\['/access/entraid/([^']+)', '(\w+)'\],} ? "$2 $1" : "?$_" }
        split(/\n/, $lines // ''));
}
is(join(',', sort map { "$_->[0] $_->[1]" } PVE::Auth::EntraID->unauthenticated_api_calls()->@*), $hooked,
    'unauthenticated_api_calls = the http-unauthenticated hook\'s calls');

# the patched index.html.tpl with what the patched get_index hands it
my $page = '';
Template->new({ ABSOLUTE => 1 })->process("$root/usr/share/pve-manager/index.html.tpl",
    { js_plugins => ['pve-entraid.js'], version => '9.9.9', lang => 'en' }, \$page)
    or die Template->error();
like($page, qr{pvemanagerlib\.js[^\n]*\n\s*<script type="text/javascript" src="/pve2/js/plugins/pve-entraid\.js\?ver=9\.9\.9"></script>},
    'index: the UI script after pvemanagerlib.js');

# the fail-safe on such a tree (here: pve-manager without the series, its web-ui anchor gone):
# the realm type alone, with its API, anonymous calls and sync switched off
my ($mixed) = install_hooks(apply => 0);
my $tpl = "$mixed/usr/share/pve-manager/index.html.tpl";
spew($tpl, slurp($tpl) =~ s/FOREACH plugin IN js_plugins/FOREACH p IN js_plugins/r =~ s/pvemanagerlib\.js/pvemanager.js/gr);
($rc, $out) = UpstreamTest::run_integrate($mixed, 'apply', '--node', $NODE);
is($rc, 2, 'fail-safe: apply exits 2') or diag($out);
like(slurp("$mixed$SHIM"), qr/sub api_subclass \{ return undef; \}/, 'fail-safe: the drop-in registers the type only');
ok(!-e "$mixed$JS", 'fail-safe: no UI script');
is(slurp("$mixed/etc/pve/nodes/$NODE/pve-entraid"), "pve-entraid 0.1.0 not-integrated\n", 'fail-safe: marker');

($rc, $out) = UpstreamTest::run_integrate($root, 'revert', '--node', $NODE);
is($rc, 0, 'revert exits 0') or diag($out);
ok(!-e "$root$SHIM" && !-l "$root$JS", 'revert removes the drop-ins');
is(slurp("$root$_"), $upstream{$_}, "revert: $_ unchanged") for @FILES;

done_testing();
