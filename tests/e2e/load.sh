#!/usr/bin/env bash
# Load test: LOAD_LOGINS (200) logins through the Perl path in LOAD_WORKERS (8) forked workers
# sharing /etc/pve and the disk caches, against the emulator with LOAD_LATENCY_MS (50) of
# latency. Asserts correctness, prints timing (see tests/e2e/load.pl).
source "$(dirname "$0")/common.sh"
e2e_exec load tests/e2e/load.pl
