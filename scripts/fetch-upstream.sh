#!/usr/bin/env bash
# Fetches the pinned upstream Proxmox VE sources the tests load: for each line of
# tests/upstream/VERSIONS (<pveN> <repo> <branch> <commit> <debian version...>) the tree of
# exactly that commit into DEST/<pveN>/<repo>, marked with DEST/<pveN>/<repo>/.pve-entraid-commit.
# Nothing of it is copied into this repository. Prints DEST on stdout (progress on stderr).
#   scripts/fetch-upstream.sh [DEST]        default DEST: build/upstream of the checkout
# Where a tree comes from, first match:
#   1. already in DEST at that commit: kept;
#   2. a local snapshot with the same pinned line (PVE_ENTRAID_UPSTREAM_CACHE, default
#      ../shared/upstream beside the checkout, whose VERSIONS names its commits): copied;
#   3. git: `git archive` of the commit from $PVE_ENTRAID_GIT_BASE/<repo>. Default base: the
#      full-history mirrors in ../shared/git beside the checkout where they exist, else
#      https://github.com/proxmox (the same repositories are at https://git.proxmox.com/git).
#      Size: about 10 MB of sources per PVE version; a shallow fetch of one commit per repository.
#
#   scripts/fetch-upstream.sh --releases [DEST [RELEASE...]]    default DEST: build/releases
# fetches the rows of tests/releases/RELEASES (PVE_ENTRAID_RELEASES_FILE; all rows, or the
# releases named) instead: DEST/<release>/<pveN>/<repo> is the tree of that row's commit, a
# symlink into DEST/.trees/<repo>/<commit> (rows share the trees of their common commits), so
# PVE_ENTRAID_UPSTREAM=DEST/<release> PVE_ENTRAID_PVE=<pveN> runs the harness on that release.
# From git only (3. above); from a public host one fetch per repository: all the commits by
# id, else its whole history.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/build/upstream}"
versions="${PVE_ENTRAID_VERSIONS_FILE:-$root/tests/upstream/VERSIONS}"
cache="${PVE_ENTRAID_UPSTREAM_CACHE:-$root/../shared/upstream}"
mirrors="$root/../shared/git"
command -v git >/dev/null || { echo "$0: git is needed (scripts/install-deps.sh)" >&2; exit 1; }

git_base() {
    if [ -n "${PVE_ENTRAID_GIT_BASE:-}" ]; then
        echo "$PVE_ENTRAID_GIT_BASE"
    elif [ -d "$mirrors/$1.git" ]; then
        echo "file://$(cd "$mirrors" && pwd)"
    else
        echo https://github.com/proxmox
    fi
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# a bare repository in $work that reads (or has fetched) the given commits of a repository
repo_git() {
    local repo="$1"; shift
    local base git local_dir
    base="$(git_base "$repo")"
    git="$work/releases-$repo.git"
    if [ ! -d "$git" ]; then
        git init -q --bare "$git"
        local_dir="${base#file://}"
        local_dir="$(ls -d "$local_dir/$repo.git" "$local_dir/$repo" 2>/dev/null | head -n1 || true)"
        if [ "$base" != "${base#file://}" ] && [ -d "$local_dir/objects" ]; then
            echo "$local_dir/objects" > "$git/objects/info/alternates"
        fi
    fi
    local missing=()
    for c in "$@"; do git -C "$git" cat-file -e "$c^{commit}" 2>/dev/null || missing+=("$c"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$repo: ${#missing[@]} commit(s) from $base/$repo" >&2
        git -C "$git" fetch -q --depth 1 "$base/$repo" "${missing[@]}" 2>/dev/null \
            || git -C "$git" fetch -q "$base/$repo" '+refs/heads/*:refs/heads/*'
    fi
    echo "$git"
}

if [ "${1:-}" = "--releases" ]; then
    shift
    list="${PVE_ENTRAID_RELEASES_FILE:-$root/tests/releases/RELEASES}"
    dest="${1:-$root/build/releases}"
    [ $# -gt 0 ] && shift
    mkdir -p "$dest/.trees"
    dest="$(cd "$dest" && pwd)"
    want=" $* "
    rows="$work/rows"
    # one "<release> <pveN> <repo> <commit>" line per cell of the selected rows
    while read -r release line _ cells; do
        [ -n "$release" ] && [ "${release#\#}" = "$release" ] || continue
        [ $# -eq 0 ] || [ "${want#* $release }" != "$want" ] || continue
        for cell in $cells; do
            repo="${cell%%=*}"
            echo "$release $line $repo ${cell##*@}"
        done
    done < "$list" > "$rows"
    for release in "$@"; do
        grep -q "^$release " "$rows" || { echo "$0: no release $release in $list" >&2; exit 1; }
    done
    for repo in $(cut -d' ' -f3 "$rows" | sort -u); do
        commits=()
        for commit in $(awk -v r="$repo" '$3 == r { print $4 }' "$rows" | sort -u); do
            [ -f "$dest/.trees/$repo/$commit/.pve-entraid-commit" ] || commits+=("$commit")
        done
        [ ${#commits[@]} -gt 0 ] || continue
        git="$(repo_git "$repo" "${commits[@]}")"
        for commit in "${commits[@]}"; do
            tree="$dest/.trees/$repo/$commit"
            rm -rf "$tree"
            mkdir -p "$tree"
            git -C "$git" archive "$commit" | tar -x -C "$tree"
            echo "$commit" > "$tree/.pve-entraid-commit"
        done
    done
    while read -r release line repo commit; do
        mkdir -p "$dest/$release/$line"
        ln -sfn "../../.trees/$repo/$commit" "$dest/$release/$line/$repo"
    done < "$rows"
    echo "$dest"
    exit 0
fi

mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
while read -r pve repo branch commit _; do
    [ -n "$pve" ] && [ "${pve#\#}" = "$pve" ] || continue
    target="$dest/$pve/$repo"
    [ -f "$target/.pve-entraid-commit" ] && [ "$(cat "$target/.pve-entraid-commit")" = "$commit" ] && continue
    rm -rf "$target"
    mkdir -p "$target"
    if [ -f "$cache/VERSIONS" ] && [ -d "$cache/$pve/$repo" ] \
        && grep -q "^$pve $repo [^ ]* $commit " "$cache/VERSIONS"; then
        echo "$pve/$repo: $commit from the local snapshot $cache" >&2
        cp -a "$cache/$pve/$repo/." "$target/"
    else
        base="$(git_base "$repo")"
        echo "$pve/$repo: $commit ($branch) from $base/$repo" >&2
        git="$work/$pve-$repo.git"
        git init -q --bare "$git"
        local_dir="${base#file://}"
        local_dir="$(ls -d "$local_dir/$repo.git" "$local_dir/$repo" 2>/dev/null | head -n1 || true)"
        if [ "$base" != "${base#file://}" ] && [ -d "$local_dir/objects" ]; then
            # a local mirror is read through its objects (a read-only copy may lack refs/)
            echo "$local_dir/objects" > "$git/objects/info/alternates"
        # a commit fetched by id (most hosts allow it); else the branch it is pinned from
        elif ! git -C "$git" fetch -q --depth 1 "$base/$repo" "$commit" 2>/dev/null; then
            git -C "$git" fetch -q "$base/$repo" "$branch"
        fi
        git -C "$git" cat-file -e "$commit^{commit}" || { echo "$0: $repo: commit $commit not found" >&2; exit 1; }
        git -C "$git" archive "$commit" | tar -x -C "$target"
    fi
    echo "$commit" > "$target/.pve-entraid-commit"
done < "$versions"
cp "$versions" "$dest/VERSIONS"
echo "$dest"
