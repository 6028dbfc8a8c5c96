#!/usr/bin/env bash
# Builds the XS binding PVE::EntraID::XS into perl/blib against the freshly built library.
# The build runs in perl/blib/xs-build so the source tree stays clean.
#   PVE_ENTRAID_LIBDIR / PVE_ENTRAID_RPATH / PVE_ENTRAID_INCDIR: see perl/xs/Makefile.PL
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
blib="$root/perl/blib"
work="$blib/xs-build"
rm -rf "$work"
mkdir -p "$work"
cp "$root/perl/xs/Makefile.PL" "$root/perl/xs/EntraID.xs" "$root/perl/xs/XS.pm" "$work/"
cd "$work"
export PVE_ENTRAID_INCDIR="${PVE_ENTRAID_INCDIR:-$root/include}"
export PVE_ENTRAID_LIBDIR="${PVE_ENTRAID_LIBDIR:-$root/target/release}"
perl Makefile.PL INST_LIB="$blib/lib" INST_ARCHLIB="$blib/arch" >/dev/null
make --no-print-directory >/dev/null
version="$(perl -I"$blib/lib" -I"$blib/arch" -MPVE::EntraID::XS -e 'print PVE::EntraID::XS::version()')"
echo "perl/build.sh: built PVE::EntraID::XS in perl/blib against $version"
