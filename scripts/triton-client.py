#!/usr/bin/env python3
"""The checks of the Triton backend against two running tritonservers.

Started by scripts/test-triton.sh, which writes the model repository
(`voxide`: the CONTRACT config; `voxide_opts`: with the optional inputs;
`voxide_stream`: the same, decoupled) and starts server A (all models) and
server B (explicit model control). Every check prints PASS or FAIL; the exit
status is 1 when any failed. Every wait is bounded.

  ready       both servers and all models ready
  equal       plain HTTP and gRPC infer, gRPC streaming and HTTP
              generate_stream: AUDIO equal to `voxide speak --raw` for the
              same text and seed, SAMPLE_RATE the voice's, streams in
              chunks (several for a long text) ending with the final flag
  concurrent  24 requests at once over both servers and all four ways
  bad-input   missing TEXT, wrong type, wrong shape, invalid UTF-8, empty
              text, unknown speaker, bad INPUT_TYPE, LENGTH_SCALE, SEED:
              error responses (on a stream too), and then the servers serve
  cancel      a long gRPC stream cancelled after its first chunk stops
              (Triton counts it as a failure within seconds)
  reload      server B: unload and load `voxide` twice, clean each time
  rss         1,000 short requests: server A's RSS grows less than 10 MiB
              after warm-up
  metrics     Triton's nv_inference_request_success for `voxide` on server
              A equals the successful requests sent to it
  alive       both server processes still run
"""

import argparse
import concurrent.futures as cf
import json
import os
import queue
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

TIMEOUT = 120.0  # seconds for any one request or stream
LONG = (
    "The quick brown fox jumps over the lazy dog. It was a bright cold day in "
    "April, and the clocks were striking thirteen."
)
SHORT = "Hello world."

results = []


def check(name, ok, detail=""):
    results.append((name, bool(ok)))
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    return ok


class Server:
    def __init__(self, spec, label):
        http, grpc, metrics, pid = spec.split(",")
        self.http, self.grpc, self.metrics, self.pid, self.label = http, grpc, metrics, int(pid), label

    def http_client(self):
        return httpclient.InferenceServerClient(self.http, network_timeout=TIMEOUT, connection_timeout=10)

    def grpc_client(self):
        return grpcclient.InferenceServerClient(self.grpc)

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def alive(self):
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        with open(f"/proc/{self.pid}/status") as f:
            return "zombie" not in f.read()

    def metric(self, name, model):
        with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=10) as r:
            text = r.read().decode()
        # Summed over the other labels (the failure counter has one line per
        # reason: REJECTED, CANCELED, BACKEND, OTHER).
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") and f'model="{model}"' in line
        ]
        return sum(values) if values else None


def reference(cli, voice, work, text, seed):
    path = os.path.join(work, f"ref-{abs(hash((text, seed)))}.f32")
    subprocess.run(
        [cli, "speak", "--voice", voice, "--text", text, "--seed", str(seed), "--raw", path],
        check=True,
        timeout=TIMEOUT,
        capture_output=True,
    )
    return np.fromfile(path, dtype="<f4")


def http_inputs(text_bytes, seed=None, **extra):
    ins = []
    t = httpclient.InferInput("TEXT", [1], "BYTES")
    t.set_data_from_numpy(np.array([text_bytes], dtype=object))
    ins.append(t)
    if seed is not None:
        s = httpclient.InferInput("SEED", [1], "INT64")
        s.set_data_from_numpy(np.array([seed], dtype=np.int64))
        ins.append(s)
    for name, (dtype, value) in extra.items():
        i = httpclient.InferInput(name, [1], dtype)
        arr = np.array([value], dtype=object if dtype == "BYTES" else np.dtype(dtype.lower().replace("fp", "float")))
        i.set_data_from_numpy(arr)
        ins.append(i)
    return ins


def grpc_inputs(text_bytes, seed=None, **extra):
    ins = []
    t = grpcclient.InferInput("TEXT", [1], "BYTES")
    t.set_data_from_numpy(np.array([text_bytes], dtype=object))
    ins.append(t)
    if seed is not None:
        s = grpcclient.InferInput("SEED", [1], "INT64")
        s.set_data_from_numpy(np.array([seed], dtype=np.int64))
        ins.append(s)
    for name, (dtype, value) in extra.items():
        i = grpcclient.InferInput(name, [1], dtype)
        arr = np.array([value], dtype=object if dtype == "BYTES" else np.dtype(dtype.lower().replace("fp", "float")))
        i.set_data_from_numpy(arr)
        ins.append(i)
    return ins


def plain_http(server, model, text, seed=None):
    r = server.http_client().infer(model, http_inputs(text.encode(), seed), timeout=int(TIMEOUT * 1e6))
    return r.as_numpy("AUDIO"), int(r.as_numpy("SAMPLE_RATE")[0]), 1, True


def plain_grpc(server, model, text, seed=None):
    r = server.grpc_client().infer(model, grpc_inputs(text.encode(), seed), client_timeout=TIMEOUT)
    return r.as_numpy("AUDIO"), int(r.as_numpy("SAMPLE_RATE")[0]), 1, True


def grpc_stream(server, text, seed=None, inputs=None, model="voxide_stream"):
    """(audio, rate, chunks, final flag seen); raises on an error response."""
    client = server.grpc_client()
    q = queue.Queue()
    client.start_stream(callback=lambda result, error: q.put((result, error)))
    chunks, rates, final = [], set(), False
    try:
        client.async_stream_infer(
            model,
            inputs if inputs is not None else grpc_inputs(text.encode(), seed),
            enable_empty_final_response=True,
        )
        deadline = time.monotonic() + TIMEOUT
        while not final:
            result, error = q.get(timeout=max(0.1, deadline - time.monotonic()))
            if error is not None:
                raise RuntimeError(str(error))
            audio = result.as_numpy("AUDIO")
            if audio is not None:
                chunks.append(audio)
                rates.add(int(result.as_numpy("SAMPLE_RATE")[0]))
            params = result.get_response().parameters
            final = "triton_final_response" in params and params["triton_final_response"].bool_param
    finally:
        client.stop_stream()
        client.close()
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return audio, (rates.pop() if len(rates) == 1 else -1), len(chunks), final


def http_generate_stream(server, text, seed=None):
    body = {"TEXT": text}
    if seed is not None:
        body["SEED"] = seed
    req = urllib.request.Request(
        f"http://{server.http}/v2/models/voxide_stream/generate_stream",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    chunks, rates = [], set()
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if "error" in event:
                raise RuntimeError(event["error"])
            chunks.append(np.array(event["AUDIO"], dtype=np.float32))
            rate = event["SAMPLE_RATE"]
            rates.add(int(rate[0] if isinstance(rate, list) else rate))
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    # The HTTP stream ended (chunked transfer closed): the final flag.
    return audio, (rates.pop() if len(rates) == 1 else -1), len(chunks), True


def same(audio, ref):
    return audio is not None and audio.shape == ref.shape and np.array_equal(audio.astype("<f4"), ref)


def describe(audio, ref):
    if audio is None:
        return "no AUDIO"
    if audio.shape != ref.shape:
        return f"{audio.shape[0]} samples, expected {ref.shape[0]}"
    return f"max |diff| {float(np.max(np.abs(audio - ref))):.3g}"


def expect_error(name, fn, *needles):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any client error is the expected answer
        msg = str(e)
        ok = all(n.lower() in msg.lower() for n in needles)
        return check(name, ok, msg.splitlines()[0][:160] if msg else type(e).__name__)
    return check(name, False, "no error")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--a", required=True, help="http,grpc,metrics,pid of server A")
    p.add_argument("--b", required=True, help="the same for server B (explicit model control)")
    p.add_argument("--voxide", required=True)
    p.add_argument("--voice", required=True)
    p.add_argument("--work", required=True)
    args = p.parse_args()
    a, b = Server(args.a, "A"), Server(args.b, "B")
    t0 = time.monotonic()
    success_a_voxide = 0  # successful requests to model `voxide` on server A

    # ready
    deadline = time.monotonic() + 180
    ready = False
    while time.monotonic() < deadline and not ready:
        try:
            ready = all(
                s.http_client().is_server_ready() and s.http_client().is_model_ready(m)
                for s in (a, b)
                for m in ("voxide", "voxide_opts", "voxide_stream")
            )
        except Exception:  # noqa: BLE001 - not up yet
            ready = False
        if not ready:
            if not (a.alive() and b.alive()):
                break
            time.sleep(0.5)
    if not check("ready: both servers and their three models", ready, f"{time.monotonic() - t0:.1f} s"):
        return finish(t0)

    refs = {}
    for text, seed in ((LONG, 0), (SHORT, 0), (SHORT, 7), (LONG, 3), ("Hi.", 0)):
        refs[(text, seed)] = reference(args.voxide, args.voice, args.work, text, seed)
    rate = 22050

    # equal
    audio, r, _, _ = plain_http(a, "voxide", LONG)
    success_a_voxide += 1
    check("equal: plain HTTP infer (CONTRACT config) = voxide speak --raw", same(audio, refs[(LONG, 0)]) and r == rate,
          f"{describe(audio, refs[(LONG, 0)])}, rate {r}")
    audio, r, _, _ = plain_grpc(b, "voxide_opts", SHORT, seed=7)
    check("equal: plain gRPC infer with SEED 7", same(audio, refs[(SHORT, 7)]) and r == rate,
          describe(audio, refs[(SHORT, 7)]))
    audio, r, n, final = grpc_stream(a, LONG, seed=3)
    check("equal: gRPC stream, chunks in order = whole, final flag",
          same(audio, refs[(LONG, 3)]) and r == rate and n >= 2 and final,
          f"{n} chunks, {describe(audio, refs[(LONG, 3)])}, final {final}")
    audio, r, n, _ = http_generate_stream(b, LONG, seed=3)
    check("equal: HTTP generate_stream, chunks in order = whole", same(audio, refs[(LONG, 3)]) and r == rate and n >= 2,
          f"{n} chunks, {describe(audio, refs[(LONG, 3)])}")

    # concurrent
    ways = [
        ("plain HTTP", lambda s, t, sd: plain_http(s, "voxide_opts", t, sd)),
        ("plain gRPC", lambda s, t, sd: plain_grpc(s, "voxide_opts", t, sd)),
        ("gRPC stream", lambda s, t, sd: grpc_stream(s, t, sd)),
        ("HTTP generate_stream", lambda s, t, sd: http_generate_stream(s, t, sd)),
    ]
    jobs = []
    for i in range(24):
        name, fn = ways[i % 4]
        server = (a, b)[(i // 4) % 2]
        # Every way meets every text (the index runs ahead by one each round of four).
        text, seed = [(LONG, 0), (SHORT, 7), (SHORT, 0), (LONG, 3)][(i + i // 4) % 4]
        jobs.append((f"{name} on {server.label}", fn, server, text, seed))
    bad = []
    t = time.monotonic()
    with cf.ThreadPoolExecutor(12) as pool:
        futs = {pool.submit(fn, s, text, seed): (label, text, seed) for label, fn, s, text, seed in jobs}
        for f in cf.as_completed(futs, timeout=TIMEOUT * 3):
            label, text, seed = futs[f]
            try:
                audio, r, _, final = f.result()
                if not (same(audio, refs[(text, seed)]) and r == rate and final):
                    bad.append(f"{label}: {describe(audio, refs[(text, seed)])}")
            except Exception as e:  # noqa: BLE001 - reported as a failure
                bad.append(f"{label}: {e}")
    check("concurrent: 24 requests over both servers, four ways, all equal", not bad,
          f"{time.monotonic() - t:.1f} s" + ("; " + "; ".join(bad[:3]) if bad else ""))

    # bad input
    ha = a.http_client()
    opts = "voxide_opts"

    def infer(inputs, model=opts):
        return ha.infer(model, inputs, timeout=int(TIMEOUT * 1e6))

    def only(name, dtype, shape, arr):
        i = httpclient.InferInput(name, shape, dtype)
        i.set_data_from_numpy(arr)
        return i

    expect_error("bad-input: missing TEXT", lambda: infer([only("SEED", "INT64", [1], np.array([1], np.int64))]), "TEXT")
    expect_error("bad-input: TEXT as INT32", lambda: infer([only("TEXT", "INT32", [1], np.array([5], np.int32))]), "TEXT")
    expect_error("bad-input: TEXT as FP32", lambda: infer([only("TEXT", "FP32", [1], np.array([5], np.float32))]), "TEXT")
    expect_error("bad-input: TEXT of shape [2]",
                 lambda: infer([only("TEXT", "BYTES", [2], np.array([b"a", b"b"], dtype=object))]), "TEXT")
    expect_error("bad-input: invalid UTF-8", lambda: infer(http_inputs(b"Hi \xff\xfe there.")), "UTF-8")
    expect_error("bad-input: empty text", lambda: infer(http_inputs(b"")), "empty")
    expect_error("bad-input: blank text (CONTRACT model)", lambda: infer(http_inputs(b"   "), "voxide"), "empty")
    expect_error("bad-input: unknown speaker", lambda: infer(http_inputs(b"Hi.", SPEAKER=("INT32", 5))), "speaker")
    expect_error("bad-input: unknown INPUT_TYPE",
                 lambda: infer(http_inputs(b"Hi.", INPUT_TYPE=("BYTES", b"klingon"))), "INPUT_TYPE")
    expect_error("bad-input: LENGTH_SCALE -1", lambda: infer(http_inputs(b"Hi.", LENGTH_SCALE=("FP32", -1.0))), "LENGTH_SCALE")
    expect_error("bad-input: negative SEED", lambda: infer(http_inputs(b"Hi.", seed=-3)), "SEED")
    expect_error("bad-input: invalid SSML",
                 lambda: infer(http_inputs(b"<speak>unclosed", INPUT_TYPE=("BYTES", b"ssml"))), "ssml")
    expect_error("bad-input: invalid UTF-8 on a gRPC stream",
                 lambda: grpc_stream(b, None, inputs=grpc_inputs(b"\xc3\x28 bad")), "UTF-8")
    expect_error("bad-input: empty text on a gRPC stream", lambda: grpc_stream(a, None, inputs=grpc_inputs(b"")), "empty")
    expect_error("bad-input: plain infer on the decoupled model",
                 lambda: infer(http_inputs(b"Hi."), "voxide_stream"), "decoupled")
    ok_after = True
    for s in (a, b):
        audio, _, _, final = grpc_stream(s, SHORT, seed=7)
        ok_after &= same(audio, refs[(SHORT, 7)]) and final
        audio, _, _, _ = plain_http(s, "voxide", SHORT)
        ok_after &= same(audio, refs[(SHORT, 0)])
        if s is a:
            success_a_voxide += 1
    check("bad-input: then both servers still serve, equal audio", ok_after and a.alive() and b.alive())

    # cancel: a long stream cancelled after its first chunk ends as a failure
    # (the backend stopped) within seconds, not as a success minutes later
    before = (a.metric("nv_inference_request_failure", "voxide_stream") or 0,
              a.metric("nv_inference_request_success", "voxide_stream") or 0)
    client = a.grpc_client()
    q = queue.Queue()
    client.start_stream(callback=lambda result, error: q.put((result, error)))
    client.async_stream_infer("voxide_stream", grpc_inputs((LONG + " ") .encode() * 20), enable_empty_final_response=True)
    first = q.get(timeout=TIMEOUT)
    client.stop_stream(cancel_requests=True)
    client.close()
    deadline = time.monotonic() + 10
    after = before
    while time.monotonic() < deadline and after[0] == before[0]:
        time.sleep(0.2)
        after = (a.metric("nv_inference_request_failure", "voxide_stream") or 0,
                 a.metric("nv_inference_request_success", "voxide_stream") or 0)
    check("cancel: a cancelled stream stops in the backend",
          first[1] is None and after[0] == before[0] + 1 and after[1] == before[1] and a.alive(),
          f"failures {before[0]:.0f} -> {after[0]:.0f}, successes {before[1]:.0f} -> {after[1]:.0f}")

    # reload
    hb = b.http_client()
    reload_ok, detail = True, []
    for cycle in range(2):
        hb.unload_model("voxide")
        deadline = time.monotonic() + 60
        while hb.is_model_ready("voxide") and time.monotonic() < deadline:
            time.sleep(0.2)
        gone = not hb.is_model_ready("voxide")
        try:
            plain_http(b, "voxide", SHORT)
            refused = False
        except Exception:  # noqa: BLE001 - expected: the model is unloaded
            refused = True
        t = time.monotonic()
        hb.load_model("voxide")
        audio, _, _, _ = plain_http(b, "voxide", SHORT)
        good = same(audio, refs[(SHORT, 0)])
        reload_ok &= gone and refused and good and b.alive()
        detail.append(f"cycle {cycle + 1}: unloaded {gone}, refused {refused}, reloaded in {time.monotonic() - t:.1f} s, equal {good}")
    check("reload: unload and load `voxide` on server B", reload_ok, "; ".join(detail))

    # rss
    def hammer(n, threads=4):
        def worker(k):
            c = a.grpc_client()
            ok = 0
            for _ in range(k):
                r = c.infer("voxide", grpc_inputs(b"Hi."), client_timeout=TIMEOUT)
                ok += same(r.as_numpy("AUDIO"), refs[("Hi.", 0)])
            c.close()
            return ok

        with cf.ThreadPoolExecutor(threads) as pool:
            return sum(pool.map(worker, [n // threads] * threads))

    ok = hammer(200)
    success_a_voxide += 200
    rss0 = a.rss_kib()
    t = time.monotonic()
    ok2 = hammer(1000)
    success_a_voxide += 1000
    took = time.monotonic() - t
    rss1 = a.rss_kib()
    growth = (rss1 - rss0) / 1024
    check("rss: 1,000 requests after 200 warm-up, RSS growth < 10 MiB",
          ok == 200 and ok2 == 1000 and growth < 10,
          f"{ok2}/1000 equal in {took:.1f} s ({1000 / took:.0f} req/s); RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB ({growth:+.1f})")

    # metrics
    deadline = time.monotonic() + 10
    count = None
    while time.monotonic() < deadline:
        count = a.metric("nv_inference_request_success", "voxide")
        if count == success_a_voxide:
            break
        time.sleep(0.5)
    failures = a.metric("nv_inference_request_failure", "voxide_opts")
    check("metrics: nv_inference_request_success{model=voxide} on A counts the requests",
          count == success_a_voxide and failures is not None and failures >= 8,
          f"{count} (sent {success_a_voxide}); voxide_opts failures {failures}")

    check("alive: both servers still running", a.alive() and b.alive())
    return finish(t0)


def finish(t0):
    failed = [n for n, ok in results if not ok]
    print(f"triton-client: {len(results) - len(failed)} passed, {len(failed)} failed in {time.monotonic() - t0:.0f} s")
    for n in failed:
        print(f"  FAILED {n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
