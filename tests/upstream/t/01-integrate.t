#!/usr/bin/perl -T
# pve-entraid-integrate apply/status/revert on copies of the REAL upstream files, and
# `perl -T -c` of every hooked Perl file against the real upstream modules

use strict;
use warnings;

use UpstreamTest;
use Test::More;

my @FILES = sort keys %UpstreamTest::HOOK_SOURCES;
my %pristine = map { $_ => slurp("$TREE/$UpstreamTest::HOOK_SOURCES{$_}") } @FILES;

my ($root, $rc, $out) = install_hooks(apply => 0);
($rc, $out) = UpstreamTest::run_integrate($root, 'status', '--node', $NODE);
like($out, qr/^hook \S+\s+\Q$_\E\s+not applied$/m, "status on pristine $PVE: $_ not applied") for @FILES;

($rc, $out) = UpstreamTest::run_integrate($root, 'apply', '--node', $NODE);
is($rc, 0, "apply on the real $PVE files exits 0") or diag($out);
unlike($out, qr/does not compile|syntax only/, 'the tool compiled every file against the real modules') or diag($out);
for my $file (@FILES) {
    my $data = slurp("$root$file");
    my $begin = () = $data =~ m/pve-entraid hook begin/g;
    # the realm-api hook has four blocks in Domains.pm (sync type check, pins before the sync write,
    # credential delete, the check of an update as it will be written)
    is($begin, $file =~ m{/API2/Domains\.pm$} ? 4 : 1, "$file: its hook block(s)");
    is($data =~ s/^[ \t]*(?:#|<!--) pve-entraid hook begin.*?pve-entraid hook end.*?\n//msgr, $pristine{$file},
        "$file: nothing but the block(s) added");
}
like(slurp("$root/usr/share/perl5/PVE/AccessControl.pm"),
    qr/PVE::Auth::EntraID->register\(\);.*\n.*\n# pve-entraid hook end\nPVE::Auth::Plugin->init\(\);/,
    'registered right before the real PVE::Auth::Plugin->init()');
like(slurp("$root/usr/share/perl5/PVE/HTTPServer.pm"),
    qr{\|\| \(\$rel_uri eq '/access/openid/auth-url' && \$method eq 'POST'\)\n\s*# pve-entraid hook begin\n\s*\|\| \(\$rel_uri eq '/access/entraid/login'},
    'HTTPServer: entraid calls continue the real list of calls allowed without a ticket');
# pins are written before user.cfg (a failure to write them leaves user.cfg without unpinned
# users) and after the dry run's return (a dry run pins nothing)
like(slurp("$root/usr/share/perl5/PVE/API2/Domains.pm"),
    qr/if \(\$dry_run\) \{\n.*\n.*\n\s*return;\n\s*\}\n\s*# pve-entraid hook begin.*\n.*finish_sync.*\n\s*# pve-entraid hook end.*\n\s*cfs_write_file\("user\.cfg", \$usercfg\);/,
    'Domains.pm: pins written after the dry run returned, before user.cfg');

# perl -T -c of each hooked module with the real upstream modules (what the daemons load)
for my $file (grep { m/\.pm$/ } @FILES) {
    my ($crc, $cout) = run_perl({}, '-c', "$root$file");
    is($crc, 0, "perl -T -c $file (hooked, $PVE)") or diag($cout);
    like($cout, qr/syntax OK/, "$file: syntax OK");
}

($rc, $out) = UpstreamTest::run_integrate($root, 'status', '--node', $NODE);
is($rc, 0, 'status after apply exits 0') or diag($out);
like($out, qr/^hook \S+\s+\Q$_\E\s+applied$/m, "status: $_ applied") for @FILES;

my %applied = map { $_ => slurp("$root$_") } @FILES;
($rc, $out) = UpstreamTest::run_integrate($root, 'apply', '--node', $NODE);
is($rc, 0, 'second apply exits 0');
is_deeply({ map { $_ => slurp("$root$_") } @FILES }, \%applied, 'apply is idempotent');

($rc, $out) = UpstreamTest::run_integrate($root, 'revert', '--node', $NODE);
is($rc, 0, 'revert exits 0') or diag($out);
is(slurp("$root$_"), $pristine{$_}, "revert: $_ byte-identical to upstream $PVE") for @FILES;

# an upstream release that moved one anchor of the realm-api hook (here the update check's,
# rewritten with the same meaning): apply applies no hook but the realm type registration
# (exit 2, node marker "not-integrated"). The entraid realms stay in domains.cfg through other
# realm writes on this node, entraid realms are not changed here, and nothing of the login is
# reachable (review 1: nothing fails open; issue 21: no partial hook set)
setup_etc_pve(domains => "pam: pam\n\tcomment Linux PAM standard authentication\n\n"
    . "pve: pve\n\tcomment Proxmox VE authentication server\n\n"
    . "entraid: corp\n\ttenant-id $TENANT\n\tclient-id $CLIENT_ID\n\n");
($root) = install_hooks(apply => 0);
my $domains_pm = "$root/usr/share/perl5/PVE/API2/Domains.pm";
my $moved = slurp($domains_pm) =~ s/if \(\$delete_pw \|\| defined\(\$password\)\) \{/if (defined(\$password) || \$delete_pw) {/r;
isnt($moved, slurp($domains_pm), 'the update check\'s anchor rewritten');
spew($domains_pm, $moved);
($rc, $out) = UpstreamTest::run_integrate($root, 'apply', '--node', $NODE);
is($rc, 2, 'apply exits 2: not integrated') or diag($out);
like($out, qr/^pve-entraid: NOT INTEGRATED: \/usr\/share\/perl5\/PVE\/API2\/Domains\.pm: anchor 'if \(\$delete_pw \|\| defined\(\$password\)\) \{' not found\.$/m,
    'the message names the file and the anchor');
is(slurp("$root$_"), $_ eq '/usr/share/perl5/PVE/API2/Domains.pm' ? $moved : $pristine{$_}, "$_: no hook")
    for grep { $_ ne '/usr/share/perl5/PVE/AccessControl.pm' } @FILES;
# what the tool wrote into the root's /etc/pve, in the one PVE reads here
spew("/etc/pve/nodes/$NODE/pve-entraid", slurp("$root/etc/pve/nodes/$NODE/pve-entraid"));
load_pve(root => $root);
my ($ticket, $csrf) = login_ticket('root@pam');
my $res = http_request('PUT', '/access/domains/pve', { comment => 'changed here' }, ticket => $ticket, csrf => $csrf);
is($res->{status}, 200, 'another realm is changed on this node') or diag($res->{message});
like(slurp('/etc/pve/domains.cfg'), qr/comment changed here/, 'domains.cfg written');
like(section_of(slurp('/etc/pve/domains.cfg'), 'entraid', 'corp'), qr/^\ttenant-id \Q$TENANT\E$/m,
    'the entraid realm is still in domains.cfg after that write');
$res = http_request('PUT', '/access/domains/corp', { comment => 'x' }, ticket => $ticket, csrf => $csrf);
isnt($res->{status}, 200, 'an entraid realm is not changed on this node');
like($res->{message}, qr/not integrated on this node/, 'saying why');
$res = http_request('POST', '/access/domains', { type => 'entraid', realm => 'moved', 'tenant-id' => $TENANT,
    'client-id' => $CLIENT_ID, 'client-key' => $SECRET }, ticket => $ticket, csrf => $csrf);
isnt($res->{status}, 200, 'nor added');
ok(!-e '/etc/pve/priv/entraid/moved.secret', 'no secret stored');
$res = http_request('POST', '/access/entraid/auth-url', { realm => 'corp', 'redirect-url' => 'https://pve1:8006' });
isnt($res->{status}, 200, 'the login path is not there');
$res = http_request('DELETE', '/access/domains/corp', {}, ticket => $ticket, csrf => $csrf);
is($res->{status}, 200, 'an entraid realm can still be deleted') or diag($res->{message});

done_testing();
