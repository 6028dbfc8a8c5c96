package PVE::API2::EntraID;

# /access/entraid: the login endpoints of 'entraid' realms, shaped like PVE's
# /access/openid ones. The library validates everything; this module reads and writes PVE
# config under PVE's locks and hands out the ticket.

use strict;
use warnings;

use JSON;

use PVE::Cluster qw(cfs_read_file cfs_write_file);
use PVE::AccessControl;
use PVE::Auth::Plugin;
use PVE::Auth::EntraID;
use PVE::EntraID::Lib;
use PVE::Exception qw(raise);
use PVE::JSONSchema qw(get_standard_option);
use PVE::RPCEnvironment;
use PVE::SafeSyslog;
use PVE::Tools;

use PVE::RESTHandler;

use base qw(PVE::RESTHandler);

my $redirect_url_schema = {
    description => "Redirection Url. The client should set this to the used server url"
        . " (location.origin).",
    type => 'string',
    maxLength => 255,
};

# Anything that is not already a PVE::Exception becomes a 500 without Perl's "at ... line".
my sub to_exception {
    my ($err) = @_;
    return $err if ref($err) && eval { $err->isa('PVE::Exception') };
    my $msg = "$err";
    $msg =~ s/ at \S+ line \d+\.?\n?$//;
    chomp $msg;
    return PVE::Exception->new("$msg (internal.error)\n", code => 500);
}

my sub entraid_section {
    my ($domains, $realm) = @_;
    my $section = $domains->{ids}->{$realm};
    raise("authentication domain '$realm' does not exist (request.invalid)\n", code => 400)
        if !$section;
    raise("realm '$realm' is of type '$section->{type}', not 'entraid' (request.invalid)\n",
        code => 400) if $section->{type} ne 'entraid';
    return $section;
}

my sub base_request {
    my ($realm, $section) = @_;
    my $dcconf = cfs_read_file('datacenter.cfg');
    return {
        realm => $realm,
        config => PVE::Auth::EntraID::library_config($realm, $section, $dcconf->{http_proxy}),
        cache_dir => $PVE::Auth::EntraID::CACHE_DIR,
        state_key_file => "$PVE::Auth::EntraID::PRIV_DIR/state.key",
    };
}

my sub log_failure {
    my ($what, $exc, $ctx) = @_;
    my $err = PVE::EntraID::Lib::error_of($exc) // {};
    my $code = $err->{code} // ($exc->{msg} =~ m/\(([a-z]+\.[a-z_]+)\)\s*$/ ? $1 : 'unknown');
    my $line = "entraid $what failure; realm=" . ($ctx->{realm} // '-')
        . " user=" . ($ctx->{username} // '-')
        . " oid=" . ($ctx->{oid} // '-')
        . " tid=" . ($ctx->{tid} // '-')
        . " rhost=" . ($ctx->{rhost} // '-')
        . " code=$code";
    $line .= " aadsts=$err->{aadsts}" if defined($err->{aadsts});
    $line .= " correlation_id=$err->{correlation_id}" if defined($err->{correlation_id});
    $line .= " trace_id=$err->{trace_id}" if defined($err->{trace_id});
    syslog('err', '%s', $line);
}

__PACKAGE__->register_method ({
    name => 'index',
    path => '',
    method => 'GET',
    description => "Directory index.",
    permissions => { user => 'all' },
    parameters => { additionalProperties => 0, properties => {} },
    returns => {
        type => 'array',
        items => { type => "object", properties => { subdir => { type => 'string' } } },
        links => [ { rel => 'child', href => "{subdir}" } ],
    },
    code => sub {
        return [ { subdir => 'auth-url' }, { subdir => 'login' } ];
    }});

__PACKAGE__->register_method ({
    name => 'auth_url',
    path => 'auth-url',
    method => 'POST',
    protected => 1,
    description => "Get the Microsoft Entra ID authorization URL for the specified realm.",
    parameters => {
        additionalProperties => 0,
        properties => {
            realm => get_standard_option('realm'),
            'redirect-url' => $redirect_url_schema,
        },
    },
    returns => {
        type => "string",
        description => "Redirection URL.",
    },
    permissions => { user => 'world' },
    code => sub {
        my ($param) = @_;

        my $realm = $param->{realm};
        my $url = eval {
            my $section = entraid_section(cfs_read_file('domains.cfg'), $realm);
            my $request = base_request($realm, $section);
            $request->{redirect_url} = $param->{'redirect-url'};
            PVE::EntraID::Lib::call('auth_url', $request)->{url};
        };
        if (my $err = $@) {
            my $exc = to_exception($err);
            log_failure('auth-url', $exc, { realm => $realm });
            die $exc;
        }
        return $url;
    }});

my sub read_pins {
    my ($realm) = @_;
    my $path = PVE::Auth::EntraID::identities_path($realm);
    return {} if !-e $path;
    my $pins = eval { decode_json(PVE::Tools::file_get_contents($path)) };
    raise("identity pins $path are unreadable, refusing logins until it is fixed"
        . " (internal.error)\n", code => 500) if ref($pins) ne 'HASH';
    return $pins;
}

# Applies the library's mapping to user.cfg; returns true when something changed.
my sub apply_user_mapping {
    my ($usercfg, $section, $mapped, $realm) = @_;

    my $userid = $mapped->{userid};
    my $changed = 0;
    my $user = $usercfg->{users}->{$userid};
    if (!$user) {
        raise("user '$userid' does not exist and realm '$realm' does not autocreate users"
            . " (access.denied)\n", code => 401) if !$section->{autocreate};
        $user = $usercfg->{users}->{$userid} = { enable => 1, expire => 0 };
        for my $k (qw(email firstname lastname)) {
            $user->{$k} = $mapped->{$k} if defined($mapped->{$k}) && $mapped->{$k} ne '';
        }
        $changed = 1;
    }
    raise("user account disabled (access.denied)\n", code => 401) if !$user->{enable};
    raise("user account expired (access.denied)\n", code => 401)
        if $user->{expire} && $user->{expire} < time();

    my %wanted = map { $_ => 1 } @{ $mapped->{pve_groups} // [] };
    for my $group (sort keys %wanted) {
        my $g = $usercfg->{groups}->{$group};
        if (!$g) {
            if (!$section->{'groups-autocreate'}) {
                syslog('warning', '%s', "entraid realm=$realm: mapped group '$group' does not"
                    . " exist and groups-autocreate is off, not adding $userid");
                next;
            }
            $g = $usercfg->{groups}->{$group} = { users => {}, comment => "Entra ID ($realm)" };
        }
        next if $g->{users}->{$userid};
        $g->{users}->{$userid} = 1;
        $user->{groups}->{$group} = 1;
        $changed = 1;
    }
    if ($section->{'groups-sync'}) {
        # only groups the map manages; memberships an admin gave by hand stay
        for my $group (@{ $mapped->{managed_groups} // [] }) {
            next if $wanted{$group};
            my $g = $usercfg->{groups}->{$group} or next;
            next if !$g->{users}->{$userid};
            delete $g->{users}->{$userid};
            delete $user->{groups}->{$group};
            $changed = 1;
        }
    }
    return $changed;
}

__PACKAGE__->register_method ({
    name => 'login',
    path => 'login',
    method => 'POST',
    protected => 1,
    description => "Verify the Microsoft Entra ID authorization code and create a ticket.",
    parameters => {
        additionalProperties => 0,
        properties => {
            state => {
                description => "State returned by Entra ID (sealed by auth-url).",
                type => 'string',
                maxLength => 8192,
            },
            code => {
                description => "Entra ID authorization code.",
                type => 'string',
                maxLength => 8192,
            },
            'redirect-url' => $redirect_url_schema,
            realm => get_standard_option('realm', {
                optional => 1,
                description => "Realm that started the login; found from the state if omitted.",
            }),
        },
    },
    returns => {
        properties => {
            username => { type => 'string' },
            ticket => { type => 'string' },
            CSRFPreventionToken => { type => 'string' },
            cap => { type => 'object' },
            clustername => { type => 'string', optional => 1 },
        },
    },
    permissions => { user => 'world' },
    code => sub {
        my ($param) = @_;

        my $rpcenv = PVE::RPCEnvironment::get();
        my $ctx = { rhost => $rpcenv->get_client_ip(), realm => $param->{realm} };

        my $res = eval {
            my $domains = cfs_read_file('domains.cfg');
            my @realms = defined($param->{realm}) ? ($param->{realm})
                : grep { $domains->{ids}->{$_}->{type} eq 'entraid' } sort keys %{ $domains->{ids} };
            raise("no entraid realm is configured (request.invalid)\n", code => 400) if !@realms;

            # the state is sealed for one realm; the library refuses it for any other before
            # doing any I/O, so trying each entraid realm is cheap and safe
            my ($realm, $section, $login);
            for my $candidate (@realms) {
                $section = entraid_section($domains, $candidate);
                my $request = base_request($candidate, $section);
                $request->{code} = $param->{code};
                $request->{state} = $param->{state};
                $request->{redirect_url} = $param->{'redirect-url'};
                $ctx->{realm} = $candidate;
                $login = eval { PVE::EntraID::Lib::call('login', $request) };
                if (my $err = $@) {
                    my $lib_err = PVE::EntraID::Lib::error_of($err);
                    next if $lib_err && $lib_err->{code} eq 'state.realm_mismatch' && @realms > 1;
                    die $err;
                }
                $realm = $candidate;
                last;
            }
            raise("the login state belongs to no entraid realm (state.realm_mismatch)\n",
                code => 400) if !$login;
            $ctx->{realm} = $realm;
            $ctx->{username} = $login->{username};
            $ctx->{oid} = $login->{claims}->{oid};
            $ctx->{tid} = $login->{claims}->{tid};

            my $userid;
            my $inner_err;
            PVE::AccessControl::lock_user_config(sub {
                eval {
                    my $pins = read_pins($realm);
                    my $request = base_request($realm, $section);
                    delete $request->{$_} for qw(cache_dir state_key_file);
                    $request->{claims} = $login->{claims};
                    $request->{groups} = $login->{groups};
                    $request->{username} = $login->{username};
                    $request->{pin} = $pins->{$login->{username}};
                    my $mapped = PVE::EntraID::Lib::call('map', $request);

                    $userid = $mapped->{userid};
                    $ctx->{username} = $userid;
                    raise("'$userid' is not a valid PVE user id (access.denied)\n", code => 403)
                        if !PVE::Auth::Plugin::verify_username($userid, 1);

                    my $usercfg = cfs_read_file('user.cfg');
                    my $changed = apply_user_mapping($usercfg, $section, $mapped, $realm);

                    # the pin first: if user.cfg then fails, the same identity logs in again
                    if (my $pin = $mapped->{new_pin}) {
                        $pins->{$login->{username}} = $pin;
                        PVE::Tools::file_set_contents(PVE::Auth::EntraID::identities_path($realm),
                            JSON->new->canonical->pretty->encode($pins), 0600);
                    }
                    cfs_write_file('user.cfg', $usercfg) if $changed;
                };
                $inner_err = $@;
            }, "entraid login failed");
            die $inner_err if $inner_err;

            my $res = {
                ticket => PVE::AccessControl::assemble_ticket($userid),
                username => $userid,
                CSRFPreventionToken => PVE::AccessControl::assemble_csrf_prevention_token($userid),
                cap => $rpcenv->compute_api_permission($userid),
            };
            my $clinfo = PVE::Cluster::get_clinfo();
            if ($clinfo->{cluster}->{name} && $rpcenv->check($userid, '/', ['Sys.Audit'], 1)) {
                $res->{clustername} = $clinfo->{cluster}->{name};
            }
            $res;
        };
        if (my $err = $@) {
            my $exc = to_exception($err);
            log_failure('login', $exc, $ctx);
            die $exc;
        }

        syslog('info', '%s', "entraid login; realm=$ctx->{realm} user=$res->{username}"
            . " oid=$ctx->{oid} tid=$ctx->{tid} rhost=" . ($ctx->{rhost} // '-'));
        PVE::Cluster::log_msg('info', 'root@pam', "successful entraid auth for user '$res->{username}'");
        return $res;
    }});

1;
