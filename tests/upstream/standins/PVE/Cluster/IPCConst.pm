package PVE::Cluster::IPCConst;

# STAND-IN for the build product of pve-cluster's src/PVE/Cluster/IPCConst.pm.awk: upstream
# generates this module at build time from pmxcfs/cfs-ipc-ops.h. Same thing here at load
# time, from the real header of the pinned tree the harness selected
# ($PVE::Cluster::IPCConst::HEADER or $ENV{PVE_ENTRAID_IPC_HEADER}, both set by UpstreamTest).

use strict;
use warnings;

use base 'Exporter';

our $HEADER;

my %IPC_OPS;
BEGIN {
    $HEADER //= $ENV{PVE_ENTRAID_IPC_HEADER};
    die "PVE::Cluster::IPCConst stand-in: no header (load UpstreamTest first)\n" if !$HEADER;
    open(my $fh, '<', $HEADER) or die "unable to read '$HEADER': $!\n";
    while (my $line = <$fh>) {
        $IPC_OPS{$1} = $2 + 0 if $line =~ m/^#define (CFS_IPC_\w+) (\d+)\s*$/;
    }
    close($fh);
    die "no CFS_IPC_* constants in '$HEADER'\n" if !%IPC_OPS;
}
use constant \%IPC_OPS;
our @EXPORT = keys(%IPC_OPS);

1;
