#!/usr/bin/perl -T
# the applied hooks do what they are for on the REAL upstream modules, and a missing or
# broken pve-entraid module only warns (PVE keeps its own realms and API)

use strict;
use warnings;

use File::Temp;
use Test::More;

use IntegrateTest;

my $root = make_root('pve1');
my ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'apply') or diag($out);

my $lib = "$root/usr/share/perl5";

# pve-entraid's own modules as three variants: the real ones, absent, dying while loading
my $entra_broken = File::Temp->newdir();
spew("$entra_broken/PVE/Auth/EntraID.pm", "package PVE::Auth::EntraID;\ndie qq{libpve_entraid.so: cannot open shared object file\\n};\n");
spew("$entra_broken/PVE/API2/EntraID.pm", "package PVE::API2::EntraID;\ndie qq{compilation failed\\n};\n");
my $entra_none = File::Temp->newdir();
my %variant = (
    real => [@UpstreamTest::PROJECT_LIB],
    none => ["$entra_none"],
    broken => ["$entra_broken"],
);

# loads a hooked module in a fresh perl -T (stand-ins, the variant, the hooked files, the
# real upstream trees) and returns (exit code, output)
sub load {
    my ($which, $code) = @_;
    return UpstreamTest::run_perl({ inc => [$UpstreamTest::STANDINS, @{ $variant{$which} }, $lib,
        @UpstreamTest::UPSTREAM_LIB] }, '-e', $code);
}

my $realms = 'require PVE::AccessControl; print join(",", sort keys %{ PVE::Auth::Plugin->private()->{plugins} }), "\n";';
my ($status, $res) = load(real => $realms);
is($status, 0, 'AccessControl loads with the module present');
is($res, "ad,entraid,ldap,openid,pam,pve\n", 'entraid registered beside the upstream types, init() ran');

($status, $res) = load(none => $realms);
is($status, 0, 'AccessControl loads with the module missing');
like($res, qr/^pve-entraid: realm type 'entraid' not available: Can't locate PVE\/Auth\/EntraID\.pm/m, 'missing module warns');
like($res, qr/^ad,ldap,openid,pam,pve$/m, 'upstream realm types still registered and initialised');

($status, $res) = load(broken => $realms);
is($status, 0, 'AccessControl loads with a broken module');
like($res, qr/^pve-entraid: realm type 'entraid' not available: libpve_entraid\.so/m, 'broken module warns with its error');
like($res, qr/^ad,ldap,openid,pam,pve$/m, 'upstream realm types unaffected');

my $mounts = 'require PVE::API2::AccessControl; for my $p (qw(entraid/login openid/login domains)) {'
    . ' my ($h) = PVE::API2::AccessControl->find_handler($p eq "domains" ? "GET" : "POST", "/$p", {});'
    . ' print "$p=", $h // "none", "\n" }';
($status, $res) = load(real => $mounts);
is($status, 0, 'API2::AccessControl loads with the module present') or diag($res);
is($res, "entraid/login=PVE::API2::EntraID\nopenid/login=PVE::API2::OpenId\ndomains=PVE::API2::Domains\n",
    '/access/entraid mounted beside openid');

for my $case ([none => qr/Can't locate PVE\/API2\/EntraID\.pm/], [broken => qr/compilation failed/]) {
    ($status, $res) = load($case->[0], $mounts);
    is($status, 0, "API2::AccessControl loads with the module $case->[0]");
    like($res, qr/^pve-entraid: API path \/access\/entraid not available: $case->[1]/m, 'warns with the reason');
    like($res, qr/^entraid\/login=none\nopenid\/login=PVE::API2::OpenId\ndomains=PVE::API2::Domains$/m,
        'upstream mounts unaffected');
}

done_testing();
