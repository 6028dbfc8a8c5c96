#!/usr/bin/perl -T
# apply on pristine fixtures, idempotence, byte-exact revert

use strict;
use warnings;

use Test::More;

use IntegrateTest;

my $root = make_root('pve1');
my $pristine = tree_bytes($root);

my ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'apply on pristine files exits 0') or diag($out);
like($out, qr/\Q$_\E: hook '[\w-]+' applied/, "apply reports $_") for @HOOK_FILES;

my $applied = tree_bytes($root);
for my $file (@HOOK_FILES) {
    is(block_count($applied->{$file}), hook_blocks($file), "$file holds the hook's block(s)");
    isnt($applied->{$file}, $pristine->{$file}, "$file changed");
    ok(-f "$root/var/lib/pve-entraid/backup$file.orig", "$file has a pristine backup");
    is(slurp("$root/var/lib/pve-entraid/backup$file.orig"), $pristine->{$file}, "$file backup is the pristine file");
}
for my $file (grep { m/\.pm$/ } @HOOK_FILES) {
    is(perl_check("$root$file"), undef, "$file still compiles");
}
like($applied->{'/usr/share/perl5/PVE/AccessControl.pm'},
    qr/PVE::Auth::EntraID->register\(\);.*\n.*\n# pve-entraid hook end\nPVE::Auth::Plugin->init\(\);/,
    'realm type registered right before PVE::Auth::Plugin->init()');
like($applied->{'/usr/share/pve-manager/index.html.tpl'},
    qr{pvemanagerlib\.js[^\n]*\n    <!-- pve-entraid hook begin -->\n    <script type="text/javascript" src="/pve2/js/pve-entraid\.js[^"]*"></script>\n},
    'script tag follows pvemanagerlib.js, indented like it');
like($applied->{'/usr/share/perl5/PVE/API2/Domains.pm'},
    qr/\n        if \(\$type ne 'ldap' && \$type ne 'ad'\) \{\n            # pve-entraid hook begin\n.*\n            \$type eq 'entraid' or\n            # pve-entraid hook end\n            die "Cannot sync realm type /,
    'sync check: entraid passes upstream\'s die line, indented like it');
like($applied->{'/usr/share/perl5/PVE/API2/Domains.pm'},
    qr/\$delete_pw = 1 if \$opt eq 'password';\n                    # pve-entraid hook begin\n                    PVE::Auth::EntraID->delete_requested\(\$param, \$opt\) if \$ids->\{\$realm\}->\{type\} eq 'entraid';\n/,
    'delete of an entraid credential is handed to the plugin, not marked as a deleted password');
like($applied->{'/usr/share/perl5/PVE/API2/Jobs/RealmSync.pm'},
    qr/# pve-entraid hook begin\n.*\n                \$realm_type eq 'entraid' or\n                # pve-entraid hook end\n                raise_param_exc\(\{ realm => "Only LDAP\/AD realms can be synced\." \}\)\n                    if \$realm_type ne 'ldap'/,
    'realm-sync jobs: entraid passes upstream\'s statement, indented like it');
my $tags = () = $applied->{'/usr/share/pve-manager/index.html.tpl'} =~ m/pve-entraid\.js/g;
is($tags, 1, 'exactly one script tag for pve-entraid.js');
is(slurp("$root/etc/pve/nodes/pve1/pve-entraid"), "pve-entraid 0.1.0\n", 'node marker holds the version');

($rc, $out) = run_tool($root, 'status', '--node', 'pve1');
is($rc, 0, 'status after apply exits 0') or diag($out);
like($out, qr/^hook \S+\s+\Q$_\E\s+applied$/m, "status: $_ applied") for @HOOK_FILES;

($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'second apply exits 0');
like($out, qr/\Q$_\E: hook '[\w-]+' already applied/, "second apply: $_ already applied") for @HOOK_FILES;
is_deeply(tree_bytes($root), $applied, 'apply twice gives identical bytes');

($rc, $out) = run_tool($root, 'revert', '--node', 'pve1');
is($rc, 0, 'revert exits 0') or diag($out);
like($out, qr/\Q$_\E: restored from backup/, "revert restores $_") for @HOOK_FILES;
is_deeply(tree_bytes($root), $pristine, 'revert gives the pristine bytes back');
ok(!-e "$root/etc/pve/nodes/pve1/pve-entraid", 'revert removes the node marker');
ok(!-e "$root/var/lib/pve-entraid/backup$_.orig", "backup of $_ removed") for @HOOK_FILES;

($rc, $out) = run_tool($root, 'status', '--node', 'pve1');
is($rc, 3, 'status after revert: node lacks the marker (exit 3)');
like($out, qr/^hook \S+\s+\Q$_\E\s+not applied$/m, "status: $_ not applied") for @HOOK_FILES;

# mode is kept when files are replaced
chmod(0640, "$root$HOOK_FILES[0]") or die;
($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is((stat("$root$HOOK_FILES[0]"))[2] & 07777, 0640, 'apply keeps the file mode');

done_testing();
