#!/usr/bin/env bash
# The Python package's tests (scripts/test.sh's `python` suite):
#   1. the wheel built into target/wheels/ (scripts/build-wheel.sh) and
#      installed into the venv target/venv-python with pinned pytest, numpy
#      and ray[serve];
#   2. pytest python/tests (samples vs `voxide speak --raw`, streaming,
#      asyncio, threads, permits, errors, 1,000-call leak check);
#   3. the Ray Serve example as a smoke test: 2 replicas on 127.0.0.1,
#      three requests, shutdown; bounded by VOXIDE_RAY_TIMEOUT (default 300 s).
# Needs target/release/voxide (the tests compare with it; built if missing).
# Prints "python: N passed, N failed" last.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/target/venv-python"
PYTEST=9.2.0
NUMPY=2.4.6
RAY=2.60.0

[ -x target/release/voxide ] || cargo build --release --quiet --bin voxide
t0=$SECONDS
wheel=$(bash scripts/build-wheel.sh --venv "$venv")
echo "test-python: built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB) in $((SECONDS - t0)) s"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" "pytest==$PYTEST" "numpy==$NUMPY" "ray[serve]==$RAY"
"${pip[@]}" --force-reinstall --no-deps "$wheel"

rc=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests 2>&1 | tee target/pytest-python.log || rc=$?
# pytest's closing line: "N passed, M failed, K errors in S s" (any subset).
read -r passed failed < <(awk '/[0-9]+ (passed|failed|errors?) in / { line = $0 }
    END { n = split(line, w, /[ ,]+/); p = 0; f = 0
          for (i = 2; i <= n; i++) { if (w[i] == "passed") p = w[i-1]; if (w[i] ~ /^(failed|errors?)$/) f += w[i-1] }
          print p, f }' target/pytest-python.log)
[ "$rc" = 0 ] || [ "$failed" != 0 ] || failed=1 # pytest failed without a count (collection error, crash)

echo "test-python: Ray Serve smoke test (examples/python/ray_serve.py --smoke)"
t1=$SECONDS
if timeout --kill-after=20 "${VOXIDE_RAY_TIMEOUT:-300}" "$venv/bin/python" examples/python/ray_serve.py --smoke; then
    passed=$((passed + 1))
else
    echo "test-python: FAILED the Ray Serve smoke test" >&2
    failed=$((failed + 1))
fi
echo "test-python: Ray smoke test took $((SECONDS - t1)) s"
[ "$failed" = 0 ] && [ "$rc" = 0 ] || rc=1
echo "python: $passed passed, $failed failed"
exit "$rc"
