#!/usr/bin/env python3
"""Benchmark (not a test): what `voxide serve` adds over the in-process engine.

Same binary, same voice, same machine, one run:
  - TTFA: the in-process engine's (`voxide bench --concurrency 1 --direct`,
    median time to the first chunk of a request) against the server's
    (median time from sending a streamed pcm request to its first body byte,
    over loopback, one request at a time).
  - Throughput at concurrency = permits: audio seconds per wall second of
    `voxide bench --concurrency P --direct` against P clients each sending
    the same text to a server with --max-concurrent P.
Prints one JSON object. Usage: bench-server.py [PERMITS] [REPEAT]
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.path.join(root, "target/release/voxide")
voice = os.environ.get("VOXIDE_VOICE", os.path.join(root, "voices/en_US-joe-medium.onnx"))
permits = int(sys.argv[1]) if len(sys.argv) > 1 else 2
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 10
TEXT = "The quick brown fox jumps over the lazy dog. It was a bright cold day in April."


def engine(conc):
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(TEXT)
        f.flush()
        out = subprocess.run(
            [binary, "bench", "--voice", voice, "--text-file", f.name, "--concurrency", str(conc),
             "--direct", "--repeat", str(repeat), "--json"],
            capture_output=True, text=True, check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def post(port, body):
    """(seconds to the first body byte, body bytes)."""
    data = json.dumps(body).encode()
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
    buf = b""
    first = None
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        if first is None and b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            if rest:
                first = time.perf_counter() - t0
    s.close()
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    # Chunked framing: count the payload only.
    audio, b = 0, rest
    while b:
        line, b = b.split(b"\r\n", 1)
        n = int(line, 16)
        if n == 0:
            break
        audio += n
        b = b[n + 2:]
    return first, audio


def main():
    # The engine is measured before and after the server (the mean), so a
    # machine whose load changes during the run skews both sides alike.
    before = (engine(1), engine(permits))
    srv = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1:0", "--voice", voice,
                            "--max-concurrent", str(permits), "--queue", "64"],
                           stderr=subprocess.PIPE, text=True)
    port = None
    for line in srv.stderr:
        if line.startswith("listening on http://"):
            port = int(line.strip().rsplit(":", 1)[1])
            break
    threading.Thread(target=srv.stderr.read, daemon=True).start()
    try:
        body = {"model": "tts-1", "input": TEXT, "response_format": "pcm"}
        post(port, body)  # warm-up
        ttfa = [post(port, body)[0] for _ in range(repeat)]
        results = []

        def client():
            for _ in range(repeat):
                results.append(post(port, body)[1])

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(permits)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        server_xrt = sum(results) / 2 / 22050 / wall
    finally:
        srv.terminate()
        srv.wait()
    after = (engine(1), engine(permits))
    one = {"ttfa_p50_ms": (before[0]["ttfa_p50_ms"] + after[0]["ttfa_p50_ms"]) / 2}
    many = {"xrt": (before[1]["xrt"] + after[1]["xrt"]) / 2}
    out = {
        "permits": permits,
        "repeat": repeat,
        "engine_ttfa_ms": one["ttfa_p50_ms"],
        "server_ttfa_ms": statistics.median(ttfa) * 1e3,
        "server_ttfa_overhead_ms": statistics.median(ttfa) * 1e3 - one["ttfa_p50_ms"],
        "engine_xrt": many["xrt"],
        "server_xrt": server_xrt,
        "throughput_ratio": server_xrt / many["xrt"],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out))


main()
