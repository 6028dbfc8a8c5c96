# Test double of PVE::Auth::PVE (pve-access-control src/PVE/Auth/PVE.pm): type 'pve', which
# registers the shared 'default', 'comment' and 'tfa' properties every realm type lists.
package PVE::Auth::PVE;

use strict;
use warnings;

use PVE::JSONSchema qw(get_standard_option);

use base qw(PVE::Auth::Plugin);

sub type { return 'pve'; }

sub properties {
    return {
        default => {
            description => "Use this as default realm",
            type => 'boolean',
            optional => 1,
        },
        comment => {
            description => "Description.",
            type => 'string',
            optional => 1,
            maxLength => 4096,
        },
        tfa => get_standard_option('tfa'),
    };
}

sub options {
    return { default => { optional => 1 }, comment => { optional => 1 }, tfa => { optional => 1 } };
}

sub authenticate_user { die "PVE password authentication is not available in the test doubles\n"; }

1;
