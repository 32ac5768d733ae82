#!/usr/bin/env bash
# The server with clients nobody here wrote (scripts/server-client.py): the
# official `openai` Python package for every format and streaming, ffmpeg to
# decode flac, mp3 and opus, and the web page in headless Chromium over
# WebDriver. Needs target/release/voxide (cargo build --release), python3
# with venv, ffmpeg, chromium + chromium-driver, libmp3lame0, libopus0
# (scripts/setup-test-deps.sh server).
#
#   scripts/test-server.sh                    # screenshot to target/server-page.png
#   VOXIDE_UPDATE_SCREENSHOT=1 scripts/test-server.sh   # and to docs/server-page.png
#
# Closes with 'N passed, N failed'.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
voice="${VOXIDE_VOICE:-$root/voices/en_US-joe-medium.onnx}"
bin="$root/target/release/voxide"
venv="$root/target/venv-server"
OPENAI_VERSION=3.51.0

[ -x "$bin" ] || { echo "test-server: $bin missing: cargo build --release" >&2; exit 1; }
if ! "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION"
fi

tmp=$(mktemp -d)
key="server-test-$$-$RANDOM"
echo "$key" > "$tmp/keys"
"$bin" serve --bind 127.0.0.1:0 --voice "$voice" --api-key-file "$tmp/keys" \
    --max-concurrent 2 2> "$tmp/server.log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
url=
for _ in $(seq 1 200); do
    url=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$tmp/server.log")
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "test-server: the server did not start" >&2; cat "$tmp/server.log" >&2; exit 1; }
echo "test-server: $url"

shot="$root/target/server-page.png"
rc=0
# The page test enters no key: it needs a server without one. The openai
# checks use the key (VOXIDE_TEST_KEY).
VOXIDE_TEST_KEY="$key" "$venv/bin/python" scripts/server-client.py "$url" "$bin" "$voice" "$shot" --no-page || rc=$?

kill -TERM "$pid"
wait "$pid" || { echo "test-server: the server did not exit 0 on SIGTERM" >&2; rc=1; }
"$bin" serve --bind 127.0.0.1:0 --voice "$voice" --max-concurrent 2 2> "$tmp/server2.log" &
pid=$!
url=
for _ in $(seq 1 200); do
    url=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$tmp/server2.log")
    [ -n "$url" ] && break
    sleep 0.1
done
"$venv/bin/python" scripts/server-client.py "$url" "$bin" "$voice" "$shot" --page-only || rc=$?
if [ "${VOXIDE_UPDATE_SCREENSHOT:-0}" = 1 ] && [ -f "$shot" ]; then
    cp "$shot" docs/server-page.png
    echo "test-server: docs/server-page.png updated"
fi
exit "$rc"
