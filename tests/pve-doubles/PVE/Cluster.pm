# Test double of PVE::Cluster (pve-cluster src/PVE/Cluster.pm), cfs file access only.
# Mirrors: cfs_register_file(name, parser, writer); cfs_read_file runs the parser on the raw
# file (missing file = empty); cfs_write_file runs the writer and replaces the file atomically;
# cfs_lock_file runs code under a per-file lock and, like upstream, reports errors in $@
# instead of dying. The /etc/pve tree is the directory in $ENV{PVE_DOUBLES_CFS}.
# datacenter.cfg is parsed as upstream's "key: value" lines (only scalar keys used here).
package PVE::Cluster;

use strict;
use warnings;

use File::Basename ();
use File::Path qw(make_path);

use PVE::Tools;
use PVE::SafeSyslog;

use base 'Exporter';
our @EXPORT_OK = qw(cfs_register_file cfs_read_file cfs_write_file cfs_lock_file);

my $file_info = {};

sub cfs_root {
    my $root = $ENV{PVE_DOUBLES_CFS} or die "PVE_DOUBLES_CFS is not set (test double of /etc/pve)\n";
    return $root;
}

sub cfs_register_file {
    my ($filename, $parser, $writer) = @_;
    $file_info->{$filename} = { parser => $parser, writer => $writer };
}

sub cfs_read_file {
    my ($filename) = @_;
    my $info = $file_info->{$filename} or die "unknown cfs file '$filename'\n";
    my $path = cfs_root() . "/$filename";
    my $raw = -e $path ? PVE::Tools::file_get_contents($path) : undef;
    return $info->{parser}->($filename, $raw);
}

sub cfs_write_file {
    my ($filename, $data) = @_;
    my $info = $file_info->{$filename} or die "unknown cfs file '$filename'\n";
    die "cfs file '$filename' has no writer\n" if !$info->{writer};
    my $raw = $info->{writer}->($filename, $data);
    my $path = cfs_root() . "/$filename";
    make_path((File::Basename::dirname($path)));
    PVE::Tools::file_set_contents($path, $raw);
}

sub cfs_lock_file {
    my ($filename, $timeout, $code, @param) = @_;
    my $lockdir = cfs_root() . "/priv/lock";
    make_path($lockdir);
    (my $name = $filename) =~ s!/!_!g;
    return PVE::Tools::lock_file("$lockdir/file-$name", $timeout, $code, @param);
}

cfs_register_file('datacenter.cfg', sub {
    my ($filename, $raw) = @_;
    my $res = {};
    for my $line (split(/\n/, $raw // '')) {
        next if $line =~ m/^\s*(?:#|$)/;
        if ($line =~ m/^([a-z][a-z0-9_-]*):\s*(\S.*?)\s*$/) {
            $res->{$1} = $2;
        }
    }
    return $res;
});

sub get_clinfo {
    my $name = $ENV{PVE_DOUBLES_CLUSTERNAME};
    return { cluster => { name => $name } };
}

sub log_msg {
    my ($priority, $ident, $msg) = @_;
    syslog($priority, "<$ident> $msg");
}

1;
