package IntegrateTest;

# Shared helpers of the pve-entraid-integrate tests, on the REAL upstream files through the
# contract harness (tests/upstream/lib/UpstreamTest.pm, PVE_ENTRAID_PVE selects pve9/pve8):
# a throw-away root holding copies of the six upstream files the hooks touch, and a runner
# for the tool with --root whose own 'perl -c' check sees the real upstream modules.

use strict;
use warnings;

use UpstreamTest ();

use base qw(Exporter);
our @EXPORT = qw(
    $TOOL @HOOK_FILES
    make_root run_tool slurp spew tree_bytes block_count hook_blocks perl_check pristine
);

our $TOOL = $UpstreamTest::INTEGRATE;

our @HOOK_FILES = qw(
    /usr/share/perl5/PVE/AccessControl.pm
    /usr/share/perl5/PVE/API2/AccessControl.pm
    /usr/share/perl5/PVE/API2/Domains.pm
    /usr/share/perl5/PVE/API2/Jobs/RealmSync.pm
    /usr/share/perl5/PVE/HTTPServer.pm
    /usr/share/pve-manager/index.html.tpl
);

*slurp = \&UpstreamTest::slurp;
*spew = \&UpstreamTest::spew;

# the unmodified upstream bytes of an installed path
sub pristine {
    my ($file) = @_;
    return slurp("$UpstreamTest::TREE/$UpstreamTest::HOOK_SOURCES{$file}");
}

# A fresh root with the real upstream files and /etc/pve/nodes/<node> for each given node,
# removed at exit.
sub make_root {
    my (@nodes) = @_;
    my ($root) = UpstreamTest::install_hooks(apply => 0, nodes => \@nodes);
    return $root;
}

# runs the tool; returns (exit code, combined stdout and stderr)
sub run_tool {
    my ($root, @args) = @_;
    return UpstreamTest::run_integrate($root, @args);
}

# path => bytes of every hook file under root (undef when absent)
sub tree_bytes {
    my ($root) = @_;
    return { map { $_ => (-f "$root$_" ? slurp("$root$_") : undef) } @HOOK_FILES };
}

# blocks the applied hook puts in a file (the realm-api hook has four in Domains.pm)
sub hook_blocks {
    my ($file) = @_;
    return $file =~ m{/API2/Domains\.pm$} ? 4 : 1;
}

sub block_count {
    my ($data) = @_;
    my $begin = () = $data =~ m/pve-entraid hook begin/g;
    my $end = () = $data =~ m/pve-entraid hook end/g;
    return $begin == $end ? $begin : -1;
}

# perl -T -c of a file against the real upstream modules; undef if it compiles, else the output
sub perl_check {
    my ($path) = @_;
    my ($rc, $out) = UpstreamTest::run_perl({}, '-c', $path);
    return $rc == 0 ? undef : $out;
}

1;
