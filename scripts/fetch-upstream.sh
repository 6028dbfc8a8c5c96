#!/usr/bin/env bash
# Fetches the pinned upstream Proxmox VE sources the contract tests load (tests/upstream),
# for a machine without them: for each line of tests/upstream/VERSIONS
# (<pveN> <repo> <branch> <commit> <debian version...>) the tree of exactly that commit, via
# `git archive`, into DEST/<pveN>/<repo> (default DEST: ../shared/upstream of the checkout, where
# the harness looks). Nothing of it is copied into this repository.
#   scripts/fetch-upstream.sh [DEST]
# Environment: PVE_ENTRAID_GIT_BASE (default https://github.com/proxmox; the same repositories
# are at https://git.proxmox.com/git, append .git there), or a directory of bare mirrors
# <repo>.git such as ../shared/git (read-only copies without refs/ are used through a scratch copy).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/../shared/upstream}"
base="${PVE_ENTRAID_GIT_BASE:-https://github.com/proxmox}"
versions="${PVE_ENTRAID_VERSIONS_FILE:-$root/tests/upstream/VERSIONS}"
command -v git >/dev/null || { echo "$0: git is needed (scripts/install-deps.sh)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"
while read -r pve repo branch commit _; do
    [ -n "$pve" ] && [ "${pve#\#}" = "$pve" ] || continue
    target="$dest/$pve/$repo"
    if [ -f "$target/.pve-entraid-commit" ] && [ "$(cat "$target/.pve-entraid-commit")" = "$commit" ]; then
        echo "$pve/$repo: $commit already there"
        continue
    fi
    echo "$pve/$repo: fetching $commit ($branch) from $base/$repo"
    git="$work/$pve-$repo.git"
    git init -q --bare "$git"
    url="$base/$repo"
    mirror="${base#file://}/$repo.git"
    if [ -d "$mirror/objects" ]; then
        # a local mirror: git needs refs/ (an empty directory a copy may have lost) and write access
        url="$work/mirror-$repo.git"
        [ -d "$url" ] || { cp -a "$mirror" "$url" && chmod -R u+w "$url" && mkdir -p "$url/refs/heads" "$url/refs/tags"; }
    fi
    # a commit fetched by id (GitHub allows it); else the branch it is pinned from
    if ! git -C "$git" fetch -q --depth 1 "$url" "$commit" 2>/dev/null; then
        git -C "$git" fetch -q "$url" "$branch"
    fi
    git -C "$git" cat-file -e "$commit^{commit}" || { echo "$0: $repo: commit $commit not found" >&2; exit 1; }
    rm -rf "$target"
    mkdir -p "$target"
    git -C "$git" archive "$commit" | tar -x -C "$target"
    echo "$commit" > "$target/.pve-entraid-commit"
done < "$versions"
cp "$versions" "$dest/VERSIONS"
echo "fetch-upstream: trees in $dest"
