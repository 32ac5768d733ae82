#!/usr/bin/env bash
# The portable build on aarch64-unknown-linux-gnu, cross-built here and run
# under qemu-user (only the portable CPU kernels exist there):
#   1. release build of the library (rlib, cdylib) and the CLI for aarch64;
#   2. under qemu: the backend unit tests, and the parity tests against the
#      onnxruntime fixtures (f32; the bf16x3 test must report a skip) on the
#      cases in VOXIDE_PARITY_CASES (default hi,hi-noise: qemu runs the model
#      ~150x slower than native, about a minute per second of audio);
#   3. examples/c/speak.c cross-compiled against the aarch64 libvoxide.so and
#      run under qemu with the real voice; its WAVs checked: RIFF/WAVE 16-bit
#      mono PCM, at least 1 s long, the streamed file as long as the whole
#      one, and the same sample count as the x86-64 CLI gives for the same
#      phonemes and default options, with samples matching the CLI's to at
#      least 40 dB SNR.
# Installs what is missing (apt packages as root, the rustup target), prints
# each step's time, exits non-zero on any failure.
#   scripts/test-aarch64.sh
# Env: VOXIDE_PARITY_CASES (comma-separated case names of
#      tests/fixtures/cases.json, or "all").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
voice="$root/voices/en_US-joe-medium.onnx"
out="$root/target/aarch64-check"
# Also set in .cargo/config.toml; here so the script works from any config.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
export VOXIDE_DEVICE=cpu

t_all=$SECONDS
t_step=$SECONDS
times=()
step() {
    echo
    echo "== $*"
    t_step=$SECONDS
}
done_step() {
    local d=$((SECONDS - t_step))
    times+=("$(printf '%4d s  %s' "$d" "$1")")
    echo "-- $1: ${d} s"
}
trap 'echo "test-aarch64: FAILED (after $((SECONDS - t_all)) s)" >&2' ERR

step "setup: cross toolchain, qemu, rust target, voice"
missing=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "test-aarch64: missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
        exit 2
    fi
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi
bash scripts/fetch-voice.sh
done_step "setup"

# One set of features for every step: the build includes the parity test
# (so the dev-dependencies' features are in it), as `cargo test` does.
tests=(--lib --test parity)
step "(a) release build for $target: library, CLI (and the parity test)"
cargo build --release --target "$target" --lib --bin voxide --test parity
rel="$root/target/$target/release"
for f in "$rel/libvoxide.so" "$rel/voxide"; do
    aarch64-linux-gnu-readelf -h "$f" | grep -q 'Machine: *AArch64' ||
        { echo "test-aarch64: $f is not an aarch64 ELF file" >&2; exit 1; }
    echo "${f#"$root"/}: aarch64 ELF, $(du -h "$f" | cut -f1)"
done
done_step "(a) build"

cases="${VOXIDE_PARITY_CASES:-hi,hi-noise}"
step "(b) build the tests: backend unit tests, parity"
cargo test --release --target "$target" "${tests[@]}" --no-run
done_step "(b) test build"

step "(b) under qemu: backend unit tests, parity (cases: $cases)"
log="$out/tests.log"
mkdir -p "$out"
if [ "$cases" = all ]; then
    unset VOXIDE_PARITY_CASES
else
    export VOXIDE_PARITY_CASES="$cases"
fi
# Filters: the lib's backend:: tests, and parity's two (f32, bf16x3).
cargo test --release --target "$target" "${tests[@]}" -- backend:: onnxruntime \
    --nocapture --test-threads 1 2>&1 | tee "$log"
# On aarch64 the bf16x3 test has no kernels to run: it must say it skipped.
grep -q 'SKIP parity::bf16x3_matches_onnxruntime: .*bf16x3 precision needs the AVX-512 CPU kernels' "$log" || {
    echo "test-aarch64: the bf16x3 parity test did not report its skip" >&2
    exit 1
}
grep -q 'precision f32$' "$log" || { echo "test-aarch64: the f32 parity test did not run" >&2; exit 1; }
grep -q 'test backend::cpu::tests::portable_conv_matches_definition ... ok' "$log" || {
    echo "test-aarch64: the backend unit tests did not run" >&2
    exit 1
}
done_step "(b) tests under qemu"

step "(c) examples/c/speak.c against the aarch64 libvoxide.so, under qemu"
mkdir -p "$out/lib"
cp "$rel/libvoxide.so" "$out/lib/libvoxide.so"
# The library's soname is libvoxide.so.0 (build.rs).
ln -sf libvoxide.so "$out/lib/libvoxide.so.0"
aarch64-linux-gnu-gcc -std=c11 -O2 -Wall -Wextra -Werror -I"$root/include" \
    "$root/examples/c/speak.c" -L"$out/lib" -lvoxide -Wl,-rpath,"$out/lib" -lpthread -lm \
    -o "$out/speak"
rm -f "$out/c.wav" "$out/c.stream.wav"
qemu-aarch64 -L "$sysroot" "$out/speak" "$voice" "$out/c.wav"
done_step "(c) C example under qemu"

step "(c) WAV checks against the x86-64 CLI"
# The phonemes speak.c speaks, read from its source.
ipa=$(sed -n 's/^static const char \*const SENTENCE_IPA = "\(.*\)";$/\1/p' "$root/examples/c/speak.c")
[ -n "$ipa" ] || { echo "test-aarch64: SENTENCE_IPA not found in examples/c/speak.c" >&2; exit 1; }
# Release, as scripts/test.sh builds it before the C suites (so a no-op
# there); x86-64 has its own default kernels (AVX-512/AMX where present).
cargo build --release --bin voxide
"$root/target/release/voxide" speak --voice "$voice" --phonemes "$ipa" --output "$out/x86.wav"
python3 - "$out/c.wav" "$out/c.stream.wav" "$out/x86.wav" <<'PY'
import math, struct, sys

def pcm(path):
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 44 or b[0:4] != b"RIFF" or b[8:12] != b"WAVE":
        sys.exit(f"{path}: not a RIFF/WAVE file")
    fmt, ch, rate, bits = struct.unpack_from("<HHIxxxxxxH", b, 20)
    if (fmt, ch, bits) != (1, 1, 16) or b[36:40] != b"data":
        sys.exit(f"{path}: not 16-bit mono PCM (format {fmt}, {ch} channels, {bits} bits)")
    n = struct.unpack_from("<I", b, 40)[0] // 2
    if len(b) != 44 + 2 * n:
        sys.exit(f"{path}: data chunk of {n} samples but {len(b) - 44} bytes")
    return rate, struct.unpack_from(f"<{n}h", b, 44)

whole, stream, x86 = sys.argv[1:4]
rate, a = pcm(whole)
_, s = pcm(stream)
_, x = pcm(x86)
print(f"aarch64 C example: {len(a)} samples ({len(a) / rate:.2f} s at {rate} Hz), streamed {len(s)}; x86-64 CLI {len(x)}")
if len(a) < rate:
    sys.exit(f"{whole}: only {len(a)} samples, under a second of speech")
if max(abs(v) for v in a) < 1000:
    sys.exit(f"{whole}: peak {max(abs(v) for v in a)} of 32767: silence")
if len(s) != len(a):
    sys.exit(f"{stream}: {len(s)} samples, the whole request {len(a)}")
if len(x) != len(a):
    sys.exit(f"sample counts differ: aarch64 {len(a)}, x86-64 {len(x)}")
sig = sum(v * v for v in x)
err = sum((p - q) ** 2 for p, q in zip(a, x))
snr = math.inf if err == 0 else 10 * math.log10(sig / err)
print(f"aarch64 vs x86-64 samples: SNR {snr:.1f} dB")
# Both meet the parity tests' 50 dB against onnxruntime; far below that the
# aarch64 audio is not the same speech.
if snr < 40:
    sys.exit(f"aarch64 and x86-64 samples differ: SNR {snr:.1f} dB < 40 dB")
PY
done_step "(c) WAV checks"

echo
echo "== test-aarch64: passed in $((SECONDS - t_all)) s"
printf '%s\n' "${times[@]}"
