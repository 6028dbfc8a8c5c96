# Test double of PVE::Auth::PAM (pve-access-control src/PVE/Auth/PAM.pm): type 'pam' and its
# options, so domains.cfg with the built-in pam realm round-trips. No authentication.
package PVE::Auth::PAM;

use strict;
use warnings;

use base qw(PVE::Auth::Plugin);

sub type { return 'pam'; }

sub options {
    return { default => { optional => 1 }, comment => { optional => 1 }, tfa => { optional => 1 } };
}

sub authenticate_user { die "PAM authentication is not available in the test doubles\n"; }

1;
