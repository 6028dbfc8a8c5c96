#!/usr/bin/env bash
# Package tests: builds the .deb (reusing one built from identical inputs), lints it, and
# checks its contents, its XS object and its maintainer scripts in throw-away roots.
# Prints "ok"/"not ok" per check and a final "N passed, N failed" line; exits 1 on failure.
set -uo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
export PATH="$HOME/.cargo/bin:$PATH"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; shift; for l in "$@"; do printf '#   %s\n' "$l"; done; }
# check NAME CMD...: ok when CMD exits 0; its output is shown on failure
check() {
    local name="$1" output
    shift
    if output="$("$@" 2>&1)"; then ok "$name"; else not_ok "$name" "$output"; fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

for tool in lintian dpkg-deb readelf perl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "tests/deb: '$tool' missing: run scripts/install-deps.sh" >&2; exit 1; }
done

version="$(dpkg-parsechangelog -l debian/changelog -S Version)"
arch="$(dpkg-architecture -qDEB_HOST_ARCH)"
out="$repo/build/deb"
deb="$out/pve-entraid_${version}_${arch}.deb"
changes="$out/pve-entraid_${version}_${arch}.changes"
crate_version="$(perl -ne 'if (/^\[package\]/.../^\[/) { print $1 if /^version\s*=\s*"([^"]+)"/ }' Cargo.toml)"
vendorarch="$(perl -MConfig -e 'print $Config{vendorarch}')"
vendorlib="$(perl -MConfig -e 'print $Config{vendorlib}')"
privlib=/usr/lib/pve-entraid
xs_so="$vendorarch/auto/PVE/EntraID/XS/XS.so"

# --- build ---
mkdir -p "$out"
if bash debian/build-deb.sh --reuse >"$out/build.log" 2>&1; then
    ok "package builds offline with dpkg-buildpackage"
else
    not_ok "package builds offline with dpkg-buildpackage (full log: $out/build.log)" \
        "$(grep -E 'error|rror:|build-deb:' "$out/build.log" | tail -n 15)"
    finish
fi

check "crate version $crate_version equals package version $version" test "$crate_version" = "$version"

# --- lintian: no errors, no warnings, over every binary package of the build ---
# --fail-on none: a non-zero exit then means lintian itself could not check the packages
if ! lintian_out="$(lintian --allow-root --fail-on none "$changes" 2>&1)"; then
    not_ok "lintian runs on $changes" "$lintian_out"
elif grep -qE '^[EW]: ' <<<"$lintian_out"; then
    not_ok "lintian reports no errors and no warnings" "$(grep -E '^[EW]: ' <<<"$lintian_out")"
else
    ok "lintian reports no errors and no warnings"
fi

# --- contents ---
expected=(
    "$privlib/libpve_entraid.so"
    "$vendorlib/PVE/Auth/EntraID.pm"
    "$vendorlib/PVE/API2/EntraID.pm"
    "$vendorlib/PVE/EntraID/Lib.pm"
    "$vendorarch/PVE/EntraID/XS.pm"
    "$xs_so"
    /usr/share/pve-manager/js/pve-entraid.js
    /usr/sbin/pve-entraid
    /usr/sbin/pve-entraid-integrate
    /usr/share/man/man8/pve-entraid.8.gz
    /usr/share/man/man8/pve-entraid-integrate.8.gz
    /usr/share/doc/pve-entraid/copyright
    /var/cache/pve-entraid/
)
listing="$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||')"
for f in "${expected[@]}"; do
    check "package contains $f" grep -qxF "$f" <<<"$listing"
done
# dh_compress leaves documents under 4 KiB uncompressed
check "package contains the README" grep -qxE '/usr/share/doc/pve-entraid/README\.md(\.gz)?' <<<"$listing"

check "no .packlist or perllocal.pod in the package" bash -c '! grep -E "\.packlist$|perllocal\.pod$" <<<"$1"' _ "$listing"
check "library is not in a public library directory" \
    bash -c '! grep -E "^/usr/lib/(x86_64-linux-gnu/)?libpve_entraid" <<<"$1"' _ "$listing"

fields="$(dpkg-deb -f "$deb" Depends Architecture)"
for dep in 'libpve-access-control (>= 8.0)' 'pve-manager (>= 8.0)' 'libjson-perl' 'perlapi-'; do
    check "Depends has $dep" grep -qF "$dep" <<<"$fields"
done

work="$(mktemp -d /tmp/pve-entraid-debtest.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
ctrl="$work/control"
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$ctrl"

for t in 'activate-noawait pve-api-updates' \
    'interest-noawait /usr/share/perl5/PVE/AccessControl.pm' \
    'interest-noawait /usr/share/perl5/PVE/API2/AccessControl.pm' \
    'interest-noawait /usr/share/perl5/PVE/API2/Domains.pm' \
    'interest-noawait /usr/share/perl5/PVE/API2/Jobs/RealmSync.pm' \
    'interest-noawait /usr/share/perl5/PVE/HTTPServer.pm' \
    'interest-noawait /usr/share/pve-manager/index.html.tpl'; do
    check "triggers: $t" grep -qxF "$t" "$ctrl/triggers"
done

# --- the XS object and the library ---
runpath="$(readelf -d "$root$xs_so" 2>&1 | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')"
check "XS object RUNPATH is $privlib (got '$runpath')" test "$runpath" = "$privlib"
check "XS object needs libpve_entraid.so" bash -c 'readelf -d "$1" | grep -qF "[libpve_entraid.so]"' _ "$root$xs_so"
check "library exports the C ABI" \
    bash -c 'for s in pve_entraid_version pve_entraid_auth_url pve_entraid_login pve_entraid_map pve_entraid_check pve_entraid_free pve_entraid_result_code; do
        nm -D --defined-only "$1" | grep -qw "$s" || { echo "missing symbol $s"; exit 1; }; done' _ "$root$privlib/libpve_entraid.so"

# the RUNPATH names the real path, so the throw-away root's library is found via LD_LIBRARY_PATH
# version() passes on pve_entraid_version(): "pve-entraid/<crate version>" (docs/DESIGN.md)
xs_version="$(LD_LIBRARY_PATH="$root$privlib" perl -I"$root$vendorarch" -MPVE::EntraID::XS \
    -e 'print PVE::EntraID::XS::version()' 2>&1)"
check "PVE::EntraID::XS loads from the package, version() is pve-entraid/$crate_version (got '$xs_version')" \
    test "$xs_version" = "pve-entraid/$crate_version"

# --- Perl modules and tools compile against the real upstream PVE 9 Perl (tests/upstream) ---
pristine="$work/pristine"
mapfile -t upstream_inc < <(bash "$repo/tests/upstream/pristine-root.sh" "$pristine" pve9)
export PVE_ENTRAID_IPC_HEADER="${PVE_ENTRAID_UPSTREAM:-$repo/../shared/upstream}/pve9/pve-cluster/src/pmxcfs/cfs-ipc-ops.h"
perl_inc=(-I"$root$vendorlib" -I"$root$vendorarch" "${upstream_inc[@]}")
for m in PVE/Auth/EntraID.pm PVE/API2/EntraID.pm PVE/EntraID/Lib.pm; do
    check "perl -c $m" env LD_LIBRARY_PATH="$root$privlib" perl "${perl_inc[@]}" -c "$root$vendorlib/$m"
done
for s in pve-entraid pve-entraid-integrate; do
    check "perl -c /usr/sbin/$s" env LD_LIBRARY_PATH="$root$privlib" perl "${perl_inc[@]}" -c "$root/usr/sbin/$s"
done
for m in pve-entraid pve-entraid-integrate; do
    check "man page $m.8 has a NAME section" \
        bash -c 'zcat "$1" | grep -q "^\.SH \"\?NAME\"\?"' _ "$root/usr/share/man/man8/$m.8.gz"
done

# --- maintainer scripts ---
for s in postinst prerm postrm; do
    check "$s passes sh -n" sh -n "$ctrl/$s"
done

# run a maintainer script the way "dpkg --root --force-script-chrootless" does: DPKG_ROOT set
run_script() {
    local r="$1"
    shift
    env DPKG_ROOT="$r" sh "$@"
}

# 1. no PVE in the root (only the package, as dpkg would have unpacked it): configure succeeds and tells the admin what to do
bare="$work/bare"
cp -a "$root" "$bare"
if msg="$(run_script "$bare" "$ctrl/postinst" configure 2>&1)"; then
    check "postinst configure without PVE warns and points to 'pve-entraid-integrate status'" \
        bash -c 'grep -q "warning" <<<"$1" && grep -q "pve-entraid-integrate status" <<<"$1"' _ "$msg"
else
    not_ok "postinst configure without PVE exits 0" "$msg"
fi
check "postinst triggered without PVE exits 0" run_script "$bare" "$ctrl/postinst" triggered \
    /usr/share/perl5/PVE/AccessControl.pm
check "prerm remove without PVE exits 0" run_script "$bare" "$ctrl/prerm" remove

# 2. a root with copies of the PVE files the hooks touch: install applies, removal restores
pve="$work/pve"
node="$(hostname -s)"
cp -a "$root" "$pve"
cp -a "$pristine"/. "$pve/"
mkdir -p "$pve/etc/pve/nodes/$node" "$pve/etc/pve/priv/entraid"
echo 'not-a-real-secret' > "$pve/etc/pve/priv/entraid/entra.secret"
printf 'entraid: entra\n\ttenant-id 11111111-2222-3333-4444-555555555555\n' > "$pve/etc/pve/domains.cfg"
hooked=(
    /usr/share/perl5/PVE/AccessControl.pm
    /usr/share/perl5/PVE/API2/AccessControl.pm
    /usr/share/perl5/PVE/API2/Domains.pm
    /usr/share/perl5/PVE/API2/Jobs/RealmSync.pm
    /usr/share/perl5/PVE/HTTPServer.pm
    /usr/share/pve-manager/index.html.tpl
)
check "postinst configure on a PVE root exits 0" run_script "$pve" "$ctrl/postinst" configure
for f in "${hooked[@]}"; do
    check "postinst applied the hook in $f" grep -q 'pve-entraid hook begin' "$pve$f"
done
check "pve-entraid-integrate status reports all hooks applied" \
    env PATH="$root/usr/sbin:$PATH" pve-entraid-integrate status --root "$pve" --node "$node"
hooked_hash() { (cd "$pve" && sha256sum "${hooked[@]#/}"); }
before="$(hooked_hash)"
if msg="$(run_script "$pve" "$ctrl/postinst" triggered /usr/share/perl5/PVE/AccessControl.pm 2>&1)"; then
    check "postinst triggered re-applies without changing applied files" test "$(hooked_hash)" = "$before"
else
    not_ok "postinst triggered on a PVE root exits 0" "$msg"
fi
if msg="$(run_script "$pve" "$ctrl/prerm" remove 2>&1)"; then
    check "prerm remove warns about realms left in domains.cfg" grep -q "entraid' realms" <<<"$msg"
else
    not_ok "prerm remove on a PVE root exits 0" "$msg"
fi
for f in "${hooked[@]}"; do
    check "prerm restored $f byte for byte" cmp "$pve$f" "$pristine$f"
done
check "postrm remove exits 0" run_script "$pve" "$ctrl/postrm" remove
check "postrm purge exits 0" run_script "$pve" "$ctrl/postrm" purge
check "postrm purge removed /var/cache/pve-entraid and /var/lib/pve-entraid" \
    bash -c '! test -e "$1/var/cache/pve-entraid" && ! test -e "$1/var/lib/pve-entraid"' _ "$pve"
check "postrm purge kept the realm secret in /etc/pve/priv/entraid" test -f "$pve/etc/pve/priv/entraid/entra.secret"
check "postrm purge kept domains.cfg" grep -q '^entraid: entra' "$pve/etc/pve/domains.cfg"

# 3. the whole cycle through dpkg itself, into a root with its own dpkg database
droot="$work/dpkg-root"
mkdir -p "$droot/var/lib/dpkg/info" "$droot/var/lib/dpkg/updates" "$droot/etc/pve/nodes/$node"
touch "$droot/var/lib/dpkg/status"
cp -a "$pristine"/. "$droot/"
dpkg_root() { dpkg --root="$droot" --force-script-chrootless --force-depends --log=/dev/null "$@"; }
check "dpkg --root installs the package" dpkg_root --install "$deb"
check "dpkg --root: package is installed and configured" \
    bash -c 'dpkg --root="$1" -s pve-entraid | grep -qx "Status: install ok installed"' _ "$droot"
for f in "${hooked[@]}"; do
    check "dpkg --root install applied the hook in $f" grep -q 'pve-entraid hook begin' "$droot$f"
done
check "dpkg --root purges the package" dpkg_root --purge pve-entraid
for f in "${hooked[@]}"; do
    check "dpkg --root purge restored $f byte for byte" cmp "$droot$f" "$pristine$f"
done
check "dpkg --root purge left none of the package's files" \
    bash -c 'for p in /usr/lib/pve-entraid /usr/sbin/pve-entraid /var/cache/pve-entraid /var/lib/pve-entraid \
        "/etc/pve/nodes/$2/pve-entraid"; do test ! -e "$1$p" || { echo "left: $p"; exit 1; }; done' _ "$droot" "$node"

finish
