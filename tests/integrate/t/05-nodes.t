#!/usr/bin/perl -T
# the node marker: written by apply, removed by revert, and status warns loudly about
# any cluster node without it

use strict;
use warnings;

use Test::More;

use IntegrateTest;

my $root = make_root('pve1', 'pve2', 'pve3');
my ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'apply on pve1');
ok(-f "$root/etc/pve/nodes/pve1/pve-entraid", 'marker written for this node');
ok(!-e "$root/etc/pve/nodes/$_/pve-entraid", "no marker written for $_") for qw(pve2 pve3);

my ($cargo_version) = slurp("$UpstreamTest::REPO/Cargo.toml") =~ m/^version = "([^"]+)"/m;
is(slurp("$root/etc/pve/nodes/pve1/pve-entraid"), "pve-entraid $cargo_version\n", 'marker holds the package version (Cargo.toml)');

($rc, $out) = run_tool($root, 'status', '--node', 'pve1');
is($rc, 3, 'status exits 3 while nodes lack the package');
like($out, qr/^node pve1\s+pve-entraid 0\.1\.0$/m, 'pve1 has it');
like($out, qr/^node pve2\s+pve-entraid MISSING$/m, 'pve2 missing');
like($out, qr/^node pve3\s+pve-entraid MISSING$/m, 'pve3 missing');
like($out, qr/^WARNING: node\(s\) pve2, pve3 lack pve-entraid!.*\n^WARNING: .*DROP entraid realms from domains\.cfg/m,
    'warns loudly that realms would be dropped');

# the package on the other nodes writes their markers (what its postinst does there)
run_tool($root, 'apply', '--node', $_) for qw(pve2 pve3);
($rc, $out) = run_tool($root, 'status', '--node', 'pve1');
is($rc, 0, 'status exits 0 once every node has it') or diag($out);
unlike($out, qr/WARNING/, 'no warning then');

($rc, $out) = run_tool($root, 'revert', '--node', 'pve2');
ok(!-e "$root/etc/pve/nodes/pve2/pve-entraid", 'revert removes only its own node marker');
ok(-f "$root/etc/pve/nodes/$_/pve-entraid", "$_ keeps its marker") for qw(pve1 pve3);

# a node directory that does not exist (pmxcfs not mounted) is never created
($rc, $out) = run_tool($root, 'apply', '--node', 'pve9');
is($rc, 2, 'apply for an unknown node dir exits 2');
like($out, qr/^\/etc\/pve\/nodes\/pve9: not found \(is pmxcfs mounted, is 'pve9' this node's name\?\), node marker not written$/m,
    'and says why');
ok(!-e "$root/etc/pve/nodes/pve9", 'no node directory created');

($rc, $out) = run_tool($root, 'apply', '--node', '../pve1');
is($rc, 1, 'a node name with a path is refused');
like($out, qr/invalid node name/, 'with a clear message');

($rc, $out) = run_tool($root, 'frobnicate');
is($rc, 1, 'an unknown command exits 1');
like($out, qr/^usage: pve-entraid-integrate status\|apply\|revert/m, 'and prints usage');

done_testing();
