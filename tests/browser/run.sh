#!/usr/bin/env bash
# Headless Chromium test of www/pve-entraid.js on the real PVE 9 and PVE 8 web frontends
# (node's test runner, playwright-core, Debian chromium). frontend.js builds each frontend from
# the pinned upstream sources into tests/browser/.build/ (not committed) before the tests run.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-deps.sh
. scripts/upstream-env.sh
cd tests/browser
node frontend.js >/dev/null
# one test file, run serially: each test drives one Chromium page of ~3 MB of real PVE JavaScript
exec node --test --test-concurrency=1 test/
