#!/usr/bin/env bash
# Builds build/deb/pve-entraid_<version>_<arch>.deb with "dpkg-buildpackage -us -uc -b".
#
# The package is built from an export of the working tree (tracked and untracked, minus
# .gitignore'd files) in build/deb/pve-entraid-<version>/, so that the build and its
# "debian/rules clean" never touch the checkout. Network is used only here, by
# "cargo vendor"; debian/rules then builds with cargo --offline --frozen.
#
# usage: debian/build-deb.sh [--reuse]
#   --reuse  keep an existing .deb built from identical inputs (same files, same toolchain)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
out="$repo/build/deb"
reuse=0
case "${1:-}" in
    --reuse) reuse=1 ;;
    "") ;;
    *) echo "usage: $0 [--reuse]" >&2; exit 2 ;;
esac

die() { echo "build-deb: $*" >&2; exit 1; }

for tool in cargo dpkg-buildpackage dh pod2man git; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: run scripts/install-deps.sh"
done

git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
    || die "$repo is not a git work tree: the build inputs are the files git lists"

# Every input the package installs; a missing one is an error, never a silently smaller package.
required=(
    Cargo.toml Cargo.lock src/lib.rs include/pve_entraid.h
    perl/xs/Makefile.PL
    perl/PVE/Auth/EntraID.pm perl/PVE/API2/EntraID.pm perl/PVE/EntraID/Lib.pm
    perl/bin/pve-entraid
    integrate/pve-entraid-integrate
    www/pve-entraid.js
    README.md
)
missing=()
for f in "${required[@]}"; do
    [ -f "$repo/$f" ] || missing+=("$f")
done
[ ${#missing[@]} -eq 0 ] || die "required input missing: ${missing[*]}"

version="$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Version)"
arch="$(dpkg-architecture -qDEB_HOST_ARCH)"
deb="$out/pve-entraid_${version}_${arch}.deb"
src="$out/pve-entraid-$version"
mkdir -p "$out"

# files of the working tree that exist (a deleted tracked file is not an input)
list_inputs() {
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
        | (cd "$repo" && while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done)
}

inputs_hash="$( { (cd "$repo" && list_inputs | xargs -0 sha256sum); cargo --version; rustc --version; } \
    | sha256sum | cut -d' ' -f1)"
if [ "$reuse" = 1 ] && [ -f "$deb" ] && [ "$(cat "$out/inputs.sha256" 2>/dev/null)" = "$inputs_hash" ]; then
    echo "build-deb: reusing $deb (inputs unchanged)"
    echo "$deb"
    exit 0
fi

rm -rf "$src" "$out"/pve-entraid_* "$out"/pve-entraid-dbgsym_* "$out/inputs.sha256"
mkdir -p "$src"
(cd "$repo" && list_inputs | tar --null -T - -cf -) | tar -C "$src" -xf -

# the only step with network: the crates.io sources, checked against Cargo.lock
echo "build-deb: cargo vendor"
(cd "$src" && cargo vendor --locked --quiet vendor >/dev/null)

# the cargo target dir outlives the export, so that rebuilds are incremental
export CARGO_TARGET_DIR="$out/target"
# without a network namespace the build proves it needs no network; cargo --offline
# --frozen in debian/rules holds either way
no_net=()
if unshare --net true 2>/dev/null; then
    no_net=(unshare --net)
    echo "build-deb: dpkg-buildpackage (in a network namespace without network)"
else
    echo "build-deb: dpkg-buildpackage (cannot unshare the network here; offline by cargo flags)"
fi
(cd "$src" && "${no_net[@]}" dpkg-buildpackage -us -uc -b)

[ -f "$deb" ] || die "dpkg-buildpackage did not produce $deb"
echo "$inputs_hash" > "$out/inputs.sha256"
echo "$deb"
