package UpstreamTest;

# Contract-test harness: runs pve-entraid against the REAL Proxmox VE Perl code of a pinned
# upstream tree (pve9 or pve8 of tests/upstream/VERSIONS), under perl -T like PVE's daemons.
#
# `use UpstreamTest;` (first thing in a test, before any PVE module):
#   * re-executes the test in a private mount + UTS namespace (unshare -m -u; needs root) whose
#     host name is 'pve1' and where /etc/pve, /var/cache and /run/pve-entraid are fresh tmpfs mounts: the real
#     PVE::Cluster writes /etc/pve/... directly, and the plugin's default paths stay unchanged;
#   * puts on @INC, in this order: the stand-ins (tests/upstream/standins: PVE::IPCC for pmxcfs,
#     proxmox-perl-rs modules, the one pve-storage module pve-manager loads), the project's Perl
#     (perl/, perl/blib), then the upstream trees (pve-access-control, pve-common, pve-cluster,
#     pve-http-server, pve-manager).
#
# Environment (all optional):
#   PVE_ENTRAID_PVE        pve9 (default) | pve8: which pinned tree
#   PVE_ENTRAID_UPSTREAM   directory holding pve9/ and pve8/ (scripts/upstream-env.sh)
#   PVE_ENTRAID_LIB        ':'-separated dirs with the project's modules
#                          (default <repo>/perl:<repo>/perl/blib/lib:<repo>/perl/blib/arch)
#   PVE_ENTRAID_INTEGRATE  the integrate tool (default <repo>/integrate/pve-entraid-integrate)
#   PVE_ENTRAID_CLI        the pve-entraid CLI (default <repo>/perl/bin/pve-entraid)
#   PVE_ENTRAID_EMULATOR   the Entra emulator binary (default <repo>/target/release/entra-emulator)
# Child processes (CLIs, the integrate tool) run with the same perl ($^X) and the same @INC.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON ();
use IPC::Open2;
use IPC::Open3;
use Symbol qw(gensym);

use base 'Exporter';
our @EXPORT = qw(
    $PVE $TREE $REPO $NODE
    $TENANT $CLIENT_ID $SECRET $ALICE_OID $ALICE_GROUP %ENTRAID_SAMPLE @OPTIONAL_CLAIMS
    setup_etc_pve install_hooks load_pve
    api_call http_request auth_handler login_ticket
    run_perl run_cli run_pveum run_entraid_cli
    start_emulator stop_emulator emulator_control emulator_stats browser_authorize
    slurp spew section_of @SYSLOG
);

sub untaint {
    my ($value, $what) = @_;
    die "UpstreamTest: unsafe $what '$value'\n" if $value !~ m{^([\w./+:@=,-]+)$};
    return $1;
}

our $REPO;
our $PVE;
our $UPSTREAM;
our $TREE;
our $NODE;
BEGIN { $NODE = 'pve1'; }
our @PROJECT_LIB;
our @UPSTREAM_LIB;
our $STANDINS;
our ($INTEGRATE, $CLI, $EMULATOR);
our $PERL;

# the emulator's built-in tenant, app and users (docs/DESIGN.md)
our $TENANT = '11111111-2222-3333-4444-555555555555';
our $CLIENT_ID = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
our $SECRET = 's3cr~et.Value_with~tilde';
our $ALICE_OID = '0a1b2c3d-0000-4000-8000-00000000a11c';
our $ALICE_GROUP = '6f7e8d9c-1111-4111-8111-000000000001';
# the ID token optional claims README's app registration adds (step 5): `upn` for the default
# username-claim (guests' too), the names for PVE's first and last name; Entra issues none of
# them in a v2.0 token unless configured, nor does the emulator
our @OPTIONAL_CLAIMS = (
    { name => 'upn', additionalProperties => ['include_externally_authenticated_upn'] },
    { name => 'given_name' }, { name => 'family_name' },
);

# a value for every domains.cfg option of entraid (credentials never reach domains.cfg): one
# table for the domains.cfg test (03) and the API test (04), each checks it covers every option
our %ENTRAID_SAMPLE = (
    'tenant-id' => 'organizations',
    'client-id' => $CLIENT_ID,
    cloud => 'usgov',
    'allowed-tenants' => "$TENANT,99999999-8888-4777-8666-555555555555",
    'username-claim' => 'preferred_username',
    autocreate => 1,
    'groups-map' => "$ALICE_GROUP=admins;PVE.Admin=ops",
    'groups-autocreate' => 1,
    'groups-sync' => 1,
    'required-groups' => "$ALICE_GROUP,PVE.Admin",
    'allow-guests' => 1,
    'allow-loopback-redirect' => 1,
    prompt => 'select_account',
    'acr-values' => 'urn:contoso:mfa',
    scopes => 'openid profile email',
    default => 1,
    comment => 'Contoso Entra ID',
    tfa => 'type=oath,step=30,digits=6',
    'sync-defaults-options' => 'enable-new=0,remove-vanished=acl;entry,scope=both',
    'sync-users' => 'assigned',
    'workload-map' => 'Deploy.Pve=ci-deploy:ci;Backup.Read=backup-bot',
    'app-id-uri' => 'api://pve.contoso.example',
);

# the upstream trees of one PVE version, as @INC directories (what the packages install
# into /usr/share/perl5)
our @TREE_DIRS;
BEGIN {
    @TREE_DIRS = qw(pve-access-control/src pve-common/src pve-cluster/src pve-http-server/src pve-manager);
}

BEGIN {
    my $here = untaint(dirname(abs_path(__FILE__)), 'path');
    $REPO = untaint(abs_path("$here/../../.."), 'path');
    $STANDINS = untaint(abs_path("$here/../standins"), 'path');
    $PVE = untaint($ENV{PVE_ENTRAID_PVE} // 'pve9', 'PVE version');
    die "UpstreamTest: PVE_ENTRAID_PVE must be pveN\n" if $PVE !~ m/^pve\d+$/;
    # set by the runners (tests/upstream/run.sh, tests/e2e/common.sh: scripts/upstream-env.sh)
    my $up = $ENV{PVE_ENTRAID_UPSTREAM}
        // die("UpstreamTest: PVE_ENTRAID_UPSTREAM is not set; run through tests/upstream/run.sh\n");
    $UPSTREAM = untaint(abs_path($up) // die("UpstreamTest: no upstream dir '$up'\n"), 'path');
    $TREE = "$UPSTREAM/$PVE";
    die "UpstreamTest: '$TREE' is not an upstream tree (see scripts/fetch-upstream.sh)\n"
        if !-f "$TREE/pve-access-control/src/PVE/AccessControl.pm";
    @PROJECT_LIB = map { untaint($_, 'path') }
        split(/:/, $ENV{PVE_ENTRAID_LIB} // "$REPO/perl:$REPO/perl/blib/lib:$REPO/perl/blib/arch");
    @UPSTREAM_LIB = map { "$TREE/$_" } @TREE_DIRS;
    $INTEGRATE = untaint($ENV{PVE_ENTRAID_INTEGRATE} // "$REPO/integrate/pve-entraid-integrate", 'path');
    $CLI = untaint($ENV{PVE_ENTRAID_CLI} // "$REPO/perl/bin/pve-entraid", 'path');
    $EMULATOR = untaint($ENV{PVE_ENTRAID_EMULATOR} // "$REPO/target/release/entra-emulator", 'path');
    $PERL = untaint($^X, 'perl');

    $ENV{PATH} = '/usr/sbin:/usr/bin:/sbin:/bin';
    delete @ENV{qw(IFS CDPATH ENV BASH_ENV PERL5LIB PERLLIB PERL5OPT)};

    # the generated PVE::Cluster::IPCConst stand-in reads the real header of this tree
    $ENV{PVE_ENTRAID_IPC_HEADER} = "$TREE/pve-cluster/src/pmxcfs/cfs-ipc-ops.h";
    $PVE::Cluster::IPCConst::HEADER = $ENV{PVE_ENTRAID_IPC_HEADER};
}

# --- private namespace with tmpfs /etc/pve --------------------------------------------------

sub mount_ns_id { return readlink('/proc/self/ns/mnt') // ''; }

BEGIN {
    my $ns = mount_ns_id();
    my $state = $ENV{PVE_ENTRAID_NS} // '';
    if ($state ne $ns && $state ne "pending:$$") {
        die "UpstreamTest: must run as root (it uses unshare -m and tmpfs mounts)\n" if $> != 0;
        # mount points must exist on the host; empty directories, nothing is written into them
        make_path('/etc/pve') if !-d '/etc/pve';
        make_path('/run/pve-entraid') if !-d '/run/pve-entraid';
        my @inc_flags = map { "-I" . untaint($_, 'path') } grep { !ref($_) } @INC;
        my $script = untaint(abs_path($0), 'path');
        my @args = map { m/^(.*)$/s; $1 } @ARGV;
        $ENV{PVE_ENTRAID_NS} = "pending:$$"; # exec keeps the pid
        exec('unshare', '-m', '-u', '--propagation', 'private', '--', $PERL, '-T', @inc_flags,
            $script, @args) or die "UpstreamTest: exec unshare: $!\n";
    }
}

BEGIN {
    if (($ENV{PVE_ENTRAID_NS} // '') eq "pending:$$") {
        $ENV{PVE_ENTRAID_NS} = mount_ns_id();
        # /run/pve-entraid: each test file starts with its own, empty rate-limit table
        for my $dir ('/etc/pve', '/var/cache', '/run/pve-entraid') {
            system('mount', '-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', $dir) == 0
                or die "UpstreamTest: unable to mount tmpfs on $dir\n";
        }
        system('hostname', $NODE) == 0 or die "UpstreamTest: unable to set host name\n";
    }
    unshift @INC, $STANDINS, @PROJECT_LIB, @UPSTREAM_LIB;
}


# --- files ------------------------------------------------------------------------------------

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or return undef;
    local $/;
    return scalar(<$fh>);
}

sub spew {
    my ($path, $data, $mode) = @_;
    make_path(dirname($path));
    open(my $fh, '>:raw', $path) or die "open '$path': $!\n";
    print $fh $data;
    close($fh) or die "close '$path': $!\n";
    chmod($mode, $path) if defined($mode);
}

# The text of one section ("<type>: <id>" up to the next blank line) of a SectionConfig file.
sub section_of {
    my ($text, $type, $id) = @_;
    return ($text // '') =~ m/^(\Q$type\E: \Q$id\E\n(?:\t.*\n)*)/m ? $1 : undef;
}

# What a fresh PVE node's pmxcfs holds, in the tmpfs /etc/pve (emptied first):
# nodes/<node>/ (+ pve-entraid marker unless listed in `unmarked`), local -> nodes/<this node>,
# priv/ (+ lock/), pve-www.key (as pvecm updatecerts makes it), domains.cfg with pam and pve,
# user.cfg with root@pam, datacenter.cfg. Options override: nodes => [...], unmarked => [...],
# domains => TEXT, users => TEXT, datacenter => TEXT, files => { relpath => TEXT },
# cluster => NAME (writes a corosync.conf naming the nodes: a cluster instead of a single node).
sub setup_etc_pve {
    my (%opt) = @_;
    remove_tree(glob('/etc/pve/* /etc/pve/.??*'));
    my @nodes = @{ $opt{nodes} // [$NODE] };
    my %unmarked = map { $_ => 1 } @{ $opt{unmarked} // [] };
    for my $node (@nodes) {
        make_path("/etc/pve/nodes/$node");
        spew("/etc/pve/nodes/$node/pve-entraid", "pve-entraid 0.1.0\n") if !$unmarked{$node};
    }
    make_path("/etc/pve/nodes/$NODE");
    symlink("nodes/$NODE", '/etc/pve/local') or die "symlink /etc/pve/local: $!\n";
    make_path('/etc/pve/priv/lock', { mode => 0700 });
    system('openssl', 'genrsa', '-out', '/etc/pve/pve-www.key', '2048') == 0
        or die "openssl genrsa failed\n" if !$opt{no_www_key};
    spew('/etc/pve/domains.cfg', $opt{domains} // "pam: pam\n\tcomment Linux PAM standard authentication\n\n"
        . "pve: pve\n\tcomment Proxmox VE authentication server\n\n");
    spew('/etc/pve/user.cfg', $opt{users} // "user:root\@pam:1:0:::root\@example.com:::\n");
    spew('/etc/pve/datacenter.cfg', $opt{datacenter} // "keyboard: en-us\n");
    if (my $name = $opt{cluster}) {
        my $id = 0;
        spew('/etc/pve/corosync.conf', "totem {\n  cluster_name: $name\n  version: 2\n}\n\nnodelist {\n"
            . join('', map { $id++; "  node {\n    name: $_\n    nodeid: $id\n    ring0_addr: 10.0.0.$id\n  }\n" } @nodes)
            . "}\n");
    }
    for my $rel (sort keys %{ $opt{files} // {} }) {
        spew("/etc/pve/$rel", $opt{files}->{$rel});
    }
    return '/etc/pve';
}

# --- the integrate hooks on copies of the real upstream files ---------------------------------

# installed path => path inside the pinned tree
our %HOOK_SOURCES = (
    '/usr/share/perl5/PVE/AccessControl.pm' => 'pve-access-control/src/PVE/AccessControl.pm',
    '/usr/share/perl5/PVE/API2/AccessControl.pm' => 'pve-access-control/src/PVE/API2/AccessControl.pm',
    '/usr/share/perl5/PVE/API2/Domains.pm' => 'pve-access-control/src/PVE/API2/Domains.pm',
    '/usr/share/perl5/PVE/API2/Jobs/RealmSync.pm' => 'pve-access-control/src/PVE/API2/Jobs/RealmSync.pm',
    '/usr/share/perl5/PVE/HTTPServer.pm' => 'pve-manager/PVE/HTTPServer.pm',
    '/usr/share/pve-manager/index.html.tpl' => 'pve-manager/www/index.html.tpl',
);

# A fake root (temp dir, removed at exit unless keep => 1) with copies of the REAL upstream
# files the hooks touch at their installed paths and /etc/pve/nodes/<node> for each of
# `nodes` (default [$NODE]); then `pve-entraid-integrate apply --root` unless apply => 0.
# Returns ($root, $exit_code, $output). The root's usr/share/perl5 is NOT put on @INC (see
# load_pve).
sub install_hooks {
    my (%opt) = @_;
    my $root = tempdir('pve-entraid-root-XXXXXX', TMPDIR => 1, CLEANUP => !$opt{keep});
    for my $dst (sort keys %HOOK_SOURCES) {
        make_path(dirname("$root$dst"));
        copy("$TREE/$HOOK_SOURCES{$dst}", "$root$dst") or die "copy $HOOK_SOURCES{$dst}: $!\n";
    }
    make_path("$root/etc/pve/nodes/$_") for @{ $opt{nodes} // [$NODE] };
    return ($root, undef, '') if defined($opt{apply}) && !$opt{apply};
    my ($rc, $out) = run_integrate($root, 'apply', '--node', $NODE);
    return ($root, $rc, $out);
}

# Runs the integrate tool (not under -T: it is a root-run admin tool, like dpkg triggers run
# it) with the harness's @INC, so its own 'perl -c' check sees the real upstream modules.
sub run_integrate {
    my ($root, @args) = @_;
    return run_perl({ taint => 0 }, $INTEGRATE, @args, '--root', $root);
}

# Puts the hooked files of `root` (default: a fresh install_hooks) before the upstream trees
# and loads the real PVE::AccessControl (with the hook), PVE::API2::AccessControl (mounting
# /access/entraid), PVE::API2::Domains and PVE::RPCEnvironment; initialises the 'priv'
# environment like pvedaemon. Call setup_etc_pve() first. Returns the root.
my $loaded_root;
sub load_pve {
    my (%opt) = @_;
    return $loaded_root if $loaded_root;
    my $root = $opt{root};
    if (!$root) {
        my ($rc, $out);
        ($root, $rc, $out) = install_hooks(%opt);
        die "pve-entraid-integrate apply failed ($rc):\n$out" if $rc;
    }
    $root = untaint($root, 'path');
    # PVE's realm plugin loader (contrib/upstream) looks for drop-ins at the absolute path
    # /usr/share/perl5/PVE/Auth/Custom: the root's perl5 over the host's, in this namespace only
    if (-d "$root/usr/share/perl5/PVE/Auth/Custom") {
        system('mount', '-t', 'overlay', 'overlay', '-o', "lowerdir=$root/usr/share/perl5:/usr/share/perl5",
            '/usr/share/perl5') == 0 or die "UpstreamTest: unable to mount the root's perl5 over /usr/share/perl5\n";
    }
    # just before the upstream trees, after stand-ins and project code
    my $first_upstream = $UPSTREAM_LIB[0];
    my ($pos) = grep { !ref($INC[$_]) && $INC[$_] eq $first_upstream } 0 .. $#INC;
    splice(@INC, $pos // 0, 0, "$root/usr/share/perl5");

    require PVE::AccessControl;
    require PVE::RPCEnvironment;
    require PVE::API2::Domains;
    require PVE::API2::AccessControl;
    my $rpcenv = PVE::RPCEnvironment->init('priv');
    $rpcenv->init_request();
    $rpcenv->set_language('C');
    $rpcenv->set_user('root@pam');
    return $loaded_root = $root;
}

# Every PVE::SafeSyslog::syslog() call of the process as "<priority>: <message>", in order.
# The real syslog() still runs (to the journal when there is one); the spy is installed when
# UpstreamTest loads, before any module imports syslog, so every caller goes through it.
our @SYSLOG;
my $spied;
sub spy_syslog {
    return if $spied++;
    require PVE::SafeSyslog;
    my $real = \&PVE::SafeSyslog::syslog;
    no warnings 'redefine';
    *PVE::SafeSyslog::syslog = sub {
        my ($prio, $fmt, @args) = @_;
        push @SYSLOG, "$prio: " . (@args ? sprintf($fmt, @args) : $fmt);
        return $real->(@_);
    };
}
BEGIN { spy_syslog(); } # before any module imports syslog()

# --- API calls through the real RESTHandler --------------------------------------------------

# A reduced API root: the real PVE::API2 (pve-manager) mounts every subsystem (nodes, storage,
# guests...), whose modules are not among the pinned trees. This one mounts only what PVE::API2
# mounts at 'access' - the real PVE::API2::AccessControl, with its hooked 'entraid' path - so
# the real PVE::HTTPServer::rest_handler resolves /access/... exactly as on a node.
{
    package UpstreamTest::API2;
    our @ISA;
    my $done;
    sub setup {
        return if $done++;
        require PVE::RESTHandler;
        @ISA = ('PVE::RESTHandler');
        __PACKAGE__->register_method({ subclass => 'PVE::API2::AccessControl', path => 'access' });
    }
}

# Calls one API method like pvedaemon does (find_handler, real parameter validation of
# PVE::RESTHandler::handle, result verification) as `user` (default root@pam), without the
# HTTP layer's permission check. Dies with the handler's error. user => undef: anonymous.
sub api_call {
    my ($method, $path, $param, %opt) = @_;
    UpstreamTest::API2::setup();
    my $uri_param = {};
    my ($handler, $info) = UpstreamTest::API2->find_handler($method, $path, $uri_param);
    die "no handler for $method $path\n" if !$handler || !$info;
    my $rpcenv = PVE::RPCEnvironment::get();
    $rpcenv->init_request();
    $rpcenv->set_user(exists $opt{user} ? $opt{user} : 'root@pam');
    # what auth_handler sets from the connection (pveproxy: PVEClientIP); undef unless given
    $rpcenv->set_client_ip($opt{client_ip});
    return $handler->handle($info, { %$uri_param, %{ $param // {} } }, 1);
}

my $server;
sub httpserver {
    return $server if $server;
    # the real pveproxy/pvedaemon request class; only its rpcenv member is used by
    # auth_handler and rest_handler (the AnyEvent listener is not started)
    require PVE::HTTPServer;
    return $server = bless { rpcenv => PVE::RPCEnvironment::get() }, 'PVE::HTTPServer';
}

# The real PVE::HTTPServer::auth_handler. Returns its result hash, or dies with its error
# ("No ticket", "Authentication failed!" ...).
sub auth_handler {
    my ($method, $rel_uri, $ticket, $csrf, $peer_host) = @_;
    return httpserver()->auth_handler($method, $rel_uri, $ticket, $csrf, undef, $peer_host // '127.0.0.1');
}

# A request as PVE::APIServer::AnyEvent::handle_api2_request processes it: the real
# auth_handler (ticket, CSRF token), then the real rest_handler (handler lookup under the
# reduced root, permission check, handle). Returns rest_handler's response hash
# ({status, data, message, errors}); an auth failure gives {status => 401, message}.
sub http_request {
    my ($method, $rel_uri, $params, %opt) = @_;
    UpstreamTest::API2::setup();
    no warnings 'redefine';
    local *PVE::API2::find_handler = sub { shift; UpstreamTest::API2->find_handler(@_) };
    # client_ip: the connection's peer as pvedaemon sees it (pveproxy's PVEClientIP header)
    my $auth = eval { auth_handler($method, $rel_uri, $opt{ticket}, $opt{csrf}, $opt{client_ip}) };
    if (my $err = $@) {
        $err = $err->{msg} if ref($err);
        return { status => 401, message => $err };
    }
    my $resp = httpserver()->rest_handler($opt{client_ip} // '127.0.0.1', $method, $rel_uri, $auth, { %{ $params // {} } });
    return $resp;
}

# --- CLIs ---------------------------------------------------------------------------------------

# Runs a Perl script in a child (same namespace, same @INC, under -T unless taint => 0).
# First argument may be an options hash: { taint, stdin, env => {...}, inc => [dirs] }
# (inc replaces the @INC passed on, e.g. [pristine_inc()] for a node without pve-entraid).
# Returns (exit code, combined stdout+stderr).
sub run_perl {
    my $opt = ref($_[0]) eq 'HASH' ? shift : {};
    my ($script, @args) = @_;
    my @inc = map { "-I$_" } grep { !ref($_) } @{ $opt->{inc} // \@INC };
    my @cmd = ($PERL, (($opt->{taint} // 1) ? ('-T') : ()), @inc, $script, @args);
    local $ENV{PERL5LIB} = join(':', grep { !ref($_) } @INC) if defined($opt->{taint}) && !$opt->{taint};
    local @ENV{ keys %{ $opt->{env} // {} } } = values %{ $opt->{env} // {} };
    my $pid = open3(my $in, my $out, undef, @cmd);
    print $in $opt->{stdin} if defined($opt->{stdin});
    close($in);
    my $output = do { local $/; <$out> } // '';
    waitpid($pid, 0);
    return ($? >> 8, $output);
}

# @INC of a node WITHOUT pve-entraid: stand-ins and the unmodified upstream trees only
sub pristine_inc { return ($STANDINS, @UPSTREAM_LIB); }

# the real pveum (pve-access-control/src/pveum) of the selected tree
sub run_pveum {
    my (@args) = @_;
    my $opt = ref($args[0]) eq 'HASH' ? shift(@args) : {};
    return run_perl($opt, "$TREE/pve-access-control/src/pveum", @args);
}

# the project's pve-entraid CLI
sub run_entraid_cli {
    my (@args) = @_;
    my $opt = ref($args[0]) eq 'HASH' ? shift(@args) : {};
    return run_perl($opt, $CLI, @args);
}

sub run_cli { return run_perl(@_); }

# --- tickets -----------------------------------------------------------------------------------

# A ticket for `userid` made by the real PVE::AccessControl::assemble_ticket (RSA authkey
# created by the real code on first use) plus its CSRF token: what /access/ticket hands out.
sub login_ticket {
    my ($userid) = @_;
    my $ticket = PVE::AccessControl::assemble_ticket($userid);
    my $csrf = PVE::AccessControl::assemble_csrf_prevention_token($userid);
    return ($ticket, $csrf);
}

# --- the Entra emulator -----------------------------------------------------------------------

my $emulator;

# Starts target/release/entra-emulator on 127.0.0.1 (optional config => JSON file,
# optional_claims => [the app's ID token optional claims: names or {name, additionalProperties}])
# and points the plugin's test-only authority/Graph overrides at it. Returns its URL.
sub start_emulator {
    my (%opt) = @_;
    die "$EMULATOR missing: run cargo build --release --workspace\n" if !-x $EMULATOR;
    my @cmd = ($EMULATOR, '--listen', '127.0.0.1:0', $opt{config} ? ('--config', $opt{config}) : ());
    my $pid = open2(my $out, my $in, @cmd);
    my $line = <$out>;
    die "entra-emulator did not start\n" if !defined($line);
    my ($url) = $line =~ m!(http://127\.0\.0\.1:\d+)! or die "unexpected emulator output: $line";
    $emulator = { pid => $pid, url => $url, out => $out };
    if (my $claims = $opt{optional_claims}) {
        my $id_token = [map { ref($_) ? $_ : { name => $_ } } @$claims];
        emulator_control(JSON::encode_json({ optional_claims => { idToken => $id_token } }));
    }
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

# the emulator's request counts per endpoint (discovery, jwks, authorize, token, graph, ...)
sub emulator_stats {
    my $res = HTTP::Tiny->new->get("$emulator->{url}/_emu/stats");
    die "emulator stats failed: $res->{status} $res->{content}\n" if !$res->{success};
    return JSON::decode_json($res->{content});
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

# GETs the authorization URL like a browser, without following the redirect; returns the
# callback's (code, state, location).
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

1;
