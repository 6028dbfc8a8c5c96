#!/usr/bin/perl
# domains.cfg parse/write with an entraid section beside pam, pve and openid sections.
use strict;
use warnings;

use Test::More;
use EntraTest;

my $dir = setup_cluster();

my $text = <<"CFG";
pam: pam
	comment Linux PAM standard authentication

pve: pve
	comment Proxmox VE authentication server
	default 1

openid: keycloak
	comment Keycloak SSO
	client-id pve
	issuer-url https://kc.example.com/realms/pve
	autocreate 1
	client-key kc-secret
	username-claim email

entraid: entra
	comment Contoso%3A Entra ID
	client-id $CLIENT_ID
	tenant-id $TENANT
	allow-guests 0
	autocreate 1
	cloud public
	groups-autocreate 1
	groups-map $ALICE_GROUP=admins;PVE.Admin=ops
	groups-sync 1
	prompt select_account
	required-groups $ALICE_GROUP
	scopes openid profile email
	username-claim upn

CFG

open(my $fh, '>', "$dir/domains.cfg") or die $!;
print $fh $text;
close($fh);

my @warnings;
local $SIG{__WARN__} = sub { push @warnings, @_ };

my $cfg = PVE::Cluster::cfs_read_file('domains.cfg');
is_deeply([sort keys %{ $cfg->{ids} }], [qw(entra keycloak pam pve)], 'all four realms parsed');
my $entra = $cfg->{ids}->{entra};
is($entra->{type}, 'entraid', 'entraid type');
is($entra->{comment}, 'Contoso: Entra ID', 'comment decoded like upstream');
is($entra->{'groups-sync'}, 1, 'boolean parsed as number');
is($entra->{'groups-map'}, "$ALICE_GROUP=admins;PVE.Admin=ops", 'groups-map kept verbatim');
is($cfg->{ids}->{keycloak}->{'client-key'}, 'kc-secret', 'openid section untouched by entraid');

PVE::Cluster::cfs_write_file('domains.cfg', $cfg);
{
    is(slurp("$dir/domains.cfg"), $text, 'write is byte-exact (upstream key order)');
}
{
    is_deeply(\@warnings, [], 'no parse warnings');
}

# library config: the section as it is, plus what only the Perl side knows
my $lib = PVE::Auth::EntraID::library_config('entra', $entra, 'http://proxy.example:3128');
is($lib->{$_}, $entra->{$_}, "$_ passed through") for sort keys %$entra;
is($lib->{http_proxy}, 'http://proxy.example:3128', 'datacenter.cfg proxy passed on');
is($lib->{client_secret_file}, "$dir/priv/entraid/entra.secret", 'secret file, not the secret');
ok(!grep({ /secret$/ || /^client-(?:key|cert)/ } keys %$lib), 'no credential value in the library config');
# and the library reads it as it is: PVE's forms (0/1, ';'-separated groups-map, lists)
require PVE::EntraID::Lib;
ok(eval { PVE::EntraID::Lib::call('check_config', { realm => 'entra', config => $lib }) }, 'the library accepts it')
    or diag($@);

# A node without pve-entraid (the unmodified upstream PVE::AccessControl) does not know the
# type: upstream SectionConfig skips the section on parse and the next realm write drops it.
# That is why realm changes need the node marker.
my ($rc, $out) = UpstreamTest::run_perl({ inc => [UpstreamTest::pristine_inc()] }, '-e',
    'use PVE::AccessControl; my $cfg = PVE::Cluster::cfs_read_file("domains.cfg");'
    . ' PVE::Cluster::cfs_write_file("domains.cfg", $cfg);');
is($rc, 0, 'node without the plugin rewrites domains.cfg') or diag($out);
like($out, qr/skip section 'entra'\): unsupported type 'entraid'/, 'it warns about the unknown type');
my $after = slurp("$dir/domains.cfg");
unlike($after, qr/entraid: entra/, 'and the entraid realm is gone from domains.cfg');
like($after, qr/openid: keycloak/, 'other realms survive');

done_testing();
