#!/usr/bin/env bash
# Build and run the C test suite (tests/c/test_voxide.c) against an installed prefix:
#   1. compiled with -Wall -Wextra -Werror -fsanitize=address,undefined, full scale
#      (8 threads x 20 requests), LeakSanitizer on; then the C++ wrapper tests
#      (tests/c/test_voxide_hpp.cpp) the same way;
#   2. compiled plainly and run under valgrind --leak-check=full --error-exitcode=1
#      at reduced scale (VOXIDE_TEST_SCALE=quick: valgrind runs the model ~1000x slower).
#
#   scripts/test-c.sh PREFIX VOICE [--asan-only | --valgrind-only]
# Env: BUILD_DIR (default target/c-tests), CC (default cc), CXX (default c++), VOXIDE_DEVICE
#      (default cpu here: the engines the tests create with VOXIDE_DEVICE_AUTO
#      run on the CPU; the suite still asks for CUDA explicitly once, except
#      under valgrind, which cannot run a GPU driver).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${1:?usage: scripts/test-c.sh PREFIX VOICE [--asan-only|--valgrind-only]}"
voice="${2:?usage: scripts/test-c.sh PREFIX VOICE [--asan-only|--valgrind-only]}"
mode="${3:-all}"
prefix="$(cd "$prefix" && pwd)"
[ -f "$prefix/include/voxide.h" ] || { echo "test-c: $prefix/include/voxide.h missing (run scripts/install.sh --prefix $prefix)" >&2; exit 2; }
[ -f "$voice" ] || { echo "test-c: voice $voice not found (scripts/fetch-voice.sh)" >&2; exit 2; }
build="${BUILD_DIR:-$root/target/c-tests}"
mkdir -p "$build"
cc="${CC:-cc}"
src="$root/tests/c/test_voxide.c"
common=(-std=c11 -Wall -Wextra -Werror -g -I"$prefix/include" "$src"
        -L"$prefix/lib" -lvoxide -Wl,-rpath,"$prefix/lib" -lpthread -lm)
status=0
export VOXIDE_DEVICE="${VOXIDE_DEVICE:-cpu}"

if [ "$mode" != "--valgrind-only" ]; then
    echo "== C tests, ASan + UBSan build =="
    "$cc" -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
        "${common[@]}" -o "$build/test_voxide_asan"
    # protect_shadow_gap=0: lets a CUDA driver map its memory under ASan.
    if ASAN_OPTIONS="detect_leaks=1:protect_shadow_gap=0:${ASAN_OPTIONS:-}" \
       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
       "$build/test_voxide_asan" "$voice"; then
        echo "== ASan/UBSan: passed =="
    else
        echo "== ASan/UBSan: FAILED ==" >&2
        status=1
    fi
    echo "== C++ wrapper tests (voxide.hpp), ASan + UBSan build =="
    "${CXX:-c++}" -std=c++17 -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer \
        -fsanitize=address,undefined -fno-sanitize-recover=undefined -I"$prefix/include" \
        "$root/tests/c/test_voxide_hpp.cpp" -L"$prefix/lib" -lvoxide -Wl,-rpath,"$prefix/lib" -lpthread \
        -o "$build/test_voxide_hpp_asan"
    if ASAN_OPTIONS="detect_leaks=1:protect_shadow_gap=0:${ASAN_OPTIONS:-}" \
       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
       "$build/test_voxide_hpp_asan" "$voice"; then
        echo "== C++ wrapper: passed =="
    else
        echo "== C++ wrapper: FAILED ==" >&2
        status=1
    fi
fi

if [ "$mode" != "--asan-only" ]; then
    command -v valgrind >/dev/null || { echo "test-c: valgrind not installed (apt-get install valgrind)" >&2; exit 2; }
    echo "== C tests under valgrind (quick scale) =="
    "$cc" -O1 "${common[@]}" -o "$build/test_voxide"
    if VOXIDE_TEST_SCALE="${VOXIDE_TEST_SCALE:-quick}" VOXIDE_TEST_SKIP_CUDA=1 \
       valgrind --leak-check=full --error-exitcode=1 --errors-for-leak-kinds=definite,possible \
                --suppressions="$root/tests/c/valgrind.supp" --quiet \
                "$build/test_voxide" "$voice"; then
        echo "== valgrind: passed =="
    else
        echo "== valgrind: FAILED ==" >&2
        status=1
    fi
fi
exit $status
