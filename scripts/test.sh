#!/usr/bin/env bash
# The whole test suite: voice, lint, header check, Rust tests (real voice,
# optimized), then the C ABI: install into target/prefix, the C/C++ suites
# under ASan/UBSan and valgrind, and the C, C++, Go, C# and Rust examples.
#   VOXIDE_SKIP_C=1 scripts/test.sh   # Rust side only
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
voice="$root/voices/en_US-joe-medium.onnx"
bash scripts/fetch-voice.sh
echo "== cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
echo "== header check"
bash scripts/check-header.sh
echo "== NVRTC for the CUDA kernel compile test (no GPU needed)"
nvrtc_dir=$(bash scripts/fetch-nvrtc.sh)
export LD_LIBRARY_PATH="$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export VOXIDE_REQUIRE_NVRTC=1
echo "== cargo test"
# Includes the reliability suites: tests/fuzz_replay.rs (replays the fuzz seed
# corpus fuzz/corpus/* and runs each fuzz target for VOXIDE_FUZZ_SECONDS of
# structure-aware mutation), tests/faults.rs and tests/soak.rs (soak_short).
# Coverage-guided runs: scripts/fuzz.sh TARGET MINUTES; full soak: scripts/soak.sh.
export VOXIDE_FUZZ_SECONDS=${VOXIDE_FUZZ_SECONDS:-5}
cargo test --quiet
if [ "${VOXIDE_SKIP_C:-0}" != 1 ]; then
  echo "== install + C ABI suites + examples"
  cargo build --release --quiet
  bash scripts/install.sh --prefix "$root/target/prefix" --no-build
  bash scripts/test-c.sh "$root/target/prefix" "$voice"
  bash scripts/run-examples.sh "$root/target/prefix" "$voice" "$root/target/examples-out"
fi
