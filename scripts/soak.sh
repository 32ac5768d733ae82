#!/usr/bin/env bash
# Soak test: one engine, 16 threads, 20,000 mixed requests (short and long
# texts, whole and streamed, streams cancelled at random points, permits
# timing out). Fails if any completed request's audio differs from its solo
# result, RSS grows more than 5% after the warm-up round, or threads / file
# descriptors leak. Prints the figures (the line starting with SOAK:).
#   scripts/soak.sh                       # the full soak
#   VOXIDE_SOAK_REQUESTS=2000 scripts/soak.sh
# Knobs (environment): VOXIDE_SOAK_REQUESTS, _THREADS, _PERMITS, _ROUNDS,
# _RSS_PCT, _LONG_PCT, _SEED, _MALLOC_INFO=DIR — see tests/soak.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
export VOXIDE_VOICE=${VOXIDE_VOICE:-$PWD/voices/en_US-joe-medium.onnx}
[ -f "$VOXIDE_VOICE" ] || bash scripts/fetch-voice.sh
cargo test --release --test soak soak_full -- --ignored --nocapture --test-threads 1
