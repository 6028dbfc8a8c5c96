package PVE::Auth::EntraID;

# Realm type 'entraid': Microsoft Entra ID single sign-on. This module only declares the realm's
# configuration and keeps its secrets out of domains.cfg; discovery, token validation and
# group mapping live in the Rust library (PVE::EntraID::Lib).

use strict;
use warnings;

use File::Path qw(make_path);
use Hash::Util::FieldHash qw(fieldhash);
use JSON::PP ();

use PVE::Cluster;
use PVE::INotify;
use PVE::JSONSchema;
use PVE::Tools;
use PVE::Auth::Plugin;

use base qw(PVE::Auth::Plugin);

# Overridable so tests and the demo can run without /etc/pve.
our $PRIV_DIR = '/etc/pve/priv/entraid';
our $NODES_DIR = '/etc/pve/nodes';
our $CACHE_DIR = '/var/cache/pve-entraid';
# Node-local tmpfs: the table of the anonymous endpoints' budgets (shared by all daemons' workers).
our $RUN_DIR = '/run/pve-entraid';
# Written by pve-entraid-integrate on every node that has the package.
our $NODE_MARKER = 'pve-entraid';
# Tests only: point the library at the emulator instead of the cloud's login host.
our $AUTHORITY_OVERRIDE;
our $GRAPH_OVERRIDE;
# Tests only: other budgets than the library's defaults ({address|ipv6_56|ipv6_48|realm => {burst, per_minute}}).
our $RATE_LIMITS_OVERRIDE;

my $guid_re = qr/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/;
my $domain_re = qr/(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}/;
my $group_key_re = qr/[^\s=;,]{1,256}/;
my $pve_group_re = qr/[A-Za-z0-9\.\-_]+/;

PVE::JSONSchema::register_format('pve-entraid-tenant', sub {
    my ($value, $noerr) = @_;
    return $value if $value =~ m/^(?:$guid_re|$domain_re|organizations|common)$/;
    return undef if $noerr;
    die "value is neither a tenant GUID, a verified domain, 'organizations' nor 'common'\n";
});

# One item each: PVE's check_format reads a format named 'X-list' as a list of 'X'.
PVE::JSONSchema::register_format('pve-entraid-guid', sub {
    my ($id, $noerr) = @_;
    return $id if $id =~ m/^$guid_re$/;
    return undef if $noerr;
    die "'$id' is not a GUID\n";
});

PVE::JSONSchema::register_format('pve-entraid-group', sub {
    my ($id, $noerr) = @_;
    return $id if $id =~ m/^$group_key_re$/;
    return undef if $noerr;
    die "'$id' is not a group GUID or app role name\n";
});

PVE::JSONSchema::register_format('pve-entraid-groups-map', sub {
    my ($value, $noerr) = @_;
    for my $entry (split(/[;,\s]+/, $value)) {
        next if $entry eq '' || $entry =~ m/^$group_key_re=$pve_group_re$/;
        return undef if $noerr;
        die "'$entry' is not '<group GUID or app role>=<PVE group>'\n";
    }
    return $value;
});

# '<app role>=<PVE user>[:<PVE group>...]' entries: the role as a groups-map key, the user a
# PVE user name without realm (the library checks it as it checks login names)
PVE::JSONSchema::register_format('pve-entraid-workload-map', sub {
    my ($value, $noerr) = @_;
    for my $entry (split(/[;,\s]+/, $value)) {
        next if $entry eq '' || $entry =~ m/^$group_key_re=[^\s=;,:\/%!]+(?::$pve_group_re)*$/;
        return undef if $noerr;
        die "'$entry' is not '<app role>=<PVE user>[:<PVE group>...]'\n";
    }
    return $value;
});

sub type {
    return 'entraid';
}

# Properties options() borrows from PVE's own realm types that older PVE lacks, with the
# definition used where no type of this PVE declares them (the same semantics as upstream's).
# Plugin->init() dies on an option no type declares (taking PVE::AccessControl and every daemon
# with it) and on a property declared twice, so each one is declared here only where missing.
my $borrowed_fallback = {
    # openid's, since libpve-access-control 8.2.1
    'groups-autocreate' => {
        description => "Automatically create groups if they do not exist.",
        type => 'boolean',
        default => 0,
        optional => 1,
    },
};
# the fallbacks this PVE needs, set by register()
my $fallback_properties = {};

# Only properties no other realm type registers: client-id, client-key, autocreate,
# username-claim, prompt, scopes, acr-values, groups-autocreate, default, comment and tfa
# come from the openid/pve types, and registering one twice makes Plugin->init() die; the
# ones an older PVE lacks come from $borrowed_fallback (see register).
sub properties {
    return {
        %$fallback_properties,
        'tenant-id' => {
            description => "Entra tenant: directory (tenant) GUID, a verified domain, or"
                . " 'organizations'/'common' together with 'allowed-tenants'.",
            type => 'string',
            format => 'pve-entraid-tenant',
            maxLength => 256,
        },
        cloud => {
            description => "Entra national cloud whose login and Graph hosts are used.",
            type => 'string',
            enum => [qw(public usgov china)],
            default => 'public',
            optional => 1,
        },
        'allowed-tenants' => {
            description => "Tenant GUIDs allowed to sign in (required with 'organizations' or"
                . " 'common').",
            type => 'string',
            format => 'pve-entraid-guid-list',
            maxLength => 4096,
            optional => 1,
        },
        'groups-map' => {
            description => "Map Entra group GUIDs or app roles to PVE groups, as"
                . " '<GUID or role>=<group>' separated by ';'.",
            type => 'string',
            format => 'pve-entraid-groups-map',
            maxLength => 8192,
            optional => 1,
        },
        'groups-sync' => {
            description => "On login, remove the user from mapped PVE groups whose Entra group"
                . " or role it lost. Groups not in 'groups-map' are never touched.",
            type => 'boolean',
            default => 0,
            optional => 1,
        },
        'required-groups' => {
            description => "Only users in at least one of these Entra group GUIDs or app roles"
                . " may log in.",
            type => 'string',
            format => 'pve-entraid-group-list',
            maxLength => 4096,
            optional => 1,
        },
        'allow-guests' => {
            description => "Allow B2B guest accounts (from other tenants) to log in.",
            type => 'boolean',
            default => 0,
            optional => 1,
        },
        'allow-loopback-redirect' => {
            description => "Accept the loopback redirect URL (http://localhost or"
                . " http://127.0.0.1, any port) of a command-line client such as"
                . " pve-entraid-login; the app registration needs the redirect URI"
                . " http://localhost.",
            type => 'boolean',
            default => 0,
            optional => 1,
        },
        'sync-users' => {
            description => "Users that realm sync reads: the holders of the mapped or required"
                . " groups and roles, or every user assigned to the app in Entra.",
            type => 'string',
            enum => [qw(mapped assigned)],
            default => 'mapped',
            optional => 1,
        },
        'workload-map' => {
            description => "Workload token exchange (POST /access/entraid/token): map an app role"
                . " of the realm's app, held by a workload's service principal, to a PVE user and"
                . " groups, as '<role>=<user>[:<group>...]' separated by ';'.",
            type => 'string',
            format => 'pve-entraid-workload-map',
            maxLength => 8192,
            optional => 1,
        },
        'app-id-uri' => {
            description => "The app's Application ID URI, accepted as the audience of workload"
                . " access tokens besides the client id and 'api://<client id>'.",
            type => 'string',
            pattern => '[a-zA-Z][a-zA-Z0-9+.-]*://[^\s]+',
            maxLength => 256,
            optional => 1,
        },
        'client-cert' => {
            description => "PEM text of a certificate registered for the app, used instead of"
                . " a client secret; stored in /etc/pve/priv/entraid, never in domains.cfg.",
            type => 'string',
            maxLength => 16384,
            optional => 1,
        },
        'client-cert-key' => {
            description => "PEM text of the private key of 'client-cert'; stored in"
                . " /etc/pve/priv/entraid (mode 0600), never in domains.cfg.",
            type => 'string',
            maxLength => 16384,
            optional => 1,
        },
    };
}

sub register {
    my ($class) = @_;
    my $declared = { %{ $class->properties() } };
    %$declared = (%$declared, %{ $_->properties() }) for values %{ $class->private()->{plugins} // {} };
    my @missing = grep { !$declared->{$_} } sort keys %{ $class->options() };
    my @unknown = grep { !$borrowed_fallback->{$_} } @missing;
    die "this Proxmox VE's realm types lack the properties @unknown\n" if @unknown;
    $fallback_properties = { map { $_ => $borrowed_fallback->{$_} } @missing };
    return $class->SUPER::register();
}

sub options {
    return {
        'tenant-id' => {},
        'client-id' => {},
        'client-key' => { optional => 1 },
        'client-cert' => { optional => 1 },
        'client-cert-key' => { optional => 1 },
        cloud => { optional => 1 },
        'allowed-tenants' => { optional => 1 },
        # changing it would rename every user of the realm, like openid's
        'username-claim' => { optional => 1, fixed => 1 },
        autocreate => { optional => 1 },
        'groups-map' => { optional => 1 },
        'groups-autocreate' => { optional => 1 },
        'groups-sync' => { optional => 1 },
        'required-groups' => { optional => 1 },
        'allow-guests' => { optional => 1 },
        'allow-loopback-redirect' => { optional => 1 },
        prompt => { optional => 1 },
        'acr-values' => { optional => 1 },
        scopes => { optional => 1 },
        default => { optional => 1 },
        comment => { optional => 1 },
        tfa => { optional => 1 },
        # LDAP's property: defaults of realm sync (scope, remove-vanished, enable-new)
        'sync-defaults-options' => { optional => 1 },
        'sync-users' => { optional => 1 },
        'workload-map' => { optional => 1 },
        'app-id-uri' => { optional => 1 },
    };
}

# Credentials handed in on add/update, keyed to the settings hash check_config returns: PVE's
# Domains API hands that very hash to on_add_hook/on_update_hook, and the entry goes with it
# when the request ends or dies, so a credential never outlives the request that carried it.
fieldhash my %request_credentials;
# The updates check_update has checked (keyed the same way): on_update_hook checks the others.
fieldhash my %update_checked;
my @credential_keys = ('client-key', 'client-cert', 'client-cert-key');
my %is_credential = map { $_ => 1 } @credential_keys;

# Called by the realm-api hook for each option of an update's delete=, before check_config: a
# deleted credential reaches it as an undefined setting. Only this removes a stored credential
# ('password', LDAP's, is none of this realm's).
sub delete_requested {
    my ($class, $param, $opt) = @_;
    $param->{$opt} //= undef if $is_credential{$opt};
}

# PVE's Domains API copies the checked settings into domains.cfg before it calls
# on_update_hook, so the credentials must leave the settings here, not in the hook.
# Never die here on a semantic problem: parse_config calls this too, and a section that fails
# it is lost. Such checks belong in check_realm_settings, run by the add/update hooks.
sub check_config {
    my ($class, $realm, $config, $create, $skip_schema_check) = @_;

    # before SUPER: a PEM text has line feeds, which SectionConfig refuses in any setting
    my $credentials = {};
    my $settings = { %$config };
    for my $k (grep { exists($settings->{$_}) } @credential_keys) {
        my $v = delete $settings->{$k};
        if (defined($v)) {
            $credentials->{$k} = $v;
        } else {
            $credentials->{delete} = 1; # see delete_requested
        }
    }
    # only a request SUPER accepts carries its credentials on to the hook
    my $checked = $class->SUPER::check_config($realm, $settings, $create, $skip_schema_check);
    $request_credentials{$checked} = $credentials if %$credentials;
    return $checked;
}

# Settings that restrict who may log in. SectionConfig drops a line it cannot parse, which
# would silently lift the restriction; such a value is kept as it is instead (and written
# back unchanged), and library_config refuses the realm's logins until it is fixed.
my $restrictions = { 'tenant-id' => 1, 'allowed-tenants' => 1, 'required-groups' => 1, tfa => 1 };

sub check_value {
    my ($class, $type, $key, $value, $realm, $skip_schema_check) = @_;
    # only parse_config asks about a credential (check_config takes them out first): one typed
    # into domains.cfg is dropped with a warning, never held nor written back
    die "a credential is not read from domains.cfg: 'pve-entraid set-secret' stores one\n"
        if $is_credential{$key};
    my $checked = eval { $class->SUPER::check_value($type, $key, $value, $realm, $skip_schema_check) };
    my $err = $@ or return $checked;
    die $err if $skip_schema_check || !$restrictions->{$key} || !defined($value)
        || $value =~ m/[\n\r]/;
    warn "realm '$realm': invalid '$key' kept, its logins are refused until it is fixed: $err";
    return $value;
}

# Dies when a restricting setting of the realm is invalid (see check_value).
sub assert_restrictions_valid {
    my ($realm, $section) = @_;
    for my $key (sort keys %$restrictions) {
        next if !defined($section->{$key});
        eval { __PACKAGE__->SUPER::check_value('entraid', $key, $section->{$key}, $realm) };
        die "realm '$realm' refuses logins: its '$key' in domains.cfg is invalid ($@)"
            . " - fix it with 'pveum realm modify $realm --$key ...'\n" if $@;
    }
}

# What the settings mean (tenant and allowed-tenants, username-claim, groups-map) is the
# library's to decide: the realm's settings after the change are read as a login reads them.
sub check_realm_settings {
    my ($realm, $settings) = @_;
    require PVE::EntraID::Lib;
    eval { PVE::EntraID::Lib::call('check_config', { realm => $realm, config => library_config($realm, $settings) }) };
    my $exc = $@ or return;
    # the library's answer in its own words; anything else (an invalid restriction, a library
    # that cannot be loaded) refuses the change as it is
    my $err = PVE::EntraID::Lib::error_of($exc);
    die($err ? "$err->{message}\n" : $exc);
}

sub authenticate_user {
    my ($class, $config, $realm, $username, $password) = @_;
    die "Entra ID realm does not allow password verification.\n";
}

sub secret_path { return "$PRIV_DIR/$_[0].secret"; }
sub cert_path { return "$PRIV_DIR/$_[0].crt"; }
sub cert_key_path { return "$PRIV_DIR/$_[0].key"; }
sub identities_path { return "$PRIV_DIR/$_[0].identities.json"; }
sub state_key_path { return "$PRIV_DIR/state.key"; }

# Nodes without the package parse domains.cfg without the 'entraid' type and drop the realm
# on their next realm write, so realm changes wait until every node has it. A node where
# pve-entraid-integrate could not apply its hooks keeps only the realm type registered (marker
# "not-integrated"): it keeps entraid realms, but without the realm-api hook a change made there
# would not be checked or carried out in full (a deleted credential's file would stay).
sub assert_all_nodes_have_plugin {
    opendir(my $dh, $NODES_DIR)
        or die "unable to list cluster nodes in $NODES_DIR - $!\n";
    my @missing;
    for my $node (sort readdir($dh)) {
        next if $node =~ m/^\./ || !-d "$NODES_DIR/$node";
        push @missing, $node if !-e "$NODES_DIR/$node/$NODE_MARKER";
    }
    closedir($dh);
    if (@missing) {
        my $list = join(', ', @missing);
        die "pve-entraid is not installed on node(s) $list: their PVE daemons would drop every"
            . " entraid realm from domains.cfg. Install pve-entraid there (it runs"
            . " 'pve-entraid-integrate apply') before adding or changing an entraid realm.\n";
    }
    my $here = PVE::INotify::nodename();
    die "pve-entraid is not integrated on this node ($here): its hooks could not be applied to"
        . " this Proxmox VE version (see 'pve-entraid-integrate status'). entraid realms are kept,"
        . " but are not changed here: upgrade pve-entraid, or change the realm on another node.\n"
        if !node_integrated();
}

# False on a node whose marker says "not-integrated" (pve-entraid-integrate's fail-safe).
sub node_integrated {
    my $here = PVE::INotify::nodename();
    my $marker = PVE::Tools::file_read_firstline("$NODES_DIR/$here/$NODE_MARKER") // '';
    return $marker !~ m/ not-integrated$/;
}

my sub write_private_file {
    my ($path, $content) = @_;
    make_path($PRIV_DIR, { mode => 0700 });
    PVE::Tools::file_set_contents($path, $content, 0600);
}

# PEM text, never a path: the API runs as root and must not read files for its callers, nor
# tell them whether a path exists.
my $pem_labels = { 'client-cert' => 'CERTIFICATE', 'client-cert-key' => '(?:RSA )?PRIVATE KEY' };

my sub check_pem {
    my ($key, $pem) = @_;
    my $label = $pem_labels->{$key};
    die "$key must be PEM text (-----BEGIN ...), e.g. --$key \"\$(cat FILE)\"\n"
        if $pem !~ m/^-----BEGIN ($label)-----\r?\n[A-Za-z0-9+\/=\r\n]+-----END \1-----\r?$/m;
    return $pem =~ s/\r\n/\n/gr; # pasted from Windows
}

# A realm may be added without a credential (then 'pve-entraid set-secret' keeps the secret off
# the command line); until it has one, its logins fail with config.secret. The whole change is
# checked before anything is written, and the new credential is written before the old one
# goes: a refused request leaves the realm with the credential it had.
my sub store_credentials {
    my ($realm, $credentials) = @_;

    my ($secret, $cert, $key) = @$credentials{@credential_keys};
    die "client-cert and client-cert-key must be given together\n"
        if defined($cert) != defined($key);
    die "client-key and client-cert: one credential at a time\n" if defined($secret) && defined($cert);
    die "client-key must not be empty\n" if defined($secret) && $secret eq '';
    my @new; # [path, content]
    if (defined($cert)) {
        my $cert_pem = check_pem('client-cert', $cert);
        # the key before the certificate: a login takes the certificate's presence for the pair's
        @new = ([cert_key_path($realm), check_pem('client-cert-key', $key)], [cert_path($realm), $cert_pem]);
    } elsif (defined($secret)) {
        @new = ([secret_path($realm), $secret]);
    }
    return if !@new && !$credentials->{delete};

    write_private_file(@$_) for @new;
    my %written = map { $_->[0] => 1 } @new;
    for my $path (grep { !$written{$_} } secret_path($realm), cert_path($realm), cert_key_path($realm)) {
        unlink($path) or $!{ENOENT} or die "unable to remove $path - $!\n";
    }
}

# Identity pins: user name (the user ID without '\@<realm>') => { tid, oid }. Callers hold PVE's
# user-config lock (PVE::AccessControl::lock_user_config) around read and write.
sub read_identity_pins {
    my ($realm) = @_;
    my $path = identities_path($realm);
    return {} if !-e $path;
    my $pins = eval { JSON::PP::decode_json(PVE::Tools::file_get_contents($path)) };
    die "identity pins $path are unreadable\n" if ref($pins) ne 'HASH';
    return $pins;
}

# The binding of a user name to one Entra identity (oid + tid, nOAuth), for logins and realm
# sync alike: a name's pin must be this identity's; a name without one is pinned to it, unless
# the user exists already (made by an administrator: only 'pve-entraid pin' binds it), except
# with username-claim oid, a name no other identity can have. Returns the new pin (undef: the
# name has this one); dies with the reason of a refusal.
sub identity_binding {
    my ($pins, $name, $identity, $user_exists, $section) = @_;

    if (my $pin = $pins->{$name}) {
        return undef
            if lc($pin->{tid} // '') eq $identity->{tid} && lc($pin->{oid} // '') eq $identity->{oid};
        die "is bound to another Entra identity; an administrator must remove the old binding"
            . " first\n";
    }
    die "exists but is bound to no Entra identity yet; an administrator must approve it with"
        . " 'pve-entraid pin' (tid $identity->{tid}, oid $identity->{oid})\n"
        if $user_exists && ($section->{'username-claim'} // 'upn') ne 'oid';
    return { tid => $identity->{tid}, oid => $identity->{oid} };
}

# e-mail addresses PVE itself accepts, on one line (the format allows a trailing newline).
sub safe_email {
    my ($email) = @_;
    return undef if !defined($email) || $email =~ m/[^\x21-\x7e]/;
    return PVE::JSONSchema::pve_verify_email($email, 1);
}

sub write_identity_pins {
    my ($realm, $pins) = @_;
    write_private_file(identities_path($realm), JSON::PP->new->canonical->pretty->encode($pins));
}

sub on_add_hook {
    my ($class, $realm, $config, %param) = @_;
    my $credentials = delete($request_credentials{$config}) // {};
    assert_all_nodes_have_plugin();
    check_realm_settings($realm, $config);
    store_credentials($realm, $credentials);
}

# Upstream calls this after check_update, with the changed settings only. A PVE with the
# realm plugin interface (contrib/upstream) passes the deleted options instead: this then does
# what the realm-api hook's delete_requested and check_update do.
sub on_update_hook {
    my ($class, $realm, $config, %param) = @_;
    my $credentials = delete($request_credentials{$config}) // {};
    assert_all_nodes_have_plugin();
    if (my $deleted = $param{delete}) {
        $credentials->{delete} = 1 if grep { $is_credential{$_} } @$deleted;
        my $stored = PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{$realm} // {};
        my %section = %$stored;
        delete @section{@$deleted};
        $class->check_update($realm, { %section, %$config }, $config);
    }
    # without the realm-api hook (an upstream change moved its anchor, an upgrade under way)
    # the update is checked here, as the stored section with the changes (delete= unseen)
    if (!delete($update_checked{$config})) {
        my $stored = PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{$realm} // {};
        check_realm_settings($realm, { %$stored, %$config });
    }
    store_credentials($realm, $credentials);
}

# Called by the realm-api hook in upstream's update, under its lock, right before
# on_update_hook with the same $config: the realm's section as it will be written (the stored
# settings, the changed ones, minus delete=). Upstream refuses to set a fixed option, but
# deletes one: the options() table says which.
sub check_update {
    my ($class, $realm, $section, $config) = @_;
    my $stored = PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{$realm} // {};
    my $options = $class->options();
    for my $k (sort grep { $options->{$_}->{fixed} } keys %$options) {
        my ($old, $new) = ($stored->{$k}, $section->{$k});
        die "can't change value of fixed parameter '$k'\n"
            if defined($old) != defined($new) || (defined($old) && $old ne $new);
    }
    check_realm_settings($realm, $section);
    $update_checked{$config} = 1 if ref($config);
}

# The realm plugin interface of a PVE with the upstream patches (contrib/upstream), which load
# this module through the drop-in PVE/Auth/Custom/EntraID.pm of pve-entraid-integrate instead
# of its hooks; the calls below do what the hooks do there.
sub api { return 1; }

# On a not-integrated node only the realm type is registered, also where the registration
# hook (not the fail-safe drop-in) registered this class on a PVE with the interface in
# only some of its files: no API, no anonymous call, no sync there.
sub api_subclass {
    return undef if !node_integrated();
    require PVE::API2::EntraID;
    return 'PVE::API2::EntraID';
}

# the calls the http-unauthenticated hook of pve-entraid-integrate allows (a test checks both)
sub unauthenticated_api_calls {
    return [] if !node_integrated();
    return [['POST', 'login'], ['POST', 'auth-url'], ['POST', 'token']];
}

sub can_sync { return node_integrated() ? 1 : 0; }

sub on_sync_hook {
    my ($class, $realm, $config, $usercfg, $synced, $scope) = @_;
    $class->finish_sync($realm, $synced, $usercfg, $scope);
}

# The identity pins stay, like PVE keeps the realm's users: a realm added again under the same
# name binds each existing user to the same Entra identity as before.
sub on_delete_hook {
    my ($class, $realm, $config) = @_;
    store_credentials($realm, { delete => 1 }); # whichever it has
}

# The library's realm config (docs/DESIGN.md "Realm config object"): the domains.cfg section
# as it is (PVE's schema has checked its syntax; the library decides what it means), and what
# only this side knows: where the credential is, datacenter.cfg's proxy, the schema's default
# scopes, and the test overrides.
sub library_config {
    my ($realm, $section, $http_proxy) = @_;

    assert_restrictions_valid($realm, $section);

    my $cfg = { %$section };
    # the default PVE shows for this inherited openid property ('openid' is always added); realm
    # types share one property list (SectionConfig's get_property_schema came with pve-common 8.1)
    $cfg->{scopes} //= __PACKAGE__->private()->{propertyList}->{scopes}->{default};
    $cfg->{http_proxy} = $http_proxy if defined($http_proxy) && $http_proxy ne '';
    $cfg->{authority} = $AUTHORITY_OVERRIDE if defined($AUTHORITY_OVERRIDE);
    $cfg->{graph_url} = $GRAPH_OVERRIDE if defined($GRAPH_OVERRIDE);
    if (-e cert_path($realm)) {
        $cfg->{client_cert_file} = cert_path($realm);
        $cfg->{client_key_file} = cert_key_path($realm);
    } else {
        $cfg->{client_secret_file} = secret_path($realm);
    }
    return $cfg;
}

# A library request for the realm: the members every entry point shares (docs/DESIGN.md
# "Call contexts"); the caller adds its entry point's own.
sub library_request {
    my ($realm, $section) = @_;
    my $dcconf = PVE::Cluster::cfs_read_file('datacenter.cfg');
    return {
        realm => $realm,
        config => library_config($realm, $section, $dcconf->{http_proxy}),
        cache_dir => $CACHE_DIR,
    };
}

# --- realm sync (pveum realm sync, the Sync button, realm-sync jobs): PVE::API2::Domains calls
# get_users, then get_groups with get_users' second value (LDAP passes its DN map there), and
# applies both to user.cfg itself with PVE's sync options. The library reads the directory
# (pve_entraid_sync_directory). Upstream removes (remove-vanished) every user and group of the
# realm that the sync does not return, so a user the sync must not change (not bound to the
# identity Graph names, or a name two identities share) is returned as it is. The realm-api hook
# calls finish_sync with the synced user.cfg right before upstream writes it (after a dry run's
# return): it checks the bindings again under that lock, pins the new users, and applies what
# upstream's options would undo; if it fails, user.cfg is not written.

# validated like LDAP sync validates them: with the schema of PVE's user API (and an e-mail
# address as a login stores it)
my sub synced_attribute {
    my ($userid, $attr, $value) = @_;
    eval {
        require PVE::API2::User; # registers the user-* standard options
        my $schema = PVE::JSONSchema::get_standard_option("user-$attr")
            or die "no schema for '$attr'\n";
        PVE::JSONSchema::validate($value, $schema, "invalid value '$value'\n");
        die "invalid value '$value'\n" if $attr eq 'email' && !defined(safe_email($value));
    };
    return $value if !$@;
    warn "skipping attribute '$attr' of user '$userid' - $@";
    return undef;
}

# upstream's own test of what belongs to a realm: an unquoted pattern, in which a '.' of the
# realm name matches any character (so that users and groups it takes for the realm's are kept)
my sub upstream_realm_pattern {
    my ($realm, $separator) = @_;
    return qr/\Q$separator\E$realm$/;
}

sub get_users {
    my ($class, $config, $realm) = @_;

    require PVE::AccessControl;
    require PVE::DataCenterConfig;
    require PVE::EntraID::Lib;
    # the pins name the guests (the directory does not hold the names their logins use)
    my $request = library_request($realm, $config);
    $request->{pins} = read_identity_pins($realm);
    my $dir = PVE::EntraID::Lib::call('sync_directory', $request);
    warn "$_\n" for @{ $dir->{warnings} };
    warn "skipping Entra user $_->{oid}: $_->{reason}\n" for @{ $dir->{skipped} };
    print "read " . scalar(@{ $dir->{users} }) . " users from Microsoft Graph"
        . " ($dir->{requests} requests)\n";

    my $synced = {
        config => $config, users => {}, groups => $dir->{groups},
        identities => {}, disabled => {}, kept => {},
    };
    my $users = $synced->{users};
    PVE::AccessControl::lock_user_config(sub {
        my $existing = PVE::Cluster::cfs_read_file('user.cfg')->{users} // {};
        my $pins = read_identity_pins($realm);
        # returned as they are, so that upstream neither changes nor removes them
        my $keep = sub {
            my ($userid) = @_;
            return if !$existing->{$userid};
            $users->{$userid} = $existing->{$userid}; # a copy: cfs_read_file returns one
            $synced->{kept}->{$userid} = 1;
        };
        my $upstream_realm = upstream_realm_pattern($realm, '@');
        for my $userid (sort grep { m/$upstream_realm/ && !m/\@\Q$realm\E$/ } keys %$existing) {
            print "keeping user '$userid' of another realm as it is (PVE's sync takes it for"
                . " this realm's)\n";
            $keep->($userid);
        }
        $keep->($_) for map { @{ $_->{userids} // [] } } @{ $dir->{skipped} };
        for my $u (@{ $dir->{users} }) {
            my $userid = $u->{userid};
            my ($name) = $userid =~ m/^(.+)\@\Q$realm\E$/ or next;
            # upstream enables a new user per enable-new, whatever Entra says: never create one
            # for a disabled account
            if (!$u->{enable} && !$existing->{$userid}) {
                print "not adding user '$userid': its Entra account is disabled\n";
                next;
            }
            my $identity = { tid => $dir->{tid}, oid => $u->{oid} };
            eval { identity_binding($pins, $name, $identity, !!$existing->{$userid}, $config) };
            if (my $err = $@) {
                warn $existing->{$userid}
                    ? "not syncing user '$userid', kept as it is: it $err"
                    : "not adding user '$userid': it $err";
                $keep->($userid);
                next;
            }
            $synced->{identities}->{$name} = $identity;
            # never enabled by a sync (an administrator may have disabled the user in PVE);
            # disabled as its Entra account is, also where upstream keeps 'enable' (finish_sync)
            my $user = $users->{$userid} = {};
            if (!$u->{enable}) {
                print "disabling user '$userid': its Entra account is disabled\n"
                    if $existing->{$userid} && $existing->{$userid}->{enable};
                $user->{enable} = 0;
                $synced->{disabled}->{$userid} = 1;
            }
            for my $attr (qw(firstname lastname email)) {
                next if !defined($u->{$attr});
                my $value = synced_attribute($userid, $attr, $u->{$attr});
                $user->{$attr} = $value if defined($value);
            }
        }
    }, "realm '$realm': reading identity pins failed");

    return wantarray ? ($users, $synced) : $users;
}

# Called by the realm-api hook inside upstream's sync worker, under its user config lock, right
# before it writes $usercfg to user.cfg (after its dry-run return). Dies, so that nothing is
# written, when a binding changed since get_users (a login, 'pve-entraid pin', a user made).
sub finish_sync {
    my ($class, $realm, $synced, $usercfg, $scope) = @_;

    # under the lock: what this write replaces
    my $on_disk = PVE::Cluster::cfs_read_file('user.cfg');
    my $before = $on_disk->{users} // {};
    my $pins = read_identity_pins($realm);
    my $pinned = 0;
    for my $name (sort keys %{ $synced->{identities} // {} }) {
        my $userid = "$name\@$realm";
        next if !$usercfg->{users}->{$userid};
        my $pin = eval {
            identity_binding(
                $pins, $name, $synced->{identities}->{$name}, !!$before->{$userid}, $synced->{config},
            );
        };
        die "user '$userid' $@it changed during the sync: nothing was written, sync again\n" if $@;
        next if !$pin || ($scope // 'both') eq 'groups'; # users are not this sync's
        $pins->{$name} = $pin;
        $pinned++;
    }
    if (($scope // 'both') ne 'groups') {
        # get_users copied the users it keeps before this lock: as they are now, or gone as they are
        my $upstream_user = upstream_realm_pattern($realm, '@');
        my %kept = %{ $synced->{kept} // {} };
        $kept{$_} = 1
            for grep { m/$upstream_user/ && !m/\@\Q$realm\E$/ } keys %$before, keys %{ $usercfg->{users} };
        for my $userid (keys %kept) {
            if ($before->{$userid}) {
                $usercfg->{users}->{$userid} = $before->{$userid};
            } else {
                delete $usercfg->{users}->{$userid};
            }
        }
        # upstream keeps an existing user's 'enable' with remove-vanished 'properties'
        for my $userid (keys %{ $synced->{disabled} // {} }) {
            my $user = $usercfg->{users}->{$userid} or next;
            $user->{enable} = 0;
        }
    }
    # get_groups read user.cfg before this lock: what is not the sync's to change is taken as it
    # is now, the groups upstream takes for the realm's that the map does not name, and the
    # members of mapped groups from other realms (and kept users); with scope 'groups', upstream
    # adds no users, so no group gets members of the realm that are no users
    my ($groups, $groups_before) = ($usercfg->{groups} //= {}, $on_disk->{groups} // {});
    my $upstream_realm = upstream_realm_pattern($realm, '-');
    my $mapped = $synced->{mapped_groups} // {}; # those get_groups returned with their members
    my %names = map { $_ => 1 } keys %$groups, keys %$groups_before;
    for my $group (grep { m/$upstream_realm/ && !$mapped->{$_} } keys %names) {
        if (my $old = $groups_before->{$group}) {
            $groups->{$group} = $old; # $on_disk is this call's own copy
        } else {
            delete $groups->{$group};
        }
    }
    for my $group (sort keys %$mapped) {
        my $g = $groups->{$group} or next;
        if (!$groups_before->{$group} && !$synced->{config}->{'groups-autocreate'}) {
            delete $groups->{$group}; # deleted meanwhile, and not to be made
            next;
        }
        if (my $old = $groups_before->{$group}) { # an edit meanwhile stays
            defined($old->{comment}) ? ($g->{comment} = $old->{comment}) : delete($g->{comment});
        }
        my $members = $g->{users} //= {};
        my $not_synced = sub { !m/\@\Q$realm\E$/ || $synced->{kept}->{$_} }; # taken from disk
        delete $members->{$_} for grep { $not_synced->() } keys %$members;
        delete $members->{$_} for grep { !$usercfg->{users}->{$_} } keys %$members;
        $members->{$_} = 1 for grep { $not_synced->() } keys %{ $groups_before->{$group}->{users} // {} };
    }
    # upstream's remove-vanished 'entry' deletes a user but not its group memberships nor ACL
    # entries, which a later user of that name would inherit: removed as 'pveum user delete' does
    for my $userid (sort grep { m/\@\Q$realm\E$/ && !$usercfg->{users}->{$_} } keys %$before) {
        PVE::AccessControl::delete_user_group($userid, $usercfg);
        PVE::AccessControl::delete_user_acl($userid, $usercfg);
    }
    write_identity_pins($realm, $pins) if $pinned;
}

sub get_groups {
    my ($class, $config, $realm, $synced) = @_;

    my $existing = PVE::Cluster::cfs_read_file('user.cfg')->{groups} // {};
    my $res = {};
    # upstream's remove-vanished takes every group named '*-<realm>' for the realm's own: those
    # the map does not name stay exactly as they are
    my $upstream_realm = upstream_realm_pattern($realm, '-');
    for my $group (grep { m/$upstream_realm/ } keys %$existing) {
        $res->{$group} = $existing->{$group}; # a copy: cfs_read_file returns one
    }
    for my $group (sort keys %{ $synced->{groups} // {} }) {
        my $old = $existing->{$group};
        if (!$old && !$config->{'groups-autocreate'}) {
            warn "PVE group '$group' does not exist and groups-autocreate is off: not created\n";
            next;
        }
        # members from other realms stay, and kept users of this one; the others are the synced ones
        my $users = {
            map { $_ => 1 }
            grep { !m/\@\Q$realm\E$/ || $synced->{kept}->{$_} } keys %{ $old->{users} // {} }
        };
        # a disabled Entra account is in no mapped group (also where a sync of groups alone
        # leaves its user enabled)
        $users->{$_} = 1
            for grep { $synced->{users}->{$_} && !$synced->{kept}->{$_} && !$synced->{disabled}->{$_} }
            @{ $synced->{groups}->{$group} };
        $res->{$group} = { users => $users };
        $synced->{mapped_groups}->{$group} = 1;
        my $comment = $old ? $old->{comment} : "Entra ID ($realm)";
        $res->{$group}->{comment} = $comment if defined($comment);
    }
    return $res;
}

1;
