#!/usr/bin/perl

# The README table of the release matrix, made from tests/releases/RESULTS (and RELEASES for
# the versions): consecutive releases of one minor version with the same outcome share a row.
#   tests/releases/table.pl RESULTS             prints the table
#   tests/releases/table.pl RESULTS --check F   exit 1 unless F holds it between the markers
#   tests/releases/table.pl RESULTS --write F   puts it between the markers of F

use strict;
use warnings;

use File::Basename qw(dirname);

my ($results, $mode, $file) = @ARGV;
die "usage: $0 RESULTS [--check|--write FILE]\n" if !$results || ($mode && !$file);
my $BEGIN = '<!-- release table begin: tests/releases/run.sh --all --record writes it -->';
my $END = '<!-- release table end -->';
my %LABEL = (pass => 'pass', refused => 'refused safely');

sub lines {
    my ($path) = @_;
    open(my $fh, '<', $path) or die "unable to read $path: $!\n";
    return grep { !m/^#/ && m/\S/ } map { chomp; $_ } <$fh>;
}

my %access;
for (lines(dirname($results) . '/RELEASES')) {
    my ($release) = split(/ /);
    ($access{$release}) = m/ pve-access-control=([^@]+)@/;
}

my @groups;
for (lines($results)) {
    my ($release, $line, $outcome) = split(/ /, $_, 3);
    my ($minor) = $release =~ m/^(\d+\.\d+)/;
    my $result = $outcome =~ m/^fail (.*)$/ ? "**fail**, first failed check: $1" : ($LABEL{$outcome} // $outcome);
    my $last = $groups[-1];
    if ($last && $last->{minor} eq $minor && $last->{result} eq $result) {
        push @{ $last->{releases} }, $release;
    } else {
        push @groups, { minor => $minor, result => $result, releases => [$release] };
    }
}

sub span {
    my ($first, $last) = @_;
    return $first eq $last ? $first : "$first – $last";
}

my $table = "| Proxmox VE | pve-manager | libpve-access-control | result |\n| --- | --- | --- | --- |\n";
for my $g (@groups) {
    my @r = @{ $g->{releases} };
    $table .= sprintf("| %s | %s (%d) | %s | %s |\n", $g->{minor}, span($r[0], $r[-1]), scalar(@r),
        span($access{ $r[0] } // '?', $access{ $r[-1] } // '?'), $g->{result});
}

if (!$mode) {
    print $table;
    exit 0;
}
open(my $fh, '<', $file) or die "unable to read $file: $!\n";
my $text = do { local $/; <$fh> };
close($fh);
my $block = "$BEGIN\n$table$END";
my ($current) = $text =~ m/(\Q$BEGIN\E\n.*?\Q$END\E)/s;
if ($mode eq '--check') {
    exit(defined($current) && $current eq $block ? 0 : 1);
}
die "$file has no release table markers\n" if !defined($current);
$text =~ s/\Q$current\E/$block/;
open($fh, '>', "$file.tmp") or die "unable to write $file.tmp: $!\n";
print $fh $text;
close($fh) or die "unable to write $file.tmp: $!\n";
rename("$file.tmp", $file) or die "rename: $!\n";
