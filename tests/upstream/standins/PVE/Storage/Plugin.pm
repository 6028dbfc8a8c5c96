package PVE::Storage::Plugin;

# STAND-IN for pve-storage's PVE::Storage::Plugin, which is not among the pinned upstream
# trees. Why here: the REAL PVE::HTTPServer (pve-manager) loads PVE::API2Tools, which
# `use`s this module for one storage helper (content_hash_to_string) that the auth paths
# under test never call. Calling it dies, naming itself.

use strict;
use warnings;

sub content_hash_to_string {
    die "PVE::Storage::Plugin stand-in: content_hash_to_string is not available in tests\n";
}

1;
