#!/usr/bin/perl -T
# the pve-entraid CLI on the REAL PVE::Cluster/AccessControl/Domains: check reads
# datacenter.cfg (issue 9.2), set-secret reads stdin (10.12), pin manages identity pins (10.3)

use strict;
use warnings;

use JSON::PP;
use UpstreamTest;
use Test::More;

setup_etc_pve();
load_pve();

my $priv = '/etc/pve/priv/entraid';
api_call('POST', '/access/domains', { realm => 'entra', type => 'entraid', 'tenant-id' => $TENANT,
    'client-id' => $CLIENT_ID, 'client-key' => $SECRET });

# 9.2: the real CLI path registers datacenter.cfg before reading it
my ($rc, $out) = run_entraid_cli('check', 'entra', '--redirect-url', 'https://pve1.example.com:8006');
unlike($out, qr/unknown file type/, 'check reads datacenter.cfg') or diag($out);
like($out, qr/^(?:ok|FAIL)\s+discovery\b/m, 'check runs its steps') or diag($out);
($rc, $out) = run_entraid_cli('check', 'nosuch');
is($rc, 1, 'check of an unknown realm fails');
like($out, qr/realm 'nosuch' does not exist/, 'and says so');

# 10.12: the secret comes from stdin, never from the command line
($rc, $out) = run_entraid_cli({ stdin => "n3w~secret.Value\n" }, 'set-secret', 'entra');
is($rc, 0, 'set-secret succeeds') or diag($out);
is(slurp("$priv/entra.secret"), 'n3w~secret.Value', 'secret stored from stdin, without the newline');
unlike(slurp('/etc/pve/domains.cfg'), qr/n3w/, 'not in domains.cfg');
($rc, $out) = run_entraid_cli({ stdin => '' }, 'set-secret', 'entra');
is($rc, 1, 'set-secret without input fails');
is(slurp("$priv/entra.secret"), 'n3w~secret.Value', 'and keeps the stored secret');
($rc, $out) = run_entraid_cli({ stdin => "x\n" }, 'set-secret', 'nosuch');
is($rc, 1, 'set-secret of an unknown realm fails');

# 10.9: the CLI reads the certificate files, the API gets their PEM text
my $tmp = '/etc/pve/test-cert';
system('sh', '-c', "openssl req -x509 -newkey rsa:2048 -nodes -keyout $tmp.key -out $tmp.crt"
    . " -subj /CN=pve-entraid-test -days 2 2>/dev/null") == 0 or die "openssl failed\n";
($rc, $out) = run_entraid_cli('set-cert', 'entra', "$tmp.crt", "$tmp.key");
is($rc, 0, 'set-cert succeeds') or diag($out);
is(slurp("$priv/entra.crt"), slurp("$tmp.crt"), 'certificate stored');
is(slurp("$priv/entra.key"), slurp("$tmp.key"), 'key stored');
ok(!-e "$priv/entra.secret", 'the secret it replaces is removed');
($rc, $out) = run_entraid_cli('set-cert', 'entra', "$tmp.crt", '/nonexistent.key');
is($rc, 1, 'set-cert with a missing file fails');
($rc, $out) = run_entraid_cli({ stdin => "back~to.secret\n" }, 'set-secret', 'entra');
ok(-e "$priv/entra.secret" && !-e "$priv/entra.crt" && !-e "$priv/entra.key", 'set-secret replaces the certificate');

# 10.3: pre-seed, list, re-bind and delete identity pins
my $OID2 = '0a1b2c3d-0000-4000-8000-0000000000b0';
my $pins = sub { decode_json(slurp("$priv/entra.identities.json") // '{}') };
($rc, $out) = run_entraid_cli('pin', 'entra', 'alice@contoso.com@entra', '--tid', uc($TENANT), '--oid', $ALICE_OID);
is($rc, 0, 'pin set') or diag($out);
is_deeply($pins->(), { 'alice@contoso.com' => { tid => $TENANT, oid => $ALICE_OID } },
    'pin stored under the user name, in the login handler\'s format');
run_entraid_cli('pin', 'entra', 'bob@contoso.com@entra', '--tid', $TENANT, '--oid', $OID2);
($rc, $out) = run_entraid_cli('pin', 'entra');
is($out, "alice\@contoso.com\@entra tid=$TENANT oid=$ALICE_OID\nbob\@contoso.com\@entra tid=$TENANT oid=$OID2\n",
    'pins listed');
($rc, $out) = run_entraid_cli('pin', 'entra', 'alice@contoso.com@entra', '--tid', $TENANT, '--oid', 'alice');
is($rc, 1, 'an oid that is no GUID is refused');
like($out, qr/'alice' is not a GUID/, 'with the reason');
($rc, $out) = run_entraid_cli('pin', 'entra', 'alice@contoso.com@other', '--tid', $TENANT, '--oid', $OID2);
like($out, qr/not of realm 'entra'/, 'a user ID of another realm is refused');
($rc, $out) = run_entraid_cli('pin', 'entra', 'alice@contoso.com@entra', '--tid', $TENANT);
is($rc, 2, 'a pin needs tid and oid');
($rc, $out) = run_entraid_cli('pin', 'entra', 'alice@contoso.com@entra', '--delete');
is($rc, 0, 'pin deleted') or diag($out);
is_deeply([keys %{ $pins->() }], ['bob@contoso.com'], 'only that pin is gone');
($rc, $out) = run_entraid_cli('pin', 'entra', 'alice@contoso.com@entra', '--delete');
like($out, qr/has no identity pin/, 'deleting a missing pin says so');

done_testing();
