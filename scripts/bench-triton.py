#!/usr/bin/env python3
"""Throughput and time to first audio through Triton beside the in-process
engine, in the same run (a measurement, not a test; docs/triton.md).

For each N in --ns: N requests at once, --repeat times. Through Triton:
gRPC streams to a decoupled `voxide` model (instance count = max N, so N run
at once; TTFA = request sent to first AUDIO response received). In process:
`voxide bench --concurrency N` (its own TTFA: request start to first chunk),
with --direct unless --scheduler. Throughput is audio seconds per second of
wall time (xRT summed over the N requests).

    target/venv-triton/bin/python scripts/bench-triton.py            # N = 1 4 16
    target/venv-triton/bin/python scripts/bench-triton.py --scheduler

Needs `cargo build --release -p voxide-triton --bin voxide` and the venv of
scripts/test-triton.sh. Prints a Markdown table (also written to
target/bench-triton.md) and the raw figures as JSON.
"""

import argparse
import concurrent.futures as cf
import json
import os
import platform
import queue
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import pytriton
import tritonclient.grpc as grpcclient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "The quick brown fox jumps over the lazy dog. A bright morning light filled the quiet room."


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def percentile(xs, q):
    return float(np.percentile(np.array(xs), q)) if xs else float("nan")


def stream_once(url):
    """(ttfa_s, audio_samples, rate, total_s) of one gRPC stream."""
    client = grpcclient.InferenceServerClient(url)
    q = queue.Queue()
    client.start_stream(callback=lambda result, error: q.put((result, error, time.perf_counter())))
    text = grpcclient.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([TEXT.encode()], dtype=object))
    t0 = time.perf_counter()
    client.async_stream_infer("voxide_stream", [text], enable_empty_final_response=True)
    first, samples, rate = None, 0, 0
    while True:
        r, e, t = q.get(timeout=120)
        if e is not None:
            raise RuntimeError(str(e))
        audio = r.as_numpy("AUDIO")
        if audio is not None:
            first = first if first is not None else t - t0
            samples += audio.shape[0]
            rate = int(r.as_numpy("SAMPLE_RATE")[0])
        params = r.get_response().parameters
        if "triton_final_response" in params and params["triton_final_response"].bool_param:
            break
    total = time.perf_counter() - t0
    client.stop_stream()
    client.close()
    return first, samples, rate, total


def triton_round(url, n):
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(n) as pool:
        outs = list(pool.map(lambda _: stream_once(url), range(n)))
    wall = time.perf_counter() - t0
    audio_s = sum(s / r for _, s, r, _ in outs)
    return [o[0] for o in outs], audio_s / wall


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ns", default="1,4,16")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--scheduler", action="store_true", help="the engine's batching scheduler on both sides")
    p.add_argument("--voice", default=os.path.join(ROOT, "voices", "en_US-joe-medium.onnx"))
    args = p.parse_args()
    ns = [int(x) for x in args.ns.split(",")]
    cli = os.path.join(ROOT, "target", "release", "voxide")
    lib = os.path.join(ROOT, "target", "release", "libtriton_voxide.so")
    work = tempfile.mkdtemp(prefix="bench-triton-", dir=os.path.join(ROOT, "target"))
    os.makedirs(os.path.join(work, "backends", "voxide"))
    os.makedirs(os.path.join(work, "models", "voxide_stream", "1"))
    subprocess.run(["cp", lib, os.path.join(work, "backends", "voxide")], check=True)
    with open(os.path.join(work, "models", "voxide_stream", "config.pbtxt"), "w") as f:
        f.write(
            f"""backend: "voxide"
max_batch_size: 0
parameters {{ key: "voice" value {{ string_value: "{args.voice}" }} }}
parameters {{ key: "scheduler" value {{ string_value: "{'on' if args.scheduler else 'off'}" }} }}
input [ {{ name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] }} ]
output [
  {{ name: "AUDIO" data_type: TYPE_FP32 dims: [ -1 ] }},
  {{ name: "SAMPLE_RATE" data_type: TYPE_INT32 dims: [ 1 ] }}
]
instance_group [ {{ kind: KIND_CPU count: {max(ns)} }} ]
model_transaction_policy {{ decoupled: true }}
"""
        )
    http, grpc, metrics = free_ports(3)
    server = os.path.join(os.path.dirname(pytriton.__file__), "tritonserver", "bin", "tritonserver")
    log = open(os.path.join(work, "server.log"), "w")
    proc = subprocess.Popen(
        [server, f"--model-repository={work}/models", f"--backend-directory={work}/backends",
         "--http-address=127.0.0.1", f"--http-port={http}", "--grpc-address=127.0.0.1",
         f"--grpc-port={grpc}", "--metrics-address=127.0.0.1", f"--metrics-port={metrics}",
         "--exit-timeout-secs=5"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    rows, raw = [], {"triton": {}, "in_process": {}}
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/models/voxide_stream/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.time() > deadline or proc.poll() is not None:
                sys.exit("bench-triton: the server did not become ready (see " + log.name + ")")
            time.sleep(0.5)
        url = f"127.0.0.1:{grpc}"
        stream_once(url)  # warm-up
        text_file = os.path.join(work, "text.txt")
        with open(text_file, "w") as f:
            f.write(TEXT + "\n")
        for n in ns:
            ttfas, xrts = [], []
            for _ in range(args.repeat):
                t, x = triton_round(url, n)
                ttfas += t
                xrts.append(x)
            tr = {"xrt": float(np.median(xrts)), "ttfa_p50_ms": percentile(ttfas, 50) * 1e3,
                  "ttfa_p99_ms": percentile(ttfas, 99) * 1e3, "samples": len(ttfas)}
            cmd = [cli, "bench", "--voice", args.voice, "--text-file", text_file, "--concurrency", str(n),
                   "--repeat", str(args.repeat), "--json"]
            if not args.scheduler:
                cmd.append("--direct")
            ip = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            raw["triton"][n], raw["in_process"][n] = tr, ip
            rows.append(
                f"| {n} | {tr['xrt']:.2f} | {tr['ttfa_p50_ms']:.0f} | {tr['ttfa_p99_ms']:.0f} "
                f"| {ip['xrt']:.2f} | {ip['ttfa_p50_ms']:.0f} | {ip['ttfa_p99_ms']:.0f} |"
            )
            print(rows[-1], flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    head = (
        f"{os.cpu_count()} vCPUs ({cpu}), {platform.system()}; engine "
        f"{'with' if args.scheduler else 'without'} the batching scheduler; text {len(TEXT)} characters "
        f"(two sentences); {args.repeat} rounds per N\n\n"
        "| streams | Triton xRT | Triton TTFA p50 ms | Triton TTFA p99 ms "
        "| in-process xRT | in-process TTFA p50 ms | in-process TTFA p99 ms |\n"
        "|---:|---:|---:|---:|---:|---:|---:|"
    )
    table = head + "\n" + "\n".join(rows) + "\n"
    print()
    print(table)
    print(json.dumps(raw))
    with open(os.path.join(ROOT, "target", "bench-triton.md"), "a") as f:
        f.write(table + "\n")
    subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    main()
