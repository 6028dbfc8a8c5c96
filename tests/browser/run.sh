#!/usr/bin/env bash
# Headless Chromium test of www/pve-entraid.js (node's test runner, playwright-core, Debian chromium).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-deps.sh
cd tests/browser
exec node --test test/
