package PVE::API2::EntraID;

# /access/entraid: the login endpoints of 'entraid' realms, shaped like PVE's
# /access/openid ones. The library validates everything; this module reads and writes PVE
# config under PVE's locks and hands out the ticket.

use strict;
use warnings;

use POSIX ();

use PVE::Cluster qw(cfs_read_file cfs_write_file);
use PVE::AccessControl;
use PVE::Auth::Plugin;
use PVE::Auth::EntraID;
use PVE::EntraID::Lib;
use PVE::Exception;
use PVE::JSONSchema qw(get_standard_option);
use PVE::RPCEnvironment;
use PVE::SafeSyslog;

use PVE::RESTHandler;

use base qw(PVE::RESTHandler);

my $redirect_url_schema = {
    description => "Redirection Url. The client should set this to the used server url"
        . " (location.origin).",
    type => 'string',
    maxLength => 255,
};

# The browser binding (RFC 9700 4.7.1): the client keeps 32 random bytes for the duration of
# the login, sends their SHA-256 to auth-url (sealed into the state) and the bytes to login.
my $binding_pattern = qr/[A-Za-z0-9_-]{43}/;
my $binding_hash_schema = {
    description => "Base64url (no padding) SHA-256 of 32 random bytes that the client keeps"
        . " until it calls 'login' with them as 'binding-key'.",
    type => 'string',
    pattern => $binding_pattern,
};
my $binding_key_schema = {
    description => "Base64url (no padding) of the 32 random bytes whose SHA-256 was sent to"
        . " 'auth-url' as 'binding-hash'.",
    type => 'string',
    pattern => $binding_pattern,
};

# The stable code of a failure (carried as data by the library's and our own errors).
# what /access/ticket answers, and so login and the workload exchange (fresh hashes per call)
my sub ticket_answer_properties {
    return (
        username => { type => 'string' },
        ticket => { type => 'string' },
        CSRFPreventionToken => { type => 'string' },
        cap => { type => 'object', optional => 1 },
        clustername => { type => 'string', optional => 1 },
    );
}

my sub code_of {
    my ($err) = @_;
    my $lib = PVE::EntraID::Lib::error_of($err);
    return $lib && $lib->{code} ? $lib->{code} : 'internal.error';
}

# What an anonymous caller is told, per code family: short and generic; the detail (AADSTS,
# hint, trace/correlation ids, paths, account state) goes only to syslog under the same reference.
my $generic_message = {
    state => 'the login is no longer valid; start it again',
    token => 'Entra ID returned an identity that was not accepted',
    access => 'access denied',
    identity => 'access denied',
    idp => 'Entra ID could not complete the login',
    discovery => 'Entra ID could not complete the login',
    jwks => 'Entra ID could not complete the login',
    graph => 'Entra ID could not complete the login',
    request => 'invalid request',
    'token.refused_before' => 'Entra ID returned an identity that was not accepted',
    'request.rate_limited' => 'too many sign-in attempts; try again in a minute',
};

# Refusals that cost a caller nothing (those before any request with the app's credential: the
# families below, and names that are no entraid realm) are logged once per code, client address
# and minute (per process): a flood would
# otherwise trip journald's rate limit for pvedaemon and drop unrelated lines. The rest are
# counted and reported in one line when the minute is over; at most $THROTTLED_ADDRESSES
# (code, address) pairs a minute are logged individually.
my $THROTTLED_ADDRESSES = 256;
my $THROTTLED_FAMILIES = { request => 1, state => 1 };
my $throttled = { minute => -1, addresses => {}, unlogged => {} };

my sub throttled_is_logged {
    my ($code, $rhost) = @_;
    my $minute = int(time() / 60);
    if ($minute != $throttled->{minute}) {
        # said by the first refusal after that minute, which may come much later: name the minute
        my $unlogged = $throttled->{unlogged};
        if (%$unlogged) {
            my $total = 0;
            $total += $_ for values %$unlogged;
            my $codes = join(', ', map { "$unlogged->{$_} $_" } sort keys %$unlogged);
            my $addresses = scalar(keys $throttled->{addresses}->%*);
            my $from = POSIX::strftime('%H:%M UTC', gmtime($throttled->{minute} * 60));
            syslog('err', '%s', "entraid: $total more refusals ($codes) in the minute from $from"
                . " were not logged (one line was, for each code of $addresses addresses)");
        }
        $throttled = { minute => $minute, addresses => {}, unlogged => {} };
    }
    my $addresses = $throttled->{addresses};
    if (exists($addresses->{"$code $rhost"}) || keys($addresses->%*) >= $THROTTLED_ADDRESSES) {
        $throttled->{unlogged}->{$code}++;
        return 0;
    }
    $addresses->{"$code $rhost"} = 1;
    return 1;
}

my sub anonymous_failure {
    my ($what, $err, $ctx) = @_;

    my $code = code_of($err);
    my $lib = PVE::EntraID::Lib::error_of($err) // {};
    my $reference = sprintf('%08x', int(rand(0xffffffff)));
    my $detail = ref($err) && eval { $err->isa('PVE::Exception') } ? $err->{msg} : "$err";
    $detail =~ s/ at \S+ line \d+\.?\n?$//;
    $detail =~ s/\s+/ /g;
    $detail =~ s/\s+$//;
    my $line = "entraid $what failure; ref=$reference realm=" . ($ctx->{realm} // '-')
        . " user=" . ($ctx->{username} // '-')
        . " oid=" . ($ctx->{oid} // '-')
        . " tid=" . ($ctx->{tid} // '-')
        . " rhost=" . ($ctx->{rhost} // '-')
        . " code=$code";
    $line .= " aadsts=$lib->{aadsts}" if defined($lib->{aadsts});
    $line .= " correlation_id=$lib->{correlation_id}" if defined($lib->{correlation_id});
    $line .= " trace_id=$lib->{trace_id}" if defined($lib->{trace_id});
    $line .= " msg=$detail";
    my ($family) = $code =~ m/^([a-z]+)\./;
    syslog('err', '%s', $line) if !($THROTTLED_FAMILIES->{$family // ''} || $ctx->{not_entraid})
        || throttled_is_logged($code, $ctx->{rhost} // '-');

    my $message = $generic_message->{$code} // $generic_message->{$family // ''} // 'login failed';
    my $status = $lib->{api_status} // 500;
    return PVE::Exception->new("$message ($code, reference $reference)\n", code => $status,
        entraid => { code => $code, reference => $reference });
}

# What every anonymous call hands the library to be charged to: it takes one call of the client
# address's budget first (429 when spent). The client address is the one PVE's API server
# determined (pveproxy passes it to pvedaemon as PVEClientIP).
my sub caller_members {
    my $members = {
        run_dir => $PVE::Auth::EntraID::RUN_DIR,
        client_address => PVE::RPCEnvironment::get()->get_client_ip() // '',
    };
    $members->{rate_limits} = $PVE::Auth::EntraID::RATE_LIMITS_OVERRIDE
        if defined($PVE::Auth::EntraID::RATE_LIMITS_OVERRIDE);
    return $members;
}

# The section of $realm when it is an entraid realm (only this realm is read: another realm's
# broken config never blocks this login). Any other name is refused by the library after it took
# the call from the client's budget for such names, like any anonymous call.
my sub entraid_section {
    my ($realm, $ctx) = @_;
    my $section = cfs_read_file('domains.cfg')->{ids}->{$realm};
    return $section if $section && $section->{type} eq 'entraid';
    $ctx->{not_entraid} = 1;
    PVE::EntraID::Lib::call('refuse_realm', { caller_members()->%*, realm => $realm,
        realm_type => $section ? $section->{type} : undef });
    die "refuse_realm let realm '$realm' through\n"; # it never does: refused all the same
}

# The library request of an anonymous call for an entraid realm.
my sub base_request {
    my ($realm, $section) = @_;
    return { PVE::Auth::EntraID::library_request($realm, $section)->%*, caller_members()->%*,
        state_key_file => PVE::Auth::EntraID::state_key_path() };
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
        return [ { subdir => 'auth-url' }, { subdir => 'login' }, { subdir => 'token' } ];
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
            'binding-hash' => $binding_hash_schema,
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
        my $ctx = { rhost => PVE::RPCEnvironment::get()->get_client_ip(), realm => $realm };
        my $url = eval {
            my $request = base_request($realm, entraid_section($realm, $ctx));
            $request->{redirect_url} = $param->{'redirect-url'};
            $request->{binding_hash} = $param->{'binding-hash'};
            PVE::EntraID::Lib::call('auth_url', $request)->{url};
        };
        if (my $err = $@) {
            die anonymous_failure('auth-url', $err, $ctx);
        }
        return $url;
    }});

my sub denied {
    my ($msg) = @_;
    die PVE::EntraID::Lib::error('access.denied', 403, $msg);
}

# The identity a login proved against the user's pin, under the user-config lock. Returns the
# pin to store, or undef. A user the admin created (not this login) is pinned only with the
# admin's approval (`pve-entraid pin`), unless its name is the immutable object id: otherwise
# whoever first signs in with a matching name would take the account over (nOAuth).
my sub check_pin {
    my ($pins, $login, $user_exists, $section) = @_;

    my $pin = eval {
        PVE::Auth::EntraID::identity_binding($pins, $login->{username}, $login->{identity}, $user_exists, $section);
    };
    if (my $err = $@) {
        chomp($err);
        die PVE::EntraID::Lib::error('identity.pin_mismatch', 403, "$login->{userid} $err");
    }
    return $pin;
}

# /access/ticket's 'clustername': only for users who may audit the cluster
my sub add_clustername {
    my ($res, $rpcenv, $userid) = @_;
    my $clinfo = PVE::Cluster::get_clinfo();
    if ($clinfo->{cluster}->{name} && $rpcenv->check($userid, '/', ['Sys.Audit'], 1)) {
        $res->{clustername} = $clinfo->{cluster}->{name};
    }
    return $res;
}

# Puts the user into the mapped groups (made when the realm autocreates groups) and takes it out
# of the `leave` groups (those the map manages) it is no longer mapped to; memberships an admin
# gave by hand stay. Returns true when user.cfg changed.
my sub apply_mapped_groups {
    my ($usercfg, $section, $realm, $userid, $mapped, $leave) = @_;

    my $changed = 0;
    my %wanted = map { $_ => 1 } @{ $mapped // [] };
    for my $group (sort keys %wanted) {
        if (!$usercfg->{groups}->{$group}) {
            if (!$section->{'groups-autocreate'}) {
                syslog('warning', '%s', "entraid realm=$realm: mapped group '$group' does not"
                    . " exist and groups-autocreate is off, not adding $userid");
                next;
            }
            $usercfg->{groups}->{$group} = { users => {}, comment => "Entra ID ($realm)" };
        }
        next if $usercfg->{groups}->{$group}->{users}->{$userid};
        PVE::AccessControl::add_user_group($userid, $usercfg, $group);
        $changed = 1;
    }
    for my $group (@{ $leave // [] }) {
        my $g = $usercfg->{groups}->{$group};
        next if $wanted{$group} || !$g || !$g->{users}->{$userid};
        delete $g->{users}->{$userid};
        delete $usercfg->{users}->{$userid}->{groups}->{$group};
        $changed = 1;
    }
    return $changed;
}

# Applies the library's mapping to user.cfg with PVE's own helpers; returns true when
# something changed.
my sub apply_user_mapping {
    my ($usercfg, $section, $login, $realm) = @_;

    my $userid = $login->{userid};
    my $changed = 0;
    if (!$usercfg->{users}->{$userid}) {
        denied("user '$userid' does not exist and realm '$realm' does not autocreate users")
            if !$section->{autocreate};
        my $user = $usercfg->{users}->{$userid} = { enable => 1, expire => 0 };
        $user->{firstname} = $login->{firstname} if length($login->{firstname} // '');
        $user->{lastname} = $login->{lastname} if length($login->{lastname} // '');
        if (defined(my $email = $login->{email})) {
            if (defined(PVE::Auth::EntraID::safe_email($email))) {
                $user->{email} = $email;
            } else {
                syslog('warning', '%s', "entraid realm=$realm: not storing the e-mail claim of"
                    . " $userid, it is no valid e-mail address");
            }
        }
        $changed = 1;
    }
    denied("user account disabled or expired")
        if !PVE::AccessControl::check_user_enabled($usercfg, $userid, 1);

    $changed = 1 if apply_mapped_groups($usercfg, $section, $realm, $userid, $login->{pve_groups},
        $section->{'groups-sync'} ? $login->{managed_groups} : []);
    return $changed;
}

# The TFA challenge PVE asks of this user, as /access/ticket does after a password: undef when
# the user has no TFA entries and the realm requires none. PVE looks the user up in user.cfg.
my sub tfa_challenge {
    my ($userid, $realm) = @_;
    my $challenge = eval { PVE::AccessControl::authenticate_2nd_new($userid, $realm, undef, undef) };
    if (my $err = $@) {
        chomp(my $msg = "$err");
        denied("second factor: $msg");
    }
    return $challenge;
}

# The challenge tfa.cfg holds for a user not in user.cfg (yet): undef when none of its entries
# is usable. PVE's own call, configured as authenticate_2nd_new configures it.
my sub leftover_challenge {
    my ($userid) = @_;
    my $tfa_cfg = cfs_read_file('priv/tfa.cfg');
    return undef if !grep { $_ eq $userid } $tfa_cfg->users()->@*;
    PVE::AccessControl::configure_u2f_and_wa($tfa_cfg);
    return $tfa_cfg->authentication_challenge($userid);
}

# Pin check, user.cfg update and the TFA challenge under PVE's user-config lock: a login
# refused for any reason, a missing second factor too, writes nothing. Returns the challenge.
my sub apply_login {
    my ($realm, $section, $login) = @_;

    my $userid = $login->{userid};
    PVE::Auth::Plugin::verify_username($userid, 1)
        or denied("'$userid' is not a valid PVE user id");

    my ($inner_err, $challenge);
    PVE::AccessControl::lock_user_config(sub {
        eval {
            my $usercfg = cfs_read_file('user.cfg');
            my $pins = PVE::Auth::EntraID::read_identity_pins($realm);
            my $exists = !!$usercfg->{users}->{$userid};
            my $new_pin = check_pin($pins, $login, $exists, $section);
            my $changed = apply_user_mapping($usercfg, $section, $login, $realm);
            # PVE asks only a user in user.cfg for its second factors: one this login makes has
            # those a former user of that name left in tfa.cfg (of the identity its pin names),
            # if PVE would challenge it with any of them (enabled ones)
            my $leftover_factors = !$exists && defined(leftover_challenge($userid));
            if ($exists) {
                $challenge = tfa_challenge($userid, $realm);
            } elsif (!$leftover_factors && $section->{tfa}) {
                denied("second factor: realm '$realm' requires a second factor, and '$userid'"
                    . " is new: an administrator creates it and adds one first");
            }
            # the pin first: if user.cfg then fails, the same identity logs in again
            if ($new_pin) {
                $pins->{$login->{username}} = $new_pin;
                PVE::Auth::EntraID::write_identity_pins($realm, $pins);
            }
            cfs_write_file('user.cfg', $usercfg) if $changed;
            $challenge = tfa_challenge($userid, $realm) if $leftover_factors;
        };
        $inner_err = $@;
    }, "entraid login failed");
    die $inner_err if $inner_err;
    return $challenge;
}

__PACKAGE__->register_method ({
    name => 'login',
    path => 'login',
    method => 'POST',
    protected => 1,
    description => "Verify the Microsoft Entra ID authorization code and create a ticket. When"
        . " the user has TFA entries or the realm requires TFA, the answer is a TFA challenge"
        . " ticket ('NeedTFA'), completed through /access/ticket with 'tfa-challenge'.",
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
                description => "Realm that started the login (the one given to auth-url).",
            }),
            'binding-key' => $binding_key_schema,
        },
    },
    returns => {
        properties => { ticket_answer_properties(), NeedTFA => { type => 'boolean', optional => 1 } },
    },
    permissions => { user => 'world' },
    code => sub {
        my ($param) = @_;

        my $rpcenv = PVE::RPCEnvironment::get();
        my $realm = $param->{realm};
        my $ctx = { rhost => $rpcenv->get_client_ip(), realm => $realm };

        my $res = eval {
            my $section = entraid_section($realm, $ctx);
            my $request = base_request($realm, $section);
            $request->{code} = $param->{code};
            $request->{state} = $param->{state};
            # 'redirect-url' is not passed on: the sealed state holds the one sent to Entra
            $request->{binding_key} = $param->{'binding-key'};
            my $login = PVE::EntraID::Lib::call('login', $request);
            $ctx->{username} = $login->{userid};
            $ctx->{oid} = $login->{identity}->{oid};
            $ctx->{tid} = $login->{identity}->{tid};

            my $challenge = apply_login($realm, $section, $login);

            my $userid = $login->{userid};
            my $res = { username => $userid };
            if (defined($challenge)) {
                # exactly /access/ticket's answer for a first factor that needs a second one
                $res->{ticket} = PVE::AccessControl::assemble_ticket("!tfa!$challenge", $userid);
                $res->{NeedTFA} = 1;
            } else {
                $res->{ticket} = PVE::AccessControl::assemble_ticket($userid);
                $res->{cap} = $rpcenv->compute_api_permission($userid);
            }
            $res->{CSRFPreventionToken} = PVE::AccessControl::assemble_csrf_prevention_token($userid);
            add_clustername($res, $rpcenv, $userid);
        };
        if (my $err = $@) {
            die anonymous_failure('login', $err, $ctx);
        }

        syslog('info', '%s', "entraid login; realm=$realm user=$res->{username}"
            . " oid=$ctx->{oid} tid=$ctx->{tid} rhost=" . ($ctx->{rhost} // '-')
            . ($res->{NeedTFA} ? ' tfa=challenge-issued' : ''));
        PVE::Cluster::log_msg('info', 'root@pam', "successful entraid auth for user '$res->{username}'")
            if !$res->{NeedTFA};
        return $res;
    }});

# The workload's user under the user-config lock: its pin (first use pins the service principal,
# as a login pins its user), the user made when missing, enabled and without second factors (a
# workload has none: it is not a person), and the mapped groups joined. A refusal writes nothing.
my sub apply_workload {
    my ($realm, $section, $workload) = @_;

    my $userid = $workload->{userid};
    PVE::Auth::Plugin::verify_username($userid, 1)
        or denied("'$userid' is not a valid PVE user id");
    my $inner_err;
    PVE::AccessControl::lock_user_config(sub {
        eval {
            my $usercfg = cfs_read_file('user.cfg');
            my $pins = PVE::Auth::EntraID::read_identity_pins($realm);
            my $exists = !!$usercfg->{users}->{$userid};
            my $new_pin = check_pin($pins, $workload, $exists, $section);
            my $changed = 0;
            if (!$exists) {
                $usercfg->{users}->{$userid} = { enable => 1, expire => 0,
                    comment => "Entra ID workload (app $workload->{azp})" };
                $changed = 1;
            }
            denied("user account disabled or expired")
                if !PVE::AccessControl::check_user_enabled($usercfg, $userid, 1);
            denied("'$userid' has second factors: a workload-map user must be a user of its own,"
                . " not a person's") if grep { $_ eq $userid } cfs_read_file('priv/tfa.cfg')->users()->@*;
            # as logins with groups-sync: the map's groups its token's roles no longer give are left
            $changed = 1 if apply_mapped_groups($usercfg, $section, $realm, $userid,
                $workload->{pve_groups}, $workload->{managed_groups});
            if ($new_pin) {
                $pins->{$workload->{username}} = $new_pin;
                PVE::Auth::EntraID::write_identity_pins($realm, $pins);
            }
            cfs_write_file('user.cfg', $usercfg) if $changed;
        };
        $inner_err = $@;
    }, "entraid token exchange failed");
    die $inner_err if $inner_err;
}

__PACKAGE__->register_method ({
    name => 'token',
    path => 'token',
    method => 'POST',
    protected => 1,
    description => "Exchange a workload's Microsoft Entra ID access token (client credentials"
        . " grant: managed identity, service principal, federated credential) for a ticket of"
        . " the PVE user the realm's 'workload-map' maps its app role to. No TFA.",
    parameters => {
        additionalProperties => 0,
        properties => {
            realm => get_standard_option('realm'),
            'access-token' => {
                description => "Entra access token for the realm's app (scope"
                    . " '<client id or Application ID URI>/.default').",
                type => 'string',
                maxLength => 16384,
            },
        },
    },
    returns => { properties => { ticket_answer_properties() } },
    permissions => { user => 'world' },
    code => sub {
        my ($param) = @_;

        my $rpcenv = PVE::RPCEnvironment::get();
        my $realm = $param->{realm};
        my $ctx = { rhost => $rpcenv->get_client_ip(), realm => $realm };

        my $res = eval {
            my $section = entraid_section($realm, $ctx);
            my $request = { PVE::Auth::EntraID::library_request($realm, $section)->%*,
                caller_members()->%*, access_token => $param->{'access-token'} };
            my $workload = PVE::EntraID::Lib::call('workload_token', $request);
            $ctx->{username} = $workload->{userid};
            $ctx->{oid} = $workload->{identity}->{oid};
            $ctx->{tid} = $workload->{identity}->{tid};
            eval { apply_workload($realm, $section, $workload) };
            if (my $err = $@) {
                # refused for who it is (pin, user): this token stays refused; a failure of
                # the node (lock, pmxcfs) is no verdict on it
                if (code_of($err) =~ m/^(?:access|identity)\./) {
                    eval {
                        PVE::EntraID::Lib::call('refuse_token', {
                            PVE::Auth::EntraID::library_request($realm, $section)->%*,
                            token_id => $workload->{token_id},
                            refused_until => $workload->{refused_until},
                        });
                    };
                    syslog('err', '%s', "entraid realm=$realm: recording a refused token failed: $@")
                        if $@;
                }
                die $err;
            }
            my $userid = $workload->{userid};
            my $res = {
                username => $userid,
                ticket => PVE::AccessControl::assemble_ticket($userid),
                CSRFPreventionToken => PVE::AccessControl::assemble_csrf_prevention_token($userid),
                cap => $rpcenv->compute_api_permission($userid),
            };
            add_clustername($res, $rpcenv, $userid);
        };
        if (my $err = $@) {
            die anonymous_failure('token', $err, $ctx);
        }

        syslog('info', '%s', "entraid workload token; realm=$realm user=$res->{username}"
            . " oid=$ctx->{oid} tid=$ctx->{tid} rhost=" . ($ctx->{rhost} // '-'));
        PVE::Cluster::log_msg('info', 'root@pam', "successful entraid workload auth for user"
            . " '$res->{username}'");
        return $res;
    }});

1;
