package PVE::EntraID::XS;

# Binding of libpve_entraid's C ABI; use PVE::EntraID::Lib, not this, from PVE code.

use strict;
use warnings;

require XSLoader;

our $VERSION = '0.1.0';

XSLoader::load('PVE::EntraID::XS', $VERSION);

1;
