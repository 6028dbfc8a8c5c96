package PVE::ACME::DNSChallenge;
# TEST NODE STAND-IN for proxmox-acme (see PVE::ACME::Challenge here).
use strict;
use warnings;

use base qw(PVE::ACME::Challenge);

sub type { return 'dns'; }

sub properties {
    return {
        api => { description => "API plugin name", type => 'string' },
        data => { description => "DNS plugin data. (base64 encoded)", type => 'string', optional => 1 },
        'validation-delay' => { type => 'integer', optional => 1, minimum => 0, maximum => 48 * 60 * 60 },
    };
}

sub options {
    return {
        api => {},
        data => { optional => 1 },
        nodes => { optional => 1 },
        disable => { optional => 1 },
        'validation-delay' => { optional => 1 },
    };
}

1;
