#!/usr/bin/env bash
# Copies the six REAL upstream files the integrate hooks touch into DEST at their installed
# paths (a "PVE root" for package and integrate tests), from the pinned tree of one version.
#   tests/upstream/pristine-root.sh DEST [pve9|pve8]
# Also prints, one per line, the -I flags under which the real upstream Perl compiles (the
# stand-ins first), for `perl -c` checks; PVE_ENTRAID_IPC_HEADER must then be exported as
#   export PVE_ENTRAID_IPC_HEADER="$upstream/<pveN>/pve-cluster/src/pmxcfs/cfs-ipc-ops.h"
# Environment: PVE_ENTRAID_UPSTREAM (see scripts/upstream-env.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${1:?usage: $0 DEST [pve9|pve8]}"
v="${2:-pve9}"
. "$root/scripts/upstream-env.sh"
tree="$PVE_ENTRAID_UPSTREAM/$v"
[ -f "$tree/pve-access-control/src/PVE/AccessControl.pm" ] || { echo "$0: no upstream tree $tree" >&2; exit 1; }
install -D -m 0644 "$tree/pve-access-control/src/PVE/AccessControl.pm" "$dest/usr/share/perl5/PVE/AccessControl.pm"
install -D -m 0644 "$tree/pve-access-control/src/PVE/API2/AccessControl.pm" "$dest/usr/share/perl5/PVE/API2/AccessControl.pm"
install -D -m 0644 "$tree/pve-access-control/src/PVE/API2/Domains.pm" "$dest/usr/share/perl5/PVE/API2/Domains.pm"
install -D -m 0644 "$tree/pve-access-control/src/PVE/API2/Jobs/RealmSync.pm" "$dest/usr/share/perl5/PVE/API2/Jobs/RealmSync.pm"
install -D -m 0644 "$tree/pve-manager/PVE/HTTPServer.pm" "$dest/usr/share/perl5/PVE/HTTPServer.pm"
install -D -m 0644 "$tree/pve-manager/www/index.html.tpl" "$dest/usr/share/pve-manager/index.html.tpl"
for d in tests/upstream/standins; do echo "-I$root/$d"; done
for d in pve-access-control/src pve-common/src pve-cluster/src pve-http-server/src pve-manager; do
    echo "-I$tree/$d"
done
