package PVE::API2::OpenId;

# Test double: the OpenId API module only needs to load.

use strict;
use warnings;

1;
