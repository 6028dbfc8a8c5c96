# Test double of PVE::Exception (pve-common src/PVE/Exception.pm).
# Mirrors: an exception object with a message, an HTTP code and per-parameter errors,
# stringifying to its message; raise/raise_param_exc/raise_perm_exc as upstream exports them.
package PVE::Exception;

use strict;
use warnings;

use base 'Exporter';
our @EXPORT_OK = qw(raise raise_param_exc raise_perm_exc);

use overload '""' => sub { $_[0]->stringify() }, 'cmp' => sub {
    my ($a, $b, $swap) = @_;
    return $swap ? "$b" cmp "$a" : "$a" cmp "$b";
};

sub new {
    my ($class, $msg, %param) = @_;
    my $self = { msg => $msg, %param };
    return bless $self, $class;
}

sub stringify {
    my ($self) = @_;
    my $msg = $self->{msg} // '';
    if (my $errors = $self->{errors}) {
        $msg .= "\n" if $msg !~ m/\n$/;
        $msg .= "$_: $errors->{$_}\n" for sort keys %$errors;
    }
    return $msg;
}

sub raise {
    my ($msg, %param) = @_;
    die __PACKAGE__->new($msg, %param);
}

sub raise_param_exc {
    my ($errors, $usage) = @_;
    die __PACKAGE__->new("Parameter verification failed.\n", code => 400, errors => $errors);
}

sub raise_perm_exc {
    my ($what) = @_;
    my $msg = 'Permission check failed';
    $msg .= " ($what)" if $what;
    die __PACKAGE__->new("$msg\n", code => 403);
}

1;
