package IntegrateTest;

# Shared helpers of the pve-entraid-integrate tests: a throw-away root tree holding copies
# of the pristine fixtures, and a runner for the tool with --root.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Find;
use File::Path qw(make_path);
use File::Temp;

use base qw(Exporter);
our @EXPORT = qw(
    $TOOL $FIXTURES $DOUBLES @HOOK_FILES
    make_root run_tool slurp spew tree_bytes block_count perl_check
);

my $here = dirname(abs_path(__FILE__));
our $TOOL = abs_path("$here/../../../integrate/pve-entraid-integrate");
our $FIXTURES = abs_path("$here/../fixtures/pristine");
our $DOUBLES = abs_path("$here/../doubles");

our @HOOK_FILES = qw(
    /usr/share/perl5/PVE/AccessControl.pm
    /usr/share/perl5/PVE/API2/AccessControl.pm
    /usr/share/perl5/PVE/HTTPServer.pm
    /usr/share/pve-manager/index.html.tpl
);

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or die "open '$path': $!\n";
    local $/;
    return scalar(<$fh>);
}

sub spew {
    my ($path, $data) = @_;
    make_path(dirname($path));
    open(my $fh, '>:raw', $path) or die "open '$path': $!\n";
    print $fh $data;
    close($fh) or die "close '$path': $!\n";
}

# A fresh root with the pristine fixtures and /etc/pve/nodes/<node> for each given node.
# The File::Temp object removes the tree when it goes out of scope.
sub make_root {
    my (@nodes) = @_;
    my $dir = File::Temp->newdir('pve-entraid-integrate-XXXXXX', TMPDIR => 1);
    find(
        {
            no_chdir => 1,
            wanted => sub {
                return if !-f $_;
                my $rel = substr($_, length($FIXTURES));
                make_path(dirname("$dir$rel"));
                copy($_, "$dir$rel") or die "copy '$_': $!\n";
            },
        },
        $FIXTURES,
    );
    make_path("$dir/etc/pve/nodes/$_") for @nodes;
    return $dir;
}

# runs the tool; returns (exit code, combined stdout and stderr)
sub run_tool {
    my ($root, @args) = @_;
    my $pid = open(my $out, '-|') // die "fork: $!\n";
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT);
        exec($^X, $TOOL, @args, '--root', "$root") or exit(127);
    }
    my $output = do { local $/; <$out> } // '';
    close($out);
    return ($? >> 8, $output);
}

# path => bytes of every hook file under root (undef when absent)
sub tree_bytes {
    my ($root) = @_;
    return { map { $_ => (-f "$root$_" ? slurp("$root$_") : undef) } @HOOK_FILES };
}

sub block_count {
    my ($data) = @_;
    my $begin = () = $data =~ m/pve-entraid hook begin/g;
    my $end = () = $data =~ m/pve-entraid hook end/g;
    return $begin == $end ? $begin : -1;
}

# perl -c of a fixture against the test doubles; returns undef if it compiles, else the error
sub perl_check {
    my ($path, @inc) = @_;
    my $pid = open(my $out, '-|') // die "fork: $!\n";
    if (!$pid) {
        open(STDERR, '>&', \*STDOUT);
        exec($^X, (map { "-I$_" } @inc, $DOUBLES), '-c', $path) or exit(127);
    }
    my $output = do { local $/; <$out> } // '';
    close($out);
    return $? == 0 ? undef : $output;
}

1;
