#!/usr/bin/perl -T
# a missing or ambiguous anchor, or an edit that would not compile, leaves that file
# untouched while the other hooks are applied (exit 2)

use strict;
use warnings;

use Test::More;

use IntegrateTest;

my $ACL = '/usr/share/perl5/PVE/AccessControl.pm';
my $API = '/usr/share/perl5/PVE/API2/AccessControl.pm';
my $HTTP = '/usr/share/perl5/PVE/HTTPServer.pm';
my $HTML = '/usr/share/pve-manager/index.html.tpl';
my $DOM = '/usr/share/perl5/PVE/API2/Domains.pm';

# changes one file of a fresh root, applies, and checks that only that file was spared
sub apply_with_changed_file {
    my ($name, $file, $change, $message) = @_;
    my $root = make_root('pve1');
    my $data = slurp("$root$file");
    $change->($data) for $data; # edit in place through the alias
    spew("$root$file", $data);
    my $before = tree_bytes($root);

    my ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
    is($rc, 2, "$name: apply exits 2 (partial)");
    like($out, $message, "$name: message names the file and the problem");
    is(slurp("$root$file"), $before->{$file}, "$name: $file untouched");
    ok(!-e "$root/var/lib/pve-entraid/backup$file.orig", "$name: no backup taken of $file");
    for my $other (grep { $_ ne $file } @HOOK_FILES) {
        is(block_count(slurp("$root$other")), hook_blocks($other), "$name: $other still hooked");
    }
    ($rc, $out) = run_tool($root, 'status', '--node', 'pve1');
    is($rc, 2, "$name: status exits 2");
    return ($root, $out);
}

my (undef, $status) = apply_with_changed_file(
    'missing anchor', $ACL,
    sub { s/^PVE::Auth::Plugin->init\(\);/PVE::Auth::Plugin->initialize();/m },
    qr/^\Q$ACL\E: anchor 'PVE::Auth::Plugin->init\(\);' not found - hook 'auth-plugin' not applied, file left untouched$/m,
);
like($status, qr/^hook auth-plugin\s+\Q$ACL\E\s+anchor missing$/m, 'status reports the missing anchor');

(undef, $status) = apply_with_changed_file(
    'duplicate anchor', $HTTP,
    sub { s/(^.*openid\/auth-url.*\n)/$1$1/m },
    qr/^\Q$HTTP\E: anchor '\|\| \(\$rel_uri eq '\/access\/openid\/auth-url' && \$method eq 'POST'\)' found 2 times - hook 'http-unauthenticated' not applied, file left untouched$/m,
);
like($status, qr/^hook http-unauthenticated\s+\Q$HTTP\E\s+anchor ambiguous \(2 matches\)$/m, 'status reports the ambiguous anchor');

apply_with_changed_file(
    'openid mount moved away', $API,
    sub { s/path => 'openid'/path => 'oidc'/ },
    qr/^\Q$API\E: anchor .* not found - hook 'api-mount' not applied/m,
);

apply_with_changed_file(
    'script renamed', $HTML,
    sub { s/pvemanagerlib\.js/pvemanager.js/g },
    qr/^\Q$HTML\E: anchor .* not found - hook 'web-ui' not applied/m,
);

# one of the realm-api hook's anchors gone: none of its blocks goes in
(undef, $status) = apply_with_changed_file(
    'sync check reworded', $DOM,
    sub { s/Cannot sync realm type/Unable to sync realm type/ },
    qr/^\Q$DOM\E: anchor 'die "Cannot sync realm type '\$type'! \.\.\.";' not found - hook 'realm-api' not applied, file left untouched$/m,
);
like($status, qr/^hook realm-api\s+\Q$DOM\E\s+anchor missing$/m, 'status reports the missing anchor');
(undef, $status) = apply_with_changed_file(
    'delete loop duplicated', $DOM,
    sub { s/(^.*\$delete_pw = 1 if \$opt eq 'password';\n)/$1$1/m },
    qr/^\Q$DOM\E: anchor '\$delete_pw = 1 if \$opt eq 'password';' found 2 times - hook 'realm-api' not applied/m,
);
like($status, qr/^hook realm-api\s+\Q$DOM\E\s+anchor ambiguous \(2 matches\)$/m, 'status reports the ambiguous anchor');

# an installed file that does not compile is never replaced by an edit of it
apply_with_changed_file(
    'file does not compile', $API,
    sub { s/^1;$/sub broken {\n/m },
    qr/^\Q$API\E: would not compile with hook 'api-mount', file left untouched:\n.*Missing right curly/m,
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
like($out, qr/^\Q$HTML\E: not found, hook 'web-ui' not applied$/m, 'and says which file');
ok(!-e "$root$HTML", 'the missing file is not created');

done_testing();
