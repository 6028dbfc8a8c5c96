package PVE::IPCC;

# STAND-IN for pve-cluster's XS module PVE::IPCC (src/PVE/IPCC.xs), the libqb client of
# pmxcfs's IPC server. Why: pmxcfs needs corosync/libqb and FUSE, and its IPC endpoint is
# one abstract socket per network namespace, so parallel test runs on one machine would share
# (and fight over) a single pmxcfs. The harness instead makes /etc/pve a plain directory
# (tmpfs in a private mount namespace, see UpstreamTest.pm) and answers here, from that
# directory, the requests the REAL PVE::Cluster sends (ops from pmxcfs/cfs-ipc-ops.h):
#   GET_FS_VERSION      {starttime, clinfo, vmlist} and no per-file versions, so the real
#                       PVE::Cluster re-reads (and re-parses) every file on each cfs_read_file,
#                       like pmxcfs after every write
#   GET_CLUSTER_INFO    what pmxcfs derives from corosync: the cluster name and node list of
#                       /etc/pve/corosync.conf when there is one, else a standalone node
#   GET_GUEST_LIST      no guests
#   GET_CONFIG          the bytes of /etc/pve/<path>; ENOENT when absent (pmxcfs semantics)
#   SET_STATUS, LOG_CLUSTER_MSG  accepted and dropped (pmxcfs keeps them in memory only)
#   GET_STATUS, GET_CLUSTER_LOG, GET_RRD_DUMP  nothing stored
#   VERIFY_TOKEN        looks the "<userid>!<token> <secret>" up in /etc/pve/priv/token.cfg
#                       like pmxcfs's status.c (a plain compare of the stored value)
# Anything else fails with EINVAL so an unexpected call shows up in a test.

use strict;
use warnings;

use JSON qw(encode_json);
use POSIX qw(ENOENT EINVAL);

our $VERSION = '1.0';

our $BASEDIR = '/etc/pve';

my %OP = (
    GET_FS_VERSION => 1, GET_CLUSTER_INFO => 2, GET_GUEST_LIST => 3, SET_STATUS => 4,
    GET_STATUS => 5, GET_CONFIG => 6, LOG_CLUSTER_MSG => 7, GET_CLUSTER_LOG => 8,
    GET_RRD_DUMP => 10, VERIFY_TOKEN => 12,
);

my $starttime = time();

sub read_config {
    my ($path) = @_;
    # pmxcfs refuses paths leaving its tree the same way
    if ($path =~ m{(^|/)\.\.(/|$)}) { $! = EINVAL; return undef; }
    my $file = "$BASEDIR/$path";
    open(my $fh, '<:raw', $file) or do { $! = ENOENT; return undef; };
    local $/;
    my $data = <$fh>;
    close($fh);
    $! = 0;
    return $data // '';
}

sub cluster_info {
    my $conf = read_config('corosync.conf');
    return encode_json({ version => 1 }) if !defined($conf);
    my ($name) = $conf =~ m/^\s*cluster_name:\s*(\S+)/m;
    my $nodelist = {};
    while ($conf =~ m/\bnode\s*\{([^}]*)\}/g) {
        my $body = $1;
        my ($node) = $body =~ m/\bname:\s*(\S+)/ or next;
        my ($id) = $body =~ m/\bnodeid:\s*(\d+)/;
        my ($ip) = $body =~ m/\bring0_addr:\s*(\S+)/;
        $nodelist->{$node} = { id => ($id // 0) + 0, online => 1, ip => $ip // '' };
    }
    return encode_json({
        version => 1,
        cluster => { name => $name // '', version => 1, nodes => scalar(keys %$nodelist), quorate => 1 },
        nodelist => $nodelist,
    });
}

sub ipcc_send_rec {
    my ($msgid, $data) = @_;
    $! = 0;
    if ($msgid == $OP{GET_FS_VERSION}) {
        return qq({"starttime": $starttime, "clinfo": 1, "vmlist": 1});
    } elsif ($msgid == $OP{GET_CLUSTER_INFO}) {
        return cluster_info();
    } elsif ($msgid == $OP{GET_GUEST_LIST}) {
        return '{"version": 1, "ids": {}}';
    } elsif ($msgid == $OP{GET_CONFIG}) {
        my ($path) = unpack('Z*', $data);
        return read_config($path);
    } elsif ($msgid == $OP{SET_STATUS} || $msgid == $OP{LOG_CLUSTER_MSG}) {
        return '';
    } elsif ($msgid == $OP{GET_STATUS} || $msgid == $OP{GET_CLUSTER_LOG} || $msgid == $OP{GET_RRD_DUMP}) {
        return undef;
    } elsif ($msgid == $OP{VERIFY_TOKEN}) {
        my ($full) = unpack('Z*', $data);
        my $cfg = read_config('priv/token.cfg') // '';
        for my $line (split(/\n/, $cfg)) {
            if ($line eq $full) { $! = 0; return ''; }
        }
        $! = ENOENT;
        return undef;
    }
    $! = EINVAL;
    return undef;
}

sub sendfd { die "PVE::IPCC stand-in: sendfd is not available in tests\n"; }

1;
