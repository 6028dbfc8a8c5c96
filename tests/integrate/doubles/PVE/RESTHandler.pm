package PVE::RESTHandler;

# Test double of PVE::RESTHandler (pve-common): records subclass mounts per handler
# class, keyed by path, as upstream's method map is.

use strict;
use warnings;

our %mounts;

sub register_method {
    my ($class, $info) = @_;
    die "$class: path '$info->{path}' registered twice\n" if exists $mounts{$class}->{$info->{path}};
    $mounts{$class}->{$info->{path}} = $info->{subclass};
}

1;
