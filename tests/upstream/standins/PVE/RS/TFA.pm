package PVE::RS::TFA;

# STAND-IN for PVE::RS::TFA from proxmox-perl-rs (Rust crate proxmox-tfa behind perlmod).
# Why: proxmox-perl-rs is a compiled Rust library that is not packaged for Debian, and these
# tests exercise the REAL PVE::AccessControl around it, not TFA itself.
# What it keeps of the real one: priv/tfa.cfg is JSON {"users": {"<userid>": {"totp": [
# {"description", "created", "enable", "entry": "otpauth://totp/...?secret=BASE32"}],
# "recovery": ["<key>", ...]}}}; authentication_challenge() returns undef for a user without
# (enabled) entries and otherwise a JSON challenge naming the available types;
# authentication_verify2() accepts "totp:<6 digits>" (RFC 6238 via the real PVE::OTP::hotp,
# +-1 step) and "recovery:<key>" (single use) and returns {result => 0|1, 'needs-saving' => 0|1}.
# Not provided: WebAuthn, U2F, Yubico, the TFA API listing methods (they die, naming the method).

use strict;
use warnings;

use JSON;
use MIME::Base32;
use PVE::OTP;

sub new {
    my ($class, $raw) = @_;
    my $data = (defined($raw) && $raw =~ m/\S/) ? decode_json($raw) : {};
    $data->{users} //= {};
    return bless { data => $data }, $class;
}

sub users { return [sort keys $_[0]->{data}->{users}->%*]; }

sub remove_user { delete $_[0]->{data}->{users}->{$_[1]}; return; }

sub write { return JSON->new->canonical->encode($_[0]->{data}); }

sub add_totp_entry {
    my ($self, $userid, $description, $uri) = @_;
    push $self->{data}->{users}->{$userid}->{totp}->@*,
        { description => $description, created => time(), enable => JSON::true, entry => $uri };
    return;
}

sub set_u2f_config { return; }
sub set_webauthn_config { return; }
sub get_yubico_keys { return undef; }

my sub totp_entries {
    my ($self, $userid) = @_;
    my $user = $self->{data}->{users}->{$userid} or return ();
    return grep { $_->{enable} } ($user->{totp} // [])->@*;
}

sub recovery_state {
    my ($self, $userid) = @_;
    my $keys = ($self->{data}->{users}->{$userid} // {})->{recovery} or return undef;
    return [grep { defined($keys->[$_]) } 0 .. $#$keys];
}

sub authentication_challenge {
    my ($self, $userid) = @_;
    my $challenge = {};
    $challenge->{totp} = JSON::true if totp_entries($self, $userid);
    if (my $recovery = $self->recovery_state($userid)) {
        $challenge->{recovery} = $recovery if @$recovery;
    }
    return undef if !%$challenge;
    return JSON->new->canonical->encode($challenge);
}

sub authentication_verify2 {
    my ($self, $userid, $challenge, $response) = @_;
    my ($type, $value) = ($response // '') =~ m/^([^:]+):(.*)$/ or die "bad otp response\n";
    if ($type eq 'totp') {
        use integer;
        my $now = time() / 30;
        for my $entry (totp_entries($self, $userid)) {
            my ($secret) = $entry->{entry} =~ m/[?&]secret=([A-Z2-7=]+)/i or next;
            my $bin = MIME::Base32::decode_rfc3548(uc($secret));
            for my $step ($now - 1 .. $now + 1) {
                return { result => 1, 'needs-saving' => 0 } if PVE::OTP::hotp($bin, $step) eq $value;
            }
        }
        return { result => 0, 'needs-saving' => 0 };
    } elsif ($type eq 'recovery') {
        my $keys = ($self->{data}->{users}->{$userid} // {})->{recovery} // [];
        for my $i (0 .. $#$keys) {
            next if !defined($keys->[$i]) || $keys->[$i] ne $value;
            $keys->[$i] = undef;
            return { result => 1, 'needs-saving' => 1 };
        }
        return { result => 0, 'needs-saving' => 0 };
    }
    die "unsupported second factor '$type' (PVE::RS::TFA stand-in)\n";
}

our $AUTOLOAD;
sub AUTOLOAD {
    my $name = $AUTOLOAD =~ s/.*:://r;
    return if $name eq 'DESTROY';
    die "PVE::RS::TFA stand-in: '$name' is not implemented\n";
}

1;
