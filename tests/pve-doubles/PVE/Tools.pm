# Test double of PVE::Tools (pve-common src/PVE/Tools.pm), only the helpers used here.
# Mirrors: extract_param, split_list (separators ; , space NUL), encode_text/decode_text
# (URI-style escaping of comments in config files), file_get_contents/file_set_contents
# (atomic replace through a temp file, optional mode), assert_if_modified, lock_file (flock).
package PVE::Tools;

use strict;
use warnings;

use Encode ();
use Fcntl qw(:flock O_WRONLY O_CREAT O_EXCL);
use File::Basename qw(dirname);

use base 'Exporter';
our @EXPORT_OK = qw(extract_param split_list file_get_contents file_set_contents lock_file);

sub extract_param {
    my ($param, $key) = @_;
    my $res = $param->{$key};
    delete $param->{$key};
    return $res;
}

sub split_list {
    my ($listtxt) = @_;
    return () if !defined($listtxt);
    return grep { length($_) } split(/[;,\s\0]+/, $listtxt);
}

sub encode_text {
    my ($text) = @_;
    # like upstream: UTF-8 encode, then %XX-escape control, high-bit characters and ':'
    $text = Encode::encode('utf8', $text);
    $text =~ s/([^\x20-\x39\x3b-\x7e])/sprintf("%%%02X", ord($1))/ge;
    return $text;
}

sub decode_text {
    my ($data) = @_;
    $data =~ s/%([0-9a-fA-F]{2})/chr(hex($1))/eg;
    return Encode::decode('utf8', $data);
}

sub file_get_contents {
    my ($filename) = @_;
    open(my $fh, '<', $filename) or die "unable to open file '$filename' - $!\n";
    local $/;
    my $content = <$fh>;
    close($fh);
    return $content // '';
}

sub file_set_contents {
    my ($filename, $data, $perm) = @_;
    $perm //= 0644;
    my $tmp = "$filename.tmp.$$";
    unlink($tmp);
    sysopen(my $fh, $tmp, O_WRONLY | O_CREAT | O_EXCL, $perm)
        or die "unable to open file '$tmp' - $!\n";
    chmod($perm, $tmp); # umask must not widen or narrow the requested mode
    print $fh $data or die "unable to write '$tmp' - $!\n";
    close($fh) or die "unable to close '$tmp' - $!\n";
    rename($tmp, $filename) or do {
        my $err = $!;
        unlink($tmp);
        die "unable to rename '$tmp' to '$filename' - $err\n";
    };
}

sub assert_if_modified {
    my ($digest1, $digest2) = @_;
    if ($digest1 && $digest2 && ($digest1 ne $digest2)) {
        die "detected modified configuration - file changed by other user? Try again.\n";
    }
}

# Runs $code under an exclusive flock of $filename; like upstream, errors end up in $@.
sub lock_file {
    my ($filename, $timeout, $code, @param) = @_;
    my $res;
    eval {
        open(my $fh, '>>', $filename) or die "can't open lock file '$filename' - $!\n";
        flock($fh, LOCK_EX) or die "can't lock file '$filename' - $!\n";
        $res = $code->(@param);
        close($fh);
    };
    return $res;
}

1;
