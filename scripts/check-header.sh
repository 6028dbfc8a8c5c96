#!/usr/bin/env bash
# Fails when include/pve_entraid.h differs from what cbindgen generates from src/ffi.rs.
# Regenerate with: UPDATE_HEADER=1 bash scripts/check-header.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
exec cargo test --release --test header_current
