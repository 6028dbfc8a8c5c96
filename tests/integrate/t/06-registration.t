#!/usr/bin/perl -T
# every anchor matches, but the hooked PVE::AccessControl does not register realm type entraid
# (here an upstream that drops it right after init()): apply checks the registration in a child
# perl -T like the daemons, takes every hook out again (the registration too) and writes no node
# marker, so that no node claims to keep entraid realms it drops; it says so and what to do

use strict;
use warnings;

use Test::More;

use IntegrateTest;

my $ACL = '/usr/share/perl5/PVE/AccessControl.pm';
my $MARKER = '/etc/pve/nodes/pve1/pve-entraid';

# the check passes on the real upstream: integrated
my $root = make_root('pve1');
my ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'real upstream: apply exits 0') or diag($out);
is(slurp("$root$MARKER"), "pve-entraid 0.1.0\n", 'real upstream: marked integrated');

$root = make_root('pve1');
my $data = slurp("$root$ACL");
ok($data =~ s/^(PVE::Auth::Plugin->init\(\);\n)/$1delete PVE::Auth::Plugin->private()->{plugins}->{entraid};\n/m,
    'upstream mutated: entraid is dropped after init()');
spew("$root$ACL", $data);
my $before = tree_bytes($root);
($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 2, 'apply exits 2 (not integrated)');
like($out, qr/^pve-entraid: NOT INTEGRATED: the hooked PVE::AccessControl does not register realm type entraid \(.+\)\.$/m,
    'says the realm type does not register');
like($out, qr/DROPS entraid realms from \/etc\/pve\/domains\.cfg on its next realm change/, 'says this node drops the realms');
like($out, qr/Do not change realms on this node until this is fixed: upgrade pve-entraid/, 'and what to do');
is(slurp("$root$_"), $before->{$_}, "$_ as before apply") for @HOOK_FILES;
ok(!-e "$root$MARKER", 'no node marker (neither integrated nor not-integrated)');
my ($src, $status) = run_tool($root, 'status', '--node', 'pve1');
is($src, 3, 'status exits 3 (node without the plugin)') or diag($status);

done_testing();
