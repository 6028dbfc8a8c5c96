package EntraTest;

# Shared fixtures of the perl/t tests and the demo: a throw-away /etc/pve (through the
# tests/pve-doubles), the bundled Entra emulator, realm add through PVE's Domains API, and a
# non-interactive "browser" that follows the authorize redirect.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IPC::Open2;

use base 'Exporter';
our @EXPORT = qw($TENANT $CLIENT_ID $SECRET $ALICE_OID $ALICE_GROUP $BINDING_KEY $BINDING_HASH
    setup_cluster start_emulator stop_emulator add_realm update_realm api_call domains_call
    browser_authorize emulator_control slurp);

our $ROOT = abs_path(dirname(abs_path(__FILE__)) . '/../../..');

# the emulator's built-in tenant, app and users (docs/DESIGN.md)
our $TENANT = '11111111-2222-3333-4444-555555555555';
our $CLIENT_ID = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
our $SECRET = 's3cr~et.Value_with~tilde';
our $ALICE_OID = '0a1b2c3d-0000-4000-8000-00000000a11c';
our $ALICE_GROUP = '6f7e8d9c-1111-4111-8111-000000000001';
# the browser binding the web UI makes: 32 bytes (here 0x42) and their SHA-256, base64url
our $BINDING_KEY = 'QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI';
our $BINDING_HASH = 'Ql7U5KNrMOohuQ4hxxLGSeghTCm36vaAidEDnG5VOEw';

# Creates the /etc/pve stand-in: nodes (each with the package marker unless listed in
# `unmarked`), user.cfg with root@pam, and points the plugin's paths into it.
sub setup_cluster {
    my (%opt) = @_;
    my $dir = tempdir('pve-entraid-test-XXXXXX', TMPDIR => 1, CLEANUP => !$opt{keep});
    $ENV{PVE_DOUBLES_CFS} = $dir;
    make_path("$dir/priv", "$dir/nodes", "$dir/cache");
    my %unmarked = map { $_ => 1 } @{ $opt{unmarked} // [] };
    for my $node (@{ $opt{nodes} // ['pve1'] }) {
        make_path("$dir/nodes/$node");
        next if $unmarked{$node};
        open(my $fh, '>', "$dir/nodes/$node/pve-entraid") or die "$!\n";
        print $fh "pve-entraid 0.1.0\n";
        close($fh);
    }
    # what a fresh PVE node ships
    open(my $fh, '>', "$dir/domains.cfg") or die "$!\n";
    print $fh "pam: pam\n\tcomment Linux PAM standard authentication\n\n"
        . "pve: pve\n\tcomment Proxmox VE authentication server\n\n";
    close($fh);
    open($fh, '>', "$dir/user.cfg") or die "$!\n";
    print $fh "user:root\@pam:1:0:::root\@example.com:::\n";
    close($fh);

    require PVE::AccessControl;
    require PVE::Auth::EntraID;
    $PVE::Auth::EntraID::PRIV_DIR = "$dir/priv/entraid";
    $PVE::Auth::EntraID::NODES_DIR = "$dir/nodes";
    $PVE::Auth::EntraID::CACHE_DIR = "$dir/cache";
    return $dir;
}

my $emulator;

sub start_emulator {
    my $bin = "$ROOT/target/release/entra-emulator";
    die "$bin missing: run cargo build --release --workspace\n" if !-x $bin;
    my $pid = open2(my $out, my $in, $bin, '--listen', '127.0.0.1:0');
    my $line = <$out>;
    die "entra-emulator did not start\n" if !defined($line);
    my ($url) = $line =~ m!(http://127\.0\.0\.1:\d+)! or die "unexpected emulator output: $line";
    $emulator = { pid => $pid, url => $url, out => $out };
    $PVE::Auth::EntraID::AUTHORITY_OVERRIDE = $url;
    $PVE::Auth::EntraID::GRAPH_OVERRIDE = $url;
    return $url;
}

sub stop_emulator {
    return if !$emulator;
    local $?; # waitpid must not turn the emulator's exit into the test's exit status
    kill('TERM', $emulator->{pid});
    waitpid($emulator->{pid}, 0);
    $emulator = undef;
}

END { stop_emulator(); }

sub emulator_control {
    my ($json) = @_;
    my $res = HTTP::Tiny->new->post("$emulator->{url}/_emu/control",
        { headers => { 'content-type' => 'application/json' }, content => $json });
    die "emulator control failed: $res->{status} $res->{content}\n" if !$res->{success};
}

my sub call_handler {
    my ($class, $name, $param) = @_;
    my $info = $class->map_method_by_name($name) or die "no method $name in $class\n";
    return $class->handle($info, { %$param });
}

sub api_call {
    my ($name, $param) = @_;
    require PVE::API2::EntraID;
    return call_handler('PVE::API2::EntraID', $name, $param);
}

sub domains_call {
    my ($name, $param) = @_;
    require PVE::API2::Domains;
    return call_handler('PVE::API2::Domains', $name, $param);
}

# What `pveum realm add NAME --type entraid --tenant-id ... --client-id ... --client-key ...`
# sends to POST /access/domains.
sub add_realm {
    my ($realm, %opt) = @_;
    return domains_call('create', {
        realm => $realm,
        type => 'entraid',
        'tenant-id' => $TENANT,
        'client-id' => $CLIENT_ID,
        'client-key' => $SECRET,
        %opt,
    });
}

sub update_realm {
    my ($realm, %opt) = @_;
    return domains_call('update', { realm => $realm, %opt });
}

my sub uri_escape {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord($1))/ge;
    return $s;
}

my sub uri_unescape {
    my ($s) = @_;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
    return $s;
}

# GET the authorize URL like a browser would, without following the redirect; returns the
# callback's code and state.
sub browser_authorize {
    my ($url, $login_hint) = @_;
    $url .= '&login_hint=' . uri_escape($login_hint) if defined($login_hint);
    my $res = HTTP::Tiny->new(max_redirect => 0)->get($url);
    die "authorize did not redirect: $res->{status} $res->{content}\n" if $res->{status} != 302;
    my $location = $res->{headers}->{location};
    my %q = map { uri_unescape($_) } map { split(/=/, $_, 2) }
        split(/&/, ($location =~ m/\?(.*)$/)[0] // '');
    die "callback without code: $location\n" if !$q{code};
    return ($q{code}, $q{state}, $location);
}

sub slurp {
    my ($path) = @_;
    open(my $fh, '<', $path) or return undef;
    local $/;
    return scalar(<$fh>);
}

1;
