#!/usr/bin/perl -T
# One Proxmox VE release of tests/releases/RELEASES (tests/releases/run.sh points the harness at
# its trees): the hooks apply, report and revert byte-exact on its six real files, every hooked
# module passes `perl -T -c`, the realm type registers, a realm is added, edited and deleted
# through its real Domains API, a user logs in through PVE::API2::EntraID against the emulator,
# and a realm sync runs through its real pveum and the sync hook.
# Where a hook's anchor is not in that release, the tool must refuse the integration: that is
# checked instead (the message names the file, no hook but the realm type registration, marker
# "not-integrated", entraid realms kept and not changed on this node).
# The last line says what the release got: "# verdict: pass" or "# verdict: refused".

use strict;
use warnings;

use JSON::PP;

use UpstreamTest;
use Test::More;

my @FILES = sort keys %UpstreamTest::HOOK_SOURCES;
my %pristine = map { $_ => slurp("$TREE/$UpstreamTest::HOOK_SOURCES{$_}") } @FILES;
my $release = ($ENV{PVE_ENTRAID_RELEASE} // $PVE) =~ s/[^\w.-]//gr;

setup_etc_pve();
my ($root, $rc, $out) = install_hooks(apply => 0);
($rc, $out) = UpstreamTest::run_integrate($root, 'status', '--node', $NODE);
my %missing = map { $_ => 1 } $out =~ m/^hook \S+\s+(\S+)\s+anchor (?:missing|ambiguous)/mg;
unlike($out, qr/^hook \S+\s+\S+\s+applied/m, "status on pristine $release: nothing applied") or diag($out);

($rc, $out) = UpstreamTest::run_integrate($root, 'apply', '--node', $NODE);
if (%missing) {
    refused($rc, $out);
} else {
    integrated($rc, $out);
}
done_testing();

# --- a release whose files lack an anchor: no hook is applied, except the realm type
# registration (so that this node keeps entraid realms in domains.cfg), marked
# "not-integrated", and no entraid realm is changed here
sub refused {
    my ($rc, $out) = @_;
    isnt($rc, 0, "apply on $release fails: an anchor is missing");
    note($out);
    # (status, run before, listed every file whose anchor is missing)
    my $named = join('|', map { quotemeta } sort keys %missing);
    like($out, qr/$named/, 'the message names a file whose anchor is missing');
    my $registration = '/usr/share/perl5/PVE/AccessControl.pm';
    my $kept = slurp("$root$registration") ne $pristine{$registration};
    for my $file (@FILES) {
        my $data = slurp("$root$file");
        if ($file eq $registration && $kept) {
            my $blocks = () = $data =~ m/pve-entraid hook begin/g;
            ok($blocks == 1 && $data =~ m/PVE::Auth::EntraID->register\(\)/
                && ($data =~ s/^[ \t]*# pve-entraid hook begin.*?pve-entraid hook end.*?\n//msr) eq $pristine{$file},
                "$file: only the realm type registration");
        } else {
            ok($data eq $pristine{$file}, "$file left byte-identical");
        }
    }
    my $marker = slurp("$root/etc/pve/nodes/$NODE/pve-entraid");
    if ($kept) {
        like($marker // '', qr/ not-integrated$/m, 'node marker: not-integrated');
    } else {
        ok(!defined($marker), 'no node marker: this node does not know the realm type');
    }
    # this node's /etc/pve as the tool left it, with an entraid realm made on another node
    # (data read from files is tainted, and taints the whole statement that uses it)
    my ($line) = ($marker // '') =~ m/^(pve-entraid [^\n]*\n)$/;
    my ($domains) = slurp('/etc/pve/domains.cfg') =~ m/^(.*)$/s;
    unlink("/etc/pve/nodes/$NODE/pve-entraid");
    spew("/etc/pve/nodes/$NODE/pve-entraid", $line) if defined($line);
    spew('/etc/pve/domains.cfg', "${domains}entraid: entra\n\tclient-id $CLIENT_ID\n\ttenant-id $TENANT\n\n");
    load_pve(root => $root);
    my ($handler) = PVE::API2::AccessControl->find_handler('POST', '/entraid/login', {});
    isnt($handler // '', 'PVE::API2::EntraID', 'no /access/entraid API');
    if ($kept) {
        is(PVE::Auth::Plugin->private()->{plugins}->{entraid}, 'PVE::Auth::EntraID',
            'the kept registration registers the realm type');
        ok(PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{entra}, 'the entraid realm is kept');
    }
    my ($ticket, $csrf) = login_ticket('root@pam');
    my $req = sub { my ($m, $p, $param) = @_; http_request($m, $p, $param, ticket => $ticket, csrf => $csrf) };
    isnt($req->('PUT', '/access/domains/entra', { comment => 'x' })->{status}, 200, 'it is not changed here');
    isnt($req->('POST', '/access/domains', { realm => 'other', type => 'entraid', 'tenant-id' => $TENANT,
        'client-id' => $CLIENT_ID })->{status}, 200, 'no entraid realm is added here');
    like(slurp('/etc/pve/domains.cfg'), qr/^entraid: entra$/m, 'domains.cfg still holds it');
    note('verdict: refused');
}

sub integrated {
    my ($rc, $out) = @_;
    is($rc, 0, "apply on $release exits 0") or diag($out);
    unlike($out, qr/does not compile|syntax only/, 'the tool compiled every file against the real modules') or diag($out);
    for my $file (@FILES) {
        my $data = slurp("$root$file");
        ok(($data =~ s/^[ \t]*(?:#|<!--) pve-entraid hook begin.*?pve-entraid hook end.*?\n//msgr) eq $pristine{$file},
            "$file: nothing but the hook block(s) added");
    }
    # perl -T -c of each hooked module with the real modules of the release
    for my $file (grep { m/\.pm$/ } @FILES) {
        my ($crc, $cout) = run_perl({}, '-c', "$root$file");
        is($crc, 0, "perl -T -c $file (hooked)") or diag($cout);
    }
    ($rc, $out) = UpstreamTest::run_integrate($root, 'status', '--node', $NODE);
    is($rc, 0, 'status after apply exits 0') or diag($out);
    like($out, qr/^hook \S+\s+\Q$_\E\s+applied$/m, "status: $_ applied") for @FILES;
    # the realm type registers in the real PVE::AccessControl
    my @warnings;
    {
        local $SIG{__WARN__} = sub { push @warnings, @_ };
        load_pve(root => $root);
    }
    is_deeply(\@warnings, [], 'the hooked modules load without a warning') or diag(@warnings);
    my $pdata = PVE::Auth::Plugin->private();
    is($pdata->{plugins}->{entraid}, 'PVE::Auth::EntraID', 'realm type entraid registered');
    ok((grep { $_ eq 'entraid' } @{ $pdata->{propertyList}->{type}->{enum} }), 'in the type enum');

    # add, edit, delete through the real Domains API (real auth_handler and rest_handler)
    my ($ticket, $csrf) = login_ticket('root@pam');
    my $req = sub { my ($m, $p, $param) = @_; http_request($m, $p, $param, ticket => $ticket, csrf => $csrf) };
    my $res = $req->('POST', '/access/domains', { realm => 'entra', type => 'entraid', 'tenant-id' => $TENANT,
        'client-id' => $CLIENT_ID, 'client-key' => $SECRET, 'groups-map' => "$ALICE_GROUP=admins",
        'groups-autocreate' => 1, autocreate => 1 });
    is($res->{status}, 200, 'realm added') or diag($res->{message});
    like(slurp('/etc/pve/domains.cfg'), qr/^entraid: entra$/m, 'written by the real SectionConfig');
    unlike(slurp('/etc/pve/domains.cfg'), qr/\Q$SECRET\E/, 'the secret is not in domains.cfg');
    is(slurp('/etc/pve/priv/entraid/entra.secret'), $SECRET, 'but in priv');
    $res = $req->('PUT', '/access/domains/entra', { comment => 'edited' });
    is($res->{status}, 200, 'realm edited') or diag($res->{message});
    is($req->('GET', '/access/domains/entra')->{data}->{comment}, 'edited', 'read back');
    # delete= goes through the realm-api hook in upstream's delete loop
    $res = $req->('PUT', '/access/domains/entra', { delete => 'comment' });
    is($res->{status}, 200, 'an option deleted') or diag($res->{message});
    ok(!defined($req->('GET', '/access/domains/entra')->{data}->{comment}), 'it is gone');
    $res = $req->('PUT', '/access/domains/entra', { delete => 'client-key' });
    is($res->{status}, 200, 'the credential deleted') or diag($res->{message});
    ok(!-e '/etc/pve/priv/entraid/entra.secret', 'the hook handed it to the plugin: the secret is gone');
    $res = $req->('PUT', '/access/domains/entra', { 'client-key' => $SECRET });
    is($res->{status}, 200, 'and set again') or diag($res->{message});
    is(slurp('/etc/pve/priv/entraid/entra.secret'), $SECRET, 'in priv');
    $res = $req->('PUT', '/access/domains/entra', { 'tenant-id' => 'common' });
    isnt($res->{status}, 200, 'an update the realm check refuses (common without allowed-tenants)');
    $res = $req->('POST', '/access/domains', { realm => 'gone', type => 'entraid', 'tenant-id' => $TENANT,
        'client-id' => $CLIENT_ID, 'client-key' => $SECRET });
    is($res->{status}, 200, 'a second realm added') or diag($res->{message});
    is($req->('DELETE', '/access/domains/gone')->{status}, 200, 'and deleted');
    unlike(slurp('/etc/pve/domains.cfg'), qr/gone/, 'its section removed');
    ok(!-e '/etc/pve/priv/entraid/gone.secret', 'and its secret');

    # a login through the real API stack against the emulator
    my $url = start_emulator(optional_claims => \@OPTIONAL_CLAIMS);
    my $redirect = 'https://pve1.example.com:8006';
    my $props = sub { PVE::API2::EntraID->map_method_by_name($_[0])->{parameters}->{properties} };
    my $key = join('', map { chr(int(rand(256))) } 1 .. 32);
    require Digest::SHA;
    require MIME::Base64;
    my %hash = $props->('auth_url')->{'binding-hash'}
        ? ('binding-hash' => MIME::Base64::encode_base64url(Digest::SHA::sha256($key))) : ();
    my %bkey = $props->('login')->{'binding-key'} ? ('binding-key' => MIME::Base64::encode_base64url($key)) : ();
    $res = http_request('POST', '/access/entraid/auth-url', { realm => 'entra', 'redirect-url' => $redirect, %hash });
    is($res->{status}, 200, 'auth-url without a ticket') or diag($res->{message});
    my ($code, $state) = browser_authorize($res->{data}, 'alice@contoso.example');
    $res = http_request('POST', '/access/entraid/login',
        { code => $code, state => $state, 'redirect-url' => $redirect, realm => 'entra', %bkey });
    is($res->{status}, 200, 'login without a ticket') or diag($res->{message});
    my $userid = 'alice@contoso.example@entra';
    is($res->{data}->{username}, $userid, 'as alice');
    my ($verified) = PVE::AccessControl::verify_ticket($res->{data}->{ticket} // '', 1);
    is($verified, $userid, 'the real verify_ticket accepts the ticket');
    my $auth = eval { auth_handler('GET', '/access/permissions', $res->{data}->{ticket}, $res->{data}->{CSRFPreventionToken}) };
    is($auth->{userid}, $userid, 'the real auth_handler lets it in') or diag($@);
    ok(PVE::Cluster::cfs_read_file('user.cfg')->{groups}->{admins}->{users}->{$userid}, 'user made, in the mapped group');

    # a realm sync through the real pveum: the sync hook lets the type through and pins the users
    ($rc, $out) = run_perl({}, '-e', 'require PVE::Auth::EntraID; $PVE::Auth::EntraID::AUTHORITY_OVERRIDE = shift;'
        . ' $PVE::Auth::EntraID::GRAPH_OVERRIDE = $PVE::Auth::EntraID::AUTHORITY_OVERRIDE;'
        . ' my ($cli) = shift =~ m/^(.*)$/; $0 = "pveum"; do $cli; die $@ if $@;',
        $url, "$TREE/pve-access-control/src/pveum", 'realm', 'sync', 'entra', '--scope', 'both');
    is($rc, 0, 'pveum realm sync entra') or diag($out);
    like($out, qr/^adding user 'bob\@contoso\.example\@entra'$/m, 'adds bob') or diag($out);
    ok(PVE::Cluster::cfs_read_file('user.cfg')->{users}->{'bob@contoso.example@entra'}, 'bob in user.cfg');
    my $pins = eval { decode_json(slurp('/etc/pve/priv/entraid/entra.identities.json')) } // {};
    is($pins->{'bob@contoso.example'}->{tid}, $TENANT, 'bob pinned by the sync hook');

    # revert last (the modules are loaded): byte-identical files
    ($rc, $out) = UpstreamTest::run_integrate($root, 'revert', '--node', $NODE);
    is($rc, 0, 'revert exits 0') or diag($out);
    ok(slurp("$root$_") eq $pristine{$_}, "revert: $_ byte-identical") for @FILES;
    note('verdict: pass');
}
