# Test double of PVE::API2::Domains (pve-access-control src/PVE/API2/Domains.pm), the realm
# CRUD that `pveum realm add/modify/delete` and the GUI call. Mirrors upstream's order of
# operations, which the realm plugin's hooks depend on:
#  create: under lock_domain_config - refuse existing/reserved names and builtin types,
#          check_config(realm, param, create=1, skip schema=1), clear other 'default' markers,
#          store the settings, on_add_hook(realm, settings, password => ...), write domains.cfg;
#  update: digest check, 'delete' list applied, check_config(..., create=0), settings copied
#          into the section BEFORE on_update_hook, then write;
#  read:   the stored section plus digest;  index: realm, type, comment, default;
#  delete: on_delete_hook, then the section is removed and the file written.
package PVE::API2::Domains;

use strict;
use warnings;

use PVE::Exception qw(raise_param_exc);
use PVE::Tools qw(extract_param);
use PVE::Cluster qw(cfs_read_file cfs_write_file);
use PVE::AccessControl;
use PVE::JSONSchema qw(get_standard_option);
use PVE::RESTHandler;
use PVE::Auth::Plugin;

use base qw(PVE::RESTHandler);

my $domainconfigfile = "domains.cfg";

__PACKAGE__->register_method ({
    name => 'index',
    path => '',
    method => 'GET',
    parameters => { additionalProperties => 0, properties => {} },
    code => sub {
        my $cfg = cfs_read_file($domainconfigfile);
        my $res = [];
        for my $realm (sort keys %{ $cfg->{ids} }) {
            my $d = $cfg->{ids}->{$realm};
            my $entry = { realm => $realm, type => $d->{type} };
            $entry->{comment} = $d->{comment} if $d->{comment};
            $entry->{default} = 1 if $d->{default};
            push @$res, $entry;
        }
        return $res;
    }});

__PACKAGE__->register_method ({
    name => 'create',
    path => '',
    method => 'POST',
    protected => 1,
    parameters => PVE::Auth::Plugin->createSchema(),
    code => sub {
        my ($param) = @_;
        my $password = extract_param($param, 'password');
        PVE::Auth::Plugin::lock_domain_config(sub {
            my $cfg = cfs_read_file($domainconfigfile);
            my $ids = $cfg->{ids};
            my $realm = extract_param($param, 'realm');
            my $type = $param->{type};
            die "domain '$realm' already exists\n" if $ids->{$realm};
            die "unable to use reserved name '$realm'\n" if $realm eq 'pam' || $realm eq 'pve';
            die "unable to create builtin type '$type'\n" if $type eq 'pam' || $type eq 'pve';

            my $plugin = PVE::Auth::Plugin->lookup($type);
            my $config = $plugin->check_config($realm, $param, 1, 1);
            if ($config->{default}) {
                delete $ids->{$_}->{default} for keys %$ids;
            }
            $ids->{$realm} = $config;
            $plugin->on_add_hook($realm, $config, password => $password);
            cfs_write_file($domainconfigfile, $cfg);
        }, "add auth server failed");
        return undef;
    }});

__PACKAGE__->register_method ({
    name => 'update',
    path => '{realm}',
    method => 'PUT',
    protected => 1,
    parameters => PVE::Auth::Plugin->updateSchema(),
    code => sub {
        my ($param) = @_;
        my $password = extract_param($param, 'password');
        PVE::Auth::Plugin::lock_domain_config(sub {
            my $cfg = cfs_read_file($domainconfigfile);
            my $ids = $cfg->{ids};
            my $digest = extract_param($param, 'digest');
            PVE::SectionConfig::assert_if_modified($cfg, $digest);
            my $realm = extract_param($param, 'realm');
            die "domain '$realm' does not exist\n" if !$ids->{$realm};

            my $delete_str = extract_param($param, 'delete');
            die "no options specified\n" if !$delete_str && !scalar(keys %$param);
            my $delete_pw = 0;
            for my $opt (PVE::Tools::split_list($delete_str)) {
                delete $ids->{$realm}->{$opt};
                $delete_pw = 1 if $opt eq 'password';
            }

            my $plugin = PVE::Auth::Plugin->lookup($ids->{$realm}->{type});
            my $config = $plugin->check_config($realm, $param, 0, 1);
            if ($config->{default}) {
                delete $ids->{$_}->{default} for keys %$ids;
            }
            $ids->{$realm}->{$_} = $config->{$_} for keys %$config;

            if ($delete_pw || defined($password)) {
                $plugin->on_update_hook($realm, $config, password => $password);
            } else {
                $plugin->on_update_hook($realm, $config);
            }
            cfs_write_file($domainconfigfile, $cfg);
        }, "update auth server failed");
        return undef;
    }});

__PACKAGE__->register_method ({
    name => 'read',
    path => '{realm}',
    method => 'GET',
    parameters => {
        additionalProperties => 0,
        properties => { realm => get_standard_option('realm') },
    },
    code => sub {
        my ($param) = @_;
        my $cfg = cfs_read_file($domainconfigfile);
        my $data = $cfg->{ids}->{$param->{realm}};
        die "domain '$param->{realm}' does not exist\n" if !$data;
        $data->{digest} = $cfg->{digest};
        return $data;
    }});

__PACKAGE__->register_method ({
    name => 'delete',
    path => '{realm}',
    method => 'DELETE',
    protected => 1,
    parameters => {
        additionalProperties => 0,
        properties => { realm => get_standard_option('realm') },
    },
    code => sub {
        my ($param) = @_;
        PVE::Auth::Plugin::lock_domain_config(sub {
            my $cfg = cfs_read_file($domainconfigfile);
            my $ids = $cfg->{ids};
            my $realm = $param->{realm};
            die "authentication domain '$realm' does not exist\n" if !$ids->{$realm};
            my $plugin = PVE::Auth::Plugin->lookup($ids->{$realm}->{type});
            $plugin->on_delete_hook($realm, $ids->{$realm});
            delete $ids->{$realm};
            cfs_write_file($domainconfigfile, $cfg);
        }, "delete auth server failed");
        return undef;
    }});

1;
