#!/usr/bin/perl -T
# The budget of the anonymous endpoints (issue 10.6) on the REAL upstream PVE code
# (PVE_ENTRAID_PVE=pve9|pve8), through the real auth_handler and rest_handler with the client
# address pvedaemon sees: a flood from one address, then from many addresses of one realm, is
# answered 429 before any work, the app's credential reaches the token endpoint at most as often
# as the budget allows, other addresses and realms still get through, and an unusable table
# refuses instead of failing open.
use strict;
use warnings;

# the Perl side's clock, moved on below to end a minute of the journal's accounting (the budget
# itself runs on the library's CLOCK_BOOTTIME); set before any module using time() compiles
our $CLOCK_SKEW = 0;
BEGIN { *CORE::GLOBAL::time = sub () { return CORE::time() + $main::CLOCK_SKEW }; }

use UpstreamTest;

use Test::More;

setup_etc_pve();
load_pve();
start_emulator(optional_claims => \@OPTIONAL_CLAIMS);

my $redirect = 'https://pve1.example.com:8006';
my $KEY = 'QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI';
my $HASH = 'Ql7U5KNrMOohuQ4hxxLGSeghTCm36vaAidEDnG5VOEw';

# Budgets small enough to spend in a few hundred calls, refilled by one call a minute: the
# counts below hold exactly unless a test run crosses a minute (then by one more).
my ($ADDRESS_BURST, $REALM_BURST) = (20, 50);
{ no warnings "once"; $PVE::Auth::EntraID::RATE_LIMITS_OVERRIDE = {
    address => { burst => $ADDRESS_BURST, per_minute => 1 },
    realm => { burst => $REALM_BURST, per_minute => 1 },
} }
my $start = CORE::time(); # the real clock: the library refills budgets by it
my sub slack { return int((CORE::time() - $start) / 60) + 1; }

for my $realm (qw(entra flood other)) {
    api_call('POST', '/access/domains', { realm => $realm, type => 'entraid', autocreate => 1,
        'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID, 'client-key' => $SECRET });
}

my sub auth_url {
    my ($realm, $ip) = @_;
    return http_request('POST', '/access/entraid/auth-url',
        { realm => $realm, 'redirect-url' => $redirect, 'binding-hash' => $HASH }, client_ip => $ip);
}

my sub login {
    my ($realm, $ip, $code, $state) = @_;
    return http_request('POST', '/access/entraid/login', { realm => $realm, code => $code,
        state => $state, 'redirect-url' => $redirect, 'binding-key' => $KEY }, client_ip => $ip);
}

# A full login from $ip: (auth-url answer, login answer or undef)
my sub full_login {
    my ($realm, $ip) = @_;
    my $url = auth_url($realm, $ip);
    return ($url, undef) if $url->{status} != 200;
    my ($code, $state) = browser_authorize($url->{data});
    return ($url, login($realm, $ip, $code, $state));
}

# warm the discovery cache, so that counting token requests below counts only logins
is(auth_url('other', '192.0.2.250')->{status}, 200, 'auth-url works');
my $tokens_before = emulator_stats()->{token};

# --- 1. one address: 300 auth-url + login pairs ---------------------------------------------
my $ATTACKER = '198.51.100.66';
my %status;
my $rejected_before_state;
for my $i (1 .. 300) {
    my $url = auth_url('entra', $ATTACKER);
    $status{ $url->{status} }++;
    # once auth-url is refused the attacker sends what it has: a real code and state
    # obtained from another address, which must be refused before its state is consumed
    my ($code, $state);
    if ($url->{status} == 200) {
        ($code, $state) = browser_authorize($url->{data});
    } else {
        $rejected_before_state //= do {
            my ($c, $s) = browser_authorize(auth_url('entra', '192.0.2.1')->{data});
            { code => $c, state => $s };
        };
        ($code, $state) = @$rejected_before_state{qw(code state)};
    }
    my $res = login('entra', $ATTACKER, $code, $state);
    $status{ $res->{status} }++;
    $rejected_before_state->{status} //= $res->{status} if $url->{status} != 200;
}
my $admitted = $status{200} // 0;
ok($admitted >= $ADDRESS_BURST && $admitted <= $ADDRESS_BURST + slack() && $status{429} == 600 - $admitted,
    "one address: $admitted of 600 calls admitted (budget $ADDRESS_BURST), the rest got 429")
    or diag explain \%status;
my $token_requests = emulator_stats()->{token} - $tokens_before;
ok($token_requests <= $ADDRESS_BURST, "token requests with the app's credential: $token_requests"
    . " <= budget $ADDRESS_BURST");

is($rejected_before_state->{status}, 429, "a login from the flooding address is refused");
my $elsewhere = login('entra', '192.0.2.1', $rejected_before_state->{code}, $rejected_before_state->{state});
is($elsewhere->{status}, 200, '... before its state was consumed: the same state still logs in from its own address');

my ($url, $res) = full_login('entra', '192.0.2.7');
ok($url->{status} == 200 && $res && $res->{status} == 200 && $res->{data}->{ticket},
    'another address of the same realm still logs in');

# what the anonymous caller is told: code and reference, nothing about addresses or budgets
my $refused = auth_url('entra', $ATTACKER);
is($refused->{status}, 429, 'HTTP 429');
like($refused->{message}, qr/^too many sign-in attempts; try again in a minute \(request\.rate_limited, reference ([0-9a-f]{8})\)$/,
    'generic message with code and reference');
my ($reference) = $refused->{message} =~ m/reference ([0-9a-f]{8})/;
unlike($refused->{message}, qr/198\.51|budget|per.minute|\b20\b/, 'no address or budget in the answer');
my @journal = grep { m/rhost=\Q$ATTACKER\E code=request\.rate_limited/ } @SYSLOG;
like($journal[0] // '', qr/entraid (auth-url|login) failure; ref=[0-9a-f]{8} realm=entra .*rhost=\Q$ATTACKER\E code=request\.rate_limited .*client 198\.51\.100\.66: budget 20 calls/,
    'the journal has the address and the budget');
# hundreds of refusals, one journal line per address and minute: a flood does not trip
# journald's rate limit for pvedaemon (which would drop unrelated lines)
ok(@journal >= 1 && @journal <= slack(), scalar(@journal) . " journal lines for $status{429} refused calls")
    or diag explain \@journal;
# the rest are counted, and said in one line by the first refusal after their minute
my $minute = POSIX::strftime('%H:%M UTC', gmtime(int(time() / 60) * 60));
$CLOCK_SKEW += 60;
is(auth_url('entra', $ATTACKER)->{status}, 429, 'a minute later (on the Perl side), still refused');
my ($summary) = grep { m/more refusals by the rate limit/ } reverse @SYSLOG;
like($summary // '', qr/^err: entraid: (\d+) more refusals by the rate limit \(request\.rate_limited\) in the minute from \Q$minute\E were not logged \(one line was, for each of \d+ addresses\)$/,
    'one line counts the unlogged refusals of the minute it names');
my ($unlogged) = ($summary // '') =~ m/: (\d+) more/;
ok(($unlogged // 0) > 0, "the minute's unlogged refusals are counted (" . ($unlogged // 0) . ")");

# IPv4 seen through a dual-stack socket (::ffff:a.b.c.d) is the same client
is(auth_url('entra', "::ffff:$ATTACKER")->{status}, 429, 'a v4-mapped IPv6 address is its IPv4 address');

# IPv6: one /64 is one client (a host picks freely inside its /64)
my %v6;
$v6{ auth_url('entra', sprintf('2001:db8:4:2::%x', $_))->{status} }++ for 1 .. 40;
ok(($v6{200} // 0) >= $ADDRESS_BURST && ($v6{200} // 0) <= $ADDRESS_BURST + slack(), 'a /64 shares one budget')
    or diag explain \%v6;
is(auth_url('entra', '2001:db8:4:3::1')->{status}, 200, 'the next /64 has its own');

# --- 2. many addresses, one realm: logins with junk codes (what costs token requests) -------
my %realm_status;
for my $n (1 .. 40) {
    for (1 .. 3) {
        $realm_status{ login('flood', "203.0.113.$n", 'junk-code', 'junk-state')->{status} == 429 ? 429 : 'admitted' }++;
    }
}
my $realm_admitted = $realm_status{admitted} // 0;
ok($realm_admitted >= $REALM_BURST && $realm_admitted <= $REALM_BURST + slack(),
    "40 addresses x 3 logins: $realm_admitted admitted (realm budget $REALM_BURST), each address below its own")
    or diag explain \%realm_status;
is(login('flood', '192.0.2.99', 'junk-code', 'junk-state')->{status}, 429,
    'a login from a new address is refused while its realm is spent');
is(auth_url('flood', '192.0.2.99')->{status}, 200,
    '... its auth-url is not (it sends nothing with the app\'s credential and pays only its address)');
is(auth_url('other', '203.0.113.1')->{status}, 200, 'another realm is not affected');

# --- 3. an unusable table refuses, it never lets calls through unlimited ----------------------
# a file that is not the table (here too short; likewise one with group/other access)
unlink('/run/pve-entraid/ratelimit.v2') or die "unlink: $!\n";
spew('/run/pve-entraid/ratelimit.v2', 'not a table', 0600);
my $broken = auth_url('other', '192.0.2.123');
is($broken->{status}, 500, 'a file that is not a table is not used: the call is refused');
like($broken->{message}, qr/\(cache\.io, reference [0-9a-f]{8}\)/, '... as cache.io');
ok((grep { m/code=cache\.io .*rate-limit table/ } @SYSLOG), '... and the journal says why');
unlink('/run/pve-entraid/ratelimit.v2') or die "unlink: $!\n";
is(auth_url('other', '192.0.2.123')->{status}, 200, 'a removed table is made again');
is((stat('/run/pve-entraid/ratelimit.v2'))[2] & 07777, 0600, '... root-only');

# --- 4. the defaults: one address gets 30 logins at once, then a call a second --------------
{
    no warnings 'once';
    local $PVE::Auth::EntraID::RATE_LIMITS_OVERRIDE = undef;
    # a realm of its own, whose budget nothing above has spent: this measures the address budget only
    api_call('POST', '/access/domains', { realm => 'defaults', type => 'entraid', autocreate => 1,
        'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID, 'client-key' => $SECRET });
    my $t0 = time();
    my %d;
    $d{ auth_url('defaults', '192.0.2.201')->{status} }++ for 1 .. 100;
    my $seconds = time() - $t0 + 1;
    ok(($d{200} // 0) >= 60 && ($d{200} // 0) <= 60 + $seconds && $d{429},
        "default budget of an address: 60 calls, refilled one a second ($d{200} admitted in ${seconds}s)")
        or diag explain \%d;
}

done_testing();
