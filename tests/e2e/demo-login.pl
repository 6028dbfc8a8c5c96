#!/usr/bin/perl
# The `make demo` login: a throw-away /etc/pve (real upstream PVE code, tmpfs /etc/pve), the bundled Entra emulator,
# an entraid realm added as `pveum realm add` does, and one browser-less login that ends with
# a PVE ticket.
use strict;
use warnings;
no warnings 'once'; # @UpstreamTest::SYSLOG is filled by the harness's syslog spy

use JSON;
use EntraTest;

my $redirect = 'https://pve1.example.com:8006';

sub step { print "\n== $_[0]\n"; }

step('throw-away cluster');
my $dir = setup_cluster();
print "/etc/pve: $dir (tmpfs in a private mount namespace; node pve1 with the pve-entraid marker)\n";

step('Entra emulator');
my $url = start_emulator(optional_claims => \@OPTIONAL_CLAIMS);
print "entra-emulator listening on $url (tenant $TENANT)\n";

step("pveum realm add entra --type entraid --tenant-id $TENANT --client-id $CLIENT_ID --client-key *** --autocreate 1 --groups-map ... --groups-autocreate 1");
add_realm('entra',
    autocreate => 1,
    'groups-map' => "$ALICE_GROUP=admins;PVE.Admin=ops",
    'groups-autocreate' => 1,
    'groups-sync' => 1,
    comment => 'Contoso Entra ID');
print "domains.cfg:\n", slurp("$dir/domains.cfg");
printf("client secret stored in %s (mode %04o), not in domains.cfg\n",
    'priv/entraid/entra.secret', (stat("$dir/priv/entraid/entra.secret"))[2] & 07777);

step('POST /access/entraid/auth-url');
my $authorize = api_call('auth_url', { realm => 'entra', 'redirect-url' => $redirect, 'binding-hash' => $BINDING_HASH });
print "authorize URL: $authorize\n";

step('browser: GET authorize (login_hint=alice@contoso.example), read the redirect');
my ($code, $state, $location) = browser_authorize($authorize, 'alice@contoso.example');
print "302 Location: ", substr($location, 0, 100), "...\n";

step('POST /access/entraid/login');
my $res = api_call('login', { realm => 'entra', code => $code, state => $state, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY });
my $usercfg = PVE::Cluster::cfs_read_file('user.cfg');
my $user = $usercfg->{users}->{ $res->{username} };

print "PVE user id:          $res->{username}\n";
print "name / email:         ", join(' ', grep { defined } $user->{firstname}, $user->{lastname}),
    " <", $user->{email} // '', ">\n";
print "PVE groups:           ", join(', ', sort keys %{ $user->{groups} // {} }), "\n";
print "ticket:               $res->{ticket}\n";
print "CSRFPreventionToken:  $res->{CSRFPreventionToken}\n";
print "identity pin:         ", slurp("$dir/priv/entraid/entra.identities.json") =~ s/\s+/ /gr, "\n";
print "syslog:               $_\n" for @UpstreamTest::SYSLOG;

die "demo: ticket does not verify\n"
    if (PVE::AccessControl::verify_ticket($res->{ticket}) // '') ne $res->{username};

step('stop emulator');
stop_emulator();
print "demo: OK\n";
