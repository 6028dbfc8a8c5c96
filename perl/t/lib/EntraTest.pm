package EntraTest;

# Shared fixtures of the perl/t tests and the demo, on the REAL upstream PVE code through the
# contract harness (tests/upstream/lib/UpstreamTest.pm): a fresh tmpfs /etc/pve in a private
# mount namespace, the hooked real PVE::AccessControl, the bundled Entra emulator, realm add
# through the real Domains API, and a non-interactive "browser" that follows the authorize
# redirect. `use EntraTest;` must come before any PVE module.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);

BEGIN {
    my ($lib) = abs_path(dirname(abs_path(__FILE__)) . '/../../../tests/upstream/lib') =~ m/^(.*)$/;
    unshift @INC, $lib;
}
use UpstreamTest ();

use base 'Exporter';
our @EXPORT = qw($TENANT $CLIENT_ID $SECRET $ALICE_OID $ALICE_GROUP $BINDING_KEY $BINDING_HASH @OPTIONAL_CLAIMS
    setup_cluster start_emulator stop_emulator add_realm update_realm api_call domains_call
    browser_authorize emulator_control slurp);

our $ROOT = $UpstreamTest::REPO;
our ($TENANT, $CLIENT_ID, $SECRET, $ALICE_OID, $ALICE_GROUP) = ($UpstreamTest::TENANT,
    $UpstreamTest::CLIENT_ID, $UpstreamTest::SECRET, $UpstreamTest::ALICE_OID, $UpstreamTest::ALICE_GROUP);
our @OPTIONAL_CLAIMS = @UpstreamTest::OPTIONAL_CLAIMS;

# the browser binding the web UI makes: 32 bytes (here 0x42) and their SHA-256, base64url
our $BINDING_KEY = 'QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI';
our $BINDING_HASH = 'Ql7U5KNrMOohuQ4hxxLGSeghTCm36vaAidEDnG5VOEw';
*start_emulator = \&UpstreamTest::start_emulator;
*stop_emulator = \&UpstreamTest::stop_emulator;
*emulator_control = \&UpstreamTest::emulator_control;
*browser_authorize = \&UpstreamTest::browser_authorize;
*slurp = \&UpstreamTest::slurp;

# A fresh /etc/pve (nodes, each with the package marker unless listed in `unmarked`; user.cfg
# with root@pam; `cluster` names a cluster) and the hooked real PVE::AccessControl loaded.
# Returns '/etc/pve'.
sub setup_cluster {
    my (%opt) = @_;
    my $dir = UpstreamTest::setup_etc_pve(
        nodes => $opt{nodes} // [$UpstreamTest::NODE], unmarked => $opt{unmarked}, cluster => $opt{cluster},
    );
    UpstreamTest::load_pve();
    require PVE::Auth::EntraID;
    return $dir;
}

# An anonymous call of a PVE::API2::EntraID method by name, through the real RESTHandler
# (parameter validation included), as pveproxy/pvedaemon run it: no user set.
sub api_call {
    my ($name, $param) = @_;
    require PVE::API2::EntraID;
    my $info = PVE::API2::EntraID->map_method_by_name($name) or die "no method $name\n";
    return UpstreamTest::api_call($info->{method}, "/access/entraid/$info->{path}", $param, user => undef);
}

# A PVE::API2::Domains method by name (create, read, update, delete, index) as root@pam,
# through the real RESTHandler.
sub domains_call {
    my ($name, $param) = @_;
    my %route = (create => 'POST', index => 'GET', read => 'GET', update => 'PUT', delete => 'DELETE');
    my $method = $route{$name} or die "no Domains method $name\n";
    my $path = $name =~ m/^(?:read|update|delete)$/ ? "/access/domains/$param->{realm}" : '/access/domains';
    my %rest = %$param;
    delete $rest{realm} if $path ne '/access/domains';
    return UpstreamTest::api_call($method, $path, \%rest);
}

# What `pveum realm add NAME --type entraid --tenant-id ... --client-id ... --client-key ...`
# sends to POST /access/domains.
sub add_realm {
    my ($realm, %opt) = @_;
    return domains_call('create', {
        realm => $realm, type => 'entraid', 'tenant-id' => $TENANT, 'client-id' => $CLIENT_ID,
        'client-key' => $SECRET, %opt,
    });
}

sub update_realm {
    my ($realm, %opt) = @_;
    return domains_call('update', { realm => $realm, %opt });
}

1;
