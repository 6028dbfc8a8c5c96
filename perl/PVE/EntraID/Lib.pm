package PVE::EntraID::Lib;

# Calls into libpve_entraid through PVE::EntraID::XS: a Perl hash in, the library's result
# hash out, or a PVE::Exception whose message names the library's stable error code.

use strict;
use warnings;

use JSON;

use PVE::Exception;
use PVE::EntraID::XS;

# HTTP status per error code family: the caller's fault (4xx) or ours/the IdP's (5xx).
my $status_by_code = {
    'request.invalid' => 400,
    'request.too_large' => 400,
    'config.invalid' => 500,
    'config.secret' => 500,
    'state.key' => 500,
    'idp.unreachable' => 503,
    'idp.timeout' => 504,
    'idp.bad_response' => 502,
    'idp.error' => 401,
    'discovery.invalid' => 502,
    'jwks.invalid' => 502,
    'idp.tls' => 502,
    'graph.error' => 502,
    'cache.io' => 500,
    'access.denied' => 403,
    'access.guest' => 403,
    'identity.pin_mismatch' => 403,
};

sub http_status_for {
    my ($code) = @_;
    return $status_by_code->{$code} if $status_by_code->{$code};
    return 400 if $code =~ m/^state\./;
    return 401 if $code =~ m/^token\./;
    return 500;
}

sub version {
    return PVE::EntraID::XS::version();
}

# $method: auth_url, login, map or check (docs/DESIGN.md, "Call contexts").
sub call {
    my ($method, $request) = @_;

    my $json = JSON->new->canonical->utf8;
    my ($rc, $answer) = PVE::EntraID::XS::call($method, $json->encode($request));
    my $res = defined($answer) ? eval { $json->decode($answer) } : undef;
    if (ref($res) ne 'HASH') {
        die PVE::Exception->new("pve-entraid: unreadable answer from the library (internal.error)\n",
            code => 500, entraid => { code => 'internal.error' });
    }
    return $res->{result} if $rc == 0 && $res->{ok};

    my $err = ref($res->{error}) eq 'HASH' ? $res->{error} : {};
    my $code = $err->{code} // 'internal.error';
    my $msg = $err->{message} // 'unknown error';
    $msg =~ s/\s+$//;
    my $text = "$msg ($code)";
    $text .= " [AADSTS$err->{aadsts}]" if defined($err->{aadsts});
    $text .= " - $err->{hint}" if defined($err->{hint});
    $text .= " correlation id $err->{correlation_id}" if defined($err->{correlation_id});
    die PVE::Exception->new("$text\n", code => http_status_for($code), entraid => $err);
}

# The library's error hash carried by an exception from call(), or undef.
sub error_of {
    my ($exc) = @_;
    return ref($exc) && ref($exc) ne 'HASH' && eval { $exc->isa('PVE::Exception') }
        ? $exc->{entraid} : undef;
}

1;
