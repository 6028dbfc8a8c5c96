# Test double of PVE::JSONSchema (pve-common src/PVE/JSONSchema.pm), only what the realm
# plugin and its API use. Mirrors: register_format / register_standard_option /
# get_standard_option (a copy merged with overrides), check_prop collecting per-property
# errors (type, enum, pattern, maxLength, minimum/maximum, registered formats), validate()
# on an object schema with additionalProperties => 0, and the 'pve-configid-list' /
# 'pve-config-digest' helpers the SectionConfig update schema refers to.
package PVE::JSONSchema;

use strict;
use warnings;

use PVE::Exception qw(raise_param_exc);

use base 'Exporter';
our @EXPORT_OK = qw(register_standard_option get_standard_option);

my $formats = {};
my $standard_options = {};

sub register_format {
    my ($name, $code) = @_;
    die "JSON schema format '$name' already registered\n" if $formats->{$name};
    $formats->{$name} = $code;
}

sub get_format { return $formats->{$_[0]} }

sub register_standard_option {
    my ($name, $schema) = @_;
    die "standard option '$name' already registered\n" if $standard_options->{$name};
    $standard_options->{$name} = $schema;
}

sub get_standard_option {
    my ($name, $base) = @_;
    my $std = $standard_options->{$name} or die "no such standard option '$name'\n";
    my $res = $base || {};
    for my $k (keys %$std) {
        next if defined($res->{$k});
        $res->{$k} = $std->{$k};
    }
    return $res;
}

register_standard_option('pve-config-digest', {
    description => 'Prevent changes if current configuration file has a different digest.',
    type => 'string',
    optional => 1,
    maxLength => 64,
});

register_format('pve-configid', sub {
    my ($id, $noerr) = @_;
    return $id if $id =~ m/^[a-z][a-z0-9_-]+$/i;
    return undef if $noerr;
    die "invalid configuration ID '$id'\n";
});

register_format('pve-configid-list', sub {
    my ($list, $noerr) = @_;
    for my $id (split(/[;,\s\0]+/, $list)) {
        next if $id =~ m/^[a-z][a-z0-9_-]+$/i;
        return undef if $noerr;
        die "invalid configuration ID '$id'\n";
    }
    return $list;
});

# upstream's EMAIL_RE (pve-common)
sub pve_verify_email {
    my ($email, $noerr) = @_;
    return $email if $email =~ /^[\w\+\-\~]+(\.[\w\+\-\~]+)*@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*$/;
    return undef if $noerr;
    die "value does not look like a valid email address\n";
}

sub check_format {
    my ($format, $value) = @_;
    return if !defined($format);
    if (ref($format) eq 'HASH') {
        return; # property strings: validated by the consumer in this double
    }
    my $code = $formats->{$format} or return; # upstream dies on unknown formats at registration
    $code->($value);
}

sub check_prop {
    my ($value, $schema, $path, $errors) = @_;
    my $key = $path eq '' ? '_root' : $path;
    my $type = $schema->{type} // 'string';

    if ($type eq 'boolean') {
        if ($value !~ m/^(?:1|0|true|false|on|off|yes|no)$/i) {
            $errors->{$key} = "type check ('boolean') failed - got '$value'";
            return;
        }
    } elsif ($type eq 'integer') {
        if ($value !~ m/^-?\d+$/) {
            $errors->{$key} = "type check ('integer') failed - got '$value'";
            return;
        }
    } elsif ($type eq 'number') {
        if ($value !~ m/^-?\d+(?:\.\d+)?$/) {
            $errors->{$key} = "type check ('number') failed - got '$value'";
            return;
        }
    } elsif (ref($value)) {
        $errors->{$key} = "type check ('$type') failed";
        return;
    }

    if (defined(my $max = $schema->{maxLength})) {
        if (length($value) > $max) {
            $errors->{$key} = "value may only be $max characters long";
            return;
        }
    }
    if (defined(my $min = $schema->{minLength})) {
        if (length($value) < $min) {
            $errors->{$key} = "value must be at least $min characters long";
            return;
        }
    }
    if (defined(my $min = $schema->{minimum})) {
        if ($value < $min) { $errors->{$key} = "value must have a minimum value of $min"; return; }
    }
    if (defined(my $max = $schema->{maximum})) {
        if ($value > $max) { $errors->{$key} = "value must have a maximum value of $max"; return; }
    }
    if (my $enum = $schema->{enum}) {
        if (!grep { $_ eq $value } @$enum) {
            $errors->{$key} = "value '$value' does not have a value in the enumeration '"
                . join(', ', @$enum) . "'";
            return;
        }
    }
    if (defined(my $pattern = $schema->{pattern})) {
        if ($value !~ m/^$pattern$/) {
            $errors->{$key} = "value does not match the regex pattern";
            return;
        }
    }
    eval { check_format($schema->{format}, $value) };
    if (my $err = $@) {
        chomp $err;
        $errors->{$key} = $err;
    }
}

# Checks API call parameters against an object schema; dies with a 400 listing each bad
# parameter, like upstream's validate() + raise_param_exc in RESTHandler::handle.
sub validate {
    my ($params, $schema) = @_;
    my $errors = {};
    my $props = $schema->{properties} // {};
    for my $k (sort keys %$params) {
        my $p = $props->{$k};
        if (!$p) {
            $errors->{$k} = 'property is not defined in schema and the schema does not allow additional properties'
                if !$schema->{additionalProperties};
            next;
        }
        next if !defined($params->{$k});
        check_prop($params->{$k}, $p, $k, $errors);
    }
    for my $k (sort keys %$props) {
        next if $props->{$k}->{optional} || defined($params->{$k});
        $errors->{$k} = 'property is missing and it is not optional';
    }
    raise_param_exc($errors) if %$errors;
    return 1;
}

1;
