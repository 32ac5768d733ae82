#!/usr/bin/env bash
# The whole test suite: the README's test command, and what CI runs (.ci/run).
#
#   scripts/test.sh                               # every suite
#   VOXIDE_SUITES="lint rust" scripts/test.sh     # only these suites
#   VOXIDE_SKIP_C=1 scripts/test.sh               # without the c and examples suites
#
# Suites, in this order:
#   lint      cargo fmt --check; cargo clippy --all-targets -D warnings
#   header    include/voxide.h regenerated with the pinned cbindgen shows no diff
#   rust      cargo test (real voice, opt-level 3): parity, properties, text
#             (espeak included: VOXIDE_REQUIRE_ESPEAK=1), NVRTC kernel compiles
#             (VOXIDE_REQUIRE_NVRTC=1), fuzz corpus replay + mutation
#             (VOXIDE_FUZZ_SECONDS per target, default 5; VOXIDE_FUZZ_SEED,
#             default the fixed seed of tests/fuzz_replay.rs), faults, soak_short
#   c         the C library installed into target/prefix; the C and C++ suites
#             under ASan/UBSan and under valgrind (scripts/test-c.sh)
#   examples  the C, C++, Go, C# and Rust examples against target/prefix
#   server    voxide serve (release build) with clients nobody here wrote: the
#             official openai Python package (pinned, in target/venv-server)
#             for every format and streaming, ffmpeg decoding flac/mp3/opus,
#             the web page in headless Chromium over WebDriver
#             (scripts/test-server.sh); the server's Rust test (tests/server.rs)
#             runs in the rust suite
#   triton    the Triton backend (triton/, libtriton_voxide.so) in two real
#             tritonservers 2.51 from the PyPI wheel nvidia-pytriton==0.7.0
#             (venv target/venv-triton): audio equal to the CLI over plain
#             infer, gRPC streaming and HTTP generate_stream, concurrency, bad
#             inputs, unload/reload, RSS over 1,000 requests, Triton's metrics
#             (scripts/test-triton.sh, scripts/triton-client.py)
#   python    the Python package (python/, PyO3): its wheel built into
#             target/wheels/ and installed into target/venv-python, pytest
#             python/tests (samples equal `voxide speak --raw`, streaming,
#             asyncio, threads, permits, errors, no leak), and the Ray Serve
#             example as a bounded loopback smoke test (scripts/test-python.sh)
#   aarch64   the portable build for aarch64 under qemu: parity subset, backend
#             unit tests, the C example (scripts/test-aarch64.sh)
#   windows   the Windows build (x86_64-pc-windows-gnu, mingw-w64) under wine:
#             voxide.dll/.exe without mingw runtime DLLs, install.sh --target,
#             the CLI's WAVs equal to the Linux CLI's, the C example (gcc and
#             CMake find_package), parity subset, bad_input and ffi_abi tests
#             (scripts/test-windows.sh)
#   macos     cargo check (library, CLI) for aarch64-apple-darwin and
#             x86_64-apple-darwin (linking needs Apple's SDK, absent here), and
#             install.sh --target ... --dry-run naming libvoxide.dylib
#   cuda-emu  the CUDA backend end to end on the CPU, through the emulated CUDA
#             driver, cuBLAS and NVRTC (tools/cuda-emu, scripts/cuda-emu.sh):
#             tests/cuda.rs, tests/cuda_ops.rs and tests/multispeaker.rs with VOXIDE_REQUIRE_GPU=1
#             (every op vs its CPU twin, the model vs the CPU and vs the
#             onnxruntime fixtures VOXIDE_CUDA_EMU_CASES, graph replay, the
#             CLI, streaming, scheduler, Device::Auto, injected faults), the
#             emulator's own tests, and the C suite with VOXIDE_DEVICE=cuda
#             (ASan build)
# To add a suite (e.g. the aarch64 build under qemu, the CUDA emulator): write
# a function suite_NAME below, put NAME into ALL_SUITES, and its packages into
# DEPS in scripts/setup-test-deps.sh.
#
# First scripts/setup-test-deps.sh makes sure the suites' packages and tools
# are there: as root with apt-get it installs what is missing; otherwise it
# prints the one command that installs it and this script stops. Then the
# voice is fetched (scripts/fetch-voice.sh). Every suite runs even when an
# earlier one failed; the exit status is 0 only when all passed.
#
# A test that cannot run here (no GPU, no AMX, ...) prints `SKIP <test>: <why>`
# and appends it to $VOXIDE_SKIP_LOG (target/test-skips.log, emptied first);
# the end of the run lists them with their count, then a summary of the suites.
# On a machine where `nvidia-smi -L` lists a GPU, VOXIDE_REQUIRE_GPU=1 is set
# (unless already set) so that the GPU tests run there instead of skipping.
# shellcheck disable=SC2086,SC2329 # suite lists split into words; suite_* called by name
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
voice="$root/voices/en_US-joe-medium.onnx"
prefix="$root/target/prefix"
logs="$root/target/test-logs"

ALL_SUITES="lint header rust c examples server triton python aarch64 windows macos cuda-emu"

suites=${VOXIDE_SUITES:-$ALL_SUITES}
if [ "${VOXIDE_SKIP_C:-0}" = 1 ]; then
    suites=$(printf '%s\n' $suites | { grep -vx -e c -e examples || true; } | xargs)
fi
for s in $suites; do
    [[ " $ALL_SUITES " == *" $s "* ]] || { echo "test.sh: unknown suite '$s' (suites: $ALL_SUITES)" >&2; exit 2; }
done
[ -n "$suites" ] || { echo "test.sh: no suite selected" >&2; exit 2; }

start=$SECONDS
echo "== suites: $suites"
env | grep '^VOXIDE_' | sort | sed 's/^/   env: /' || true

echo "== setup"
bash scripts/setup-test-deps.sh $suites
bash scripts/fetch-voice.sh
mkdir -p "$logs"
export VOXIDE_SKIP_LOG="${VOXIDE_SKIP_LOG:-$root/target/test-skips.log}"
: > "$VOXIDE_SKIP_LOG"
if [ -z "${VOXIDE_REQUIRE_GPU:-}" ] && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "   a GPU is present: VOXIDE_REQUIRE_GPU=1 (the GPU tests must run)"
    export VOXIDE_REQUIRE_GPU=1
fi

# ---------------------------------------------------------------- suites
# Each runs in a subshell with `set -e`; what it prints after "::" goes into
# the summary.

suite_lint() {
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --quiet -- -D warnings
}

suite_header() {
    local pinned
    pinned=$(sed -n 's/^PINNED=//p' scripts/check-header.sh)
    if [ -z "${CBINDGEN:-}" ] && [ "$(cbindgen --version 2>/dev/null | awk '{print $2}')" != "$pinned" ]; then
        export CBINDGEN="$root/target/tools/bin/cbindgen" # from setup-test-deps.sh
    fi
    bash scripts/check-header.sh
}

suite_rust() {
    local nvrtc_dir log="$logs/cargo-test.log"
    nvrtc_dir=$(bash scripts/fetch-nvrtc.sh) # the CUDA kernel compile test (no GPU needed)
    export LD_LIBRARY_PATH="$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export VOXIDE_REQUIRE_NVRTC=1
    export VOXIDE_REQUIRE_ESPEAK=1 # setup-test-deps.sh installed libespeak-ng1
    export VOXIDE_FUZZ_SECONDS=${VOXIDE_FUZZ_SECONDS:-5}
    echo "   fuzz mutation: ${VOXIDE_FUZZ_SECONDS} s per target, seed ${VOXIDE_FUZZ_SEED:-(the fixed default of tests/fuzz_replay.rs)}"
    # Coverage-guided fuzzing: scripts/fuzz.sh TARGET MINUTES; full soak: scripts/soak.sh.
    local rc=0
    # --no-fail-fast: every test binary runs, whatever failed before it.
    cargo test --quiet --no-fail-fast 2>&1 | tee "$log" || rc=$?
    grep -o 'test result: .*' "$log" | awk '
        { for (i = 1; i <= NF; i++) if ($i ~ /^(passed|failed|ignored);$/) n[$i] += $(i - 1) }
        END { printf ":: %d passed, %d failed, %d ignored (soak_full: scripts/soak.sh)\n",
                     n["passed;"], n["failed;"], n["ignored;"] }'
    return "$rc"
}

# The release library installed into target/prefix (once per run).
install_prefix() {
    [ -e "$logs/.installed" ] && return
    cargo build --release --quiet
    bash scripts/install.sh --prefix "$prefix" --no-build
    touch "$logs/.installed"
}

suite_c() {
    install_prefix
    local rc=0
    bash scripts/test-c.sh "$prefix" "$voice" 2>&1 | tee "$logs/c.log" || rc=$?
    grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logs/c.log" | awk '{ p += $1; f += $3; n++ }
        END { printf ":: %d passed, %d failed in %d runs (C ASan/UBSan, C++ ASan/UBSan, C valgrind)\n", p, f, n }'
    return "$rc"
}

suite_examples() {
    install_prefix
    local rc=0
    bash scripts/run-examples.sh "$prefix" "$voice" "$root/target/examples-out" 2>&1 |
        tee "$logs/examples.log" || rc=$?
    echo ":: $(grep '^examples: ' "$logs/examples.log" | tail -n 1)"
    return "$rc"
}

suite_server() {
    cargo build --release --quiet
    local rc=0
    bash scripts/test-server.sh 2>&1 | tee "$logs/server.log" || rc=$?
    grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logs/server.log" | awk '{ p += $1; f += $3 }
        END { printf ":: %d passed, %d failed (openai client, ffmpeg, Chromium)\n", p, f }'
    return "$rc"
}

suite_python() {
    cargo build --release --quiet --bin voxide # the tests compare with `voxide speak --raw`
    local rc=0
    bash scripts/test-python.sh 2>&1 | tee "$logs/python.log" || rc=$?
    echo ":: $(grep -E '^python: [0-9]+ passed' "$logs/python.log" | tail -n 1) (pytest + Ray Serve smoke)"
    return "$rc"
}

suite_aarch64() {
    # The portable build: cross-built for aarch64, its parity subset, backend
    # unit tests and the C example run under qemu (scripts/test-aarch64.sh).
    local rc=0
    bash scripts/test-aarch64.sh 2>&1 | tee "$logs/aarch64.log" || rc=$?
    echo ":: $(grep -E 'test-aarch64: (passed|FAILED)' "$logs/aarch64.log" | tail -n 1)"
    return "$rc"
}

suite_windows() {
    # The Windows build: cross-built with mingw-w64; the CLI, the C example
    # and a cargo test subset run under wine (scripts/test-windows.sh).
    local rc=0
    bash scripts/test-windows.sh 2>&1 | tee "$logs/windows.log" || rc=$?
    echo ":: $(grep -E 'test-windows: (passed|FAILED)' "$logs/windows.log" | tail -n 1)"
    return "$rc"
}

suite_macos() {
    # Both macOS targets type-check (library and CLI, as CONTRACT.md says; no
    # Apple SDK here to link), and install.sh names the macOS files. Tests and
    # benches too with VOXIDE_MACOS_ALL_TARGETS=1 (about twice the time).
    local t
    for t in aarch64-apple-darwin x86_64-apple-darwin; do
        rustup target list --installed | grep -qx "$t" || rustup target add "$t"
    done
    local all=()
    [ "${VOXIDE_MACOS_ALL_TARGETS:-0}" = 1 ] && all=(--all-targets)
    cargo check --quiet "${all[@]}" --target aarch64-apple-darwin --target x86_64-apple-darwin
    for t in aarch64-apple-darwin x86_64-apple-darwin; do
        bash scripts/install.sh --prefix "$root/target/prefix-macos" --target "$t" --dry-run |
            tee "$logs/macos-install-$t.log"
        grep -q "release/libvoxide.dylib lib/libvoxide.dylib$" "$logs/macos-install-$t.log"
        grep -q "CMake Voxide::voxide: lib/libvoxide.dylib$" "$logs/macos-install-$t.log"
    done
    echo ":: cargo check ${all[*]:-(lib, bin)} passed for aarch64- and x86_64-apple-darwin (not linked)"
}

suite_cuda-emu() {
    # The GPU tests must run (not skip) on the emulated device.
    export VOXIDE_REQUIRE_GPU=1
    export VOXIDE_PARITY_CASES="${VOXIDE_CUDA_EMU_CASES:-hi,hello,hello-noise}"
    local rc=0 log="$logs/cuda-emu-cargo.log"
    (cd tools/cuda-emu && CARGO_TARGET_DIR="$root/target/cuda-emu" cargo test --release --quiet) 2>&1 |
        tee "$logs/cuda-emu-self.log" || rc=$?
    bash scripts/cuda-emu.sh cargo test --quiet --no-fail-fast --test cuda --test cuda_ops --test multispeaker 2>&1 |
        tee "$log" || rc=$?
    install_prefix
    # The C suite at reduced scale (its 8 threads x 20 requests take ~4 min emulated).
    VOXIDE_DEVICE=cuda VOXIDE_TEST_SCALE=quick bash scripts/cuda-emu.sh \
        bash scripts/test-c.sh "$prefix" "$voice" --asan-only 2>&1 |
        tee "$logs/cuda-emu-c.log" || rc=$?
    cat "$logs/cuda-emu-self.log" "$log" | grep -o 'test result: .*' | awk '
        { for (i = 1; i <= NF; i++) if ($i ~ /^(passed|failed|ignored);$/) n[$i] += $(i - 1) }
        END { printf ":: %d passed, %d failed, %d ignored (emulated CUDA; C suite: see cuda-emu-c.log)\n",
                     n["passed;"], n["failed;"], n["ignored;"] }'
    return "$rc"
}

suite_triton() {
    local rc=0
    bash scripts/test-triton.sh 2>&1 | tee "$logs/triton.log" || rc=$?
    echo ":: $(grep '^triton-client: ' "$logs/triton.log" | tail -n 1 | sed 's/^triton-client: //') (tritonserver 2.51, two servers)"
    return "$rc"
}

# ---------------------------------------------------------------- run
rm -f "$logs/.installed"
summary=()
failed=0
for s in $suites; do
    echo "== $s"
    t0=$SECONDS
    set +e
    (set -e; "suite_$s") 2>&1 | tee "$logs/$s.out"
    rc=${PIPESTATUS[0]}
    set -e
    note=$(sed -n 's/^:: //p' "$logs/$s.out" | tail -n 1)
    if [ "$rc" = 0 ]; then result=passed; else result=FAILED; failed=1; fi
    summary+=("$(printf '  %-9s %-7s %5d s  %s' "$s" "$result" $((SECONDS - t0)) "$note")")
done

skips=$(sort -u "$VOXIDE_SKIP_LOG")
nskips=$(printf '%s' "$skips" | grep -c . || true)
echo
echo "== skipped tests: $nskips"
[ -z "$skips" ] || printf '%s\n' "$skips"
echo "== summary ($((SECONDS - start)) s with setup; logs in target/test-logs)"
printf '%s\n' "${summary[@]}"
not_run=$(printf '%s\n' $ALL_SUITES | grep -vxF -f <(printf '%s\n' $suites) | xargs || true)
[ -z "$not_run" ] || echo "  not run: $not_run"
echo "  skipped: $nskips (listed above)"
if [ "$failed" = 0 ]; then echo "== all suites passed"; else echo "== FAILED"; fi
exit $failed
