#!/usr/bin/env bash
# Build and run every example (c, cpp, go, csharp, rust) against an installed
# prefix with a real voice, and check that each WAV it writes is non-trivial
# (a RIFF/WAVE PCM16 header and more than 0.5 s of audio), and that the SRT
# captions the C example writes next to its WAV are well-formed.
#
#   scripts/run-examples.sh PREFIX VOICE OUTDIR
# Env: VOXIDE_EXAMPLES_SKIP=go,csharp  skip examples whose toolchain is absent
#      (by default a missing toolchain is a failure); each skip is a
#      "SKIP examples::NAME: why" line, appended to $VOXIDE_SKIP_LOG when set.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
usage="usage: scripts/run-examples.sh PREFIX VOICE OUTDIR"
prefix="$(cd "${1:?$usage}" && pwd)"
voice="$(cd "$(dirname "${2:?$usage}")" && pwd)/$(basename "$2")"
mkdir -p "${3:?$usage}"
out="$(cd "$3" && pwd)"
build="$out/build"
mkdir -p "$build"
skip=",${VOXIDE_EXAMPLES_SKIP:-},"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -f "$voice" ] || { echo "run-examples: voice $voice not found" >&2; exit 2; }

passed=0
failed=0
skipped=0

# check_wav FILE: RIFF/WAVE, PCM 16-bit mono, > 0.5 s.
check_wav() {
    local f="$1"
    [ -s "$f" ] || { echo "  $f: missing or empty"; return 1; }
    local riff wave rate bits data
    riff="$(head -c 4 "$f")"
    wave="$(dd if="$f" bs=1 skip=8 count=4 2>/dev/null)"
    rate="$(od -An -tu4 -j24 -N4 "$f" | tr -d ' ')"
    bits="$(od -An -tu2 -j34 -N2 "$f" | tr -d ' ')"
    data="$(od -An -tu4 -j40 -N4 "$f" | tr -d ' ')"
    if [ "$riff" != "RIFF" ] || [ "$wave" != "WAVE" ] || [ "$bits" != 16 ] || [ "${rate:-0}" -le 0 ]; then
        echo "  $f: not a PCM16 WAV (riff=$riff wave=$wave bits=$bits rate=$rate)"
        return 1
    fi
    local size=$(( $(stat -c %s "$f") - 44 ))
    if [ "$data" -ne "$size" ]; then
        echo "  $f: data size $data does not match the file ($size bytes after the header)"
        return 1
    fi
    # more than half a second: samples * 2 > rate
    if [ $(( data / 2 * 2 )) -le "$rate" ]; then
        echo "  $f: only $(( data / 2 )) samples at $rate Hz"
        return 1
    fi
    echo "  $f: ok ($(( data / 2 )) samples at $rate Hz)"
}

# check_srt FILE: SubRip, starting with a well-formed cue:
#   1 / HH:MM:SS,mmm --> HH:MM:SS,mmm / a non-empty text line
check_srt() {
    local f="$1"
    [ -s "$f" ] || { echo "  $f: missing or empty"; return 1; }
    local l1 l2 l3
    l1="$(sed -n 1p "$f" | tr -d '\r')"
    l2="$(sed -n 2p "$f" | tr -d '\r')"
    l3="$(sed -n 3p "$f" | tr -d '\r')"
    local t='[0-9][0-9]:[0-9][0-9]:[0-9][0-9],[0-9][0-9][0-9]'
    if [ "$l1" != 1 ] || ! [[ "$l2" =~ ^$t\ --\>\ $t$ ]] || [ -z "$l3" ]; then
        echo "  $f: not an SRT starting with a cue (got: '$l1' / '$l2' / '$l3')"
        return 1
    fi
    echo "  $f: ok ($(grep -c -- ' --> ' "$f") cues; first: $l2 $l3)"
}

# run_example NAME TOOL CMD... : build+run via CMD, then check OUTDIR/NAME.wav
# (+ .stream.wav and .srt if made)
run_example() {
    local name="$1" tool="$2"
    shift 2
    if [[ "$skip" == *",$name,"* ]]; then
        local line="SKIP examples::$name: VOXIDE_EXAMPLES_SKIP=${VOXIDE_EXAMPLES_SKIP}"
        echo "== $line"
        if [ -n "${VOXIDE_SKIP_LOG:-}" ]; then echo "$line" >> "$VOXIDE_SKIP_LOG"; fi
        skipped=$((skipped + 1))
        return
    fi
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "== $name: FAILED: $tool not installed (or set VOXIDE_EXAMPLES_SKIP=$name)" >&2
        failed=$((failed + 1))
        return
    fi
    echo "== $name"
    rm -f "$out/$name.wav" "$out/$name.stream.wav" "$out/$name.srt"
    local ok=1
    if ! "$@" > "$build/$name.log" 2>&1; then
        sed 's/^/  | /' "$build/$name.log"
        echo "  $name: build or run failed"
        ok=0
    else
        sed 's/^/  | /' "$build/$name.log"
        check_wav "$out/$name.wav" || ok=0
        if [ -e "$out/$name.stream.wav" ]; then check_wav "$out/$name.stream.wav" || ok=0; fi
        if [ -e "$out/$name.srt" ]; then check_srt "$out/$name.srt" || ok=0; fi
    fi
    if [ $ok = 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

example_c() {
    cmake -S "$root/examples/c" -B "$build/c" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release &&
    cmake --build "$build/c" &&
    "$build/c/speak" "$voice" "$out/c.wav" &&
    [ -e "$out/c.stream.wav" ] &&
    { [ -e "$out/c.srt" ] || { echo "c.srt (the captions of c.wav) not written"; false; }; }
}
example_cpp() {
    cmake -S "$root/examples/cpp" -B "$build/cpp" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release &&
    cmake --build "$build/cpp" &&
    "$build/cpp/speak_cpp" "$voice" "$out/cpp.wav"
}
example_go() {
    # No network: no external modules, no toolchain download.
    (cd "$root/examples/go" &&
     GOPROXY=off GOTOOLCHAIN=local GOFLAGS= GOCACHE="${GOCACHE:-$build/go-cache}" \
        go build -o "$build/go-speak" .) &&
    "$build/go-speak" "$voice" "$out/go.wav" &&
    [ -e "$out/go.stream.wav" ]
}
example_csharp() {
    mcs -nologo -out:"$build/speak.exe" "$root/examples/csharp/Voxide.cs" "$root/examples/csharp/Program.cs" &&
    mono "$build/speak.exe" "$voice" "$out/csharp.wav" &&
    [ -e "$out/csharp.stream.wav" ]
}
example_rust() {
    (cd "$root" && cargo build --release --example speak) &&
    "${CARGO_TARGET_DIR:-$root/target}/release/examples/speak" "$voice" "$out/rust.wav"
}

run_example c cmake example_c
run_example cpp cmake example_cpp
run_example go go example_go
run_example csharp mono example_csharp
run_example rust cargo example_rust

echo "examples: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
