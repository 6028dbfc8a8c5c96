# Test double of PVE::SectionConfig (pve-common src/PVE/SectionConfig.pm), unified mode only.
# Mirrors upstream behaviour that matters for domains.cfg:
#  - init(): every plugin's properties() go into ONE global property list; a property
#    registered by two plugins dies with "duplicate property 'x'" (that is what takes every
#    PVE daemon down); options() may only name registered properties ("undefined property").
#  - parse_config(): "type: id" headers, "\tkey value" lines, '#' comments skipped; a section
#    of an unregistered type is SKIPPED with a warning (never stored), so the next write drops it.
#  - write_config(): sections in file order, new ones after them (upstream appends those in
#    hash order; sorted here so tests are deterministic); per section comment first, then
#    required options (sorted), then optional options (sorted); booleans as 0/1; empty
#    strings omitted.
#  - check_value()/check_config(): unknown or fixed properties refused, schema check optional.
package PVE::SectionConfig;

use strict;
use warnings;

use Carp;
use Digest::SHA;

use PVE::Exception qw(raise_param_exc);
use PVE::JSONSchema qw(get_standard_option);
use PVE::Tools;

sub private { die "overwrite me"; }
sub type { die "overwrite me"; }
sub properties { return {}; }
sub options { return {}; }
sub plugindata { return {}; }

sub register {
    my ($class) = @_;
    my $type = $class->type();
    my $pdata = $class->private();
    die "duplicate plugin registration (type = $type)" if defined($pdata->{plugins}->{$type});
    $pdata->{plugindata}->{$type} = $class->plugindata();
    $pdata->{plugins}->{$type} = $class;
}

sub init {
    my ($class) = @_;
    my $pdata = $class->private();
    for my $k (qw(options plugins plugindata propertyList)) {
        $pdata->{$k} = {} if !$pdata->{$k};
    }
    my $plugins = $pdata->{plugins};
    my $propertyList = $pdata->{propertyList};

    for my $type (keys %$plugins) {
        my $props = $plugins->{$type}->properties();
        for my $p (keys %$props) {
            die "duplicate property '$p'" if defined($propertyList->{$p});
            my $res = $propertyList->{$p} = { %{ $props->{$p} } };
            $res->{optional} = 1; # unified mode: plugin properties are always optional
        }
    }
    for my $type (keys %$plugins) {
        my $opts = $plugins->{$type}->options();
        for my $p (keys %$opts) {
            die "undefined property '$p'" if !$propertyList->{$p};
        }
        $pdata->{options}->{$type} = { %$opts };
    }
    $propertyList->{type}->{type} = 'string';
    $propertyList->{type}->{enum} = [sort keys %$plugins];
}

sub lookup {
    my ($class, $type) = @_;
    croak "cannot lookup undefined type!" if !defined($type);
    my $plugin = $class->private()->{plugins}->{$type};
    die "unknown section type '$type'\n" if !$plugin;
    return $plugin;
}

sub lookup_types {
    my ($class) = @_;
    return [sort keys %{ $class->private()->{plugins} }];
}

sub get_property_schema {
    my ($class, $type, $key) = @_;
    return $class->private()->{propertyList}->{$key};
}

sub createSchema {
    my ($class, $skip_type, $base) = @_;
    my $pdata = $class->private();
    my $propertyList = $pdata->{propertyList};
    my $props = $base || {};
    for my $p (keys %$propertyList) {
        next if $skip_type && $p eq 'type';
        if (!$propertyList->{$p}->{optional}) {
            $props->{$p} = $propertyList->{$p};
            next;
        }
        # required only when every plugin requires it
        my $required = 1;
        for my $t (keys %{ $pdata->{plugins} }) {
            my $opts = $pdata->{options}->{$t} || {};
            $required = 0 if !defined($opts->{$p}) || $opts->{$p}->{optional};
        }
        $props->{$p} = $required ? { %{ $propertyList->{$p} }, optional => 0 } : $propertyList->{$p};
    }
    return { type => 'object', additionalProperties => 0, properties => $props };
}

sub updateSchema {
    my ($class, $single_class, $base) = @_;
    my $pdata = $class->private();
    my $propertyList = $pdata->{propertyList};
    my $props = $base || {};
    for my $p (keys %$propertyList) {
        next if $p eq 'type';
        if (!$propertyList->{$p}->{optional}) {
            $props->{$p} = $propertyList->{$p};
            next;
        }
        my $modifiable = 0;
        for my $t (keys %{ $pdata->{plugins} }) {
            my $opts = $pdata->{options}->{$t} || {};
            next if !defined($opts->{$p});
            $modifiable = 1 if !$opts->{$p}->{fixed};
        }
        $props->{$p} = $propertyList->{$p} if $modifiable;
    }
    $props->{digest} = get_standard_option('pve-config-digest');
    $props->{delete} = {
        type => 'string', format => 'pve-configid-list', maxLength => 4096, optional => 1,
        description => "A list of settings you want to delete.",
    };
    return { type => 'object', additionalProperties => 0, properties => $props };
}

sub decode_value { my ($class, $type, $key, $value) = @_; return $value; }
sub encode_value { my ($class, $type, $key, $value) = @_; return $value; }

sub check_value {
    my ($class, $type, $key, $value, $sectionId, $skipSchemaCheck) = @_;
    my $pdata = $class->private();
    return $value if $key eq 'type' && $type eq $value;

    my $opts = $pdata->{options}->{$type};
    die "unknown section type '$type'\n" if !$opts;
    die "unexpected property '$key'\n" if !defined($opts->{$key});

    my $schema = $class->get_property_schema($type, $key);
    die "unknown property type\n" if !$schema;
    my $ct = $schema->{type};

    $value = 1 if $ct eq 'boolean' && !defined($value);
    die "got undefined value\n" if !defined($value);
    die "property contains a line feed\n" if $value =~ m/[\n\r]/;

    if (!$skipSchemaCheck) {
        my $errors = {};
        PVE::JSONSchema::check_prop($value, $schema, '', $errors);
        if (scalar(keys %$errors)) {
            die "$errors->{$key}\n" if $errors->{$key};
            die "$errors->{_root}\n" if $errors->{_root};
            die "unknown error\n";
        }
    }
    return $value + 0 if $ct eq 'boolean' || $ct eq 'integer' || $ct eq 'number';
    return $value;
}

sub check_config {
    my ($class, $sectionId, $config, $create, $skipSchemaCheck) = @_;
    my $type = $class->type();
    my $opts = $class->private()->{options}->{$type};
    my $settings = { type => $type };

    for my $k (keys %$config) {
        my $value = $config->{$k};
        die "can't change value of fixed parameter '$k'\n"
            if !$create && defined($opts->{$k}) && $opts->{$k}->{fixed};
        die "got undefined value for option '$k'\n" if !defined($value);
        my $tmp = $class->check_value($type, $k, $value, $sectionId, $skipSchemaCheck);
        $settings->{$k} = $class->decode_value($type, $k, $tmp);
    }
    if ($create) {
        for my $k (keys %$opts) {
            next if $opts->{$k}->{optional};
            die "missing value for required option '$k'\n" if !defined($config->{$k});
        }
    }
    return $settings;
}

sub parse_section_header {
    my ($class, $line) = @_;
    if ($line =~ m/^(\S+):\s*(\S+)\s*$/) {
        return ($1, $2, undef, {});
    }
    return undef;
}

sub format_section_header {
    my ($class, $type, $sectionId, $scfg, $done_hash) = @_;
    return "$type: $sectionId\n";
}

sub parse_config {
    my ($class, $filename, $raw) = @_;
    my $pdata = $class->private();
    my ($ids, $order) = ({}, {});
    $raw = '' if !defined($raw);
    my $digest = Digest::SHA::sha1_hex($raw);
    my $pri = 1;
    my $lineno = 0;
    my @lines = split(/\n/, $raw);
    my $nextline = sub {
        while (defined(my $line = shift @lines)) {
            $lineno++;
            return $line if $line !~ m/^\s*#/;
        }
    };

    while (@lines) {
        my $line = $nextline->();
        next if !$line;
        my $errprefix = "file $filename line $lineno";
        my ($type, $sectionId, $errmsg, $config) = $class->parse_section_header($line);
        if (!$config) {
            warn "$errprefix - ignore config line: $line\n";
            next;
        }
        my $skip = 0;
        my $plugin;
        if ($errmsg) {
            $skip = 1;
            chomp $errmsg;
            warn "$errprefix (skip section '$sectionId'): $errmsg\n";
        } elsif (!($plugin = $pdata->{plugins}->{$type})) {
            $skip = 1;
            warn "$errprefix (skip section '$sectionId'): unsupported type '$type'\n";
        }
        while ($line = $nextline->()) {
            next if $skip;
            $errprefix = "file $filename line $lineno";
            if ($line =~ m/^\s+(\S+)(\s+(.*\S))?\s*$/) {
                my ($k, $v) = ($1, $3);
                eval {
                    die "duplicate attribute\n" if defined($config->{$k});
                    $config->{$k} = $plugin->check_value($type, $k, $v, $sectionId);
                };
                warn "$errprefix (section '$sectionId') - unable to parse value of '$k': $@" if $@;
            } else {
                warn "$errprefix (section '$sectionId') - ignore config line: $line\n";
            }
        }
        next if $skip;
        $config->{type} = $type;
        $config = eval { $plugin->check_config($sectionId, $config, 1, 1) };
        warn "$errprefix (skip section '$sectionId'): $@" if $@;
        $ids->{$sectionId} = $config;
        $order->{$sectionId} = $pri++;
    }
    return { ids => $ids, order => $order, digest => $digest };
}

my sub format_config_line {
    my ($schema, $key, $value) = @_;
    my $ct = $schema->{type};
    die "property '$key' contains a line feed\n" if $key =~ m/[\n\r]/ || $value =~ m/[\n\r]/;
    if ($ct eq 'boolean') {
        return "\t$key " . ($value ? 1 : 0) . "\n";
    }
    return "\t$key $value\n" if "$value" ne '';
    return '';
}

sub write_config {
    my ($class, $filename, $cfg) = @_;
    my $pdata = $class->private();
    my ($ids, $order) = ($cfg->{ids}, $cfg->{order});
    my $out = '';

    my $maxpri = 0;
    for my $id (keys %$ids) {
        my $pri = $order->{$id};
        $maxpri = $pri if $pri && $pri > $maxpri;
    }
    for my $id (sort keys %$ids) {
        $order->{$id} = ++$maxpri if !defined($order->{$id});
    }

    for my $id (sort { $order->{$a} <=> $order->{$b} } keys %$ids) {
        my $scfg = $ids->{$id};
        my $type = $scfg->{type};
        my $opts = $pdata->{options}->{$type};
        die "unknown section type '$type'\n" if !$opts;

        my $data = $class->format_section_header($type, $id, $scfg, {});
        my $done = { comment => 1, disable => 1 };
        if ($scfg->{comment}) {
            my $v = $class->encode_value($type, 'comment', $scfg->{comment});
            $data .= format_config_line($class->get_property_schema($type, 'comment'), 'comment', $v);
        }
        $data .= "\tdisable\n" if $scfg->{disable};

        my @keys = sort keys %$opts;
        for my $k (grep { !$opts->{$_}->{optional} && !$done->{$_} } @keys) {
            $done->{$k} = 1;
            my $v = $scfg->{$k};
            die "section '$id' - missing value for required option '$k'\n" if !defined($v);
            $v = $class->encode_value($type, $k, $v);
            $data .= format_config_line($class->get_property_schema($type, $k), $k, $v);
        }
        for my $k (grep { !$done->{$_} } @keys) {
            my $v = $scfg->{$k};
            next if !defined($v);
            $v = $class->encode_value($type, $k, $v);
            $data .= format_config_line($class->get_property_schema($type, $k), $k, $v);
        }
        $out .= "$data\n";
    }
    return $out;
}

sub assert_if_modified {
    my ($cfg, $digest) = @_;
    PVE::Tools::assert_if_modified($cfg->{digest}, $digest);
}

1;
