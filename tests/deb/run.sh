#!/usr/bin/env bash
# Package tests, per distribution (DISTS, default "trixie bookworm": Proxmox VE 9, then 8):
#   1. debian/build-deb.sh builds the .deb in a clean Debian root (reused when the inputs are
#      unchanged), lintian of that distribution must report nothing;
#   2. the package's fields, contents, XS object and debian/copyright are checked here;
#   3. tests/deb/install-test.sh runs inside a PVE-shaped root of that distribution
#      (tests/deb/pve-root.sh): apt install, pveum realm add, a PVE upgrade, apt purge.
# Prints "ok"/"not ok" per check and a final "N passed, N failed" line; exits 1 on failure.
set -uo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
. scripts/deb-root.sh

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

for tool in dpkg-deb readelf nm perl cargo mmdebstrap equivs-build; do
    command -v "$tool" >/dev/null 2>&1 || { echo "tests/deb: '$tool' missing: run scripts/install-deps.sh" >&2; exit 1; }
done

. scripts/upstream-env.sh
upstream="$PVE_ENTRAID_UPSTREAM"
work="$(mktemp -d /tmp/pve-entraid-debtest.XXXXXX)"
trap 'rm -rf "$work"' EXIT
arch="$(dpkg --print-architecture)"
base_version="$(dpkg-parsechangelog -l debian/changelog -S Version)"
crate_version="$(perl -ne 'if (/^\[package\]/.../^\[/) { print $1 if /^version\s*=\s*"([^"]+)"/ }' Cargo.toml)"
check "crate version $crate_version equals the source version $base_version" test "$crate_version" = "$base_version"

# debian/copyright lists every statically linked crate: regenerated from the vendored crates
check_copyright() {
    local deb="$1" vendor
    vendor="$(ls -d build/deb/vendor-"$(sha256sum Cargo.lock | cut -c1-16)" 2>/dev/null)"
    if [ -z "$vendor" ]; then
        not_ok "debian/copyright: vendored crates of this Cargo.lock found" "no build/deb/vendor-<hash>"
        return
    fi
    if ! debian/gen-copyright "$vendor" >"$work/copyright" 2>"$work/copyright.err"; then
        not_ok "debian/gen-copyright runs" "$(cat "$work/copyright.err")"
        return
    fi
    check "debian/copyright is complete and current (debian/gen-copyright $vendor > debian/copyright)" \
        diff -u debian/copyright "$work/copyright"
    check "the package ships that copyright file" \
        bash -c 'dpkg-deb --fsys-tarfile "$1" | tar -xOf - ./usr/share/doc/pve-entraid/copyright | cmp - "$2"' _ "$deb" "$work/copyright"
    check "copyright names ring, rustls and openidconnect with their licences" \
        bash -c 'for c in ring rustls openidconnect; do grep -qE "^Comment: $c [0-9]" "$1" || { echo "missing $c"; exit 1; }; done' _ "$work/copyright"
}

test_dist() {
    local dist="$1" pve perl_version version deb out fields listing root ctrl xs_so privlib=/usr/lib/pve-entraid
    case "$dist" in
        trixie) pve=pve9 perl_version=5.40 ;;
        bookworm) pve=pve8 perl_version=5.36 ;;
    esac
    version="$base_version+$pve"
    out="build/deb/$dist"
    deb="$out/pve-entraid_${version}_${arch}.deb"
    mkdir -p "$out"

    # --- build ---
    if bash debian/build-deb.sh --reuse "$dist" >"$out/build-deb.log" 2>&1; then
        ok "[$dist] package $version builds offline in a clean $dist root ($(cat "$out/timing.txt" 2>/dev/null))"
    else
        not_ok "[$dist] package builds (full log: $out/build-deb.log, $out/build.log)" "$(tail -n 20 "$out/build-deb.log")"
        return
    fi
    check "[$dist] the build used Debian's rustc-web/cargo-web, no rustup" \
        bash -c 'grep -E "^ (cargo-web|rustc-web) " "$1" | wc -l | grep -qx 2 && ! grep -qi rustup "$1"' _ \
        "$out/pve-entraid_${version}_${arch}.buildinfo"

    check "[$dist] lintian (of $dist) reports no errors and no warnings" \
        bash -c '! grep -E "^[EW]: " "$1"' _ "$out/lintian.txt"

    # --- fields ---
    fields="$(dpkg-deb -f "$deb" Version Depends)"
    echo "# [$dist] $(dpkg-deb -f "$deb" Depends | sed 's/^/Depends: /'), $(stat -c %s "$deb") bytes"
    check "[$dist] Version is $version" grep -qx "Version: $version" <<<"$fields"
    check "[$dist] .changes is for distribution $dist" grep -qx "Distribution: $dist" "$out/pve-entraid_${version}_${arch}.changes"
    for dep in 'libpve-access-control (>= 8.0)' 'libpve-common-perl (>= 8.0)' 'pve-manager (>= 8.0)' \
        'libjson-perl' 'ca-certificates' "perlapi-$perl_version"; do
        check "[$dist] Depends has $dep" grep -qF "$dep" <<<"$fields"
    done

    # --- contents ---
    xs_so="/usr/lib/x86_64-linux-gnu/perl5/$perl_version/auto/PVE/EntraID/XS/XS.so"
    listing="$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||')"
    for f in "$privlib/libpve_entraid.so" /usr/share/perl5/PVE/Auth/EntraID.pm /usr/share/perl5/PVE/API2/EntraID.pm \
        /usr/share/perl5/PVE/EntraID/Lib.pm "/usr/lib/x86_64-linux-gnu/perl5/$perl_version/PVE/EntraID/XS.pm" "$xs_so" \
        /usr/share/pve-manager/js/pve-entraid.js /usr/sbin/pve-entraid /usr/sbin/pve-entraid-integrate \
        /usr/share/man/man8/pve-entraid.8.gz /usr/share/man/man8/pve-entraid-integrate.8.gz \
        /usr/bin/pve-entraid-login /usr/share/man/man1/pve-entraid-login.1.gz \
        /usr/share/doc/pve-entraid/copyright /var/cache/pve-entraid/; do
        check "[$dist] package contains $f" grep -qxF "$f" <<<"$listing"
    done
    check "[$dist] no .packlist, no static library, no library in a public directory" \
        bash -c '! grep -E "\.packlist$|perllocal\.pod$|\.a$|^/usr/lib/(x86_64-linux-gnu/)?libpve_entraid" <<<"$1"' _ "$listing"

    root="$work/$dist-files"
    ctrl="$work/$dist-control"
    dpkg-deb -x "$deb" "$root"
    dpkg-deb -e "$deb" "$ctrl"
    for t in 'activate-noawait pve-api-updates' \
        'interest-noawait /usr/share/perl5/PVE/AccessControl.pm' \
        'interest-noawait /usr/share/perl5/PVE/API2/AccessControl.pm' \
        'interest-noawait /usr/share/perl5/PVE/API2/Domains.pm' \
        'interest-noawait /usr/share/perl5/PVE/API2/Jobs/RealmSync.pm' \
        'interest-noawait /usr/share/perl5/PVE/HTTPServer.pm' \
        'interest-noawait /usr/share/pve-manager/index.html.tpl'; do
        check "[$dist] triggers: $t" grep -qxF "$t" "$ctrl/triggers"
    done
    # pve-manager reloads the daemons on pve-api-updates: the maintainer scripts never do it themselves
    check "[$dist] maintainer scripts reload no daemon themselves; postinst activates pve-api-updates" \
        bash -c '! grep -l "deb-systemd-invoke\|systemctl" "$1"/postinst "$1"/prerm "$1"/postrm \
            && grep -q "dpkg-trigger --no-await pve-api-updates" "$1/postinst"' _ "$ctrl"

    local runpath
    runpath="$(readelf -d "$root$xs_so" 2>&1 | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')"
    check "[$dist] XS object RUNPATH is $privlib (got '$runpath')" test "$runpath" = "$privlib"
    check "[$dist] library exports the C ABI" \
        bash -c 'for s in pve_entraid_version pve_entraid_auth_url pve_entraid_login pve_entraid_free pve_entraid_result_code; do
            nm -D --defined-only "$1" | grep -qw "$s" || { echo "missing symbol $s"; exit 1; }; done' _ "$root$privlib/libpve_entraid.so"

    [ "$dist" != trixie ] || check_copyright "$deb"

    # --- install test in the PVE-shaped root ---
    local tarball proot up_dir up_file
    if ! tarball="$(bash tests/deb/pve-root.sh "$dist" 2>"$work/pve-root.err")"; then
        not_ok "[$dist] PVE-shaped root ($pve upstream + stand-ins) made" "$(tail -n 20 "$work/pve-root.err")"
        return
    fi
    proot="$out/pve-root"
    deb_root_unpack "$tarball" "$proot"
    mkdir -p "$proot/root/test"
    cp "$deb" tests/deb/install-test.sh "$proot/root/test/"
    # the "newer upstream" AccessControl.pm of the upgrade: the installed one, changed
    up_dir="$work/$dist-upgrade"
    mkdir -p "$up_dir"
    up_file="$up_dir/AccessControl.pm"
    { cat "$upstream/$pve/pve-access-control/src/PVE/AccessControl.pm"; echo "# simulated upstream upgrade"; } > "$up_file"
    local acl_version
    acl_version="$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$upstream/$pve/pve-access-control/debian/changelog")"
    if ! STANDIN_DEPENDS="$(dpkg-query --admindir="$proot/var/lib/dpkg" -W -f '${Depends}' libpve-access-control)" \
        bash tests/deb/pve-root.sh --standin "$dist" libpve-access-control "$acl_version+upgrade1" "$up_dir" \
        "$up_file" /usr/share/perl5/PVE/AccessControl.pm >"$work/standin.log" 2>&1; then
        not_ok "[$dist] upgrade stand-in built" "$(tail -n 20 "$work/standin.log")"
        return
    fi
    cp "$up_dir"/libpve-access-control_*.deb "$up_file" "$proot/root/test/"
    local result
    result="$(deb_root_run "$proot" bash /root/test/install-test.sh "$perl_version" \
        "/root/test/$(basename "$deb")" "/root/test/$(basename "$up_dir"/libpve-access-control_*.deb)" \
        /root/test/AccessControl.pm 2>&1)"
    while IFS= read -r line; do
        case "$line" in
            "ok - "*) passed=$((passed + 1)); echo "ok - [$dist] ${line#ok - }" ;;
            "not ok - "*) failed=$((failed + 1)); echo "not ok - [$dist] ${line#not ok - }" ;;
            *) echo "$line" ;;
        esac
    done <<<"$result"
    grep -q '^ok - apt purge' <<<"$result" || not_ok "[$dist] install test ran to the end" "$(tail -n 20 <<<"$result")"
    rm -rf "$proot"
}

for dist in ${DISTS:-trixie bookworm}; do
    deb_root_dist_check "$dist"
    test_dist "$dist"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
