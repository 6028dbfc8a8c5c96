package PVE::Auth::EntraID;

# Realm type 'entraid': Microsoft Entra ID single sign-on. This module only declares the realm's
# configuration and keeps its secrets out of domains.cfg; discovery, token validation and
# group mapping live in the Rust library (PVE::EntraID::Lib).

use strict;
use warnings;

use File::Path qw(make_path);
use JSON::PP ();

use PVE::Cluster;
use PVE::JSONSchema;
use PVE::Tools;
use PVE::Auth::Plugin;

use base qw(PVE::Auth::Plugin);

# Overridable so tests and the demo can run without /etc/pve.
our $PRIV_DIR = '/etc/pve/priv/entraid';
our $NODES_DIR = '/etc/pve/nodes';
our $CACHE_DIR = '/var/cache/pve-entraid';
# Written by pve-entraid-integrate on every node that has the package.
our $NODE_MARKER = 'pve-entraid';
# Tests only: point the library at the emulator instead of the cloud's login host.
our $AUTHORITY_OVERRIDE;
our $GRAPH_OVERRIDE;

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

PVE::JSONSchema::register_format('pve-entraid-guid-list', sub {
    my ($value, $noerr) = @_;
    for my $id (PVE::Tools::split_list($value)) {
        next if $id =~ m/^$guid_re$/;
        return undef if $noerr;
        die "'$id' is not a GUID\n";
    }
    return $value;
});

PVE::JSONSchema::register_format('pve-entraid-group-list', sub {
    my ($value, $noerr) = @_;
    for my $id (PVE::Tools::split_list($value)) {
        next if $id =~ m/^$group_key_re$/;
        return undef if $noerr;
        die "'$id' is not a group GUID or app role name\n";
    }
    return $value;
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

sub type {
    return 'entraid';
}

# Only properties no other realm type registers: client-id, client-key, autocreate,
# username-claim, prompt, scopes, acr-values, groups-autocreate, default and comment
# come from the openid/pve types, and registering one twice makes Plugin->init() die.
sub properties {
    return {
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
        'client-cert' => {
            description => "Path of a PEM certificate registered for the app, used instead of"
                . " a client secret; copied to /etc/pve/priv/entraid, never stored here.",
            type => 'string',
            maxLength => 4096,
            optional => 1,
        },
        'client-cert-key' => {
            description => "Path of the PEM private key of 'client-cert'; copied to"
                . " /etc/pve/priv/entraid (mode 0600), never stored here.",
            type => 'string',
            maxLength => 4096,
            optional => 1,
        },
    };
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
        prompt => { optional => 1 },
        'acr-values' => { optional => 1 },
        scopes => { optional => 1 },
        # the base plugin's TFA requirement; the login answers with a TFA challenge (API2/EntraID.pm)
        tfa => { optional => 1 },
        default => { optional => 1 },
        comment => { optional => 1 },
    };
}

# Credentials handed in on add/update, per realm, until the hook writes them to $PRIV_DIR.
# A credential found in a hand-edited domains.cfg lands here too on parse, and is moved to
# $PRIV_DIR by the realm's next update instead of being written back.
my $pending_credentials = {};
my @credential_keys = ('client-key', 'client-cert', 'client-cert-key');

# PVE's Domains API copies the checked settings into domains.cfg before it calls
# on_update_hook, so the credentials must leave the settings here, not in the hook.
# Never die here on a semantic problem: parse_config calls this too, and a section that fails
# it is lost. Such checks belong in check_realm_settings, run by the add/update hooks.
sub check_config {
    my ($class, $realm, $config, $create, $skip_schema_check) = @_;

    my $settings = $class->SUPER::check_config($realm, $config, $create, $skip_schema_check);

    my $pending = {};
    for my $k (@credential_keys) {
        my $v = delete $settings->{$k};
        $pending->{$k} = $v if defined($v);
    }
    $pending_credentials->{$realm} = $pending if %$pending;

    return $settings;
}

# Checks the schema cannot express, on the realm's settings after the change.
sub check_realm_settings {
    my ($settings) = @_;
    if (defined(my $claim = $settings->{'username-claim'})) {
        die "username-claim must be one of upn, preferred_username, email, oid\n"
            if $claim !~ m/^(?:upn|preferred_username|email|oid)$/;
    }
    my $tenant = $settings->{'tenant-id'} // '';
    die "tenant-id '$tenant' needs 'allowed-tenants' (the tenant GUIDs that may sign in)\n"
        if $tenant =~ m/^(?:organizations|common)$/ && !$settings->{'allowed-tenants'};
}

sub authenticate_user {
    my ($class, $config, $realm, $username, $password) = @_;
    die "Entra ID realm does not allow password verification.\n";
}

sub secret_path { return "$PRIV_DIR/$_[0].secret"; }
sub cert_path { return "$PRIV_DIR/$_[0].crt"; }
sub cert_key_path { return "$PRIV_DIR/$_[0].key"; }
sub identities_path { return "$PRIV_DIR/$_[0].identities.json"; }

# Nodes without the package parse domains.cfg without the 'entraid' type and drop the realm
# on their next realm write, so realm changes wait until every node has it.
sub assert_all_nodes_have_plugin {
    opendir(my $dh, $NODES_DIR)
        or die "unable to list cluster nodes in $NODES_DIR - $!\n";
    my @missing;
    for my $node (sort readdir($dh)) {
        next if $node =~ m/^\./ || !-d "$NODES_DIR/$node";
        push @missing, $node if !-e "$NODES_DIR/$node/$NODE_MARKER";
    }
    closedir($dh);
    return if !@missing;
    my $list = join(', ', @missing);
    die "pve-entraid is not installed on node(s) $list: their PVE daemons would drop every"
        . " entraid realm from domains.cfg. Install pve-entraid there (it runs"
        . " 'pve-entraid-integrate apply') before adding or changing an entraid realm.\n";
}

my sub write_private_file {
    my ($path, $content) = @_;
    make_path($PRIV_DIR, { mode => 0700 });
    PVE::Tools::file_set_contents($path, $content, 0600);
}

my sub read_pem {
    my ($path, $what) = @_;
    die "$what '$path' is not a readable file\n" if !-f $path || !-r _;
    die "$what '$path' is larger than 64 KiB\n" if -s _ > 65536;
    my $pem = PVE::Tools::file_get_contents($path);
    die "$what '$path' is not PEM\n" if $pem !~ m/^-----BEGIN [A-Z ]+-----$/m;
    return $pem;
}

my sub store_credentials {
    my ($realm, $pending, $create) = @_;

    my $cert = $pending->{'client-cert'};
    my $key = $pending->{'client-cert-key'};
    die "client-cert and client-cert-key must be given together\n"
        if defined($cert) != defined($key);
    die "either client-key or client-cert/client-cert-key is required\n"
        if $create && !defined($cert) && !defined($pending->{'client-key'});

    # read both PEM files first, so a bad path changes nothing
    my ($cert_pem, $key_pem);
    if (defined($cert)) {
        $cert_pem = read_pem($cert, 'client-cert');
        $key_pem = read_pem($key, 'client-cert-key');
    }
    if (defined(my $secret = $pending->{'client-key'})) {
        die "client-key must not be empty\n" if $secret eq '';
        write_private_file(secret_path($realm), $secret);
        unlink(cert_path($realm), cert_key_path($realm)); # one credential at a time
    }
    if (defined($cert_pem)) {
        write_private_file(cert_key_path($realm), $key_pem);
        write_private_file(cert_path($realm), $cert_pem);
        unlink(secret_path($realm));
    }
}

sub on_add_hook {
    my ($class, $realm, $config, %param) = @_;
    my $pending = delete($pending_credentials->{$realm}) // {};
    assert_all_nodes_have_plugin();
    check_realm_settings($config);
    delete $config->{$_} for @credential_keys;
    store_credentials($realm, $pending, 1);
}

sub on_update_hook {
    my ($class, $realm, $config, %param) = @_;
    my $pending = delete($pending_credentials->{$realm}) // {};
    assert_all_nodes_have_plugin();
    # the hook only sees the changed settings; the stored ones are still unchanged on disk
    my $stored = PVE::Cluster::cfs_read_file('domains.cfg')->{ids}->{$realm} // {};
    check_realm_settings({ %$stored, %$config });
    delete $config->{$_} for @credential_keys;
    store_credentials($realm, $pending, 0);
}

sub on_delete_hook {
    my ($class, $realm, $config) = @_;
    delete $pending_credentials->{$realm};
    for my $path (secret_path($realm), cert_path($realm), cert_key_path($realm), identities_path($realm)) {
        unlink($path) or $!{ENOENT} or die "unable to remove $path - $!\n";
    }
}

my sub groups_map_hash {
    my ($text) = @_;
    my $map = {};
    for my $entry (split(/[;,\s]+/, $text // '')) {
        next if $entry eq '';
        my ($k, $v) = split(/=/, $entry, 2);
        $map->{$k} = $v;
    }
    return $map;
}

# The library's realm config object (docs/DESIGN.md) for a domains.cfg section.
sub library_config {
    my ($realm, $section, $http_proxy) = @_;

    my $cfg = {
        tenant => $section->{'tenant-id'},
        client_id => $section->{'client-id'},
        cloud => $section->{cloud} // 'public',
        username_claim => $section->{'username-claim'} // 'upn',
        groups_map => groups_map_hash($section->{'groups-map'}),
        groups_autocreate => $section->{'groups-autocreate'} ? JSON::PP::true() : JSON::PP::false(),
        groups_sync => $section->{'groups-sync'} ? JSON::PP::true() : JSON::PP::false(),
        allow_guests => $section->{'allow-guests'} ? JSON::PP::true() : JSON::PP::false(),
        allowed_tenants => [PVE::Tools::split_list($section->{'allowed-tenants'})],
        required_groups => [PVE::Tools::split_list($section->{'required-groups'})],
    };
    $cfg->{scopes} = $section->{scopes} if defined($section->{scopes});
    $cfg->{prompt} = $section->{prompt} if defined($section->{prompt});
    $cfg->{acr_values} = $section->{'acr-values'} if defined($section->{'acr-values'});
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


1;
