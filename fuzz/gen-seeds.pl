#!/usr/bin/perl
# Writes the small seed corpus of each fuzz target into fuzz/corpus/<target>/.
# Seeds are generated, not committed: request shapes follow docs/DESIGN.md, token
# shapes follow the captured Entra documents in tests/fixtures/entra (JWKS kids,
# issuer template), so the fuzzer starts from inputs that reach deep into the parsers.
use strict;
use warnings;

use File::Path qw(make_path);
use JSON::PP;
use MIME::Base64 qw(encode_base64url);

my $out = shift // die "usage: $0 CORPUS_DIR\n";
my $json = JSON::PP->new->canonical;

my $tenant = '11111111-2222-3333-4444-555555555555';
my $client = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
# The harness gives these requests no network at all; port 9 on loopback is closed anyway.
my $authority = 'http://127.0.0.1:9';
# The only place fuzzed requests may create the state key and cache files (fuzz_targets/abi_request.rs).
my $scratch = '/tmp/pve-entraid-fuzz';

# a domains.cfg section as PVE::Auth::EntraID::library_config passes it (docs/DESIGN.md)
my $config = {
    type => 'entraid', 'tenant-id' => $tenant, 'client-id' => $client, client_secret => 'not-a-real-secret',
    authority => $authority, graph_url => $authority,
    scopes => 'openid profile email', 'username-claim' => 'upn',
    connect_timeout_ms => 50, timeout_ms => 100,
    'groups-map' => '6f7e8d9c-1111-4111-8111-000000000001=admins;PVE.Admin=admins',
    'allow-guests' => 0,
};
my $claims = {
    oid => '0a1b2c3d-0000-4000-8000-00000000a11c', tid => $tenant, sub => 'c3ViamVjdA',
    preferred_username => 'alice@contoso.example', upn => 'alice@contoso.example',
    email => 'alice@contoso.example', name => 'Alice Example', given_name => 'Alice',
    family_name => 'Example', groups => ['6f7e8d9c-1111-4111-8111-000000000001'],
    roles => ['PVE.Admin'], groups_overage => JSON::PP::false,
};

my %requests = (
    'map-plain' => { realm => 'entra', config => $config, claims => $claims,
        groups => $claims->{groups}, username => 'alice@contoso.example' },
    'map-guest' => { realm => 'entra', config => { %$config, 'allow-guests' => 1 },
        claims => { %$claims, acct => 1, idp => 'https://sts.windows.net/x/' }, groups => [],
        username => 'alice@contoso.example' },
    'auth-url' => { realm => 'entra', config => $config, redirect_url => 'https://pve1:8006', binding_hash => 'Ql7U5KNrMOohuQ4hxxLGSeghTCm36vaAidEDnG5VOEw',
        state_key_file => "$scratch/state.key", cache_dir => "$scratch/cache", login_hint => 'alice@contoso.example' },
    'login' => { realm => 'entra', config => $config, code => 'M.C' . ('x' x 40),
        state => 'AAAA' x 20, binding_key => 'QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI',
        state_key_file => "$scratch/state.key", cache_dir => "$scratch/cache" },
    'check' => { realm => 'entra', config => { %$config, 'tenant-id' => 'organizations',
        'allowed-tenants' => $tenant }, redirect_url => 'https://pve1:8006' },
);

# The first byte of an abi_request input selects the entry point (see fuzz_targets/abi_request.rs).
my %selector = ('map-plain' => 0, 'map-guest' => 0, 'auth-url' => 1, 'login' => 2, 'check' => 3);
write_seeds('abi_request', map {
    ($_ => chr($selector{$_}) . $json->encode($requests{$_}))
} keys %requests);
write_seeds('abi_request', 'not-json' => "\0{\"realm\":", 'empty' => "\0");

# ID tokens: header.payload.signature with Entra's header and claim shapes.
my $now = 1_700_000_000;
my $v2 = { aud => $client, iss => "https://login.microsoftonline.com/$tenant/v2.0",
    iat => $now, nbf => $now, exp => $now + 3600, nonce => 'bm9uY2U', ver => '2.0',
    %$claims };
my $v1 = { %$v2, iss => "https://sts.windows.net/$tenant/", ver => '1.0' };
my $sig = encode_base64url('s' x 256);
# The first byte of an id_token input selects the mode (see fuzz_targets/id_token.rs):
# 0 = a whole token string, 1 = a payload the harness signs with the key it trusts.
my %tokens = (
    'rs256' => token({ typ => 'JWT', alg => 'RS256', kid => 'Mc7l3Iz93g7uwgNeEmmw_WYGPko' }, $v2, $sig),
    'v1' => token({ typ => 'JWT', alg => 'RS256', x5t => 'MnC_VZcATfM5pOYiJHMba9goEKY',
        kid => 'MnC_VZcATfM5pOYiJHMba9goEKY' }, $v1, $sig),
    'alg-none' => token({ alg => 'none' }, $v2, ''),
    'hs256' => token({ alg => 'HS256', kid => 'x' }, $v2, encode_base64url('h' x 32)),
    'two-parts' => 'eyJhbGciOiJSUzI1NiJ9.e30',
);
my %payloads = (
    'good' => $v2,
    'v1' => $v1,
    'no-nonce' => { map { $_ eq 'nonce' ? () : ($_ => $v2->{$_}) } keys %$v2 },
    'aud-list' => { %$v2, aud => [$client, 'bbbbbbbb-0000-0000-0000-000000000000'] },
    'overage' => { %$v2, groups => undef, _claim_names => { groups => 'src1' },
        _claim_sources => { src1 => { endpoint => "https://graph.windows.net/$tenant/users/x/getMemberObjects" } } },
    'float-times' => { %$v2, exp => $now + 0.5, iat => "$now" },
);
write_seeds('id_token',
    (map { ("token-$_" => "\0" . $tokens{$_}) } keys %tokens),
    (map { ("payload-$_" => "\x01" . $json->encode($payloads{$_})) } keys %payloads));

sub token {
    my ($header, $payload, $signature) = @_;
    return join('.', encode_base64url($json->encode($header)), encode_base64url($json->encode($payload)), $signature);
}

sub write_seeds {
    my ($target, %seeds) = @_;
    my $dir = "$out/$target";
    make_path($dir);
    for my $name (sort keys %seeds) {
        open(my $fh, '>:raw', "$dir/seed-$name") or die "cannot write $dir/seed-$name: $!\n";
        print $fh $seeds{$name};
        close($fh) or die "cannot write $dir/seed-$name: $!\n";
    }
}
