#!/usr/bin/perl
# A realm with a certificate credential (private_key_jwt) logs in; datacenter.cfg's
# http_proxy is used for the IdP.
use strict;
use warnings;

use Test::More;
use EntraTest;

my $keys = "$EntraTest::ROOT/tests/emulator/keys";
plan skip_all => 'emulator keys missing' if !-e "$keys/client.crt";

my $dir = setup_cluster();
start_emulator(optional_claims => \@OPTIONAL_CLAIMS);
my $redirect = 'https://pve1.example.com:8006';

domains_call('create', {
    realm => 'entra', type => 'entraid', 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID,
    'client-cert' => slurp("$keys/client.crt"), 'client-cert-key' => slurp("$keys/client.key"), autocreate => 1,
});
ok(!-e "$dir/priv/entraid/entra.secret", 'no secret file for a certificate realm');

my $url = api_call('auth_url', { realm => 'entra', 'redirect-url' => $redirect, 'binding-hash' => $BINDING_HASH });
my ($code, $state) = browser_authorize($url, 'alice@contoso.example');
my $res = api_call('login', { realm => 'entra', code => $code, state => $state, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY });
is($res->{username}, 'alice@contoso.example@entra', 'login with the certificate credential');

# a proxy that refuses connections: the code exchange cannot reach the IdP, so the proxy is used
($code, $state) = browser_authorize(api_call('auth_url', { realm => 'entra', 'redirect-url' => $redirect, 'binding-hash' => $BINDING_HASH }),
    'alice@contoso.example');
open(my $fh, '>', "$dir/datacenter.cfg") or die $!;
print $fh "keyboard: en-us\nhttp_proxy: http://127.0.0.1:9\n";
close($fh);
eval { api_call('login', { realm => 'entra', code => $code, state => $state, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY }) };
like("$@", qr/\(idp\.(unreachable|timeout), reference/, 'datacenter.cfg http_proxy is used for the IdP');

done_testing();
