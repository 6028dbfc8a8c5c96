#!/usr/bin/env bash
# Builds the package for one Proxmox VE release in a clean Debian root:
#   DIST=trixie   (default) Proxmox VE 9, Debian 13, Perl 5.40 -> pve-entraid_<v>+pve9_<arch>.deb
#   DIST=bookworm           Proxmox VE 8, Debian 12, Perl 5.36 -> pve-entraid_<v>+pve8_<arch>.deb
# into build/deb/<dist>/, with the .changes, the -dbgsym package and lintian's output.
#
# The root is made by mmdebstrap from Debian's registry with the Build-Depends of
# debian/control (scripts/deb-root.sh, cached per day); nothing of the host's toolchain or
# Perl goes into the package. The source is an export of the working tree (tracked and
# untracked, minus .gitignore'd files) with a changelog entry for the distribution. Network is
# used only by "cargo vendor" (cached per Cargo.lock); dpkg-buildpackage runs in a network
# namespace without network, and cargo --offline --frozen reads the vendored crates.
#
# usage: debian/build-deb.sh [--reuse] [DIST]
#   --reuse  keep an existing .deb built from identical inputs (same files, same root)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
. "$repo/scripts/deb-root.sh"
export PATH="$HOME/.cargo/bin:$PATH"

reuse=0
dist="${DIST:-trixie}"
for a in "$@"; do
    case "$a" in
        --reuse) reuse=1 ;;
        -*) echo "usage: $0 [--reuse] [trixie|bookworm]" >&2; exit 2 ;;
        *) dist="$a" ;;
    esac
done
deb_root_dist_check "$dist"

die() { echo "build-deb: $*" >&2; exit 1; }
say() { echo "build-deb[$dist]: $*" >&2; }

for tool in mmdebstrap git dpkg-parsechangelog unshare; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: run scripts/install-deps.sh"
done
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap root mode, chroot, unshare)"

git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
    || die "$repo is not a git work tree: the build inputs are the files git lists"

# Every input the package installs; a missing one is an error, never a silently smaller package.
required=(
    Cargo.toml Cargo.lock src/lib.rs include/pve_entraid.h
    cli/Cargo.toml cli/src/main.rs cli/pve-entraid-login.pod
    perl/xs/Makefile.PL
    perl/PVE/Auth/EntraID.pm perl/PVE/API2/EntraID.pm perl/PVE/EntraID/Lib.pm
    perl/bin/pve-entraid
    integrate/pve-entraid-integrate
    www/pve-entraid.js
    README.md debian/copyright
)
missing=()
for f in "${required[@]}"; do
    [ -f "$repo/$f" ] || missing+=("$f")
done
[ ${#missing[@]} -eq 0 ] || die "required input missing: ${missing[*]}"

# one source version, one package version per Proxmox VE release (see docs/DESIGN.md)
case "$dist" in
    trixie) suffix=pve9 pve="Proxmox VE 9 (Debian 13 trixie)" ;;
    bookworm) suffix=pve8 pve="Proxmox VE 8 (Debian 12 bookworm)" ;;
esac
base_version="$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Version)"
version="$base_version+$suffix"
out="$repo/build/deb/$dist"
mkdir -p "$out"

# files of the working tree that exist (a deleted tracked file is not an input)
list_inputs() {
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
        | (cd "$repo" && while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done)
}

# the build root: Debian + build-essential + Build-Depends (+ lintian), keyed by what decides it
root_recipe=(
    --include=build-essential,lintian
    --customize-hook='mkdir -p "$1/root/bd"'
    --customize-hook='cp -a "$PVE_ENTRAID_BD/debian" "$1/root/bd/"'
    --customize-hook='chroot "$1" apt-get -y -qq --no-install-recommends build-dep /root/bd >/dev/null'
    --customize-hook='rm -rf "$1/root/bd"; chroot "$1" apt-get clean'
)
root_key="$( { cat "$repo/debian/control" "$repo/scripts/deb-root.sh"; printf '%s\n' "$dist" "${root_recipe[@]}"; } \
    | sha256sum | cut -c1-64)"
root_tar="$(deb_root_tarball "$dist" build "$root_key")"

inputs_hash="$( { (cd "$repo" && list_inputs | xargs -0 sha256sum); echo "$dist $root_tar"; } | sha256sum | cut -d' ' -f1)"
arch="$(dpkg --print-architecture)"
deb="$out/pve-entraid_${version}_${arch}.deb"
if [ "$reuse" = 1 ] && [ -f "$deb" ] && [ "$(cat "$out/inputs.sha256" 2>/dev/null)" = "$inputs_hash" ]; then
    say "reusing $deb (inputs unchanged)"
    echo "$deb"
    exit 0
fi

t0=$SECONDS
if [ ! -f "$root_tar" ]; then
    say "making the build root $root_tar (mmdebstrap)"
    PVE_ENTRAID_BD="$(mktemp -d)"
    export PVE_ENTRAID_BD
    mkdir -p "$PVE_ENTRAID_BD/debian"
    cp "$repo/debian/control" "$repo/debian/changelog" "$PVE_ENTRAID_BD/debian/"
    deb_root_mmdebstrap "$dist" "$root_tar" "${root_recipe[@]}"
    rm -rf "$PVE_ENTRAID_BD"
    deb_root_prune "$dist" build "$root_tar"
fi
t_root=$((SECONDS - t0))

root="$out/root"
deb_root_unpack "$root_tar" "$root"
src_rel="build/pve-entraid-$version"
src="$root/$src_rel"
mkdir -p "$src"
(cd "$repo" && list_inputs | tar --null -T - -cf -) | tar -C "$src" -xf -

# the distribution's changelog entry, dated by the last commit (reproducible), at least one
# second after the source's latest entry
entry_ts="$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Timestamp)"
commit_ts="$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)"
[ "$commit_ts" -gt "$entry_ts" ] || commit_ts=$((entry_ts + 1))
{
    printf 'pve-entraid (%s) %s; urgency=medium\n\n' "$version" "$dist"
    printf '  * Build for %s.\n\n' "$pve"
    printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Maintainer)" \
        "$(LC_ALL=C date -u -R -d "@$commit_ts")"
    cat "$repo/debian/changelog"
} > "$src/debian/changelog"

# the crates.io sources, checked against Cargo.lock, kept per lock
t1=$SECONDS
vendor="$repo/build/deb/vendor-$(sha256sum "$repo/Cargo.lock" | cut -c1-16)"
if [ ! -d "$vendor" ]; then
    # the host's cargo (and its network set-up) only downloads: cargo checks every crate
    # against Cargo.lock, and the build in the root reads nothing else
    command -v cargo >/dev/null 2>&1 || die "'cargo' not found (needed for 'cargo vendor' only)"
    say "cargo vendor (on the host, the only step with network)"
    rm -rf "$repo"/build/deb/vendor-*
    (cd "$repo" && cargo vendor --locked --quiet "$vendor.tmp" >/dev/null) || die "cargo vendor failed"
    mv "$vendor.tmp" "$vendor"
fi
cp -a "$vendor" "$src/vendor"
t_vendor=$((SECONDS - t1))

t2=$SECONDS
say "dpkg-buildpackage $version (in the root, without network)"
log="$out/build.log"
if ! deb_root_run "$root" sh -c "cd /$src_rel && dpkg-buildpackage -us -uc -b" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "dpkg-buildpackage failed (full log: $log)"
fi
t_build=$((SECONDS - t2))

# lintian of the distribution the package is for
deb_root_run "$root" sh -c "cd /build && lintian --allow-root --fail-on none pve-entraid_${version}_${arch}.changes" \
    >"$out/lintian.txt" 2>&1 || die "lintian could not run (see $out/lintian.txt)"

rm -f "$out"/pve-entraid_* "$out"/pve-entraid-dbgsym_*
cp "$root/build/"pve-entraid*_"$version"_* "$out/"
[ -f "$deb" ] || die "dpkg-buildpackage did not produce $deb"
rm -rf "$root"
echo "$inputs_hash" > "$out/inputs.sha256"
printf 'root %ss, vendor %ss, build %ss, %s bytes\n' "$t_root" "$t_vendor" "$t_build" "$(stat -c %s "$deb")" \
    > "$out/timing.txt"
say "$(cat "$out/timing.txt")"
echo "$deb"
