#!/usr/bin/env bash
# The Windows build (x86_64-pc-windows-gnu, mingw-w64), cross-built here and
# run under wine:
#   (a) release build of voxide.dll (+ import library libvoxide.dll.a, static
#       libvoxide.a) and the CLI voxide.exe; both must be PE x86-64 files
#       that import no mingw runtime DLL (libgcc, libwinpthread: linked in
#       statically, .cargo/config.toml);
#   (b) scripts/install.sh --target into target/prefix-windows: bin/voxide.dll,
#       bin/voxide.exe, lib/libvoxide.dll.a, lib/libvoxide.a, the headers, the
#       pkg-config and CMake files;
#   (c) the CLI under wine speaks the default voice (text and phonemes, seed
#       1): its WAVs must equal the Linux CLI's for the same input and
#       options bit for bit (CONTRACT.md: same samples; the model's scalar
#       math is the pure-Rust libm crate on every OS);
#   (d) examples/c/speak.c built with mingw against the installed import
#       library (directly, and through CMake's find_package(Voxide) with
#       cmake/mingw-w64.cmake) and against libvoxide.a with voxide.pc's
#       Libs.private, run under wine (the DLL found on WINEPATH): its WAV
#       bit-identical to the Linux CLI's for the same phonemes, the streamed
#       WAV as long as the whole one, the SRT holding cues;
#   (e) under wine as the cargo target runner: tests/parity.rs (f32 against
#       the onnxruntime fixtures, cases VOXIDE_PARITY_CASES, default
#       hi,hello,hi-noise; the bf16x3 test skips without AMX), tests/bad_input.rs
#       and tests/ffi_abi.rs (the C ABI from Rust), all their tests.
# Wine runs in its own prefix, target/wine/prefix (created on first use, about
# 15 s; on wine < 9 it gets scripts/wine/bcryptprimitives.c, the one function
# of Windows 10's bcryptprimitives.dll that Rust's std needs). Installs what is missing (apt packages as root, the rustup target),
# prints each step's time, exits non-zero on any failure.
#   scripts/test-windows.sh
# Env: VOXIDE_PARITY_CASES (comma-separated case names of
#      tests/fixtures/cases.json, or "all").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=x86_64-pc-windows-gnu
voice="$root/voices/en_US-joe-medium.onnx"
out="$root/target/windows-check"
prefix="$root/target/prefix-windows"
# Also set in .cargo/config.toml; here so the script works from any config.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
export WINEPREFIX="$root/target/wine/prefix"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
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
trap 'echo "test-windows: FAILED (after $((SECONDS - t_all)) s)" >&2' ERR

step "setup: mingw-w64, wine, rust target, voice, wine prefix"
missing=()
for p in gcc-mingw-w64-x86-64 wine64 wine; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "test-windows: missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
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
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    mkdir -p "$WINEPREFIX"
    echo "creating the wine prefix $WINEPREFIX"
    wineboot --init >/dev/null 2>&1 || true
    wineserver -w
    [ -f "$WINEPREFIX/system.reg" ] || { echo "test-windows: wineboot did not create $WINEPREFIX" >&2; exit 1; }
fi
# Rust's std imports ProcessPrng from bcryptprimitives.dll (Windows 10+);
# wine before 9 has none (no file in system32, where wine keeps a stub of
# each builtin DLL): put the shim scripts/wine/bcryptprimitives.c there.
sys32="$WINEPREFIX/drive_c/windows/system32"
if [ ! -f "$sys32/bcryptprimitives.dll" ]; then
    echo "wine has no bcryptprimitives.dll: installing the ProcessPrng shim (scripts/wine/bcryptprimitives.c)"
    x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror -shared -o "$sys32/bcryptprimitives.dll" \
        "$root/scripts/wine/bcryptprimitives.c" -lbcrypt
fi
wine --version
done_step "setup"

# One set of features for every step: the build includes the tests (so the
# dev-dependencies' features are in it), as `cargo test` does.
tests=(--test parity --test bad_input --test ffi_abi)
step "(a) release build for $target: voxide.dll, voxide.exe (and the tests)"
cargo build --release --target "$target" --lib --bin voxide "${tests[@]}"
rel="$root/target/$target/release"
for f in "$rel/voxide.dll" "$rel/voxide.exe"; do
    grep -q 'file format pei-x86-64' <<<"$(x86_64-w64-mingw32-objdump -f "$f")" ||
        { echo "test-windows: $f is not a PE x86-64 file" >&2; exit 1; }
    dlls=$(x86_64-w64-mingw32-objdump -p "$f" | sed -n 's/^\tDLL Name: //p' | sort -u | xargs)
    echo "${f#"$root"/}: PE x86-64, $(du -h "$f" | cut -f1), imports: $dlls"
    if grep -qiE 'libgcc|libwinpthread|libstdc' <<<"$dlls"; then
        echo "test-windows: $f needs a mingw runtime DLL ($dlls)" >&2
        exit 1
    fi
done
exports=$(x86_64-w64-mingw32-objdump -p "$rel/voxide.dll")
grep -q ' voxide_engine_create$' <<<"$exports" ||
    { echo "test-windows: voxide.dll does not export voxide_engine_create" >&2; exit 1; }
done_step "(a) build"

step "(b) scripts/install.sh --target $target into ${prefix#"$root"/}"
rm -rf "$prefix"
bash scripts/install.sh --prefix "$prefix" --target "$target" --no-build
for f in bin/voxide.dll bin/voxide.exe lib/libvoxide.dll.a lib/libvoxide.a include/voxide.h \
    include/voxide.hpp lib/pkgconfig/voxide.pc lib/cmake/Voxide/VoxideConfig.cmake \
    lib/cmake/Voxide/VoxideConfigVersion.cmake; do
    [ -f "$prefix/$f" ] || { echo "test-windows: install.sh did not install $f" >&2; exit 1; }
done
cmp -s "$root/include/voxide.h" "$prefix/include/voxide.h"
done_step "(b) install"

# compare_wavs LABEL A B [length]: A is speech with B's sample count, and
# (unless "length") bit-identical samples (the SNR is printed when not).
compare_wavs() {
    python3 - "$@" <<'PY'
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
    return rate, b, struct.unpack_from(f"<{n}h", b, 44)

label, win, lin = sys.argv[1:4]
length_only = sys.argv[4:] == ["length"]
rate, wb, w = pcm(win)
_, lb, l = pcm(lin)
if len(w) < rate // 2 or max(abs(v) for v in w) < 1000:
    sys.exit(f"{label}: {win} holds {len(w)} samples, peak {max(map(abs, w), default=0)}: not speech")
if len(w) != len(l):
    sys.exit(f"{label}: sample counts differ: {len(w)} and {len(l)}")
if length_only:
    print(f"{label}: {len(w)} samples, as many as {lin}")
    sys.exit(0)
if wb == lb:
    print(f"{label}: {len(w)} samples ({len(w) / rate:.2f} s), bit-identical to the Linux build's")
    sys.exit(0)
sig = sum(v * v for v in l)
err = sum((p - q) ** 2 for p, q in zip(w, l))
snr = math.inf if err == 0 else 10 * math.log10(sig / err)
print(f"{label}: {len(w)} samples, not bit-identical: SNR {snr:.1f} dB against the Linux build")
sys.exit(f"{label}: windows and linux samples differ (SNR {snr:.1f} dB): the builds must give the same samples")
PY
}

step "(c) the CLI under wine against the Linux CLI (text and phonemes, seed 1)"
mkdir -p "$out"
cargo build --release --bin voxide
linux_cli="$root/target/release/voxide"
text="Hello from voxide on Windows. The quick brown fox jumps over the lazy dog."
ipa=$(sed -n 's/^static const char \*const SENTENCE_IPA = "\(.*\)";$/\1/p' "$root/examples/c/speak.c")
[ -n "$ipa" ] || { echo "test-windows: SENTENCE_IPA not found in examples/c/speak.c" >&2; exit 1; }
rm -f "$out"/*.wav "$out"/*.srt
wine "$prefix/bin/voxide.exe" speak --voice "$voice" --text "$text" --seed 1 --output "$out/win-text.wav"
"$linux_cli" speak --voice "$voice" --text "$text" --seed 1 --output "$out/linux-text.wav"
compare_wavs "CLI text" "$out/win-text.wav" "$out/linux-text.wav"
wine "$prefix/bin/voxide.exe" speak --voice "$voice" --phonemes "$ipa" --seed 1 --output "$out/win-ipa.wav"
"$linux_cli" speak --voice "$voice" --phonemes "$ipa" --seed 1 --output "$out/linux-ipa.wav"
compare_wavs "CLI phonemes" "$out/win-ipa.wav" "$out/linux-ipa.wav"
done_step "(c) CLI under wine"

step "(d) examples/c/speak.c with mingw against the installed voxide.dll, under wine"
mkdir -p "$out/gcc" "$out/static"
x86_64-w64-mingw32-gcc -std=c11 -O2 -Wall -Wextra -Werror -I"$prefix/include" \
    "$root/examples/c/speak.c" -L"$prefix/lib" -lvoxide -o "$out/gcc/speak.exe"
# Statically, with the libraries voxide.pc names for a static link.
static_libs=$(sed -n 's/^Libs.private: //p' "$prefix/lib/pkgconfig/voxide.pc")
# shellcheck disable=SC2086 # the library list splits into words
x86_64-w64-mingw32-gcc -std=c11 -O2 -Wall -Wextra -Werror -I"$prefix/include" \
    "$root/examples/c/speak.c" "$prefix/lib/libvoxide.a" $static_libs -o "$out/static/speak.exe"
rm -rf "$out/cmake"
cmake -S "$root/examples/c" -B "$out/cmake" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64.cmake" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$out/cmake" >/dev/null
"$linux_cli" speak --voice "$voice" --phonemes "$ipa" --output "$out/linux-c.wav"
export WINEPATH="$prefix/bin"
for name in gcc cmake static; do
    exe="$out/$name/speak.exe"
    rm -f "$out/c-$name".*
    wine "$exe" "$voice" "$out/c-$name.wav"
    compare_wavs "C example ($name)" "$out/c-$name.wav" "$out/linux-c.wav"
    # The example converts streamed chunks to 16 bits its own way: the same
    # length as the whole request is what is checked (as test-aarch64.sh does).
    compare_wavs "C example ($name), streamed" "$out/c-$name.stream.wav" "$out/c-$name.wav" length
    grep -q -- '-->' "$out/c-$name.srt" || { echo "test-windows: $out/c-$name.srt holds no captions" >&2; exit 1; }
done
unset WINEPATH
done_step "(d) C example under wine"

cases="${VOXIDE_PARITY_CASES:-hi,hello,hi-noise}"
step "(e) under wine: parity (cases: $cases), bad_input, ffi_abi"
log="$out/tests.log"
if [ "$cases" = all ]; then
    unset VOXIDE_PARITY_CASES
else
    export VOXIDE_PARITY_CASES="$cases"
fi
cargo test --release --target "$target" "${tests[@]}" -- --nocapture --test-threads 2 2>&1 | tee "$log"
grep -q 'precision f32$' "$log" || { echo "test-windows: the f32 parity test did not run" >&2; exit 1; }
passed=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
results=$(grep -c '^test result: ok\.' "$log" || true)
[ "$results" = 3 ] || { echo "test-windows: $results of 3 test binaries passed" >&2; exit 1; }
echo "test-windows: $passed tests passed under wine in 3 test binaries"
done_step "(e) tests under wine"

echo
echo "== test-windows: passed in $((SECONDS - t_all)) s"
printf '%s\n' "${times[@]}"
