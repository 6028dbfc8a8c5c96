#!/usr/bin/env bash
# The upstream patch series (contrib/upstream) on the pinned trees: `git apply --check`, then
# apply, to copies of the PVE 9 and PVE 8 trees (build/upstream-native); then the contract tests
# on them, where pve-entraid-integrate finds the realm plugin interface and applies no hook,
# only its drop-ins.
#   tests/upstream/native/run.sh [pve9|pve8|all]
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"
. scripts/upstream-env.sh
dest="$root/build/upstream-native"
rm -rf "$dest"
mkdir -p "$dest"
cp -a --reflink=auto "$PVE_ENTRAID_UPSTREAM/." "$dest/"
for v in pve9 pve8; do
    for series in contrib/upstream/*/; do
        repo="$(basename "$series")"
        for patch in "$series"*.patch; do
            # GIT_CEILING_DIRECTORIES: the copy is no git repository, nor is the checkout it is in
            ( cd "$dest/$v/$repo" && export GIT_CEILING_DIRECTORIES="$dest/$v" \
                && git apply --check "$root/$patch" && git apply "$root/$patch" ) \
                || { echo "$patch does not apply to the $v tree" >&2; exit 1; }
        done
    done
    echo "contrib/upstream applied to $v"
done
# the realm type, the Domains API (realm add/update/delete, credentials, sync), auth_handler and
# the login on the patched trees with pve-entraid's drop-ins and no hook (native/01 checks that)
PVE_ENTRAID_UPSTREAM="$dest" bash tests/upstream/run.sh "${1:-all}" tests/upstream/native \
    tests/upstream/t/02-realm-types.t tests/upstream/t/03-domains-cfg.t tests/upstream/t/04-domains-api.t \
    tests/upstream/t/05-auth-handler.t tests/upstream/t/06-login.t tests/upstream/t/08-realm-sync.t
