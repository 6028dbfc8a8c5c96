#!/usr/bin/perl -T
# realm sync of an entraid realm through the REAL pveum and PVE::API2::Domains sync code (issue
# 12): the realm-api hook lets the type through, PVE::Auth::EntraID's get_users/get_groups read
# the emulator's Graph, and upstream's own code applies scope, remove-vanished, enable-new and
# dry-run to user.cfg

use strict;
use warnings;

use File::Temp;
use JSON::PP;
use Digest::SHA qw(sha256);
use MIME::Base64 qw(encode_base64url);

use UpstreamTest;
use Test::More;

my $OPS_GROUP = '6f7e8d9c-1111-4111-8111-000000000002';
my $DAVE_OID = '0e0e0e0e-0000-4000-8000-000000000d0e';
my $ERIN_OID = '0e0e0e0e-0000-4000-8000-000000000e1e';
my $priv = '/etc/pve/priv/entraid';

# the emulator's alice (admins), bob (admins, operators), a guest and a user of another tenant,
# plus dave (admins), enabled or not, and erin (admins), disabled
my $tmp = File::Temp->newdir();
sub directory_with_dave {
    my ($enabled) = @_;
    my $file = "$tmp/dave-" . ($enabled ? 'on' : 'off') . '.json';
    spew($file, encode_json({ users => [{
        upn => 'Dave@contoso.example', oid => $DAVE_OID, given_name => 'Dave', family_name => 'Example',
        email => 'dave@contoso.example', groups => [$ALICE_GROUP], account_enabled => $enabled ? \1 : \0,
    }, {
        upn => 'erin@contoso.example', oid => $ERIN_OID, groups => [$ALICE_GROUP], account_enabled => \0,
    }] }));
    return $file;
}

setup_etc_pve(users => join('', map { "$_\n" }
    'user:root@pam:1:0:::root@example.com:::',
    'user:eve@pam:1:0:::::::',
    'user:gone@entra:1:0:::::::',
    'user:other@pve:1:0:::::::',
    'group:admins:eve@pam:Admins:',
    'group:hand-entra:other@pve:made by hand:',
    'group:unrelated:gone@entra,other@pve::',
    '',
    'acl:1:/vms:gone@entra:PVEAuditor:',
));
load_pve();
my $url = start_emulator(config => directory_with_dave(1, optional_claims => \@OPTIONAL_CLAIMS));

my $res = api_call('POST', '/access/domains', {
    realm => 'entra', type => 'entraid', 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID,
    'client-key' => $SECRET, 'groups-map' => "$ALICE_GROUP=admins;$OPS_GROUP=ops",
    'groups-autocreate' => 1, 'sync-defaults-options' => 'scope=both,enable-new=1',
});

# the real pveum in a fresh process, pointed at the emulator by the test-only package variables
sub pveum {
    return run_perl({}, '-e', 'require PVE::Auth::EntraID; $PVE::Auth::EntraID::AUTHORITY_OVERRIDE = shift;'
        . ' $PVE::Auth::EntraID::GRAPH_OVERRIDE = $PVE::Auth::EntraID::AUTHORITY_OVERRIDE;'
        . ' my ($cli) = shift =~ m/^(.*)$/; $0 = "pveum"; do $cli; die $@ if $@;',
        $url, "$TREE/pve-access-control/src/pveum", @_);
}

my $before = slurp('/etc/pve/user.cfg');
my ($rc, $out) = pveum('realm', 'sync', 'entra', '--dry-run', '1', '--remove-vanished', 'acl;entry');
is($rc, 0, "pveum realm sync entra --dry-run 1 ($PVE)") or diag($out);
like($out, qr/\(dry test run\) starting sync for realm entra/, 'a dry run');
like($out, qr/^adding user 'alice\@contoso\.example\@entra'$/m, 'would add alice (name as at login)');
like($out, qr/^adding user 'bob\@contoso\.example\@entra'$/m, 'would add bob');
like($out, qr/^adding user 'dave\@contoso\.example\@entra'$/m, 'would add dave, lower-cased as at login');
like($out, qr/^remove user 'gone\@entra'$/m, 'would remove the vanished user');
like($out, qr/^not adding user 'erin\@contoso\.example\@entra': its Entra account is disabled$/m,
    'a disabled Entra account is not created (upstream would enable it per enable-new)');
like($out, qr/^purge users 'gone\@entra' ACL entries$/m, 'and its ACLs');
like($out, qr/^updating group 'admins'$/m, 'would update the mapped group');
like($out, qr/^adding group 'ops'$/m, 'would create the mapped group ops');
unlike($out, qr/guest[_\@]fabrikam|carol\@/i, 'guest and other-tenant users are not synced');
unlike($out, qr/remove group/, 'no group removed');
like($out, qr/NOTE: Dry test run, changes were NOT written/, 'says nothing was written');
is(slurp('/etc/pve/user.cfg'), $before, 'user.cfg unchanged');
ok(!-e "$priv/entra.identities.json", 'no identity pins written by a dry run');

($rc, $out) = pveum('realm', 'sync', 'entra', '--remove-vanished', 'acl;entry');
is($rc, 0, 'real run') or diag($out);
my $cfg = PVE::Cluster::cfs_read_file('user.cfg');
my $u = $cfg->{users};
ok($u->{"$_\@contoso.example\@entra"}, "$_ added") for qw(alice bob dave);
is($u->{'alice@contoso.example@entra'}->{firstname}, 'Alice', 'firstname from Graph');
is($u->{'alice@contoso.example@entra'}->{email}, 'alice@contoso.example', 'email from Graph');
ok(!$u->{'gone@entra'}, 'vanished user removed (remove-vanished entry)');
ok(!$u->{'erin@contoso.example@entra'}, 'disabled Entra account not created');
unlike(slurp('/etc/pve/user.cfg'), qr/acl:1:\/vms:gone\@entra/, 'its ACL purged (remove-vanished acl)');
ok($u->{'eve@pam'} && $u->{'other@pve'} && $u->{'root@pam'}, 'users of other realms untouched');
is_deeply([sort keys %{ $cfg->{groups}->{admins}->{users} }],
    ['alice@contoso.example@entra', 'bob@contoso.example@entra', 'dave@contoso.example@entra', 'eve@pam'],
    'admins: the synced members, and eve@pam kept');
is($cfg->{groups}->{admins}->{comment}, 'Admins', 'admins keeps its comment');
is_deeply([sort keys %{ $cfg->{groups}->{ops}->{users} }], ['bob@contoso.example@entra'], 'ops created with bob');
is_deeply($cfg->{groups}->{'hand-entra'}, { users => { 'other@pve' => 1 }, comment => 'made by hand' },
    'a *-entra group outside the map is untouched');
ok($cfg->{groups}->{unrelated}->{users}->{'other@pve'}, 'a group outside the map keeps its members');
# issue 19.5: as 'pveum user delete' does, a user the sync removes is in no group any more
ok(!$cfg->{groups}->{unrelated}->{users}->{'gone@entra'}, 'the removed user left the group outside the map');
unlike(slurp('/etc/pve/user.cfg'), qr/gone\@entra/, 'user.cfg names the removed user nowhere');
my $pins = decode_json(slurp("$priv/entra.identities.json"));
is_deeply($pins->{'dave@contoso.example'}, { tid => $TENANT, oid => $DAVE_OID }, 'synced user pinned to oid+tid');
is($pins->{'alice@contoso.example'}->{oid}, $ALICE_OID, 'alice pinned');

# remove-vanished 'entry' alone: upstream deletes the user but leaves its ACL entries; they go
# with the user as 'pveum user delete' removes them, so that no later user of that name inherits
# them (groups of other realms' look-alikes and the mapped groups alike)
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
$cfg->{users}->{'left@entra'} = { enable => 1 };
$cfg->{groups}->{unrelated}->{users}->{'left@entra'} = 1;
$cfg->{groups}->{'hand-entra'}->{users}->{'left@entra'} = 1;
$cfg->{groups}->{admins}->{users}->{'left@entra'} = 1;
PVE::Cluster::cfs_write_file('user.cfg', $cfg);
$res = api_call('PUT', '/access/acl', { path => '/vms', users => 'left@entra', roles => 'PVEAuditor' });
like(slurp('/etc/pve/user.cfg'), qr/^acl:1:\/vms:left\@entra:PVEAuditor:$/m, 'left@entra has an ACL entry');
($rc, $out) = pveum('realm', 'sync', 'entra', '--remove-vanished', 'entry');
is($rc, 0, 'sync with remove-vanished entry alone') or diag($out);
like($out, qr/^remove user 'left\@entra'$/m, 'removes the vanished user');
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
ok(!$cfg->{users}->{'left@entra'}, 'left@entra removed');
ok(!$cfg->{groups}->{$_}->{users}->{'left@entra'}, "and out of group $_") for qw(unrelated hand-entra admins);
ok($cfg->{groups}->{unrelated}->{users}->{'other@pve'} && $cfg->{groups}->{'hand-entra'}->{users}->{'other@pve'},
    'the other members stay');
unlike(slurp('/etc/pve/user.cfg'), qr/left\@entra/, 'no ACL entry nor group names left@entra');
ok($cfg->{users}->{"$_\@contoso.example\@entra"}, "$_ stays") for qw(alice bob dave);

# realm-sync jobs: the real create handler of PVE::API2::Jobs::RealmSync (hooked). pve-manager's
# PVE::Jobs registers jobs.cfg, but also loads the vzdump job type of pve-guest-common (not among
# the pinned trees), so this registers the realm-sync job type and jobs.cfg as PVE::Jobs does
# (before the API module: its schema is made from the registered job types when it loads)
require PVE::Jobs::RealmSync;
PVE::Jobs::RealmSync->register();
PVE::Job::Registry->init();
require PVE::API2::Jobs::RealmSync;
PVE::Cluster::cfs_register_file('jobs.cfg',
    sub { PVE::Job::Registry->parse_config(@_) }, sub { PVE::Job::Registry->write_config(@_) });
eval { PVE::API2::Jobs::RealmSync->create_job({ id => 'entra-nightly', realm => 'entra', schedule => 'daily', scope => 'both' }) };
is($@, '', 'a realm-sync job can be created for the entraid realm');
like(slurp('/etc/pve/jobs.cfg'), qr/^realm-sync: entra-nightly\n(?:\t.*\n)*\trealm entra$/m, 'job in jobs.cfg');
eval { PVE::API2::Jobs::RealmSync->create_job({ id => 'pam-nightly', realm => 'pam', schedule => 'daily', scope => 'both' }) };
# (the second message: upstream with contrib/upstream, where the plugin says whether it can sync)
like($@, qr/Only LDAP\/AD realms can be synced|Realms of type 'pam' cannot be synced/, 'other realm types are still refused');

# Entra disables dave; Graph throttles the first listing (429 with Retry-After)
stop_emulator();
$url = start_emulator(config => directory_with_dave(0, optional_claims => \@OPTIONAL_CLAIMS));
emulator_control('{"fail_next": {"endpoint": "graph", "mode": "throttle:1", "count": 1}}');
($rc, $out) = pveum('realm', 'sync', 'entra');
is($rc, 0, 'sync after Entra disabled dave, through a throttled answer') or diag($out);
$u = PVE::Cluster::cfs_read_file('user.cfg')->{users};
is($u->{'dave@contoso.example@entra'}->{enable}, 0, 'dave disabled');
ok(!PVE::Cluster::cfs_read_file('user.cfg')->{groups}->{admins}->{users}->{'dave@contoso.example@entra'},
    'and out of the mapped groups (a sync of groups alone would not disable him)');
is($u->{'alice@contoso.example@entra'}->{enable}, 1, 'alice still enabled');

# an administrator disables alice in PVE: a sync (which copies the synced attributes over
# without 'properties') does not enable her again
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
$cfg->{users}->{'alice@contoso.example@entra'}->{enable} = 0;
PVE::Cluster::cfs_write_file('user.cfg', $cfg);
($rc, $out) = pveum('realm', 'sync', 'entra', '--remove-vanished', 'acl;entry');
is($rc, 0, 'sync beside a user disabled in PVE') or diag($out);
is(PVE::Cluster::cfs_read_file('user.cfg')->{users}->{'alice@contoso.example@entra'}->{enable}, 0,
    'an enabled Entra account does not re-enable a user disabled in PVE');
# and dave, enabled again in PVE while Entra still has him disabled, is disabled again, also
# with 'properties' (where upstream keeps the user's enable)
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
$cfg->{users}->{'dave@contoso.example@entra'}->{enable} = 1;
PVE::Cluster::cfs_write_file('user.cfg', $cfg);
($rc, $out) = pveum('realm', 'sync', 'entra', '--remove-vanished', 'acl;entry;properties');
is($rc, 0, 'sync with remove-vanished properties') or diag($out);
like($out, qr/^disabling user 'dave\@contoso\.example\@entra': its Entra account is disabled$/m, 'says so');
is(PVE::Cluster::cfs_read_file('user.cfg')->{users}->{'dave@contoso.example@entra'}->{enable}, 0,
    'a disabled Entra account disables its user whatever upstream keeps');
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
$cfg->{users}->{'alice@contoso.example@entra'}->{enable} = 1;
$cfg->{users}->{'alice@contoso.example@entra'}->{comment} = 'kept';
PVE::Cluster::cfs_write_file('user.cfg', $cfg);

# a name bound to another identity is not synced to it, and kept as it is: upstream would
# otherwise remove it as vanished (entry, acl) or overwrite it (properties)
$pins->{'alice@contoso.example'}->{oid} = $DAVE_OID;
spew("$priv/entra.identities.json", encode_json($pins));
my $alice_before = PVE::Cluster::cfs_read_file('user.cfg')->{users}->{'alice@contoso.example@entra'};
($rc, $out) = pveum('realm', 'sync', 'entra', '--remove-vanished', 'acl;entry;properties');
is($rc, 0, 'sync while a pin names another identity') or diag($out);
like($out, qr/not syncing user 'alice\@contoso\.example\@entra', kept as it is: it is bound to another Entra identity/,
    'pin mismatch: not synced, saying why');
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
is_deeply($cfg->{users}->{'alice@contoso.example@entra'}, $alice_before, 'alice kept exactly as she was');
ok($cfg->{groups}->{admins}->{users}->{'alice@contoso.example@entra'}, 'and in her groups');
is(decode_json(slurp("$priv/entra.identities.json"))->{'alice@contoso.example'}->{oid}, $DAVE_OID, 'the pin unchanged');
$pins->{'alice@contoso.example'}->{oid} = $ALICE_OID;
spew("$priv/entra.identities.json", encode_json($pins));

# Graph refusing the app: a clear error with the permission to grant, nothing changed
$before = slurp('/etc/pve/user.cfg');
emulator_control('{"fail_next": {"endpoint": "graph", "mode": "status500", "count": 10}}');
($rc, $out) = pveum('realm', 'sync', 'entra', '--remove-vanished', 'entry');
# (pveum's exit status does not tell: upstream's CLI worker reports the error in its output)
like($out, qr/graph\.error/, 'a Graph failure fails the sync with the graph.error code') or diag($out);
unlike($out, qr/^remove user/m, 'before any change is computed');
is(slurp('/etc/pve/user.cfg'), $before, 'and changes nothing (no user removed)');

# app roles and a verified-domain tenant: the map names app role values; alice holds PVE.Admin
# herself, PVE.Auditor is assigned to the operators group (bob); frank is in a group nested in
# operators, so (as in Entra) he holds the operators group but not its role; the nested group
# and the guest are assigned to the app with Default Access, which it requires; the pins record
# the tenant GUID from discovery
my $NESTED_GROUP = '6f7e8d9c-1111-4111-8111-0000000000e5';
my $FRANK_OID = '0f0f0f0f-0000-4000-8000-000000000f0f';
my $GUEST_OID = '0c0c0c0c-0000-4000-8000-000000000c0c';
sub directory_with_frank {
    my ($frank_assigned, $assignment_required) = @_;
    my $file = "$tmp/roles-" . ($frank_assigned ? 'frank' : 'nofrank') . ($assignment_required ? '' : '-open') . '.json';
    spew($file, encode_json({
        apps => [{
            client_id => $CLIENT_ID, secret => $SECRET, group_roles => { 'PVE.Auditor' => [$OPS_GROUP] },
            assigned => [$GUEST_OID, $frank_assigned ? $NESTED_GROUP : ()],
            assignment_required => $assignment_required ? \1 : \0,
        }],
        subgroups => { $OPS_GROUP => [$NESTED_GROUP] },
        users => [{ upn => 'frank@contoso.example', oid => $FRANK_OID, groups => [$NESTED_GROUP] }],
    }));
    return $file;
}
stop_emulator();
$url = start_emulator(config => directory_with_frank(1, 1, optional_claims => \@OPTIONAL_CLAIMS));
api_call('POST', '/access/domains', {
    realm => 'roles', type => 'entraid', 'tenant-id' => 'contoso.example', 'client-id' => $CLIENT_ID,
    'client-key' => $SECRET, 'groups-map' => 'PVE.Admin=roleadmins;PVE.Auditor=auditors',
    'groups-autocreate' => 1,
});
($rc, $out) = pveum('realm', 'sync', 'roles', '--scope', 'both', '--enable-new', '1', '--dry-run', '1');
is($rc, 0, 'dry run of a role-mapped realm') or diag($out);
ok(!-e "$priv/roles.identities.json", 'the dry run pins nothing');
($rc, $out) = pveum('realm', 'sync', 'roles', '--scope', 'both', '--enable-new', '1');
is($rc, 0, 'sync of a role-mapped realm on a verified domain') or diag($out);
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
is_deeply([sort grep { m/\@roles$/ } keys %{ $cfg->{users} }], ['alice@contoso.example@roles', 'bob@contoso.example@roles'],
    'the app role holders, directly and through a group (not frank, in a nested group)');
is_deeply([sort keys %{ $cfg->{groups}->{roleadmins}->{users} }], ['alice@contoso.example@roles'], 'PVE.Admin holders');
is_deeply([sort keys %{ $cfg->{groups}->{auditors}->{users} }], ['bob@contoso.example@roles'], 'PVE.Auditor holders');
$pins = decode_json(slurp("$priv/roles.identities.json"));
is_deeply($pins->{'bob@contoso.example'}, { tid => $TENANT, oid => '0b0b0b0b-0000-4000-8000-000000000b0b' },
    'pinned to the tenant GUID behind the domain');

# sync-users assigned: every user assigned to the app (alice by her role, bob as a direct member
# of operators, frank as a direct member of the nested group; the guest, but allow-guests is off),
# in the groups the map gives them
api_call('POST', '/access/domains', {
    realm => 'assigned', type => 'entraid', 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID,
    'client-key' => $SECRET, 'groups-map' => "PVE.Auditor=auditing;$OPS_GROUP=operators",
    'groups-autocreate' => 1, 'sync-users' => 'assigned',
});
# frank was made by an administrator (with an ACL) before any login or sync: a sync does not bind
# him to the Entra account of that name (as a login would not), nor remove him as vanished
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
$cfg->{users}->{'frank@contoso.example@assigned'} = { enable => 1, expire => 0, comment => 'made by hand' };
PVE::Cluster::cfs_write_file('user.cfg', $cfg);
api_call('PUT', '/access/acl', { path => '/vms', users => 'frank@contoso.example@assigned', roles => 'PVEAuditor' });
($rc, $out) = pveum('realm', 'sync', 'assigned', '--scope', 'both', '--remove-vanished', 'acl;entry');
is($rc, 0, 'sync beside a user made by hand') or diag($out);
like($out, qr/not syncing user 'frank\@contoso\.example\@assigned', kept as it is: it exists but is bound to no Entra identity yet; an administrator must approve it with 'pve-entraid pin' \(tid $TENANT, oid $FRANK_OID\)/,
    'an existing user is not bound by a sync, saying how to approve it');
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
is($cfg->{users}->{'frank@contoso.example@assigned'}->{comment}, 'made by hand', 'kept as it is');
like(slurp('/etc/pve/user.cfg'), qr/^acl:1:\/vms:frank\@contoso\.example\@assigned:PVEAuditor:$/m, 'with its ACL');
ok(!$cfg->{groups}->{operators}->{users}->{'frank@contoso.example@assigned'}, 'and not put into mapped groups');
ok(!exists(decode_json(slurp("$priv/assigned.identities.json"))->{'frank@contoso.example'}), 'not pinned');
($rc, $out) = run_entraid_cli('pin', 'assigned', 'frank@contoso.example@assigned', '--tid', $TENANT, '--oid', $FRANK_OID);
is($rc, 0, 'the administrator approves the binding') or diag($out);
($rc, $out) = pveum('realm', 'sync', 'assigned', '--scope', 'both', '--enable-new', '1');
is($rc, 0, 'sync of the users assigned to the app') or diag($out);
like($out, qr/^skipping Entra user $GUEST_OID: guest account/m, 'the assigned guest is skipped, saying why');
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
is_deeply([sort grep { m/\@assigned$/ } keys %{ $cfg->{users} }],
    [map { "$_\@contoso.example\@assigned" } qw(alice bob frank)], 'every assigned user but the guest');
is_deeply([sort keys %{ $cfg->{groups}->{auditing}->{users} }], ['bob@contoso.example@assigned'], 'the role of the operators group');
is_deeply([sort keys %{ $cfg->{groups}->{operators}->{users} }],
    ['bob@contoso.example@assigned', 'frank@contoso.example@assigned'], 'the operators group, nested members too');
# frank's assignment is removed in Entra: the next sync deprovisions him
stop_emulator();
$url = start_emulator(config => directory_with_frank(0, 1, optional_claims => \@OPTIONAL_CLAIMS));
($rc, $out) = pveum('realm', 'sync', 'assigned', '--scope', 'both', '--remove-vanished', 'acl;entry');
is($rc, 0, 'sync after an assignment is removed') or diag($out);
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
ok(!$cfg->{users}->{'frank@contoso.example@assigned'}, 'the unassigned user is removed (remove-vanished entry)');
ok($cfg->{users}->{'bob@contoso.example@assigned'}, 'the others stay');
is_deeply([sort keys %{ $cfg->{groups}->{operators}->{users} }], ['bob@contoso.example@assigned'], 'and leaves the group');
# a guest (allowed now) is named as its logins name it: by `upn` (the optional claim with
# include_externally_authenticated_upn), its UPN in this directory, before any login
api_call('PUT', '/access/domains/assigned', { 'allow-guests' => 1 });
($rc, $out) = pveum('realm', 'sync', 'assigned', '--scope', 'both', '--enable-new', '1');
is($rc, 0, 'sync with the guest allowed') or diag($out);
ok(PVE::Cluster::cfs_read_file('user.cfg')->{users}->{'guest_fabrikam.example#ext#@contoso.example@assigned'},
    'the guest synced under its UPN, the name its logins get');
# by `preferred_username`, its home tenant's sign-in name, which the directory does not hold:
# synced once a login (here the administrator) has pinned its name
api_call('POST', '/access/domains', {
    realm => 'guests', type => 'entraid', 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID,
    'client-key' => $SECRET, 'sync-users' => 'assigned', 'allow-guests' => 1, 'username-claim' => 'preferred_username',
});
($rc, $out) = pveum('realm', 'sync', 'guests', '--scope', 'both');
like($out, qr/^skipping Entra user $GUEST_OID: guest account that has not logged in yet/m, 'a guest without a pin is skipped')
    or diag($out);
($rc, $out) = run_entraid_cli('pin', 'guests', 'guest@fabrikam.example@guests', '--tid', $TENANT, '--oid', $GUEST_OID);
is($rc, 0, "the guest's pin, as its first login makes it") or diag($out);
($rc, $out) = pveum('realm', 'sync', 'guests', '--scope', 'both', '--enable-new', '1');
is($rc, 0, 'sync with the guest pinned') or diag($out);
ok(PVE::Cluster::cfs_read_file('user.cfg')->{users}->{'guest@fabrikam.example@guests'}, 'the guest synced under its login name');

# an app that lets unassigned users log in as well: the assigned ones are not all who may log in,
# so the sync refuses instead of removing the others
stop_emulator();
$url = start_emulator(config => directory_with_frank(1, 0, optional_claims => \@OPTIONAL_CLAIMS));
$before = slurp('/etc/pve/user.cfg');
($rc, $out) = pveum('realm', 'sync', 'assigned', '--scope', 'both', '--remove-vanished', 'acl;entry');
like($out, qr/does not require assignment.*\(config\.invalid\)/, 'refused when the app does not require assignment') or diag($out);
is(slurp('/etc/pve/user.cfg'), $before, 'nothing changed');

# a realm name with a '.': upstream takes users '*@<realm>' and groups '*-<realm>' by an unquoted
# pattern, in which the '.' matches any character; another realm's look-alikes stay untouched
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
$cfg->{users}->{'x@entraXlab'} = { enable => 1, expire => 0, comment => 'another realm' };
$cfg->{groups}->{'g-entraXlab'} = { users => { 'x@entraXlab' => 1 }, comment => 'another realm' };
PVE::Cluster::cfs_write_file('user.cfg', $cfg);
api_call('POST', '/access/domains', {
    realm => 'entra.lab', type => 'entraid', 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID,
    'client-key' => $SECRET, 'groups-map' => "$ALICE_GROUP=admins;$OPS_GROUP=labops",
});
($rc, $out) = pveum('realm', 'sync', 'entra.lab', '--scope', 'users');
is($rc, 0, "sync of realm 'entra.lab', users only") or diag($out);
ok(!PVE::Cluster::cfs_read_file('user.cfg')->{groups}->{labops}, 'a mapped group is not made by a sync of users');
($rc, $out) = pveum('realm', 'sync', 'entra.lab', '--scope', 'both', '--remove-vanished', 'acl;entry;properties');
is($rc, 0, "sync of realm 'entra.lab'") or diag($out);
like($out, qr/^keeping user 'x\@entraXlab' of another realm as it is/m, 'says why it keeps a user of another realm');
ok(!PVE::Cluster::cfs_read_file('user.cfg')->{groups}->{labops}, 'nor by one of groups, without groups-autocreate');
$cfg = PVE::Cluster::cfs_read_file('user.cfg');
is_deeply([$cfg->{users}->{'x@entraXlab'}->{comment}, $cfg->{groups}->{'g-entraXlab'}], ['another realm',
    { users => { 'x@entraXlab' => 1 }, comment => 'another realm' }], "user and group of realm 'entraXlab' untouched");
ok($cfg->{users}->{'alice@contoso.example@entra.lab'}, 'the realm synced');

# what finish_sync (the hook right before upstream writes user.cfg) checks again under that lock:
# a binding made since get_users read the pins (a login of another identity, an administrator's
# user) fails the sync instead of writing user.cfg with the wrong identity's data
{
    my $zed = { tid => $TENANT, oid => '0e0e0e0e-0000-4000-8000-0000000000ee' };
    my $synced = { config => {}, identities => { 'zed@contoso.example' => $zed }, groups => {}, disabled => {} };
    my $usercfg = { users => { 'zed@contoso.example@entra' => { enable => 1 } }, groups => {} };
    my $saved = slurp("$priv/entra.identities.json");
    spew("$priv/entra.identities.json", encode_json({ %$pins, 'zed@contoso.example' => { %$zed, oid => $DAVE_OID } }));
    eval { PVE::Auth::EntraID->finish_sync('entra', $synced, $usercfg) };
    like($@, qr/^user 'zed\@contoso\.example\@entra' is bound to another Entra identity.*changed during the sync: nothing was written/s,
        'a pin made meanwhile for another identity fails the sync');
    spew("$priv/entra.identities.json", $saved);
    $cfg = PVE::Cluster::cfs_read_file('user.cfg');
    $cfg->{users}->{'zed@contoso.example@entra'} = { enable => 1, expire => 0 };
    PVE::Cluster::cfs_write_file('user.cfg', $cfg);
    eval { PVE::Auth::EntraID->finish_sync('entra', $synced, $usercfg) };
    like($@, qr/exists but is bound to no Entra identity yet/, 'so does a user an administrator made meanwhile');
    delete $cfg->{users}->{'zed@contoso.example@entra'};
    PVE::Cluster::cfs_write_file('user.cfg', $cfg);

    # get_groups read the groups before upstream's lock; since then other@pve joined 'admins',
    # 'hand-entra' was deleted and 'late-entra' made. Upstream's result from that: 'admins' as read
    # (plus a member that is no user), 'hand-entra' back, 'late-entra' removed as vanished
    $cfg = PVE::Cluster::cfs_read_file('user.cfg');
    $cfg->{groups}->{admins}->{users}->{'other@pve'} = 1;
    delete $cfg->{groups}->{'hand-entra'};
    $cfg->{groups}->{'late-entra'} = { users => { 'other@pve' => 1 }, comment => 'late' };
    PVE::Cluster::cfs_write_file('user.cfg', $cfg);
    my $upstream_result = PVE::Cluster::cfs_read_file('user.cfg');
    $upstream_result->{groups}->{admins}->{users} = { 'alice@contoso.example@entra' => 1, 'eve@pam' => 1, 'nobody@contoso.example@entra' => 1 };
    $upstream_result->{groups}->{'hand-entra'} = { users => { 'other@pve' => 1 }, comment => 'made by hand' };
    delete $upstream_result->{groups}->{'late-entra'};
    # and alice, kept (get_users copied her before the lock), was disabled meanwhile
    $cfg = PVE::Cluster::cfs_read_file('user.cfg');
    $cfg->{users}->{'alice@contoso.example@entra'}->{enable} = 0;
    PVE::Cluster::cfs_write_file('user.cfg', $cfg);
    $upstream_result->{users}->{'alice@contoso.example@entra'}->{enable} = 1;
    PVE::Auth::EntraID->finish_sync('entra', { config => {}, identities => {}, groups => { admins => [] },
        mapped_groups => { admins => 1 }, kept => { 'alice@contoso.example@entra' => 1 } }, $upstream_result, 'both');
    is($upstream_result->{users}->{'alice@contoso.example@entra'}->{enable}, 0, 'a kept user as it is now');
    my $groups = $upstream_result->{groups};
    my @others_now = grep { !m/\@entra$/ } keys %{ $cfg->{groups}->{admins}->{users} };
    is_deeply([sort keys %{ $groups->{admins}->{users} }], [sort 'alice@contoso.example@entra', @others_now],
        "a mapped group: the realm's synced members that are users, the others' as they are now");
    ok(!$groups->{'hand-entra'}, "a '*-entra' group outside the map deleted meanwhile stays deleted");
    is_deeply($groups->{'late-entra'}, { users => { 'other@pve' => 1 }, comment => 'late' }, 'one made meanwhile stays');
}

# a multi-tenant realm: which directory to read is undefined, so sync refuses, saying why
api_call('POST', '/access/domains', {
    realm => 'multi', type => 'entraid', 'tenant-id' => 'organizations', 'allowed-tenants' => $TENANT,
    'client-id' => $CLIENT_ID, 'client-key' => $SECRET, 'groups-map' => "$ALICE_GROUP=admins",
});
$before = slurp('/etc/pve/user.cfg');
($rc, $out) = pveum('realm', 'sync', 'multi', '--scope', 'both');
like($out, qr/realm for `organizations` names none.*\(config\.invalid\)/, 'organizations realm: refused with the reason') or diag($out);
is(slurp('/etc/pve/user.cfg'), $before, 'nothing changed');

# an external member (cross-tenant sync: userType Member, a #EXT# UPN, its token's idp its home
# tenant) is a guest for its login and for sync alike: its login names and pins it by its home
# sign-in name, and sync keeps that user instead of removing it for its #EXT# UPN
my $EXT_OID = '0e0e0e0e-0000-4000-8000-000000000e0e';
my $xfile = "$tmp/external-member.json";
spew($xfile, encode_json({
    apps => [{ client_id => $CLIENT_ID, secret => $SECRET, assigned => [$EXT_OID], assignment_required => \1 }],
    users => [{ upn => 'bob_fabrikam.example#EXT#@contoso.example', oid => $EXT_OID,
        preferred_username => 'bob@fabrikam.example', email => 'bob@fabrikam.example',
        acct => 0, idp => "https://sts.windows.net/22222222-3333-4444-5555-666666666666/" }],
}));
stop_emulator();
$url = start_emulator(config => $xfile);
api_call('POST', '/access/domains', {
    realm => 'xmember', type => 'entraid', 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID,
    'client-key' => $SECRET, 'sync-users' => 'assigned', 'allow-guests' => 1, 'username-claim' => 'preferred_username',
    autocreate => 1,
});
my $REDIRECT = 'https://pve1.example.com:8006';
# the browser binding of the login state, sent when the API has it (as 06-login.t)
my $props = sub { PVE::API2::EntraID->map_method_by_name($_[0])->{parameters}->{properties} };
my $key = join('', map { chr(int(rand(256))) } 1 .. 32);
my %bind_hash = $props->('auth_url')->{'binding-hash'} ? ('binding-hash' => encode_base64url(sha256($key))) : ();
my %bind_key = $props->('login')->{'binding-key'} ? ('binding-key' => encode_base64url($key)) : ();
my $r = http_request('POST', '/access/entraid/auth-url', { realm => 'xmember', 'redirect-url' => $REDIRECT, %bind_hash });
diag("auth-url: $r->{status} $r->{message}") if $r->{status} != 200;
my ($code, $state) = browser_authorize($r->{data}, 'bob@fabrikam.example');
$r = http_request('POST', '/access/entraid/login', { code => $code, state => $state, 'redirect-url' => $REDIRECT, realm => 'xmember', %bind_key });
is($r->{data}->{username}, 'bob@fabrikam.example@xmember', 'the external member logs in under its home sign-in name')
    or diag($r->{status}, ' ', $r->{message});
($rc, $out) = pveum('realm', 'sync', 'xmember', '--scope', 'both', '--enable-new', '1', '--remove-vanished', 'acl;entry;properties');
is($rc, 0, 'sync after its login') or diag($out);
unlike($out, qr/^remove user/m, 'removes nothing') or diag($out);
is_deeply([sort grep { m/fabrikam.*\@xmember$/ } keys %{ PVE::Cluster::cfs_read_file('user.cfg')->{users} }],
    ['bob@fabrikam.example@xmember'], "sync keeps the login's user, no second one for its #EXT# UPN");

done_testing();
