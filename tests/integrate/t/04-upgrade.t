#!/usr/bin/perl -T
# a PVE upgrade replaces hooked files: status notices it, apply (the dpkg trigger) hooks the
# new file again, and revert after an upstream change removes only our blocks

use strict;
use warnings;

use Test::More;

use IntegrateTest;

my $ACL = '/usr/share/perl5/PVE/AccessControl.pm';
my $HTTP = '/usr/share/perl5/PVE/HTTPServer.pm';

my $root = make_root('pve1');
my ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'apply') or diag($out);

# the upgrade installs a new upstream version, without our block
my $upgraded = pristine($ACL) =~ s/^1;$/sub new_in_upgrade { return 1; }\n\n1;/mr;
spew("$root$ACL", $upgraded);

($rc, $out) = run_tool($root, 'status', '--node', 'pve1');
is($rc, 2, 'status after the upgrade exits 2');
like($out, qr/^hook auth-plugin\s+\Q$ACL\E\s+not applied$/m, 'status: upgraded file not applied');
like($out, qr/^hook http-unauthenticated\s+\Q$HTTP\E\s+applied$/m, 'status: other files still applied');

($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'apply after the upgrade exits 0') or diag($out);
like($out, qr/^\Q$ACL\E: hook 'auth-plugin' applied$/m, 'the upgraded file is hooked again');
my $rehooked = slurp("$root$ACL");
is(block_count($rehooked), 1, 'one block in the upgraded file');
like($rehooked, qr/sub new_in_upgrade/, 'upgrade content kept');
is(slurp("$root/var/lib/pve-entraid/backup$ACL.orig"), $upgraded, 'backup now holds the upgraded upstream file');

($rc, $out) = run_tool($root, 'revert', '--node', 'pve1');
is($rc, 0, 'revert exits 0') or diag($out);
is(slurp("$root$ACL"), $upgraded, 'revert gives back the upgraded upstream file');

# upstream (or an admin) changes a hooked file while keeping our block
$root = make_root('pve1');
run_tool($root, 'apply', '--node', 'pve1');
my $changed = slurp("$root$HTTP") =~ s/my \$require_auth = 1;/my \$require_auth = 1; # changed upstream/r;
spew("$root$HTTP", $changed);

($rc, $out) = run_tool($root, 'status', '--node', 'pve1');
like($out, qr/^hook http-unauthenticated\s+\Q$HTTP\E\s+applied$/m, 'status: block still in the changed file');

($rc, $out) = run_tool($root, 'revert', '--node', 'pve1');
is($rc, 0, 'revert exits 0');
like($out, qr/^\Q$HTTP\E: changed since the hook was applied \(PVE upgrade\?\), removing only the pve-entraid blocks$/m,
    'revert says it only strips our blocks');
my $expected = pristine($HTTP) =~ s/my \$require_auth = 1;/my \$require_auth = 1; # changed upstream/r;
is(slurp("$root$HTTP"), $expected, 'only our block removed, the upstream change kept');
like($out, qr/^\Q$ACL\E: restored from backup/m, 'unchanged files are restored from backup');

# a stale or misplaced block (older package) is reported and replaced by apply
$root = make_root('pve1');
run_tool($root, 'apply', '--node', 'pve1');
my $stale = slurp("$root$HTTP") =~ s/entraid\/login/entraid\/old-login/r;
spew("$root$HTTP", $stale);
($rc, $out) = run_tool($root, 'status', '--node', 'pve1');
like($out, qr/^hook http-unauthenticated\s+\Q$HTTP\E\s+applied, but outdated or misplaced \(run apply\)$/m, 'status spots an outdated block');
($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'apply replaces it');
unlike(slurp("$root$HTTP"), qr/old-login/, 'outdated block gone');
is(block_count(slurp("$root$HTTP")), 1, 'one block left');
run_tool($root, 'revert', '--node', 'pve1');
is(slurp("$root$HTTP"), pristine($HTTP), 'revert still restores the pristine file');

done_testing();
