#!/usr/bin/perl
# Realm add/update/delete through PVE's Domains API: the client secret and certificate key
# never reach domains.cfg or an API answer; nodes without the plugin block realm changes.
use strict;
use warnings;

use Test::More;
use EntraTest;

my $dir = setup_cluster(nodes => [qw(pve1 pve2)]);
my $priv = "$dir/priv/entraid";

add_realm('entra', comment => 'Contoso', autocreate => 1);

my $domains = slurp("$dir/domains.cfg");
like($domains, qr/^entraid: entra$/m, 'realm written');
unlike($domains, qr/client-key|\Q$SECRET\E/, 'no client-key in domains.cfg');
is(slurp("$priv/entra.secret"), $SECRET, 'secret stored in priv/entraid/entra.secret');
is((stat("$priv/entra.secret"))[2] & 07777, 0600, 'secret file mode 0600');

my $read = domains_call('read', { realm => 'entra' });
ok(!exists($read->{'client-key'}), 'read answer has no client-key');
my $index = domains_call('index', {});
unlike(join(' ', map { values %$_ } @$index), qr/\Q$SECRET\E/, 'index answer has no secret');

# update: a new secret replaces the file, domains.cfg still without it (upstream copies the
# checked settings into domains.cfg before on_update_hook, see the Domains double)
update_realm('entra', 'client-key' => 'new~secret.2', 'groups-sync' => 1);
$domains = slurp("$dir/domains.cfg");
unlike($domains, qr/client-key|new~secret/, 'updated secret not in domains.cfg');
like($domains, qr/groups-sync 1/, 'other updated option written');
is(slurp("$priv/entra.secret"), 'new~secret.2', 'secret file replaced');
update_realm('entra', comment => 'no secret change');
is(slurp("$priv/entra.secret"), 'new~secret.2', 'update without client-key keeps the secret');

eval { domains_call('update', { realm => 'entra', 'username-claim' => 'email' }) };
like($@, qr/username-claim: property is not defined in schema/, 'username-claim fixed after creation (not in the update schema)');

# certificate credential: copied into priv, secret removed, paths not in domains.cfg
my $keys = "$EntraTest::ROOT/tests/emulator/keys";
SKIP: {
    skip 'emulator keys not present', 5 if !-e "$keys/client.crt";
    update_realm('entra', 'client-cert' => slurp("$keys/client.crt"), 'client-cert-key' => slurp("$keys/client.key"));
    is(slurp("$priv/entra.crt"), slurp("$keys/client.crt"), 'certificate copied');
    is((stat("$priv/entra.key"))[2] & 07777, 0600, 'certificate key mode 0600');
    ok(!-e "$priv/entra.secret", 'secret removed when switching to a certificate');
    unlike(slurp("$dir/domains.cfg"), qr/client-cert/, 'certificate paths not in domains.cfg');
    is(PVE::Auth::EntraID::library_config('entra', domains_call('read', { realm => 'entra' }))->{client_key_file},
        "$priv/entra.key", 'library uses the certificate');
}
eval { update_realm('entra', 'client-cert' => "$dir/nope.crt", 'client-cert-key' => "$dir/nope.key") };
like($@, qr/client-cert must be PEM text/, 'a certificate path is refused (PEM text only)');
eval { update_realm('entra', 'client-cert' => "$dir/user.cfg") };
like($@, qr/must be given together/, 'certificate without key refused');

# added without a credential ('pve-entraid set-secret' follows): no private file yet
domains_call('create', { realm => 'nocred', type => 'entraid', 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID });
ok(!-e "$priv/nocred.secret" && !-e "$priv/nocred.crt", 'add without a credential writes no private file');
domains_call('delete', { realm => 'nocred' });

# semantic checks run in the hooks, by the library (in parse_config they would make the section vanish)
eval { add_realm('multi', 'tenant-id' => 'organizations') };
like($@, qr/^add auth server failed: realm config: `allowed-tenants` is required when tenant-id is organizations/,
    'multi-tenant without allow list refused');
eval { update_realm('entra', 'tenant-id' => 'common') };
like($@, qr/`allowed-tenants` is required/, 'also on update, against the stored settings');
{
    ok(eval { update_realm('entra', 'allowed-tenants' => $TENANT); 1 }, 'allowed-tenants stored') or diag($@);
    eval { update_realm('entra', 'tenant-id' => 'common') };
    like(slurp("$dir/domains.cfg"), qr/tenant-id common/, 'accepted with allowed-tenants stored');
    eval { update_realm('entra', 'tenant-id' => $TENANT) };
}
open(my $hand, '>>', "$dir/domains.cfg") or die $!;
print $hand "entraid: handmade\n\ttenant-id common\n\tclient-id $CLIENT_ID\n\tusername-claim nickname\n\n";
close($hand);
is(PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{handmade}->{'username-claim'}, 'nickname',
    'a hand-edited section that the hooks would refuse still parses (it is never lost)');

# node marker: a node without the plugin would drop the realm on its next realm write
my $before = slurp("$dir/domains.cfg");
mkdir("$dir/nodes/pve3");
eval { add_realm('entra2') };
like($@, qr/^add auth server failed: pve-entraid is not installed on node\(s\) pve3/, 'add refused, names the node');
eval { update_realm('entra', comment => 'x', 'client-key' => 'other') };
like($@, qr/update auth server failed: pve-entraid is not installed on node\(s\) pve3/, 'update refused');
is(slurp("$dir/domains.cfg"), $before, 'domains.cfg unchanged');
ok(!-e "$priv/entra2.secret", 'no secret written for the refused realm');
ok(!-e "$priv/entra.secret", 'refused update wrote no secret');
open(my $fh, '>', "$dir/nodes/pve3/pve-entraid") or die $!;
print $fh "pve-entraid 0.1.0\n";
close($fh);
add_realm('entra2');
like(slurp("$dir/domains.cfg"), qr/^entraid: entra2$/m, 'accepted once every node has the marker');

# delete removes the credential, keeps the identity pins (PVE keeps the realm's users)
open($fh, '>', "$priv/entra2.identities.json") or die $!;
print $fh "{}";
close($fh);
domains_call('delete', { realm => 'entra2' });
ok(!-e "$priv/entra2.secret", 'delete removes the secret');
ok(-e "$priv/entra2.identities.json", 'delete keeps the pins');
unlike(slurp("$dir/domains.cfg"), qr/entra2/, 'realm removed');
like(slurp("$dir/domains.cfg"), qr/^entraid: entra$/m, 'other entraid realm kept');

done_testing();
