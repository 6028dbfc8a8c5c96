#!/usr/bin/env bash
# `make demo` as on a fresh machine: the checkout's files (what `git clone` would give, with the
# uncommitted changes) copied to a directory with NO ../shared beside it and no
# PVE_ENTRAID_UPSTREAM, so the demo must fetch the pinned Proxmox sources itself
# (scripts/fetch-upstream.sh into build/upstream). The fetch is served from a local git base:
# PVE_ENTRAID_GIT_BASE if set, else the mirrors in ../shared/git beside this checkout (where
# there are none, from the public hosts, as on a user's machine).
# The Cargo target and the browser test's node_modules are copied over to save the build time
# (neither holds upstream sources); PVE_ENTRAID_FRESH_FULL_BUILD=1 builds them from scratch too.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
work="$(mktemp -d /tmp/pve-entraid-fresh.XXXXXX)"
trap 'rm -rf "$work"' EXIT
clone="$work/checkout/pve-entraid"
mkdir -p "$clone"
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar -c --null -T - | tar -x -C "$clone"
[ ! -e "$clone/../shared" ] || { echo "fresh-clone: $clone/../shared exists" >&2; exit 1; }
if [ "${PVE_ENTRAID_FRESH_FULL_BUILD:-0}" != 1 ]; then
    [ -d target ] && cp -a --reflink=auto target "$clone/"
    [ -d tests/browser/node_modules ] && cp -a --reflink=auto tests/browser/node_modules "$clone/tests/browser/"
fi
if [ -z "${PVE_ENTRAID_GIT_BASE:-}" ] && [ -d "$root/../shared/git" ]; then
    export PVE_ENTRAID_GIT_BASE="file://$(cd "$root/../shared/git" && pwd)"
fi
unset PVE_ENTRAID_UPSTREAM PVE_ENTRAID_UPSTREAM_CACHE

passed=0
failed=0
check() { # NAME CMD...
    if "${@:2}"; then passed=$((passed + 1)); echo "ok - $1"; else failed=$((failed + 1)); echo "not ok - $1"; fi
}
echo "# make demo in $clone (git base: ${PVE_ENTRAID_GIT_BASE:-public hosts})"
make -C "$clone" demo > "$work/demo.log" 2>&1 || true
check "make demo passes in a checkout with no ../shared" grep -qx 'demo: OK' "$work/demo.log"
pinned_trees_fetched() {
    local pve repo commit
    while read -r pve repo _ commit _; do
        [ -n "$pve" ] && [ "${pve#\#}" = "$pve" ] || continue
        [ "$(cat "$clone/build/upstream/$pve/$repo/.pve-entraid-commit" 2>/dev/null)" = "$commit" ] || return 1
    done < tests/upstream/VERSIONS
}
check "the demo fetched every pinned tree into build/upstream" pinned_trees_fetched
check "nothing was written beside the checkout" test "$(ls -A "$work/checkout")" = pve-entraid
if [ "$failed" -gt 0 ]; then
    sed 's/^/#   /' "$work/demo.log" | tail -40
fi
echo "fresh-clone: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
