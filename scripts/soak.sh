#!/usr/bin/env bash
# The soak test for minutes (issue 15, item 11): a random mix of spawning,
# channels with select!, timers, foreign calls in every mode, callbacks from
# green threads and C threads, panics, locks and Handles under 1, 2 and 8
# Ps, then invariants (every message accounted for, nothing leaked).
# The test suite runs the same test for 30 s.
#
#   bash scripts/soak.sh            # 5 minutes
#   bash scripts/soak.sh 1800       # 30 minutes
#   FFIBER_SOAK_SEED=123 bash scripts/soak.sh 60   # replay a seed
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
FFIBER_SOAK_SECS="$secs" cargo test --release -p ffiber --test soak -- --nocapture
# The generative layout test of ffiber-build, with more random types.
FFIBER_LAYOUT_TYPES=400 cargo test --release -p ffiber-build --test layouts -- --nocapture
