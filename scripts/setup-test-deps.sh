#!/usr/bin/env bash
# Make sure this machine has what scripts/test.sh needs for the given suites:
# Debian/Ubuntu packages, the Rust components, and the pinned cbindgen.
#
#   scripts/setup-test-deps.sh [--check] SUITE...     (scripts/test.sh calls it)
#
# A package counts as present when `dpkg -s` says it is installed, or else
# when its probe passes (the command is on PATH, the library loads), so a
# second run needs no network and takes well under a second.
# Missing packages: as root with apt-get they are installed (apt-get update +
# install, non-interactive); otherwise the script names them, prints one
# command to install them and exits 1. Nothing is skipped silently.
# cbindgen: the pinned version (scripts/check-header.sh) from PATH, else
# `cargo install --locked` into target/tools (never touching another
# cbindgen); prints nothing about it when it is already there.
# --check: report what is missing and exit 1 if anything is, install nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

check_only=0
if [ "${1:-}" = --check ]; then check_only=1; shift; fi
suites=" $* "
list="$*"

# What each suite needs: SUITE PACKAGE PROBE (one per line; "all" = every run).
# PROBE: cmd:NAME (on PATH), lib:SONAME (known to ldconfig), file:PATH,
# run:COMMAND (exits 0), or - (dpkg only). (espeak-ng-data comes with a
# libespeak-ng not installed by dpkg.)
# Add the packages of a new suite here (e.g. "aarch64 qemu-user ...").
DEPS='
all       ca-certificates   file:/etc/ssl/certs/ca-certificates.crt
all       python3           cmd:python3
all       python3-pip       run:python3 -m pip --version
rust      libespeak-ng1     lib:libespeak-ng.so.1
rust      espeak-ng-data    lib:libespeak-ng.so.1
rust      libmp3lame0       lib:libmp3lame.so.0
rust      libopus0          lib:libopus.so.0
c         gcc               cmd:cc
c         g++               cmd:c++
c         valgrind          cmd:valgrind
examples  gcc               cmd:cc
examples  g++               cmd:c++
examples  cmake             cmd:cmake
examples  pkg-config        cmd:pkg-config
examples  golang-go         cmd:go
examples  mono-mcs          cmd:mcs
examples  mono-runtime      cmd:mono
server    python3-venv      run:python3 -m ensurepip --version
server    chromium          cmd:chromium
server    chromium-driver   cmd:chromedriver
server    ffmpeg            cmd:ffmpeg
server    libmp3lame0       lib:libmp3lame.so.0
server    libopus0          lib:libopus.so.0
python    python3-venv      run:python3 -m ensurepip --version
aarch64   gcc-aarch64-linux-gnu   cmd:aarch64-linux-gnu-gcc
aarch64   libc6-dev-arm64-cross   file:/usr/aarch64-linux-gnu/lib/libc.so
aarch64   qemu-user         cmd:qemu-aarch64
windows   gcc-mingw-w64-x86-64    cmd:x86_64-w64-mingw32-gcc
windows   wine64            file:/usr/lib/wine/wine64
windows   wine              cmd:wineserver
windows   cmake             cmd:cmake
cuda-emu  gcc               cmd:cc
cuda-emu  g++               cmd:c++
triton    python3-venv      run:python3 -m ensurepip --version
'

wanted() { [ "$1" = all ] || [[ "$suites" == *" $1 "* ]]; }

dpkg_installed() {
    command -v dpkg-query >/dev/null 2>&1 &&
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

probe() {
    case "$1" in
        cmd:*) command -v "${1#cmd:}" >/dev/null 2>&1 ;;
        lib:*) { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -F "${1#lib:}" >/dev/null ;;
        file:*) [ -e "${1#file:}" ] ;;
        run:*) ${1#run:} >/dev/null 2>&1 ;;
        *) return 1 ;;
    esac
}

missing=()
while read -r suite pkg how; do
    [ -n "$suite" ] || continue
    wanted "$suite" || continue
    [[ " ${missing[*]-} " == *" $pkg "* ]] && continue
    dpkg_installed "$pkg" || probe "$how" || missing+=("$pkg")
done <<< "$DEPS"

status=0
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$check_only" = 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: missing packages for the suites [$list]: ${missing[*]}" >&2
        if command -v apt-get >/dev/null; then
            echo "  install them with:" >&2
        else
            echo "  (Debian/Ubuntu package names; on Debian/Ubuntu:)" >&2
        fi
        echo "    sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        echo "  (or choose the suites: VOXIDE_SUITES=\"...\" scripts/test.sh, see its header)" >&2
        status=1
    fi
fi

# Rust components used by the lint suite.
if wanted lint; then
    for c in rustfmt:fmt clippy:clippy; do
        if ! cargo "${c#*:}" --version >/dev/null 2>&1; then
            if [ "$check_only" = 0 ] && command -v rustup >/dev/null; then
                echo "setup: rustup component add ${c%%:*}"
                rustup component add "${c%%:*}"
            else
                echo "setup: missing the Rust component ${c%%:*}: rustup component add ${c%%:*}" >&2
                status=1
            fi
        fi
    done
fi

# The pinned cbindgen for the header check.
if wanted header; then
    pinned=$(sed -n 's/^PINNED=//p' scripts/check-header.sh)
    version() { "$1" --version 2>/dev/null | awk '{print $2}'; }
    tools="$root/target/tools"
    if [ "$(version "${CBINDGEN:-cbindgen}")" != "$pinned" ] &&
        [ "$(version "$tools/bin/cbindgen")" != "$pinned" ]; then
        if [ "$check_only" = 0 ]; then
            echo "setup: cargo install cbindgen $pinned into target/tools"
            cargo install cbindgen --version "$pinned" --locked --quiet --force --root "$tools"
        else
            echo "setup: missing cbindgen $pinned: cargo install cbindgen --version $pinned --locked" >&2
            status=1
        fi
    fi
fi
exit $status
