# Test double of PVE::Auth::Plugin (pve-access-control src/PVE/Auth/Plugin.pm).
# Mirrors: domains.cfg registered with cfs (parse/write through this SectionConfig base),
# lock_domain_config (errors prefixed with the caller's message), realm/user name formats and
# the 'realm' / 'userid' standard options, section headers lower-casing the type and skipping
# invalid realm names, parse_config keeping one 'default' and adding the built-in pam/pve
# realms, comments stored encoded (encode_text/decode_text), and the add/update/delete hooks
# that do nothing by default.
package PVE::Auth::Plugin;

use strict;
use warnings;

use PVE::Cluster qw(cfs_register_file cfs_read_file cfs_lock_file);
use PVE::JSONSchema qw(get_standard_option);
use PVE::SectionConfig;
use PVE::Tools;

use base qw(PVE::SectionConfig);

my $domainconfigfile = "domains.cfg";

cfs_register_file($domainconfigfile,
    sub { __PACKAGE__->parse_config(@_); },
    sub { __PACKAGE__->write_config(@_); });

sub lock_domain_config {
    my ($code, $errmsg) = @_;
    cfs_lock_file($domainconfigfile, undef, $code);
    if (my $err = $@) {
        $errmsg ? die "$errmsg: $err" : die $err;
    }
}

our $realm_regex = qr/[A-Za-z][A-Za-z0-9\.\-_]+/;
our $user_regex = qr![^\s:/]+!;

PVE::JSONSchema::register_format('pve-realm', \&pve_verify_realm);
sub pve_verify_realm {
    my ($realm, $noerr) = @_;
    if ($realm !~ m/^${realm_regex}$/) {
        return undef if $noerr;
        die "value does not look like a valid realm\n";
    }
    return $realm;
}

PVE::JSONSchema::register_standard_option('realm', {
    description => "Authentication domain ID",
    type => 'string', format => 'pve-realm',
    maxLength => 32,
});

PVE::JSONSchema::register_format('pve-userid', \&verify_username);
sub verify_username {
    my ($username, $noerr) = @_;
    $username = '' if !$username;
    my $len = length($username);
    if ($len < 3) {
        die "user name '$username' is too short\n" if !$noerr;
        return undef;
    }
    if ($len > 64) {
        die "user name '$username' is too long ($len > 64)\n" if !$noerr;
        return undef;
    }
    if ($username =~ m!^(${user_regex})\@(${realm_regex})$!) {
        return wantarray ? ($username, $1, $2) : $username;
    }
    die "value '$username' does not look like a valid user name\n" if !$noerr;
    return undef;
}

PVE::JSONSchema::register_standard_option('userid', {
    description => "Full User ID, in the `name\@realm` format.",
    type => 'string', format => 'pve-userid',
    maxLength => 64,
});

# upstream: a property string (type=yubico|oath,...); this double does not parse it
PVE::JSONSchema::register_format('pve-tfa-config', { type => { type => 'string' } });
PVE::JSONSchema::register_standard_option('tfa', {
    description => "Use Two-factor authentication.",
    type => 'string', format => 'pve-tfa-config',
    optional => 1,
    maxLength => 128,
});

my $defaultData = {
    propertyList => {
        type => { description => "Realm type." },
        realm => get_standard_option('realm'),
    },
};

sub private { return $defaultData; }

sub parse_section_header {
    my ($class, $line) = @_;
    if ($line =~ m/^(\S+):\s*(\S+)\s*$/) {
        my ($type, $realm) = (lc($1), $2);
        my $errmsg;
        eval { pve_verify_realm($realm); };
        $errmsg = $@ if $@;
        return ($type, $realm, $errmsg, {});
    }
    return undef;
}

sub parse_config {
    my ($class, $filename, $raw) = @_;
    my $cfg = $class->SUPER::parse_config($filename, $raw);

    my $default;
    for my $realm (sort { $cfg->{order}->{$a} <=> $cfg->{order}->{$b} } keys %{ $cfg->{ids} }) {
        my $data = $cfg->{ids}->{$realm};
        if ($data->{default}) {
            if ($default) { delete $data->{default}; } else { $default = $realm; }
        }
        $data->{comment} = PVE::Tools::decode_text($data->{comment}) if $data->{comment};
    }

    $cfg->{ids}->{pve}->{type} = 'pve';
    $cfg->{ids}->{pve}->{comment} = "Proxmox VE authentication server"
        if !$cfg->{ids}->{pve}->{comment};
    $cfg->{ids}->{pam}->{type} = 'pam';
    $cfg->{ids}->{pam}->{plugin} = 'PVE::Auth::PAM';
    $cfg->{ids}->{pam}->{comment} = "Linux PAM standard authentication"
        if !$cfg->{ids}->{pam}->{comment};
    return $cfg;
}

sub write_config {
    my ($class, $filename, $cfg) = @_;
    for my $realm (keys %{ $cfg->{ids} }) {
        my $data = $cfg->{ids}->{$realm};
        $data->{comment} = PVE::Tools::encode_text($data->{comment}) if $data->{comment};
    }
    return $class->SUPER::write_config($filename, $cfg);
}

sub authenticate_user { die "overwrite me"; }

sub store_password {
    my ($class) = @_;
    my $type = $class->type();
    die "can't set password on auth type '$type'\n";
}

sub delete_user { }
sub on_add_hook { }
sub on_update_hook { }
sub on_delete_hook { }

1;
