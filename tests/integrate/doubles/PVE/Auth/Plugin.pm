package PVE::Auth::Plugin;

# Test double of PVE::Auth::Plugin (pve-access-control): like upstream's SectionConfig,
# types must be registered before init(); here each call is recorded so tests can check
# the order, and a registration after init() dies as it would be lost upstream.

use strict;
use warnings;

our @calls;
my $initialized = 0;

sub register {
    my ($class) = @_;
    die "$class registered after init()\n" if $initialized;
    push @calls, "register $class";
}

sub init {
    $initialized = 1;
    push @calls, 'init';
}

sub registered_types {
    return map { m/^register PVE::Auth::(\w+)$/ ? $1 : () } @calls;
}

1;
