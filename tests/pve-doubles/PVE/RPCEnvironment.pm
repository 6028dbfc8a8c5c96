# Test double of PVE::RPCEnvironment (pve-access-control src/PVE/RPCEnvironment.pm).
# Mirrors: a per-process environment from init()/get(); check_user_exist / check_user_enabled
# reading user.cfg (die "no such user" / "user account disabled" unless $noerr);
# compute_api_permission returning the cap object shape of /access/ticket (this double grants
# nothing: a new user has no ACLs); get_client_ip; check() allowing only root@pam.
package PVE::RPCEnvironment;

use strict;
use warnings;

use PVE::Cluster qw(cfs_read_file);
use PVE::Exception qw(raise);

my $env;

sub init {
    my ($class, $type, %params) = @_;
    $env = bless { type => $type, client_ip => $params{client_ip} // '127.0.0.1' }, $class;
    return $env;
}

sub get { return $env // __PACKAGE__->init('priv'); }

sub set_client_ip { $_[0]->{client_ip} = $_[1]; }
sub get_client_ip { return $_[0]->{client_ip}; }
sub set_user { $_[0]->{user} = $_[1]; }
sub get_user { return $_[0]->{user}; }

sub check_user_exist {
    my ($self, $username, $noerr) = @_;
    my $usercfg = cfs_read_file('user.cfg');
    my $data = $usercfg->{users}->{$username};
    if (!$data) {
        return undef if $noerr;
        raise("no such user ('$username')\n", code => 401);
    }
    return $data;
}

sub check_user_enabled {
    my ($self, $username, $noerr) = @_;
    my $data = $self->check_user_exist($username, $noerr) or return undef;
    if (!$data->{enable}) {
        return undef if $noerr;
        raise("user account disabled\n", code => 401);
    }
    if ($data->{expire} && $data->{expire} < time()) {
        return undef if $noerr;
        raise("user account expired\n", code => 401);
    }
    return 1;
}

sub compute_api_permission {
    my ($self, $authuser) = @_;
    return { map { $_ => {} } qw(vms storage access nodes dc sdn mapping) };
}

sub check {
    my ($self, $user, $path, $privs, $noerr) = @_;
    return 1 if $user eq 'root@pam';
    return undef if $noerr;
    raise("Permission check failed\n", code => 403);
}

1;
