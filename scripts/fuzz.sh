#!/usr/bin/env bash
# Coverage-guided fuzzing of one voxide input surface with AFL++ (cargo-afl).
#   scripts/fuzz.sh TARGET MINUTES      TARGET: voice_onnx voice_config text phonemes ssml capi server_request
# Builds fuzz/ with AFL instrumentation (cargo-afl is installed at a pinned
# version if missing), fuzzes from the committed seed corpus fuzz/corpus/TARGET
# for MINUTES, prints executions / paths / crashes, and exits non-zero if a
# crash or hang was found (inputs under fuzz/out/TARGET/default/{crashes,hangs}).
# Without AFL (no cargo-afl and no network), use the structure-aware mutation
# run instead:  VOXIDE_FUZZ_SECONDS=$((MINUTES*60)) cargo test --release --test fuzz_replay fuzz_TARGET
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${1:?usage: scripts/fuzz.sh TARGET MINUTES}
minutes=${2:?usage: scripts/fuzz.sh TARGET MINUTES}
case $target in voice_onnx|voice_config|text|phonemes|ssml|capi|server_request) ;; *)
  echo "fuzz.sh: unknown target $target (voice_onnx voice_config text phonemes ssml capi server_request)" >&2; exit 2;;
esac
[ -d "fuzz/corpus/$target" ] || { echo "fuzz.sh: no seed corpus fuzz/corpus/$target" >&2; exit 2; }
if ! cargo afl --version >/dev/null 2>&1; then
  cargo install cargo-afl --version 0.18.2 --locked --quiet
fi
# Builds AFL++ itself once per toolchain (a no-op afterwards).
cargo afl config --build >/dev/null 2>&1 || true
export VOXIDE_VOICE=${VOXIDE_VOICE:-$root/voices/en_US-joe-medium.onnx}
(cd fuzz && cargo afl build --release --features afl --bin "$target" --quiet)
out="fuzz/out/$target"
mkdir -p "$out"
resume=()
# Resume a previous session of this target instead of starting over.
if [ -f "$out/default/fuzzer_stats" ]; then resume=(-i -); else resume=(-i "fuzz/corpus/$target"); fi
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_QUIET=1
# The capi target loads the 60 MB voice once per process: give it time to start.
extra=()
if [ "$target" = capi ]; then extra=(-t 10000 -m none); else extra=(-t 5000 -m none); fi
cargo afl fuzz "${resume[@]}" -o "$out" -V $((minutes * 60)) "${extra[@]}" \
  "fuzz/target/release/$target" > "$out/afl.log" 2>&1 || {
  echo "fuzz.sh: afl-fuzz failed, see $out/afl.log" >&2; tail -20 "$out/afl.log" >&2; exit 1; }
stats="$out/default/fuzzer_stats"
get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
crashes=$(get saved_crashes); hangs=$(get saved_hangs)
echo "fuzz $target: $(get run_time) s, execs_done $(get execs_done), execs/s $(get execs_per_sec)," \
     "corpus $(get corpus_count), edges $(get edges_found)/$(get total_edges), crashes $crashes, hangs $hangs"
if [ "${crashes:-0}" != 0 ] || [ "${hangs:-0}" != 0 ]; then
  echo "fuzz.sh: findings in $out/default/crashes and $out/default/hangs" >&2
  exit 1
fi
