#!/usr/bin/env bash
# Regenerate include/voxide.h with the pinned cbindgen and fail on any diff.
#   scripts/check-header.sh           # CI: exit 1 when the committed header is stale
#   scripts/check-header.sh --update  # rewrite include/voxide.h
set -euo pipefail
PINNED=0.29.4
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

CBINDGEN="${CBINDGEN:-cbindgen}"
if ! command -v "$CBINDGEN" >/dev/null 2>&1; then
    echo "check-header: cbindgen not found; install the pinned version with:" >&2
    echo "    cargo install cbindgen --version $PINNED --locked" >&2
    exit 2
fi
have="$("$CBINDGEN" --version | awk '{print $2}')"
if [ "$have" != "$PINNED" ]; then
    echo "check-header: cbindgen $have found, but the header is generated with $PINNED:" >&2
    echo "    cargo install cbindgen --version $PINNED --locked --force" >&2
    exit 2
fi

tmp="$(mktemp)"
trap 'rm -f "$tmp" "$tmp.log"' EXIT
# The "Can't find Voxide*Value" warnings are expected: those integer aliases
# are deliberately excluded and renamed to the enum types (see cbindgen.toml).
if ! "$CBINDGEN" --config cbindgen.toml --crate voxide --output "$tmp" 2>"$tmp.log"; then
    cat "$tmp.log" >&2
    echo "check-header: cbindgen failed" >&2
    exit 2
fi
grep -v "Can't find Voxide\(Status\|Device\|Input\)Value" "$tmp.log" >&2 || true

if [ "${1:-}" = "--update" ]; then
    cp "$tmp" include/voxide.h
    echo "check-header: include/voxide.h updated"
    exit 0
fi
if ! diff -u include/voxide.h "$tmp"; then
    echo "check-header: include/voxide.h is stale; run scripts/check-header.sh --update and commit it" >&2
    exit 1
fi
echo "check-header: include/voxide.h is up to date"
