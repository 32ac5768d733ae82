#!/usr/bin/env bash
# The whole test suite: voice, lint, Rust tests (real voice, optimized).
# Extra suites (C ABI, examples) run when their scripts exist.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-voice.sh
echo "== cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --quiet
