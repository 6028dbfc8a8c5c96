#!/usr/bin/perl
# Renders a pve-manager index.html.tpl the way pveproxy's get_index() does (PVE/Service/pveproxy.pm):
# Template Toolkit with ABSOLUTE => 1 and the same variables, here with the values a node gives a
# browser without cookies (no login yet, language 'en' without a language file, theme 'auto').
# Usage: render-index.pl TEMPLATE VARS_JSON > index.html
use strict;
use warnings;

use JSON::PP;
use Template;

my ($tpl, $vars_json) = @ARGV;
die "usage: $0 TEMPLATE VARS_JSON\n" if !defined($vars_json);

my $vars = JSON::PP->new->decode($vars_json);
my $page = '';
my $template = Template->new({ ABSOLUTE => 1 });
$template->process($tpl, $vars, \$page) || die $template->error(), "\n";
binmode(STDOUT, ':raw');
print $page;
