#!/usr/bin/perl -T
# Prints index.html.tpl as pve-entraid-integrate leaves it in a root holding every file it hooks
# (the real upstream ones of $PVE_ENTRAID_PVE, UpstreamTest::install_hooks): the tool applies all
# hooks or none, so the template is hooked only where the whole node would be.
#   PVE_ENTRAID_PVE=pve9 perl -T -Itests/upstream/lib tests/browser/hooked-template.pl
use strict;
use warnings;

use UpstreamTest;

my ($root, $rc, $out) = UpstreamTest::install_hooks();
die "pve-entraid-integrate apply failed ($rc):\n$out" if $rc;
print UpstreamTest::slurp("$root/usr/share/pve-manager/index.html.tpl");
