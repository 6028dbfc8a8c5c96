package PVE::RS::OpenId;

# STAND-IN for PVE::RS::OpenId from proxmox-perl-rs (Rust proxmox-openid behind perlmod).
# Why: proxmox-perl-rs is not packaged for Debian. The REAL PVE::API2::OpenId only has to
# load (its /access/openid paths sit next to /access/entraid); an openid login is not
# exercised, so every call dies, naming itself.

use strict;
use warnings;

our $AUTOLOAD;
sub AUTOLOAD {
    my $name = $AUTOLOAD =~ s/.*:://r;
    return if $name eq 'DESTROY';
    die "PVE::RS::OpenId stand-in: '$name' is not available in tests\n";
}

1;
