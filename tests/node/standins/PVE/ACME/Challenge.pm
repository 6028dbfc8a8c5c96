package PVE::ACME::Challenge;
# TEST NODE STAND-IN for proxmox-acme's PVE::ACME::Challenge (libproxmox-acme-perl): no mirror of
# its source here. pve-manager's API2::ACMEPlugin registers the challenge plugins at load time,
# so this is the SectionConfig base they need; issuing certificates is not available.
use strict;
use warnings;

use base qw(PVE::SectionConfig);

my $defaultData = {
    propertyList => {
        id => { description => "ACME Plugin ID name", type => 'string' },
        type => { description => "ACME challenge type.", type => 'string' },
        disable => { description => "Flag to disable the config.", type => 'boolean', optional => 1 },
        nodes => { description => "List of cluster node names.", type => 'string', optional => 1 },
    },
};

sub private { return $defaultData; }

sub supported_challenge_types { return []; }

sub setup { die "ACME challenges are not available on the test node\n"; }
sub teardown { die "ACME challenges are not available on the test node\n"; }

1;
