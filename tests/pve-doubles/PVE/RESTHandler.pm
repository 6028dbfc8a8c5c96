# Test double of PVE::RESTHandler (pve-common src/PVE/RESTHandler.pm).
# Mirrors: register_method storing the method info per class, map_method_by_name, and
# handle() which validates the parameters against the method's schema (400 with per-parameter
# errors) before running its code, as the API server does.
package PVE::RESTHandler;

use strict;
use warnings;

use PVE::JSONSchema;

my $method_registry = {};

sub register_method {
    my ($self, $info) = @_;
    my $class = ref($self) || $self;
    push @{ $method_registry->{$class} }, $info;
}

sub map_method_by_name {
    my ($self, $name) = @_;
    my $class = ref($self) || $self;
    for my $info (@{ $method_registry->{$class} // [] }) {
        return $info if $info->{name} eq $name;
    }
    return undef;
}

sub handle {
    my ($self, $info, $param) = @_;
    my $schema = $info->{parameters} // { type => 'object', properties => {} };
    PVE::JSONSchema::validate($param, $schema);
    return $info->{code}->($param);
}

1;
