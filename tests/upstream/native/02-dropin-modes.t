#!/usr/bin/perl -T
# Review 3: PVE's realm plugin loader (contrib/upstream) requires, as root in every API daemon,
# each *.pm in PVE/Auth/Custom; whoever can write there or replace the drop-in runs code as
# root. So apply creates the drop-in directories and the drop-in itself writable by their
# owner only, whatever the umask it runs under, and replaces a drop-in it finds writable by
# others or as a symlink, even when the content is already right.

use strict;
use warnings;

use UpstreamTest;
use Test::More;

my $SHIM = '/usr/share/perl5/PVE/Auth/Custom/EntraID.pm';
my $JS = '/usr/share/pve-manager/js/plugins/pve-entraid.js';

sub others_can_write { my @st = lstat($_[0]) or return 'missing'; return ($st[2] & 022) ? sprintf('%04o', $st[2] & 07777) : ''; }

setup_etc_pve();

# a root shell with umask 0 (or 002) running 'pve-entraid-integrate apply'
my ($root) = install_hooks(apply => 0);
my $old = umask(0);
my ($rc, $out) = UpstreamTest::run_integrate($root, 'apply', '--node', $NODE);
umask($old);
is($rc, 0, 'apply exits 0') or diag($out);
is(others_can_write("$root/usr/share/perl5/PVE/Auth/Custom"), '', 'umask 0: PVE/Auth/Custom not writable by group/others');
is(others_can_write("$root/usr/share/pve-manager/js/plugins"), '', 'umask 0: js/plugins not writable by group/others');
is(others_can_write("$root$SHIM"), '', 'umask 0: the drop-in not writable by group/others');

# a drop-in directory left world-writable (by an earlier apply under umask 0): made safe
chmod(0777, "$root/usr/share/perl5/PVE/Auth/Custom") or die "chmod: $!\n";
($rc, $out) = UpstreamTest::run_integrate($root, 'apply', '--node', $NODE);
is($rc, 0, 'apply exits 0') or diag($out);
is(others_can_write("$root/usr/share/perl5/PVE/Auth/Custom"), '', 'a world-writable PVE/Auth/Custom is made safe');

# a drop-in with the right content but writable by others: rewritten with a safe mode
chmod(0666, "$root$SHIM") or die "chmod: $!\n";
($rc, $out) = UpstreamTest::run_integrate($root, 'apply', '--node', $NODE);
is($rc, 0, 'apply exits 0') or diag($out);
is(others_can_write("$root$SHIM"), '', 'a world-writable drop-in is made safe');

# the drop-in as a symlink to a file elsewhere (right content): replaced by a regular file,
# and the file it pointed to is left alone
my $elsewhere = "$root/tmp-elsewhere.pm";
my $content = slurp("$root$SHIM");
spew($elsewhere, $content);
chmod(0666, $elsewhere) or die "chmod: $!\n";
unlink("$root$SHIM") or die "unlink: $!\n";
symlink($elsewhere, "$root$SHIM") or die "symlink: $!\n";
($rc, $out) = UpstreamTest::run_integrate($root, 'apply', '--node', $NODE);
is($rc, 0, 'apply exits 0') or diag($out);
ok(!-l "$root$SHIM" && -f "$root$SHIM", 'a symlinked drop-in is replaced by a regular file');
is(others_can_write("$root$SHIM"), '', '... not writable by group/others');
is(slurp("$root$SHIM"), $content, '... with the drop-in content');
is(slurp($elsewhere), $content, '... the symlink target untouched');

done_testing();
