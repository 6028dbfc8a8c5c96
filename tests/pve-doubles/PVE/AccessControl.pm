# Test double of PVE::AccessControl (pve-access-control src/PVE/AccessControl.pm), the parts a
# realm login uses. Mirrors:
#  - the realm plugins registered before PVE::Auth::Plugin->init(), including the line the
#    pve-entraid integration hook adds (eval require + register, warn if missing);
#  - user.cfg: "user:<id>:<enable>:<expire>:<first>:<last>:<email>:<comment>:<keys>:" and
#    "group:<name>:<members,...>:<comment>:" lines, members also set in the user's {groups};
#    written back sorted (users, blank line, groups, blank line, then the remaining lines);
#  - lock_user_config (cfs lock, errors prefixed with the caller's message);
#  - assemble_ticket ("PVE:<user>:<hex time>::<signature>") and
#    assemble_csrf_prevention_token ("<hex time>:<signature>"). Upstream signs tickets with
#    the cluster RSA key; this double uses an HMAC with a per-test key in priv/ instead.
package PVE::AccessControl;

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_base64);
use File::Path qw(make_path);

use PVE::Cluster qw(cfs_register_file cfs_read_file cfs_write_file cfs_lock_file);
use PVE::Tools qw(split_list);
use PVE::Auth::Plugin;
use PVE::Auth::PAM;
use PVE::Auth::PVE;
use PVE::Auth::OpenId;

PVE::Auth::PAM->register();
PVE::Auth::PVE->register();
PVE::Auth::OpenId->register();
# pve-entraid hook begin (what `pve-entraid-integrate apply` adds upstream)
eval { require PVE::Auth::EntraID; PVE::Auth::EntraID->register(); };
warn "pve-entraid: realm type 'entraid' not available: $@" if $@;
# pve-entraid hook end
PVE::Auth::Plugin->init();

sub lock_user_config {
    my ($code, $errmsg) = @_;
    cfs_lock_file("user.cfg", undef, $code);
    if (my $err = $@) {
        $errmsg ? die "$errmsg: $err" : die $err;
    }
}

sub parse_user_config {
    my ($filename, $raw) = @_;
    my $cfg = { users => {}, groups => {}, other => [] };
    my @group_lines;
    for my $line (split(/\n/, $raw // '')) {
        next if $line =~ m/^\s*$/;
        my ($et, @data) = split(/:/, $line, -1);
        if ($et eq 'user') {
            my ($user, $enable, $expire, $first, $last, $email, $comment, $keys) = @data;
            next if !PVE::Auth::Plugin::verify_username($user, 1);
            my $u = { enable => $enable ? 1 : 0, expire => $expire || 0 };
            $u->{firstname} = PVE::Tools::decode_text($first) if $first;
            $u->{lastname} = PVE::Tools::decode_text($last) if $last;
            $u->{email} = $email if $email;
            $u->{comment} = PVE::Tools::decode_text($comment) if $comment;
            $u->{keys} = $keys if $keys;
            $cfg->{users}->{$user} = $u;
        } elsif ($et eq 'group') {
            push @group_lines, \@data; # users first: membership needs the user entries
        } else {
            push @{ $cfg->{other} }, $line;
        }
    }
    for my $data (@group_lines) {
        my ($group, $members, $comment) = @$data;
        my $g = $cfg->{groups}->{$group} //= { users => {} };
        $g->{comment} = PVE::Tools::decode_text($comment) if $comment;
        for my $user (split_list($members)) {
            next if !PVE::Auth::Plugin::verify_username($user, 1);
            $cfg->{users}->{$user}->{groups}->{$group} = 1 if $cfg->{users}->{$user};
            $g->{users}->{$user} = 1;
        }
    }
    return $cfg;
}

sub write_user_config {
    my ($filename, $cfg) = @_;
    my $data = '';
    for my $user (sort keys %{ $cfg->{users} }) {
        my $d = $cfg->{users}->{$user};
        my $first = $d->{firstname} ? PVE::Tools::encode_text($d->{firstname}) : '';
        my $last = $d->{lastname} ? PVE::Tools::encode_text($d->{lastname}) : '';
        my $email = $d->{email} || '';
        my $comment = $d->{comment} ? PVE::Tools::encode_text($d->{comment}) : '';
        my $expire = int($d->{expire} || 0);
        my $enable = $d->{enable} ? 1 : 0;
        my $keys = $d->{keys} || '';
        $data .= "user:$user:$enable:$expire:$first:$last:$email:$comment:$keys:\n";
    }
    $data .= "\n";
    for my $group (sort keys %{ $cfg->{groups} }) {
        my $d = $cfg->{groups}->{$group};
        my $list = join(',', sort keys %{ $d->{users} // {} });
        my $comment = $d->{comment} ? PVE::Tools::encode_text($d->{comment}) : '';
        $data .= "group:$group:$list:$comment:\n";
    }
    $data .= "\n";
    $data .= "$_\n" for @{ $cfg->{other} // [] };
    return $data;
}

cfs_register_file('user.cfg', \&parse_user_config, \&write_user_config);

my sub auth_key {
    my $dir = PVE::Cluster::cfs_root() . "/priv";
    my $path = "$dir/test-authkey";
    if (!-e $path) {
        make_path($dir);
        open(my $rnd, '<:raw', '/dev/urandom') or die "unable to open /dev/urandom - $!\n";
        read($rnd, my $key, 32) == 32 or die "short read from /dev/urandom\n";
        PVE::Tools::file_set_contents($path, unpack('H*', $key), 0600);
    }
    return PVE::Tools::file_get_contents($path);
}

sub assemble_ticket {
    my ($username) = @_;
    my $data = sprintf("PVE:%s:%08X", $username, time());
    return "$data" . "::" . hmac_sha256_base64($data, auth_key());
}

sub verify_ticket {
    my ($ticket) = @_;
    my ($data, $sig) = $ticket =~ m/^(PVE:[^:]+:[0-9A-F]{8})::(\S+)$/ or return undef;
    return undef if hmac_sha256_base64($data, auth_key()) ne $sig;
    my (undef, $user) = split(/:/, $data);
    return $user;
}

# as upstream: verify_username, then enabled and not expired
sub check_user_enabled {
    my ($usercfg, $username, $noerr) = @_;
    my $data = PVE::Auth::Plugin::verify_username($username, $noerr) && $usercfg->{users}->{$username};
    die "no such user ('$username')\n" if !$data && !$noerr;
    return undef if !$data;
    return 1 if $data->{enable} && !($data->{expire} && $data->{expire} < time());
    die "user '$username' is disabled or expired\n" if !$noerr;
    return undef;
}

sub add_user_group {
    my ($username, $usercfg, $group) = @_;
    $usercfg->{users}->{$username}->{groups}->{$group} = 1;
    $usercfg->{groups}->{$group}->{users}->{$username} = 1;
}

# upstream asks PVE::RS::TFA for a challenge; users of these doubles have no TFA entries
sub authenticate_2nd_new {
    my ($username, $realm, $tfa_response, $tfa_challenge) = @_;
    return undef;
}

sub assemble_csrf_prevention_token {
    my ($username) = @_;
    my $timestamp = sprintf("%08X", time());
    return "$timestamp:" . hmac_sha256_base64("$timestamp:$username", auth_key() . 'csrf');
}

1;
