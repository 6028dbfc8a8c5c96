#!/usr/bin/perl
# the applied hooks do what they are for, and a missing or broken pve-entraid module
# only warns (PVE keeps its own realms and API)

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Temp;
use Test::More;

use IntegrateTest;

my $root = make_root('pve1');
my ($rc, $out) = run_tool($root, 'apply', '--node', 'pve1');
is($rc, 0, 'apply') or diag($out);

my $lib = "$root/usr/share/perl5";

# pve-entraid's own modules as three variants: present, absent, dying while loading
my $entra_ok = File::Temp->newdir();
spew("$entra_ok/PVE/Auth/EntraID.pm", "package PVE::Auth::EntraID;\nuse base qw(PVE::Auth::Plugin);\n1;\n");
spew("$entra_ok/PVE/API2/EntraID.pm", "package PVE::API2::EntraID;\n1;\n");
my $entra_broken = File::Temp->newdir();
spew("$entra_broken/PVE/Auth/EntraID.pm", "package PVE::Auth::EntraID;\ndie qq{libpve_entraid.so: cannot open shared object file\\n};\n");
spew("$entra_broken/PVE/API2/EntraID.pm", "package PVE::API2::EntraID;\ndie qq{compilation failed\\n};\n");
my $entra_none = File::Temp->newdir();

# loads a hooked module in a fresh perl and prints what the doubles recorded
sub load {
    my ($entra_dir, $code) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!\n";
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT);
        exec($^X, "-I$entra_dir", "-I$lib", "-I$DOUBLES", '-e', $code) or exit(127);
    }
    my $res = do { local $/; <$fh> } // '';
    close($fh);
    return ($? >> 8, $res);
}

my $realms = 'require PVE::AccessControl; print join(",", @PVE::Auth::Plugin::calls), "\n";';
my ($status, $res) = load($entra_ok, $realms);
is($status, 0, 'AccessControl loads with the module present');
is($res, "register PVE::Auth::PAM,register PVE::Auth::OpenId,register PVE::Auth::EntraID,init\n",
    'entraid registered after the upstream types and before init()');

($status, $res) = load($entra_none, $realms);
is($status, 0, 'AccessControl loads with the module missing');
like($res, qr/^pve-entraid: realm type 'entraid' not available: Can't locate PVE\/Auth\/EntraID\.pm/m, 'missing module warns');
like($res, qr/^register PVE::Auth::PAM,register PVE::Auth::OpenId,init$/m, 'upstream realm types still registered and initialised');

($status, $res) = load($entra_broken, $realms);
is($status, 0, 'AccessControl loads with a broken module');
like($res, qr/^pve-entraid: realm type 'entraid' not available: libpve_entraid\.so/m, 'broken module warns with its error');
like($res, qr/^register PVE::Auth::PAM,register PVE::Auth::OpenId,init$/m, 'upstream realm types unaffected');

my $mounts = 'require PVE::API2::AccessControl; my $m = $PVE::RESTHandler::mounts{"PVE::API2::AccessControl"};'
    . ' print join(",", map { "$_=$m->{$_}" } sort keys %$m), "\n";';
($status, $res) = load($entra_ok, $mounts);
is($status, 0, 'API2::AccessControl loads with the module present');
is($res, "domains=PVE::API2::Domains,entraid=PVE::API2::EntraID,openid=PVE::API2::OpenId,tfa=PVE::API2::TFA\n",
    'entraid mounted beside openid');

for my $case ([$entra_none, qr/Can't locate PVE\/API2\/EntraID\.pm/], [$entra_broken, qr/compilation failed/]) {
    ($status, $res) = load($case->[0], $mounts);
    is($status, 0, 'API2::AccessControl loads without a working module');
    like($res, qr/^pve-entraid: API path \/access\/entraid not available: $case->[1]/m, 'warns with the reason');
    like($res, qr/^domains=PVE::API2::Domains,openid=PVE::API2::OpenId,tfa=PVE::API2::TFA$/m, 'upstream mounts unaffected');
}

my $auth = 'require PVE::HTTPServer; for (@ARGV) { my ($m, $u) = split / /; print "$m $u ", PVE::HTTPServer::auth_handler(undef, $m, $u), "\n" }';
my @calls = (
    'POST /access/entraid/auth-url', 'POST /access/entraid/login', 'GET /access/entraid/login',
    'POST /access/entraid/other', 'POST /access/openid/login', 'POST /access/users',
);
my $pid = open(my $fh, '-|') // die;
if (!$pid) { exec($^X, "-I$lib", '-e', $auth, @calls) or exit(127); }
my %need_auth = map { m/^(\S+ \S+) (\d)$/ ? ($1 => $2) : () } <$fh>;
close($fh);
is_deeply(\%need_auth, {
    'POST /access/entraid/auth-url' => 0,
    'POST /access/entraid/login' => 0,
    'GET /access/entraid/login' => 1,
    'POST /access/entraid/other' => 1,
    'POST /access/openid/login' => 0,
    'POST /access/users' => 1,
}, 'only the entraid auth-url/login POSTs join the calls allowed without a ticket');

done_testing();
