#!/usr/bin/perl
# Bad input and a failing IdP: clear 4xx/5xx PVE::Exceptions naming the library's error code,
# no Perl stack trace, no secret, nothing written.
use strict;
use warnings;

use Test::More;
use EntraTest;

my $dir = setup_cluster();
start_emulator(optional_claims => \@OPTIONAL_CLAIMS);
add_realm('entra', autocreate => 1);
my $redirect = 'https://pve1.example.com:8006';
my $priv = "$dir/priv/entraid";
my @errors;

sub fails {
    my ($name, $param) = @_;
    eval { api_call($name, $param) };
    my $err = $@;
    push @errors, "$err";
    return $err;
}

sub expect_error {
    my ($err, $status, $code, $what) = @_;
    ok(ref($err) && $err->isa('PVE::Exception'), "$what: a PVE::Exception");
    is($err->{code}, $status, "$what: HTTP $status");
    like("$err", qr/\(\Q$code\E, reference [0-9a-f]{8}\)$/, "$what: names $code and a reference");
    unlike("$err", qr/ at \S+ line \d+/, "$what: no Perl location");
}

sub fresh_state {
    my $url = api_call('auth_url', { realm => 'entra', 'redirect-url' => $redirect, 'binding-hash' => $BINDING_HASH });
    return browser_authorize($url, 'alice@contoso.example');
}

my $snapshot = sub { join("\0", map { slurp($_) // '' } "$dir/user.cfg", "$dir/domains.cfg", "$priv/entra.identities.json") };
my $before = $snapshot->();

expect_error(fails('auth_url', { realm => 'pam', 'redirect-url' => $redirect, 'binding-hash' => $BINDING_HASH }), 400, 'request.invalid', 'pam realm');
like($UpstreamTest::SYSLOG[-1], qr/realm 'pam' is of type 'pam', not 'entraid'/, 'wrong type explained in syslog');
# from another address: one refusal of a code per address and minute is logged (see 61-rate-limit.t)
eval { UpstreamTest::api_call('POST', '/access/entraid/auth-url', { realm => 'nosuch', 'redirect-url' => $redirect,
    'binding-hash' => $BINDING_HASH }, user => undef, client_ip => '192.0.2.5') };
push @errors, "$@";
expect_error($@, 400, 'request.invalid', 'unknown realm');
like($UpstreamTest::SYSLOG[-1], qr/'nosuch' does not exist/, 'unknown realm explained in syslog');
unlike($errors[-1], qr/nosuch/, 'not to the anonymous caller');
expect_error(fails('login', { realm => 'pam', code => 'c', state => 's', 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY }),
    400, 'request.invalid', 'login with pam realm');

my ($code, $state) = fresh_state();
expect_error(fails('login', { realm => 'entra', code => $code, state => 'A' x 5000, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY }),
    400, 'state.invalid', 'oversized state');
expect_error(fails('login', { realm => 'entra', code => $code, state => 'not*a*state', 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY }),
    400, 'state.invalid', 'malformed state');
expect_error(fails('login', { realm => 'entra', code => "bad code\x01", state => $state, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY }),
    400, 'request.invalid', 'malformed code');
my $err = fails('login', { realm => 'entra', code => $code, state => 'A' x 9000, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY });
is($err->{code}, 400, 'state beyond the API limit: 400 from parameter verification');
ok($err->{errors}->{state}, 'naming the state parameter');
$err = fails('auth_url', { realm => 'bad realm!', 'redirect-url' => $redirect, 'binding-hash' => $BINDING_HASH });
is($err->{code}, 400, 'invalid realm name refused by the schema');

# the IdP refuses the code (AADSTS error): the AADSTS number and correlation id reach the
# message and syslog, nothing is written
emulator_control('{"fail_next": {"endpoint": "token", "mode": "aadsts:70008", "count": 1}}');
$err = fails('login', { realm => 'entra', code => $code, state => $state, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY });
ok($err->{code} >= 400 && $err->{code} < 600, 'AADSTS error is a 4xx/5xx') ;
my ($ref) = "$err" =~ m/\(idp\.error, reference ([0-9a-f]{8})\)/;
ok($ref, 'names idp.error and a reference');
unlike("$err", qr/AADSTS|70008|correlation/, 'but neither the AADSTS code nor the correlation id');
like($UpstreamTest::SYSLOG[-1], qr/^err: entraid login failure; ref=\Q$ref\E realm=entra .*code=idp\.error aadsts=70008 correlation_id=\S+/,
    'syslog: same reference, realm, code, AADSTS and correlation id');
is($snapshot->(), $before, 'nothing written');

# the IdP answers garbage
($code, $state) = fresh_state();
emulator_control('{"fail_next": {"endpoint": "token", "mode": "garbage", "count": 1}}');
$err = fails('login', { realm => 'entra', code => $code, state => $state, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY });
expect_error($err, 502, 'idp.bad_response', 'garbage from the token endpoint');

# the secret file is missing: a 500 naming the file, never a secret
rename("$priv/entra.secret", "$priv/entra.secret.away") or die $!;
($code, $state) = fresh_state();
$err = fails('login', { realm => 'entra', code => $code, state => $state, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY });
is($err->{code}, 500, 'missing secret file is a 500');
like("$err", qr/\(config\.secret, reference/, 'with code config.secret');
rename("$priv/entra.secret.away", "$priv/entra.secret") or die $!;

# the IdP is down: discovery is cached so auth-url still works; the code exchange cannot
($code, $state) = fresh_state();
stop_emulator();
$err = fails('login', { realm => 'entra', code => $code, state => $state, 'redirect-url' => $redirect, 'binding-key' => $BINDING_KEY });
expect_error($err, 503, 'idp.unreachable', 'IdP down');
is($snapshot->(), $before, 'nothing written on any failure');
ok(!-e "$priv/entra.identities.json", 'no pins file');

unlike(join("\n", @errors), qr/\Q$SECRET\E|s3cr~et/, 'no secret in any error text');
unlike(join("\n", @UpstreamTest::SYSLOG), qr/\Q$SECRET\E|s3cr~et/, 'no secret in any syslog line');
unlike(join("\n", @errors), qr/ at \S+\.pm line \d+/, 'no Perl stack location in any error');

done_testing();
