#!/usr/bin/env bash
# The project's test command (the README names it; CI runs it).
# 1. formatting and lints, 2. the whole workspace's tests (unit, integration,
# doctests, examples, the ffibench --quick smoke run), 3. the runtime's
# tests again in a debug build (debug assertions on; frames that optimised
# builds inline away are real there), 4. the loom model of the run-queue
# protocol (own target dir: different cfg).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo run --release resolves to the benchmark (the README's first command)"
usage=$(cargo run --release -q -- --help)
[[ $usage == *"usage: ffibench"* ]] || { echo "cargo run --release did not run ffibench: $usage" >&2; exit 1; }

echo "== cargo test --workspace"
cargo test --workspace --release

echo "== cargo test -p ffiber (debug build: debug assertions and frames not inlined away)"
cargo test -p ffiber

echo "== loom model of the run queue"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p ffiber --lib --release loom
