#!/usr/bin/env bash
# Build the Python package's wheel (python/: PyO3 + maturin) into target/wheels/.
#
#   scripts/build-wheel.sh [--venv DIR]     (default venv: target/venv-python)
#
# The wheel is abi3 (one wheel for CPython >= 3.9) and tagged by maturin's
# own manylinux check of this machine's build (see python/README.md). The
# build shares the workspace's target/ (release profile) with the engine.
# The venv (made if missing) gets the pinned maturin; prints the wheel's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/target/venv-python"
if [ "${1:-}" = --venv ]; then venv=$2; fi
MATURIN=1.16.0

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if [ "$("$venv/bin/maturin" --version 2>/dev/null | awk '{print $2}')" != "$MATURIN" ]; then
    "$venv/bin/python" -m pip install -q "maturin==$MATURIN" >&2
fi
rm -f target/wheels/voxide-*.whl
"$venv/bin/maturin" build --release --quiet -m python/Cargo.toml --out target/wheels \
    --interpreter "$venv/bin/python" >&2
ls target/wheels/voxide-*.whl
