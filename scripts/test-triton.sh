#!/usr/bin/env bash
# The Triton backend against a real tritonserver (the `triton` suite of
# scripts/test.sh; docs/triton.md).
#
#   scripts/test-triton.sh
#
# 1. A venv (target/venv-triton, reused when it already works) with the PyPI
#    wheel nvidia-pytriton==0.7.0: it ships tritonserver 2.51 (with its own
#    libraries; it starts CPU-only without a GPU) and tritonclient.
# 2. cargo build --release: the backend (-p voxide-triton) and the CLI.
# 3. A model repository in target/triton/models: `voxide` (the CONTRACT's
#    config exactly), `voxide_opts` (the same with the optional inputs) and
#    `voxide_stream` (the latter, decoupled); the backend installed as
#    target/triton/backends/voxide/libtriton_voxide.so.
# 4. Two tritonservers on free loopback ports (server B in explicit model
#    control, for unload/reload), killed on exit.
# 5. scripts/triton-client.py: the checks (PASS/FAIL each, a summary; see its
#    header). The exit status is theirs.
#
# Server logs: target/triton/server-{a,b}.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=${VOXIDE_TRITON_VENV:-$root/target/venv-triton}
work=$root/target/triton
voice=$root/voices/en_US-joe-medium.onnx
start=$SECONDS

t=$SECONDS
if ! "$venv/bin/python" -c 'import pytriton, tritonclient.grpc, tritonclient.http' 2>/dev/null; then
    echo "test-triton: installing nvidia-pytriton==0.7.0 into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check nvidia-pytriton==0.7.0
fi
echo "test-triton: venv ready in $((SECONDS - t)) s ($(du -sh "$venv" | cut -f1))"
tritonserver=$("$venv/bin/python" -c 'import os, pytriton; print(os.path.join(os.path.dirname(pytriton.__file__), "tritonserver", "bin", "tritonserver"))')
[ -x "$tritonserver" ] || { echo "test-triton: no tritonserver at $tritonserver" >&2; exit 1; }

t=$SECONDS
cargo build --release --quiet -p voxide-triton
cargo build --release --quiet --bin voxide
echo "test-triton: built in $((SECONDS - t)) s"
[ -f "$voice" ] || bash scripts/fetch-voice.sh

rm -rf "$work"
mkdir -p "$work/backends/voxide"
cp target/release/libtriton_voxide.so "$work/backends/voxide/"

# model NAME DECOUPLED(0|1) OPTIONAL_INPUTS(0|1)
model() {
    local dir="$work/models/$1"
    mkdir -p "$dir/1"
    {
        echo 'backend: "voxide"'
        echo 'max_batch_size: 0'
        echo "parameters { key: \"voice\" value { string_value: \"$voice\" } }"
        if [ "$3" = 1 ]; then
            echo 'input ['
            echo '  { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] },'
            echo '  { name: "SPEAKER" data_type: TYPE_INT32 dims: [ 1 ] optional: true },'
            echo '  { name: "LENGTH_SCALE" data_type: TYPE_FP32 dims: [ 1 ] optional: true },'
            echo '  { name: "SEED" data_type: TYPE_INT64 dims: [ 1 ] optional: true },'
            echo '  { name: "INPUT_TYPE" data_type: TYPE_STRING dims: [ 1 ] optional: true }'
            echo ']'
        else
            echo 'input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]'
        fi
        echo 'output ['
        echo '  { name: "AUDIO" data_type: TYPE_FP32 dims: [ -1 ] },'
        echo '  { name: "SAMPLE_RATE" data_type: TYPE_INT32 dims: [ 1 ] }'
        echo ']'
        echo 'instance_group [ { kind: KIND_CPU count: 2 } ]'
        [ "$2" = 0 ] || echo 'model_transaction_policy { decoupled: true }'
    } > "$dir/config.pbtxt"
}
model voxide 0 0
model voxide_opts 0 1
model voxide_stream 1 1

# Six free loopback ports.
read -r -a ports <<< "$("$venv/bin/python" -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()')"

pids=()
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# serve NAME HTTP GRPC METRICS [extra args]
serve() {
    local name=$1 http=$2 grpc=$3 metrics=$4
    shift 4
    "$tritonserver" --model-repository="$work/models" --backend-directory="$work/backends" \
        --http-address=127.0.0.1 --http-port="$http" \
        --grpc-address=127.0.0.1 --grpc-port="$grpc" \
        --metrics-address=127.0.0.1 --metrics-port="$metrics" \
        --exit-timeout-secs=10 "$@" > "$work/server-$name.log" 2>&1 &
    pids+=($!)
}
serve a "${ports[0]}" "${ports[1]}" "${ports[2]}"
pid_a=${pids[0]}
serve b "${ports[3]}" "${ports[4]}" "${ports[5]}" --model-control-mode=explicit --load-model='*'
pid_b=${pids[1]}
echo "test-triton: server A pid $pid_a ports ${ports[*]:0:3}; server B pid $pid_b ports ${ports[*]:3:3}"

rc=0
timeout 900 "$venv/bin/python" scripts/triton-client.py \
    --a "127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]},$pid_a" \
    --b "127.0.0.1:${ports[3]},127.0.0.1:${ports[4]},127.0.0.1:${ports[5]},$pid_b" \
    --voxide "$root/target/release/voxide" --voice "$voice" --work "$work" || rc=$?
if grep -n 'panicked' "$work"/server-*.log; then
    echo "test-triton: FAIL a panic is in the server logs"
    rc=1
fi
echo "test-triton: $((SECONDS - start)) s in all"
exit $rc
