#!/usr/bin/perl
# The real user.cfg parser/writer the login writes through: line format, group membership on
# both sides, lines it does not manage (ACLs) kept; a written file reads back unchanged.
use strict;
use warnings;

use Test::More;
use EntraTest;

my $dir = setup_cluster();

my $text = <<'CFG';
user:alice@contoso.example@entra:1:0:J%C3%BCrgen:Smith:alice@contoso.example:from%3A Entra::
user:root@pam:1:0:::root@example.com:::

group:admins:alice@contoso.example@entra,root@pam:Admins:
group:empty:::

acl:1:/:@admins:Administrator:
CFG
open(my $fh, '>', "$dir/user.cfg") or die $!;
print $fh $text;
close($fh);

my $cfg = PVE::Cluster::cfs_read_file('user.cfg');
my $alice = $cfg->{users}->{'alice@contoso.example@entra'};
is($alice->{firstname}, "J\x{fc}rgen", 'first name decoded (UTF-8)');
is($alice->{comment}, 'from: Entra', 'comment decoded');
is_deeply($alice->{groups}, { admins => 1 }, 'membership on the user');
is_deeply($cfg->{groups}->{admins}->{users}, { 'alice@contoso.example@entra' => 1, 'root@pam' => 1 }, 'and on the group');

PVE::Cluster::cfs_write_file('user.cfg', $cfg);
my $written = slurp("$dir/user.cfg");
like($written, qr/^\Q$_\E$/m, "line kept: $_") for grep { m/\S/ } split(/\n/, $text);
PVE::Cluster::cfs_write_file('user.cfg', PVE::Cluster::cfs_read_file('user.cfg'));
is(slurp("$dir/user.cfg"), $written, 'a second read/write cycle changes no byte');

my $res = eval { PVE::AccessControl::lock_user_config(sub { die "inner problem\n" }, 'outer context'); 1 };
is($@, "outer context: inner problem\n", 'lock_user_config prefixes errors like upstream');

done_testing();
