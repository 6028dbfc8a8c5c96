# Test double of PVE::SafeSyslog (pve-common src/PVE/SafeSyslog.pm).
# Mirrors: syslog($priority, $format, @args) with sprintf semantics. Instead of the system log,
# lines are kept in @PVE::SafeSyslog::LINES (and appended to $ENV{PVE_DOUBLES_SYSLOG} if set)
# so tests can assert what would be logged.
package PVE::SafeSyslog;

use strict;
use warnings;

use base 'Exporter';
our @EXPORT = qw(syslog initlog);

our @LINES;

sub initlog { }

sub syslog {
    my ($prio, $fmt, @args) = @_;
    my $line = "$prio: " . (@args ? sprintf($fmt, @args) : $fmt);
    $line =~ s/\n+$//;
    push @LINES, $line;
    if (my $file = $ENV{PVE_DOUBLES_SYSLOG}) {
        open(my $fh, '>>', $file) or die "unable to open $file: $!\n";
        print $fh "$line\n";
        close($fh);
    }
}

1;
