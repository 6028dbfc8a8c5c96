#!/usr/bin/perl -T
# Review 3: the fail-safe ("not-integrated": the realm type only, no API, no anonymous call, no
# sync) must hold when only some files have the realm plugin interface. Here PVE's
# AccessControl.pm has the loader in words pve-entraid-integrate does not recognise (so the
# registration hook goes in, registering PVE::Auth::EntraID itself), the other
# pve-access-control files and HTTPServer.pm have the interface, and index.html.tpl lost its
# anchor: apply takes the fail-safe, and PVE then asks the registered class for its
# api_subclass, unauthenticated_api_calls and can_sync - which must all be off.

use strict;
use warnings;

use UpstreamTest;
use Test::More;

setup_etc_pve();
my ($root) = install_hooks(apply => 0);
my $ac = "$root/usr/share/perl5/PVE/AccessControl.pm";
spew($ac, slurp($ac) =~ s/\$custom_plugin_dir\b/\$realm_plugin_dir/gr);
my $tpl = "$root/usr/share/pve-manager/index.html.tpl";
spew($tpl, slurp($tpl) =~ s/FOREACH plugin IN js_plugins/FOREACH p IN js_plugins/r =~ s/pvemanagerlib\.js/pvemanager.js/gr);

my ($rc, $out) = UpstreamTest::run_integrate($root, 'apply', '--node', $NODE);
is($rc, 2, 'fail-safe: apply exits 2') or diag($out);
like($out, qr/^\/usr\/share\/perl5\/PVE\/AccessControl\.pm: hook 'auth-plugin' applied$/m, 'the registration hook went in');
is(slurp("$root/etc/pve/nodes/$NODE/pve-entraid"), "pve-entraid 0.1.0 not-integrated\n", 'marker: not-integrated');

# this node's /etc/pve as the tool left it in the root
spew("/etc/pve/nodes/$NODE/pve-entraid", slurp("$root/etc/pve/nodes/$NODE/pve-entraid"));
load_pve(root => $root);
my $plugin = PVE::Auth::Plugin->lookup('entraid');
ok($plugin, 'realm type entraid registered (keeps the realms)');

my $index = api_call('GET', '/access', {});
ok(!(grep { $_->{subdir} eq 'entraid' } @$index), 'fail-safe: /access/entraid not mounted');
ok(!eval { auth_handler('POST', '/access/entraid/login', undef, undef); 1 },
    'fail-safe: POST /access/entraid/login needs a ticket');
ok(!$plugin->can_sync(), 'fail-safe: entraid realms cannot be synced');

done_testing();
