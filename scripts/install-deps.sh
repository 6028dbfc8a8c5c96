#!/usr/bin/env bash
# Installs what building and testing pve-entraid needs on Debian 12 (bookworm).
# Idempotent: asks apt only for packages that are missing. Each area keeps its own section.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PATH="$HOME/.cargo/bin:$PATH"

need_apt=()
want() { for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need_apt+=("$p"); done; }

# --- core build (Rust library, XS) ---
want build-essential pkg-config ca-certificates perl libjson-perl

# --- perl (plugin, XS, prove) ---
want libtest-simple-perl

# --- integrate ---

# --- browser test ---

# --- debian packaging ---

# --- bench / fuzz ---

if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# Rust: the rustup toolchain when present, else bookworm-security's rustc-web/cargo-web.
if ! command -v cargo >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq rustc-web cargo-web
fi
echo "install-deps: ok ($(cargo --version))"
