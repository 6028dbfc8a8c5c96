#!/usr/bin/perl -T
# realm create/read/update/delete through the REAL PVE::API2::Domains, reached like pveproxy
# does (real auth_handler with a real ticket, real rest_handler, real RESTHandler validation);
# where each secret lands; delete= of every optional property and of client-key

use strict;
use warnings;

use UpstreamTest;
use Test::More;

setup_etc_pve();
load_pve();
my ($ticket, $csrf) = login_ticket('root@pam');
my $priv = '/etc/pve/priv/entraid';
my $keys = "$UpstreamTest::REPO/tests/emulator/keys";

sub req {
    my ($method, $path, $params) = @_;
    return http_request($method, $path, $params, ticket => $ticket, csrf => $csrf);
}

# the *-list restrictions (issue 9 defect 1) are set through PUT below, the rest on create
my %LIST_RESTRICTION = ('allowed-tenants' => 1, 'required-groups' => 1);
my %SKIP = map { $_ => 1 } qw(tenant-id client-id client-key client-cert client-cert-key username-claim);
my @optional = grep { !$SKIP{$_} } sort keys %{ PVE::Auth::EntraID->options() };
ok(exists $ENTRAID_SAMPLE{$_}, "test has a value for optional entraid option '$_'") for @optional;

my $pam_pve = join('', map { section_of(slurp('/etc/pve/domains.cfg'), $_, $_) } qw(pam pve));

# --- create, with every option that upstream accepts today
my %create = (realm => 'entra', type => 'entraid', 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID,
    'client-key' => $SECRET, 'username-claim' => 'upn',
    map { $_ => $ENTRAID_SAMPLE{$_} } grep { !$LIST_RESTRICTION{$_} } @optional);
my $res = req('POST', '/access/domains', \%create);
is($res->{status}, 200, 'POST /access/domains creates the entraid realm') or diag(explain($res));
my $domains = slurp('/etc/pve/domains.cfg');
like($domains, qr/^entraid: entra$/m, 'section written by the real SectionConfig');
unlike($domains, qr/client-key|\Q$SECRET\E/, 'the client secret is not in domains.cfg');
is(slurp("$priv/entra.secret"), $SECRET, "secret in $priv/entra.secret");
is((stat("$priv/entra.secret"))[2] & 07777, 0600, 'secret file mode 0600');
is(join('', map { section_of($domains, $_, $_) } qw(pam pve)), $pam_pve, 'pam and pve sections untouched');

$res = req('GET', '/access/domains/entra');
is($res->{status}, 200, 'GET /access/domains/entra');
ok(!exists $res->{data}->{'client-key'}, 'no client-key in the read answer');
unlike(explain($res->{data}), qr/\Q$SECRET\E/, 'no secret anywhere in the read answer');
is($res->{data}->{$_}, $create{$_}, "read back '$_'") for grep { !$LIST_RESTRICTION{$_} } @optional;

# the login page's realm list: anonymous, allowed by the real auth_handler
$res = http_request('GET', '/access/domains', {});
is($res->{status}, 200, 'GET /access/domains works without a ticket (login page)');
my ($listed) = grep { $_->{realm} eq 'entra' } @{ $res->{data} };
is($listed->{type}, 'entraid', 'realm listed with type entraid');
unlike(explain($res->{data}), qr/\Q$SECRET\E/, 'no secret in the realm list');

# --- update
for my $k (sort keys %LIST_RESTRICTION) {
    $res = req('PUT', '/access/domains/entra', { $k => $ENTRAID_SAMPLE{$k} });
    is($res->{status}, 200, "PUT $k accepted") or diag($res->{message}, explain($res->{errors}));
    like(slurp('/etc/pve/domains.cfg'), qr/^\t\Q$k $ENTRAID_SAMPLE{$k}\E$/m, "$k stored");
}
{
    # what the real realm dialog sends for "Require TFA: OATH" (issue 9 defect 5, TFA contract)
    $res = req('PUT', '/access/domains/entra', { tfa => 'type=oath' });
    is($res->{status}, 200, 'PUT tfa=type=oath (the realm dialog\'s TFA setting)') or diag($res->{message});
}
$res = req('PUT', '/access/domains/entra', { 'client-key' => 'new~secret.2' });
is($res->{status}, 200, 'PUT client-key');
is(slurp("$priv/entra.secret"), 'new~secret.2', 'new secret replaces the file');
unlike(slurp('/etc/pve/domains.cfg'), qr/client-key|new~secret/, 'still not in domains.cfg');
$res = req('PUT', '/access/domains/entra', { 'username-claim' => 'email' });
is($res->{status}, 400, 'username-claim is fixed after creation (like openid)');

# --- delete= of every optional property
for my $k (@optional) {
    my $before = PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{entra};
    ok(exists $before->{$k}, "$k is stored before its delete") or next;
    $res = req('PUT', '/access/domains/entra', { delete => $k });
    is($res->{status}, 200, "PUT delete=$k") or diag($res->{message});
    my $after = PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{entra};
    ok(!exists $after->{$k}, "$k removed");
    is_deeply([sort grep { $_ ne $k } keys %$before], [sort keys %$after], "delete=$k keeps the other settings");
}

# delete=client-key must never succeed while leaving the secret behind (defect 4)
$res = req('PUT', '/access/domains/entra', { delete => 'client-key' });
is($res->{status}, 200, 'PUT delete=client-key') or diag($res->{message});
ok(!-e "$priv/entra.secret", 'delete=client-key removes the secret file');

# --- certificate credential: both PEM files copied into priv, paths not in domains.cfg
# PEM text, never a path read by the API (issue 10.9)
$res = req('PUT', '/access/domains/entra',
    { 'client-cert' => slurp("$keys/client.crt"), 'client-cert-key' => slurp("$keys/client.key") });
is($res->{status}, 200, 'PUT client-cert/client-cert-key') or diag($res->{message});
is(slurp("$priv/entra.crt"), slurp("$keys/client.crt"), "certificate in $priv/entra.crt");
is(slurp("$priv/entra.key"), slurp("$keys/client.key"), "its key in $priv/entra.key");
is((stat("$priv/entra.key"))[2] & 07777, 0600, 'key file mode 0600');
ok(!-e "$priv/entra.secret", 'switching to a certificate removes the secret');
unlike(slurp('/etc/pve/domains.cfg'), qr/client-cert|BEGIN/, 'no certificate path or PEM in domains.cfg');

# --- delete the realm: section and credential files gone (identity pins stay, issue 10.3), other realms kept
$res = req('DELETE', '/access/domains/entra');
is($res->{status}, 200, 'DELETE /access/domains/entra');
unlike(slurp('/etc/pve/domains.cfg'), qr/entra/, 'section removed');
ok(!-e "$priv/entra.$_", "priv/entraid/entra.$_ removed") for qw(secret crt key);
is(join('', map { section_of(slurp('/etc/pve/domains.cfg'), $_, $_) } qw(pam pve)), $pam_pve, 'pam and pve kept');

# --- a credential lives exactly as long as the request that carried it (issue 19.2): both
# refused requests and the later ones run in this one process, like a pvedaemon worker
my %bare = (realm => 'later', type => 'entraid', 'client-id' => $CLIENT_ID);
$res = req('POST', '/access/domains', { %bare, 'client-key' => 'refused~secret.1' });
isnt($res->{status}, 200, 'create with client-key but without tenant-id is refused') or diag($res->{message});
like($res->{message}, qr/tenant-id/, 'for the missing tenant-id');
$res = req('POST', '/access/domains', { %bare, 'tenant-id' => $TENANT });
is($res->{status}, 200, 'create of the same realm without a credential') or diag($res->{message});
ok(!-e "$priv/later.$_", "the refused request's credential is not stored (later.$_)") for qw(secret crt key);

$res = req('PUT', '/access/domains/later',
    { 'client-cert' => slurp("$keys/client.crt"), 'client-cert-key' => slurp("$keys/client.key") });
is($res->{status}, 200, 'certificate set') or diag($res->{message});
$res = req('PUT', '/access/domains/later', { 'client-key' => 'refused~secret.2', 'username-claim' => 'email' });
is($res->{status}, 400, 'update with client-key and a change of the fixed username-claim is refused');
$res = req('PUT', '/access/domains/later', { 'client-key' => 'refused~secret.3', server1 => 'ldap.example.com' });
isnt($res->{status}, 200, 'update with client-key and an option entraid does not have is refused') or diag($res->{status}, $res->{message});
$res = req('PUT', '/access/domains/later', { comment => 'only the comment' });
is($res->{status}, 200, 'a later update of the comment alone') or diag($res->{message});
is(slurp("$priv/later.crt"), slurp("$keys/client.crt"), 'keeps the working certificate');
is(slurp("$priv/later.key"), slurp("$keys/client.key"), 'and its key');
ok(!-e "$priv/later.secret", 'and stores none of the refused secrets');

# a request the hook refuses leaves the stored credential as it is, and so does the next one
$res = req('PUT', '/access/domains/later', { 'client-key' => 'refused~secret.4', 'tenant-id' => 'common' });
is($res->{status}, 500, 'update with client-key refused by the hook (common without allowed-tenants)');
$res = req('PUT', '/access/domains/later', { comment => 'the comment again' });
is($res->{status}, 200, 'a later update of the comment') or diag($res->{message});
ok(-e "$priv/later.crt" && !-e "$priv/later.secret", 'the certificate stays, no secret stored');
is(req('DELETE', '/access/domains/later')->{status}, 200, 'realm deleted');

# --- delete= is checked with the settings as they will be (issue 19.4): an 'organizations'
# realm without allowed-tenants would refuse every login (config.invalid)
$res = req('POST', '/access/domains', { %bare, realm => 'orgs', 'tenant-id' => 'organizations',
    'allowed-tenants' => $TENANT, 'client-key' => $SECRET });
is($res->{status}, 200, 'organizations realm with allowed-tenants') or diag($res->{message});
$res = req('PUT', '/access/domains/orgs', { delete => 'allowed-tenants' });
isnt($res->{status}, 200, 'delete=allowed-tenants of an organizations realm is refused');
like($res->{message}, qr/allowed-tenants/, 'naming allowed-tenants') or diag(explain($res));
like(slurp('/etc/pve/domains.cfg'), qr/^\tallowed-tenants \Q$TENANT\E$/m, 'allowed-tenants stays stored');
$res = req('PUT', '/access/domains/orgs', { delete => 'allowed-tenants', 'tenant-id' => $TENANT });
is($res->{status}, 200, 'together with a tenant GUID it is accepted') or diag($res->{message});
unlike(slurp('/etc/pve/domains.cfg'), qr/allowed-tenants/, 'and allowed-tenants is gone');
is(slurp("$priv/orgs.secret"), $SECRET, 'the secret stays');
is(req('DELETE', '/access/domains/orgs')->{status}, 200, 'realm deleted');

# --- a refused credential change leaves the working credential (review 1): the whole change is
# checked before the old one is removed
$res = req('POST', '/access/domains', { %bare, realm => 'cred', 'tenant-id' => $TENANT, 'client-key' => $SECRET });
is($res->{status}, 200, 'realm with a secret') or diag($res->{message});
my ($crt, $key) = (slurp("$keys/client.crt"), slurp("$keys/client.key"));
for my $refused (
    [{ 'client-cert' => $crt }, 'a certificate without its key'],
    [{ 'client-cert' => 'junk', 'client-cert-key' => 'junk' }, 'a certificate that is no PEM'],
    [{ 'client-cert' => $crt, 'client-cert-key' => $crt }, 'a certificate as its own key'],
    [{ 'client-key' => '' }, 'an empty secret'],
    [{ 'client-key' => 'refused~secret.5', 'client-cert' => $crt, 'client-cert-key' => $key }, 'two credentials'],
) {
    my ($change, $what) = @$refused;
    $res = req('PUT', '/access/domains/cred', { delete => 'client-key', %$change });
    isnt($res->{status}, 200, "delete=client-key with $what is refused");
    is(slurp("$priv/cred.secret"), $SECRET, 'the secret stays');
    ok(!-e "$priv/cred.$_", "no cred.$_ written") for qw(crt key);
}
$res = req('PUT', '/access/domains/cred', { delete => 'client-key', 'client-cert' => $crt, 'client-cert-key' => $key });
is($res->{status}, 200, 'delete=client-key with a certificate and its key') or diag($res->{message});
ok(-e "$priv/cred.crt" && -e "$priv/cred.key" && !-e "$priv/cred.secret", 'the certificate replaces the secret');
$res = req('PUT', '/access/domains/cred', { 'client-cert' => $crt });
isnt($res->{status}, 200, 'a certificate without its key is refused');
is(slurp("$priv/cred.key"), $key, 'the stored key stays');

# delete=password (LDAP's; none of entraid's options) never removes the credential (review 1)
$res = req('PUT', '/access/domains/cred', { delete => 'password' });
is($res->{status}, 200, 'delete=password is a no-op') or diag($res->{message});
ok(-e "$priv/cred.crt" && -e "$priv/cred.key", 'the certificate stays');

# delete= of a fixed option is refused like setting it (review 1): it renames every user
$res = req('PUT', '/access/domains/cred', { 'username-claim' => 'oid' });
is($res->{status}, 400, 'setting username-claim is refused (fixed)');
$res = req('POST', '/access/domains', { %bare, realm => 'oids', 'tenant-id' => $TENANT, 'username-claim' => 'oid' });
is($res->{status}, 200, 'realm with username-claim oid') or diag($res->{message});
$res = req('PUT', '/access/domains/oids', { delete => 'username-claim' });
isnt($res->{status}, 200, 'delete=username-claim is refused');
like($res->{message}, qr/fixed parameter 'username-claim'/, 'as a fixed parameter');
like(section_of(slurp('/etc/pve/domains.cfg'), 'entraid', 'oids'), qr/^\tusername-claim oid$/m, 'username-claim oid stays');
$res = req('PUT', '/access/domains/cred', { delete => 'username-claim', comment => 'c' });
is($res->{status}, 200, 'delete=username-claim where it is not set changes nothing and passes') or diag($res->{message});

# a credential typed into domains.cfg: parse warns and drops the line, keeps the rest of the
# realm, holds nothing in memory (the request credentials of check_config's pad), writes it nowhere
my $held = do {
    require B;
    my ($names, $values) = B::svref_2object(\&PVE::Auth::EntraID::check_config)->PADLIST->ARRAY;
    my @names = $names->ARRAY;
    my ($i) = grep { ref($names[$_]) ne 'B::SPECIAL' && ($names[$_]->PVX // '') eq '%request_credentials' } 0 .. $#names;
    ($values->ARRAY)[$i]->object_2svref;
};
is(scalar(keys %$held), 0, 'no request credential held between requests');
my $domains_cfg = slurp('/etc/pve/domains.cfg');
spew('/etc/pve/domains.cfg', $domains_cfg =~ s/^(entraid: oids\n)/$1\tclient-key hand~edited.secret\n/mr);
my @warnings;
my $parsed = do {
    local $SIG{__WARN__} = sub { push @warnings, @_ };
    PVE::Cluster::cfs_read_file('domains.cfg');
};
like(join('', @warnings), qr/section 'oids'.*'client-key'/, 'parse warns about the credential line');
is_deeply($parsed->{ids}->{oids}, PVE::Auth::EntraID->parse_config('domains.cfg', $domains_cfg)->{ids}->{oids},
    'and reads the realm as without it');
is(scalar(keys %$held), 0, 'holds no credential');
$res = req('PUT', '/access/domains/oids', { comment => 'x' });
is($res->{status}, 200, 'a later update') or diag($res->{message});
ok(!-e "$priv/oids.secret", 'stores nothing of the hand-edited credential');
unlike(slurp('/etc/pve/domains.cfg'), qr/hand~edited/, 'nor writes it back');
is(req('DELETE', "/access/domains/$_")->{status}, 200, "realm $_ deleted") for qw(cred oids);

# --- without a ticket nothing but the list works
$res = http_request('POST', '/access/domains', \%create);
is($res->{status}, 401, 'POST /access/domains without a ticket is refused by auth_handler');
ok(!-e "$priv/entra.secret", 'and nothing written');

done_testing();
