#!/usr/bin/perl
# The XS binding and its Perl wrapper: version, JSON in/out, error codes as PVE::Exceptions.
use strict;
use warnings;

use EntraTest; # the real PVE modules PVE::EntraID::Lib loads (PVE::Exception)
use JSON;
use Test::More;
use PVE::EntraID::XS;
use PVE::EntraID::Lib;

like(PVE::EntraID::XS::version(), qr{^pve-entraid/\d+\.\d+\.\d+}, 'library version string');
is(PVE::EntraID::Lib::version(), PVE::EntraID::XS::version(), 'wrapper returns the same');

my ($rc, $json) = PVE::EntraID::XS::call('map', '{}');
is($rc, 1, 'bad request: result 1 (request.invalid)');
is(decode_json($json)->{error}->{code}, 'request.invalid', 'and the JSON says so');

($rc, $json) = PVE::EntraID::XS::call('check', 'x' x (256 * 1024 + 1));
is($rc, 2, 'over 256 KiB: result 2');
is(decode_json($json)->{error}->{code}, 'request.too_large', 'request.too_large');

($rc, $json) = PVE::EntraID::XS::call('login', "not json \0 with NUL");
is($rc, 1, 'non-JSON with a NUL byte is request.invalid, not a crash');

eval { PVE::EntraID::XS::call('nosuch', '{}') };
like($@, qr/unknown method 'nosuch'/, 'unknown method dies in Perl');
my @answer = eval { PVE::EntraID::XS::call("map\0x", '{}') };
like($@, qr/unknown method/, 'a method name with a NUL byte dies too (it is not the name before the NUL)');
is(scalar(@answer), 0, '... and nothing was called');

eval { PVE::EntraID::Lib::call('map', {}) };
my $err = $@;
ok(ref($err) && $err->isa('PVE::Exception'), 'wrapper dies with a PVE::Exception');
is($err->{code}, 400, 'request.invalid is a 400');
is(PVE::EntraID::Lib::error_of($err)->{api_status}, 400, "the status is the library's api_status");
like("$err", qr/\(request\.invalid\)\n$/, 'message ends with the code');
is(PVE::EntraID::Lib::error_of($err)->{code}, 'request.invalid', 'structured error kept');

my $map = PVE::EntraID::Lib::call('map', {
    realm => 'entra',
    config => {
        'tenant-id' => '11111111-2222-3333-4444-555555555555',
        'client-id' => 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
        client_secret => 'unused',
        'groups-map' => 'PVE.Admin=admins',
    },
    claims => { tid => '11111111-2222-3333-4444-555555555555', oid => '0a1b2c3d-0000-4000-8000-00000000a11c',
        roles => ['PVE.Admin'], given_name => "J\x{fc}rgen" },
    groups => [],
    username => "jurgen\@contoso.example",
});
is($map->{userid}, "jurgen\@contoso.example\@entra", 'user id');
is($map->{firstname}, "J\x{fc}rgen", 'non-ASCII claim intact: UTF-8 round trip through the C ABI');
is_deeply($map->{pve_groups}, ['admins'], 'app role mapped');

# every answer is released with pve_entraid_free: 200000 unreleased answers of ~100 bytes
# would add over 20 MiB of resident memory
sub rss_kib { (split(' ', slurp_statm()))[1] * 4 }
sub slurp_statm { open(my $fh, '<', '/proc/self/statm') or die $!; return scalar(<$fh>); }
PVE::EntraID::XS::call('map', '{"realm": "entra"}') for 1 .. 1000;
my $rss_before = rss_kib();
PVE::EntraID::XS::call('map', '{"realm": "entra"}') for 1 .. 200000;
my $growth = rss_kib() - $rss_before;
cmp_ok($growth, '<', 8 * 1024, "answers are freed (RSS grew $growth KiB over 200000 calls)");

my $own = PVE::EntraID::Lib::error('access.denied', 403, 'user account disabled');
is($own->{code}, 403, 'an error of the Perl side carries its status');
is(PVE::EntraID::Lib::error_of($own)->{code}, 'access.denied', 'and its code as data');
is($own->{msg}, "user account disabled (access.denied)\n", "message ends with the code");
like("$own", qr/^403 user account disabled/, "stringified as PVE::Exception does: status first");

done_testing();
