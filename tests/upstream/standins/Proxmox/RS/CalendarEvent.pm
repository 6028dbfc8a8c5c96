package Proxmox::RS::CalendarEvent;

# STAND-IN for Proxmox::RS::CalendarEvent from proxmox-perl-rs (Rust proxmox-time).
# Why: proxmox-perl-rs is not packaged for Debian; the REAL PVE::CalendarEvent (pve-common)
# loads it, and realm-sync job schemas reference the format. Accepts the systemd-like forms
# PVE documents (a non-empty string without control characters); next-event computation is
# not provided.

use strict;
use warnings;

sub new {
    my ($class, $event) = @_;
    die "unable to parse calendar event - event is empty\n" if !defined($event) || $event !~ m/\S/;
    die "unable to parse calendar event '$event'\n" if $event =~ m/[\x00-\x1f]/;
    return bless { event => $event }, $class;
}

sub compute_next_event {
    die "Proxmox::RS::CalendarEvent stand-in: compute_next_event is not available in tests\n";
}

1;
