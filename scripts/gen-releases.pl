#!/usr/bin/perl

# Writes tests/releases/RELEASES: one row per released pve-manager version of Proxmox VE 8 and
# later (each "bump version to X.Y.Z" commit), with the commits of the packages the tests load
# that shipped with it. For each dependency: the newest release of the same Debian line
# (bookworm = PVE 8, trixie = PVE 9, ...) committed before that pve-manager release, which must
# satisfy pve-manager's versioned Depends at that commit (debian/control); where it does not
# (pve-manager bumped its Depends before the dependency's own bump), the first release that does.
#   scripts/gen-releases.pl [MIRRORS] [OUT]
# MIRRORS: directory of full-history mirrors <repo>.git (default ../shared/git beside the
# checkout; `git clone --mirror` of each repository makes one). They are read through their
# objects and packed-refs only, so read-only copies without refs/ work.

use strict;
use warnings;

use Cwd qw(abs_path);
use Dpkg::Version qw(version_compare);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use POSIX qw(strftime);

my $root = abs_path(dirname(__FILE__) . '/..');
my $mirrors = $ARGV[0] // "$root/../shared/git";
my $out = $ARGV[1] // "$root/tests/releases/RELEASES";
$mirrors = abs_path($mirrors) // die "no mirror directory '$ARGV[0]'\n";

# the Debian line of each Proxmox VE major release
my %LINE = (bookworm => 'pve8', trixie => 'pve9', forky => 'pve10');

# repositories besides pve-manager, in column order, and pve-manager's Depends naming them
my @DEPS = (
    ['pve-access-control' => 'libpve-access-control'],
    ['pve-common' => 'libpve-common-perl'],
    ['pve-http-server' => 'libpve-http-server-perl'],
    ['proxmox-widget-toolkit' => 'proxmox-widget-toolkit'],
    ['pve-cluster' => 'pve-cluster', 'libpve-cluster-perl'],
);

my $work = tempdir(CLEANUP => 1);

# a bare repository reading the mirror's objects and refs
sub repo {
    my ($name) = @_;
    my $src = "$mirrors/$name.git";
    die "no mirror $src\n" if !-d "$src/objects";
    my $git = "$work/$name.git";
    system('git', 'init', '-q', '--bare', $git) == 0 or die "git init failed\n";
    open(my $fh, '>', "$git/objects/info/alternates") or die "$!\n";
    print $fh "$src/objects\n";
    close($fh);
    system('cp', "$src/packed-refs", "$git/packed-refs") == 0 or die "cp failed\n" if -f "$src/packed-refs";
    system('cp', '-r', "$src/refs/.", "$git/refs/") == 0 or die "cp failed\n" if -d "$src/refs";
    return $git;
}

sub git {
    my ($git, @args) = @_;
    open(my $fh, '-|', 'git', '--git-dir', $git, @args) or die "git: $!\n";
    my $res = do { local $/; <$fh> };
    close($fh) or die "git @args failed\n";
    return $res;
}

# every release commit of a repository: { version, line, commit, time }, one per version (a bump
# made twice counts with its later commit). A major version belongs to the Debian line most of
# its changelog entries name (upstream's pve-manager 9.0.5 says bookworm).
sub releases {
    my ($git) = @_;
    my (%by_version, %dists);
    for my $row (split(/\n/, git($git, 'log', '--all', '--since=2022-06-01', '--format=%H %ct', '--grep=^bump version to'))) {
        my ($commit, $time) = split(/ /, $row);
        my ($head) = split(/\n/, git($git, 'show', "$commit:debian/changelog"));
        my ($version, $major, $dist) = $head =~ m/^\S+ \(((\d+)\S*)\) (\w+);/ or die "$commit: changelog '$head'\n";
        $dists{$major}->{$dist}++;
        my $old = $by_version{$version};
        next if $old && $old->{time} >= $time;
        $by_version{$version} = { version => $version, major => $major, commit => $commit, time => $time };
    }
    for my $major (keys %dists) {
        my ($dist) = sort { $dists{$major}->{$b} <=> $dists{$major}->{$a} || $a cmp $b } keys %{ $dists{$major} };
        $dists{$major} = $LINE{$dist};
    }
    $_->{line} = $dists{ $_->{major} } for values %by_version;
    return [sort { version_compare($a->{version}, $b->{version}) } grep { $_->{line} } values %by_version];
}

# the minimum versions in the Depends of binary package 'pve-manager'
sub manager_depends {
    my ($git, $commit) = @_;
    my $control = git($git, 'show', "$commit:debian/control");
    my ($para) = grep { m/^Package: pve-manager$/m } split(/\n\n+/, $control);
    my ($depends) = ($para // '') =~ m/^Depends:(.*?)(?=^\S|\z)/ms or die "$commit: no Depends of pve-manager\n";
    my %min;
    while ($depends =~ m/([a-z0-9.+-]+)\s*(?:\(\s*>=\s*([^)\s]+)\s*\))?/g) {
        my ($pkg, $ver) = ($1, $2 // '0');
        $min{$pkg} = $ver if !defined($min{$pkg}) || version_compare($ver, $min{$pkg}) > 0;
    }
    return \%min;
}

my $manager_git = repo('pve-manager');
my %dep_releases = map { $_->[0] => releases(repo($_->[0])) } @DEPS;

my @rows;
for my $m (@{ releases($manager_git) }) {
    next if $m->{version} =~ m/~/; # betas
    my $min = manager_depends($manager_git, $m->{commit});
    my @cells = ("pve-manager=$m->{version}\@$m->{commit}");
    for my $dep (@DEPS) {
        my ($repo, @pkgs) = @$dep;
        my ($need) = sort { version_compare($b, $a) } map { $min->{$_} // '0' } @pkgs;
        my @line = grep { $_->{line} eq $m->{line} } @{ $dep_releases{$repo} };
        my ($pick) = reverse grep { $_->{time} <= $m->{time} } @line;
        # a release whose Depends names a version bumped after it (the same day) waited for it
        ($pick) = grep { version_compare($_->{version}, $need) >= 0 } @line
            if !$pick || version_compare($pick->{version}, $need) < 0;
        die "pve-manager $m->{version}: no $repo >= $need in $m->{line}\n" if !$pick;
        push @cells, "$repo=$pick->{version}\@$pick->{commit}";
    }
    push @rows, join(' ', $m->{version}, $m->{line}, strftime('%Y-%m-%d', gmtime($m->{time})), @cells);
}

open(my $fh, '>', "$out.tmp") or die "unable to write $out.tmp: $!\n";
print $fh <<"EOF";
# Proxmox VE releases the tests run against (tests/releases/run.sh): one row per released
# pve-manager version since PVE 8.0, with the commit of each package that shipped with it.
# Generated by scripts/gen-releases.pl (regenerate, do not edit): the newest release of each
# package of the same Debian line committed before that pve-manager release, or where that is
# older than pve-manager's versioned Depends at that commit, the first release satisfying them.
# columns: release line date pve-manager=VERSION\@COMMIT, then the same for
# @{[ join(' ', map { $_->[0] } @DEPS) ]}
EOF
print $fh "$_\n" for @rows;
close($fh) or die "unable to write $out.tmp: $!\n";
rename("$out.tmp", $out) or die "rename: $!\n";
print STDERR scalar(@rows), " releases written to $out\n";
