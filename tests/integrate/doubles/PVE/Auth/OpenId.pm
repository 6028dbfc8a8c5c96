package PVE::Auth::OpenId;

# Test double: a realm type like upstream's, only inherits registration.

use strict;
use warnings;

use base qw(PVE::Auth::Plugin);

1;
