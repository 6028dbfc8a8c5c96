package PVE::EntraID::Lib;

# Calls into libpve_entraid through PVE::EntraID::XS: a Perl hash in, the library's result
# hash out, or a PVE::Exception carrying the library's error hash (stable code, message, and the
# HTTP status to answer with: docs/DESIGN.md "Stable error codes"). Callers read the code from
# that hash (error_of), never from the message.

use strict;
use warnings;

use JSON;

use PVE::Exception;
use PVE::EntraID::XS;

sub version {
    return PVE::EntraID::XS::version();
}

# $method: auth_url, login, map, check, check_config or sync_directory (docs/DESIGN.md,
# "Call contexts").
sub call {
    my ($method, $request) = @_;

    my $json = JSON->new->canonical->utf8;
    my ($rc, $answer) = PVE::EntraID::XS::call($method, $json->encode($request));
    my $res = defined($answer) ? eval { $json->decode($answer) } : undef;
    if (ref($res) ne 'HASH') {
        die error('internal.error', 500, 'pve-entraid: unreadable answer from the library');
    }
    return $res->{result} if $rc == 0 && $res->{ok};

    my $err = ref($res->{error}) eq 'HASH' ? $res->{error} : {};
    my $code = $err->{code} //= 'internal.error';
    my $msg = $err->{message} // 'unknown error';
    $msg =~ s/\s+$//;
    my $text = "$msg ($code)";
    $text .= " [AADSTS$err->{aadsts}]" if defined($err->{aadsts});
    $text .= " - $err->{hint}" if defined($err->{hint});
    $text .= " correlation id $err->{correlation_id}" if defined($err->{correlation_id});
    die PVE::Exception->new("$text\n", code => $err->{api_status} // 500, entraid => $err);
}

# An error raised by the Perl side in the shape of the library's: $code is a stable code of
# docs/DESIGN.md, $status the HTTP status to answer with.
sub error {
    my ($code, $status, $msg) = @_;
    return PVE::Exception->new("$msg ($code)\n", code => $status,
        entraid => { code => $code, message => $msg, api_status => $status });
}

# The library's error hash carried by an exception from call(), or undef.
sub error_of {
    my ($exc) = @_;
    return ref($exc) && ref($exc) ne 'HASH' && eval { $exc->isa('PVE::Exception') }
        ? $exc->{entraid} : undef;
}

1;
