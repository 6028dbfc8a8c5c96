package PVE::ACME::StandAlone;
# TEST NODE STAND-IN for proxmox-acme (see PVE::ACME::Challenge here).
use strict;
use warnings;

use base qw(PVE::ACME::Challenge);

sub type { return 'standalone'; }

sub options {
    return {
        nodes => { optional => 1 },
        disable => { optional => 1 },
    };
}

1;
