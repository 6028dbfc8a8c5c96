#!/usr/bin/env bash
# `make demo`: one Entra ID login end to end against the bundled emulator, through the real
# Perl plugin, its API handlers and the Rust library (see tests/e2e/demo-login.pl).
source "$(dirname "$0")/common.sh"
e2e_exec demo tests/e2e/demo-login.pl
