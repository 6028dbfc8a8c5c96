#!/usr/bin/perl -T
# a missing or ambiguous anchor, a missing file or an edit that would not compile: no hook goes
# in (those applied before come out), except the realm type registration, which keeps entraid
# realms in domains.cfg; the node marker says "not-integrated", the message names the file, the
# anchor and what to do (exit 2)

use strict;
use warnings;

use Test::More;

use IntegrateTest;

my $ACL = '/usr/share/perl5/PVE/AccessControl.pm';
my $API = '/usr/share/perl5/PVE/API2/AccessControl.pm';
my $HTTP = '/usr/share/perl5/PVE/HTTPServer.pm';
my $HTML = '/usr/share/pve-manager/index.html.tpl';
my $DOM = '/usr/share/perl5/PVE/API2/Domains.pm';

my $MARKER = '/etc/pve/nodes/pve1/pve-entraid';

# What the fail-safe leaves: no block anywhere but the registration's (unless its own file is
# the changed one), the changed file untouched, no backup of it, the marker saying so.
sub check_fail_safe {
    my ($name, $root, $file, $before, $rc, $out, $message) = @_;
    is($rc, 2, "$name: apply exits 2 (not integrated)");
    like($out, $message, "$name: message names the file and the problem");
    like($out, qr/^pve-entraid: NOT INTEGRATED: \Q$file\E: .+\.$/m, "$name: the summary names the file");
    like($out, qr/^pve-entraid: NOT INTEGRATED: .*upgrade pve-entraid\n.*report/m, "$name: says what to do");
    is(slurp("$root$file"), $before->{$file}, "$name: $file untouched");
    ok(!-e "$root/var/lib/pve-entraid/backup$file.orig", "$name: no backup of $file");
    my $registered = $file ne $ACL;
    for my $other (grep { $_ ne $file } @HOOK_FILES) {
        if ($other eq $ACL) {
            is(block_count(slurp("$root$other")), 1, "$name: the realm type registration is applied alone");
        } else {
            is(slurp("$root$other"), pristine($other), "$name: $other without hook, byte-identical to upstream");
        }
    }
    if ($registered) {
        is(slurp("$root$MARKER"), "pve-entraid 0.1.0 not-integrated\n", "$name: node marker says not-integrated");
        like($out, qr/entraid realms in \/etc\/pve\/domains\.cfg are kept/, "$name: says the realms are kept");
    } else {
        ok(!-e "$root$MARKER", "$name: no node marker: other nodes refuse entraid realm changes");
        like($out, qr/DROPS entraid realms/, "$name: warns that this node drops the realms");
    }
    my ($src, $status) = run_tool($root, 'status', '--node', 'pve1');
    is($src, $registered ? 2 : 3, "$name: status exits " . ($registered ? 2 : 3));
    like($status, qr/^node pve1\s+pve-entraid 0\.1\.0 NOT INTEGRATED/m, "$name: status shows the node not integrated")
        if $registered;
    return $status;
}

# changes one file of a fresh root (hooked before when $hooked_before: the upgrade of one
# file, the dpkg trigger runs apply), applies, and checks the fail-safe
sub apply_with_changed_file {
    my ($name, $file, $change, $message, $hooked_before) = @_;
    my $root = make_root('pve1');
    if ($hooked_before) {
        my ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
        is($rc, 0, "$name: first apply exits 0") or diag($out);
        spew("$root$file", pristine($file)); # the upgrade replaces the file
    }
    my $data = slurp("$root$file");
    $change->($data) for $data; # edit in place through the alias
    spew("$root$file", $data);
    my $before = tree_bytes($root);

    my ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
    my $status = check_fail_safe($name, $root, $file, $before, $rc, $out, $message);
    return ($root, $status);
}

my (undef, $status) = apply_with_changed_file(
    'missing anchor', $ACL,
    sub { s/^PVE::Auth::Plugin->init\(\);/PVE::Auth::Plugin->initialize();/m },
    qr/^\Q$ACL\E: anchor 'PVE::Auth::Plugin->init\(\);' not found - hook 'auth-plugin' cannot be applied$/m,
);
like($status, qr/^hook auth-plugin\s+\Q$ACL\E\s+anchor missing$/m, 'status reports the missing anchor');

(undef, $status) = apply_with_changed_file(
    'duplicate anchor', $HTTP,
    sub { s/(^.*openid\/auth-url.*\n)/$1$1/m },
    qr/^\Q$HTTP\E: anchor '\|\| \(\$rel_uri eq '\/access\/openid\/auth-url' && \$method eq 'POST'\)' or '\(\$rel_uri eq '\/access\/openid\/login' &&  \$method eq 'POST'\) \|\|' found 2 times - hook 'http-unauthenticated' cannot be applied$/m,
);
like($status, qr/^hook http-unauthenticated\s+\Q$HTTP\E\s+anchor ambiguous \(2 matches\)$/m, 'status reports the ambiguous anchor');

# the anchor variants of one spot (upstream's older and newer formatting) match once each:
# which one is meant is as unclear as a duplicate anchor
(undef, $status) = apply_with_changed_file(
    'both anchor variants', $HTTP,
    sub { s/(^.*openid\/auth-url.*\n)/$1    (\$rel_uri eq '\/access\/openid\/login' && \$method eq 'POST') ||\n/m },
    qr/^\Q$HTTP\E: anchor .* found 2 times - hook 'http-unauthenticated' cannot be applied$/m,
);
like($status, qr/^hook http-unauthenticated\s+\Q$HTTP\E\s+anchor ambiguous \(2 matches\)$/m, 'status reports both variants as ambiguous');

apply_with_changed_file(
    'openid mount moved away', $API,
    sub { s/path => 'openid'/path => 'oidc'/ },
    qr/^\Q$API\E: anchor .* not found - hook 'api-mount' cannot be applied$/m,
);

apply_with_changed_file(
    'script renamed', $HTML,
    sub { s/pvemanagerlib\.js/pvemanager.js/g },
    qr/^\Q$HTML\E: anchor .* not found - hook 'web-ui' cannot be applied$/m,
);

# one of the realm-api hook's anchors gone: none of its blocks goes in
(undef, $status) = apply_with_changed_file(
    'sync check reworded', $DOM,
    sub { s/Cannot sync realm type/Unable to sync realm type/ },
    qr/^\Q$DOM\E: anchor 'die "Cannot sync realm type '\$type'! \.\.\.";' not found - hook 'realm-api' cannot be applied$/m,
);
like($status, qr/^hook realm-api\s+\Q$DOM\E\s+anchor missing$/m, 'status reports the missing anchor');
(undef, $status) = apply_with_changed_file(
    'delete loop duplicated', $DOM,
    sub { s/(^.*\$delete_pw = 1 if \$opt eq 'password';\n)/$1$1/m },
    qr/^\Q$DOM\E: anchor '\$delete_pw = 1 if \$opt eq 'password';' found 2 times - hook 'realm-api' cannot be applied$/m,
);
like($status, qr/^hook realm-api\s+\Q$DOM\E\s+anchor ambiguous \(2 matches\)$/m, 'status reports the ambiguous anchor');

# an installed file that does not compile is never replaced by an edit of it
apply_with_changed_file(
    'file does not compile', $API,
    sub { s/^1;$/sub broken {\n/m },
    qr/^\Q$API\E: would not compile with the hook \(Missing right curly.*\) - hook 'api-mount' cannot be applied$/m,
);

# a PVE tree that cannot load the file even unchanged (here a dependency that dies) does not block
# the hook: the edit is then judged by the file's own syntax
my $root = make_root('pve1');
spew("$root/usr/share/perl5/PVE/RESTHandler.pm", "package PVE::RESTHandler;\ndie qq{dependency broken\\n};\n");
my ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'broken dependency: apply exits 0') or diag($out);
# (the first line of the compile error is not necessarily the dependency's own: with the real
# tree, perl may first trip over an optional module the tool's loader stubs)
like($out, qr/^\Q$API\E: does not compile on this system even without the hook \(.+\); checking its syntax only$/m,
    'broken dependency: says the full check was not possible');
is(block_count(slurp("$root$API")), 1, 'broken dependency: hook applied after the syntax check');

$root = make_root('pve1');
unlink("$root$HTML") or die;
($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 2, 'a missing file gives exit 2');
like($out, qr/^\Q$HTML\E: not found - hook 'web-ui' cannot be applied$/m, 'and says which file');
ok(!-e "$root$HTML", 'the missing file is not created');
is(block_count(slurp("$root$HTTP")), 0, 'missing file: no other hook applied');

# an upgrade (apt upgrade, the dpkg trigger runs apply) brings a file whose anchor moved, on a
# node hooked before: the hooks applied before come out again, byte for byte
apply_with_changed_file(
    'upgrade moved the sync check', $DOM,
    sub { s/Cannot sync realm type/Unable to sync realm type/ },
    qr/^\Q$DOM\E: anchor 'die "Cannot sync realm type '\$type'! \.\.\.";' not found - hook 'realm-api' cannot be applied$/m,
    'hooked before',
);
($root, $status) = apply_with_changed_file(
    'upgrade moved the registration anchor', $ACL,
    sub { s/^PVE::Auth::Plugin->init\(\);/PVE::Auth::Plugin->initialize();/m },
    qr/^\Q$ACL\E: anchor 'PVE::Auth::Plugin->init\(\);' not found - hook 'auth-plugin' cannot be applied$/m,
    'hooked before',
);
ok(!-e "$root/var/lib/pve-entraid/backup$HTTP.orig", 'the backups of the hooks taken out are gone');

# once the package (or PVE) is fixed, apply integrates again
$root = make_root('pve1');
my $good = slurp("$root$DOM");
spew("$root$DOM", $good =~ s/Cannot sync realm type/Unable to sync realm type/r);
($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 2, 'anchor moved: not integrated');
spew("$root$DOM", $good);
($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'anchor back: apply exits 0') or diag($out);
is(block_count(slurp("$root$_")), hook_blocks($_), "integrated again: $_ hooked") for @HOOK_FILES;
is(slurp("$root$MARKER"), "pve-entraid 0.1.0\n", 'integrated again: marker without not-integrated');
($rc, $out) = run_tool($root, 'status', '--node', 'pve1');
is($rc, 0, 'integrated again: status exits 0') or diag($out);

# what 'apt upgrade' shows: the package's postinst, run by its file trigger after an upgrade
# brought a file whose anchor moved (chrootless, as under dpkg --root)
$root = make_root('pve1');
spew("$root$DOM", slurp("$root$DOM") =~ s/Cannot sync realm type/Unable to sync realm type/r);
spew("$root/usr/sbin/pve-entraid-integrate", slurp($TOOL), 0755);
my $postinst = "$UpstreamTest::REPO/debian/postinst";
$out = `DPKG_ROOT=$root sh $postinst triggered /usr/share/perl5/PVE/API2/Domains.pm 2>&1`;
is($?, 0, 'postinst triggered: never fails the upgrade');
like($out, qr/^pve-entraid: NOT INTEGRATED: \Q$DOM\E: anchor 'die "Cannot sync realm type '\$type'! \.\.\.";' not found\.$/m,
    'postinst output names the file and the anchor');
like($out, qr/^pve-entraid: WARNING: pve-entraid is NOT INTEGRATED with this Proxmox VE version/m,
    'postinst says it is not integrated');
like($out, qr/Upgrade pve-entraid, or report/, 'and what to do');
is(block_count(slurp("$root$HTTP")), 0, 'postinst: no hook applied');

done_testing();
