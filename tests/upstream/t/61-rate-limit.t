#!/usr/bin/perl -T
# The budget of the anonymous endpoints (issue 10.6, 19.3) on the REAL upstream PVE code
# (PVE_ENTRAID_PVE=pve9|pve8), through the real auth_handler and rest_handler with the client
# address pvedaemon sees: a flood from one address, then from many addresses of one realm, is
# answered 429 before any work, the app's credential reaches the token endpoint at most as often
# as the budget allows, other addresses and realms still get through, calls that can never reach
# the token endpoint do not spend the realm's budget, a spent realm refuses a login before its
# state is used up (review 2 F3), names that are no entraid realm are charged and their journal
# lines throttled, an unusable table refuses instead of failing open, and one IPv6 customer (a
# /56 or /48 of /64s) gets no more than its block's budget (review 2 F1).
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
# the wall-clock minutes touched since the start (lines are throttled per minute of the clock)
my sub slack { return int(CORE::time() / 60) - int($start / 60) + 1; }

for my $realm (qw(entra flood forged other)) {
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
my ($summary) = grep { m/more refusals/ } reverse @SYSLOG;
like($summary // '', qr/^err: entraid: (\d+) more refusals \(\1 request\.rate_limited\) in the minute from \Q$minute\E were not logged \(one line was, for each code of \d+ addresses\)$/,
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

# --- 2. many addresses, one realm: logins that reach the token endpoint (a state of their own,
# a junk code) are what costs token requests with the app's credential --------------------------
my sub junk_login {
    my ($realm, $ip) = @_;
    my $url = auth_url($realm, $ip);
    return $url if $url->{status} != 200;
    my ($state) = $url->{data} =~ m/[?&]state=([^&]+)/;
    return login($realm, $ip, 'junk-code', $state);
}
$tokens_before = emulator_stats()->{token};
my %realm_status;
for my $n (1 .. 40) {
    $realm_status{ junk_login('flood', "203.0.113.$n")->{status} == 429 ? 429 : 'admitted' }++ for 1 .. 3;
}
my $realm_admitted = $realm_status{admitted} // 0;
ok($realm_admitted >= $REALM_BURST && $realm_admitted <= $REALM_BURST + slack(),
    "40 addresses x 3 logins: $realm_admitted admitted (realm budget $REALM_BURST), each address below its own")
    or diag explain \%realm_status;
$token_requests = emulator_stats()->{token} - $tokens_before;
ok($token_requests <= $REALM_BURST + slack(), "token requests with the app's credential: $token_requests");
is(junk_login('flood', '192.0.2.99')->{status}, 429,
    'a login from a new address is refused while its realm is spent');
is(auth_url('flood', '192.0.2.99')->{status}, 200,
    '... its auth-url is not (it sends nothing with the app\'s credential and pays only its address)');
is(auth_url('other', '203.0.113.1')->{status}, 200, 'another realm is not affected');
my ($realm_line) = grep { m/rhost=192\.0\.2\.99 code=request\.rate_limited/ } @SYSLOG;
like($realm_line // '', qr/too many token requests of realm flood from all clients \(this one: 192\.0\.2\.99\): budget $REALM_BURST calls/,
    'the journal names the realm budget');

# --- 2a. a spent realm refuses a login before its state is used up (review 2 F3) --------------
my $cache = do { no warnings "once"; $PVE::Auth::EntraID::CACHE_DIR };
my sub consumed_states { my $n = 0; $n += () = glob("$cache/consumed/*/*"); return $n; }
# logins with states of their own and junk codes, from 10 more addresses: each refused without
# a consumed-state file (the attacker's writes are bounded by the realm budget, not by addresses)
my $consumed_before = consumed_states();
my %spent;
$spent{ junk_login('flood', "198.51.100.$_")->{status} }++ for 1 .. 10;
is_deeply(\%spent, { 429 => 10 }, '10 logins with states of their own while the realm is spent: 429');
is(consumed_states() - $consumed_before, 0, '... and none of their states was used up');
ok((grep { m/rhost=198\.51\.100\.1 code=request\.rate_limited .*too many token requests of realm flood/ } @SYSLOG),
    '... refused by the realm budget');
# a user's real login while the realm is spent: refused, and its state still logs in afterwards
my $user_url = auth_url('flood', '192.0.2.98');
my ($user_code, $user_state) = browser_authorize($user_url->{data});
is(login('flood', '192.0.2.98', $user_code, $user_state)->{status}, 429, "a user's login is refused while its realm is spent");
{
    # the realm's bucket refilled (here at once: 16,000 a minute)
    no warnings 'once';
    local $PVE::Auth::EntraID::RATE_LIMITS_OVERRIDE = { %$PVE::Auth::EntraID::RATE_LIMITS_OVERRIDE,
        realm => { burst => 0 + $REALM_BURST, per_minute => 16000 } };
    select(undef, undef, undef, 0.1);
    my $retry = login('flood', '192.0.2.98', $user_code, $user_state);
    ok($retry->{status} == 200 && $retry->{data}->{ticket}, '... and logs in with the same state once it refilled')
        or diag explain [$retry->{status}, $retry->{message}, grep { m/rhost=192\.0\.2\.98/ } @SYSLOG];
    is(consumed_states() - $consumed_before, 1, '... which used it up (the count sees states used up)');
}

# --- 2b. calls that can never reach the token endpoint pay only their address (issue 19.3) ------
# 400 logins from 5 addresses with states of the attacker's own making and any binding key: far
# more are admitted by their addresses than the realm's budget holds, none is charged to it
my %forged;
@SYSLOG = ();
for my $i (1 .. 400) {
    my $ip = '198.51.100.' . (100 + $i % 5);
    my $res = http_request('POST', '/access/entraid/login', { realm => 'forged', code => 'c',
        state => sprintf('%0160d', $i), 'redirect-url' => $redirect, 'binding-key' => sprintf('%042dA', $i) },
        client_ip => $ip);
    $forged{ $res->{status} }++;
}
is($forged{429}, 400 - 5 * $ADDRESS_BURST, 'forged logins: each address got its own budget, no more')
    or diag explain \%forged;
is($forged{400}, 5 * $ADDRESS_BURST, '... the rest were refused as invalid states') or diag explain \%forged;
# refusals before the token request are throttled like the 429s: one line per code, address and
# minute, so the journal does not grow with the number of addresses an attacker has
my @forged_lines = grep { m/realm=forged / } @SYSLOG;
ok(@forged_lines >= 5 && @forged_lines <= 2 * 5 * slack(),
    scalar(@forged_lines) . " journal lines for 400 forged logins from 5 addresses (one per code and address)");
($url, $res) = full_login('forged', '192.0.2.50');
ok($url->{status} == 200 && $res && $res->{status} == 200 && $res->{data}->{ticket},
    'a real login through the emulator still succeeds: the realm\'s budget is whole')
    or diag explain [$url, $res];

# --- 2c. names that are no entraid realm: charged to the address, journal lines throttled ------
my $PROBER = '198.51.100.77';
@SYSLOG = ();
my %probe;
for my $i (1 .. 1000) {
    my $realm = $i % 2 ? 'pam' : 'nosuch';
    my $res = $i % 4 < 2 ? auth_url($realm, $PROBER) : login($realm, $PROBER, 'c', 's');
    $probe{ $res->{status} }++;
    if ($i == 1) {
        like($res->{message}, qr/^invalid request \(request\.invalid, reference [0-9a-f]{8}\)$/, 'a generic answer');
        like($SYSLOG[-1] // '', qr/rhost=\Q$PROBER\E code=request\.invalid msg=realm 'pam' is of type 'pam', not 'entraid'/,
            'the journal says why');
    }
}
ok($probe{400} >= $ADDRESS_BURST && $probe{400} <= $ADDRESS_BURST + slack() && $probe{429} == 1000 - $probe{400},
    "1000 calls naming realms that are no entraid realm: $probe{400} refused, then 429 (budget $ADDRESS_BURST)")
    or diag explain \%probe;
my @probe_lines = grep { m/rhost=\Q$PROBER\E/ } @SYSLOG;
ok(@probe_lines >= 2 && @probe_lines <= 2 * slack(), scalar(@probe_lines) . ' journal lines for 1000 calls (one per code and minute)')
    or diag explain \@probe_lines;
is(auth_url('entra', $PROBER)->{status}, 200, 'the address still has its budget in the entraid realm');
is(auth_url('pam', '198.51.100.78')->{status}, 400, 'another address has its own');
$CLOCK_SKEW += 60;
auth_url('pam', $PROBER);
# (in one line, or two when the loop crossed a minute)
my $probe_summary = join("\n", grep { m/^err: entraid: \d+ more refusals \(.*\) in the minute from/ } @SYSLOG);
ok($probe_summary =~ m/\d+ request\.invalid\b/ && $probe_summary =~ m/\d+ request\.rate_limited\b/,
    'the unlogged refusals of the minute are counted per code') or diag $probe_summary;

# --- 3. an unusable table refuses, it never lets calls through unlimited ----------------------
# a file that is not the table (here too short; likewise one with group/other access)
unlink('/run/pve-entraid/ratelimit.v3') or die "unlink: $!\n";
spew('/run/pve-entraid/ratelimit.v3', 'not a table', 0600);
my $broken = auth_url('other', '192.0.2.123');
is($broken->{status}, 500, 'a file that is not a table is not used: the call is refused');
like($broken->{message}, qr/\(cache\.io, reference [0-9a-f]{8}\)/, '... as cache.io');
ok((grep { m/code=cache\.io .*rate-limit table/ } @SYSLOG), '... and the journal says why');
unlink('/run/pve-entraid/ratelimit.v3') or die "unlink: $!\n";
is(auth_url('other', '192.0.2.123')->{status}, 200, 'a removed table is made again');
is((stat('/run/pve-entraid/ratelimit.v3'))[2] & 07777, 0600, '... root-only');

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

    # --- 5. one IPv6 customer cannot spend a realm's budget (review 2 F1) ---------------------
    # one customer holds a /56 (256 /64s) or a /48 (65,536): 11 /64s of one /56, then 11 /56s of
    # its /48, each /64 below its own budget (30 logins), send logins with states of their own and
    # junk codes (each would cost a token request under the app's credential): together they get
    # the /56's budget (60 logins), then the /48's (120), never the realm's 300
    api_call('POST', '/access/domains', { realm => 'site', type => 'entraid', autocreate => 1,
        'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID, 'client-key' => $SECRET });
    my $tokens_at = emulator_stats()->{token};
    $t0 = time();
    my %site;
    for my $net (map({ sprintf('2001:db8:99:%x', $_) } 1 .. 11), map({ sprintf('2001:db8:99:%x00', $_) } 1 .. 11)) {
        for my $i (1 .. 30) {
            my $res = junk_login('site', "${net}::$i");
            $site{ $res->{status} }++;
        }
    }
    $seconds = time() - $t0 + 1;
    my $site_tokens = emulator_stats()->{token} - $tokens_at;
    diag("one /48, 22 /64s x 30 junk logins in ${seconds}s: " . join(', ', map { "$_=$site{$_}" } sort keys %site)
        . "; token requests: $site_tokens");
    # the /48 refills 4 calls (2 logins) a second
    ok($site_tokens >= 120 && $site_tokens <= 120 + 2 * $seconds,
        "token requests of one /48: $site_tokens, its budget of 120 logins (the realm's is 300)");
    my $range_line = qr/code=request\.rate_limited msg=too many anonymous calls from clients in 2001:db8:99::\/(\d+) \(this one: 2001:db8:99:[0-9a-f]+::\/64\)/;
    ok((grep { m/$range_line/ && $1 == 56 } @SYSLOG), 'the journal names the spent /56');
    # (a minute later on the Perl side: the lines of the minute above stopped at 256 addresses)
    $CLOCK_SKEW += 60;
    # (it refills 4 calls a second: a few may get through first)
    my @more = map { auth_url('site', '2001:db8:99:c00::1')->{status} } 1 .. 20;
    ok((grep { $_ == 429 } @more) >= 10, "another /56 of the /48 is refused: @more");
    my ($c00) = grep { m/rhost=2001:db8:99:c00::1 / } @SYSLOG;
    like($c00 // '', $range_line, '... and the journal names the spent range');
    like($c00 // '', qr/2001:db8:99::\/48 /, '... its /48');
    my ($url, $res) = full_login('site', '192.0.2.202');
    ok($url->{status} == 200 && $res && $res->{status} == 200 && $res->{data}->{ticket},
        'a legitimate login from elsewhere is not locked out by one IPv6 customer')
        or diag explain [$url->{status}, $res && $res->{status}, $res && $res->{message}];
    is(auth_url('site', '2001:db8:98::1')->{status}, 200, 'another /48 has its own budget');
}

done_testing();
