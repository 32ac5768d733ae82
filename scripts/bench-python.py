#!/usr/bin/env python3
"""Python-side overhead of the `voxide` package against the Rust engine, in
one run: the same text, voice, device and threads through

  - Rust: `voxide bench --concurrency 1 --direct --json` (its `wall_whole_s`:
    `Engine::speak_with`; `ttfa_p50_ms`: first chunk of `speak_stream`;
    `wall_s`: a whole streamed request), medians of --repeat;
  - Python: `engine.speak` (the call, numpy view included), the first chunk
    of `engine.stream` (from the call to the chunk in hand) and the whole
    stream, medians of --repeat after one warm-up.

    target/venv-python/bin/python scripts/bench-python.py [--repeat 5] [--rounds 3] [--device cpu]

Prints one JSON object with both sides, the ratios (Python / Rust), and
the Python layer's fixed cost per call (`binding_fixed_us`: empty requests,
no synthesis), which is what the ratios converge to on a quiet machine.
Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import voxide

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "Voxide speaks this sentence from Python and from Rust, and the difference is the overhead."
)


def rust_bench(cli: str, voice: str, text: str, device: str, threads: int, repeat: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(text)
        f.flush()
        out = subprocess.run(
            [cli, "bench", "--voice", voice, "--device", device, "--threads", str(threads),
             "--text-file", f.name, "--repeat", str(repeat), "--concurrency", "1", "--direct", "--json"],
            check=True, capture_output=True, text=True,
        ).stdout
    return json.loads(out.strip().splitlines()[-1])


def python_bench(engine: voxide.Engine, text: str, repeat: int) -> dict:
    engine.speak(text)  # warm-up
    speak, first, whole = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        audio = engine.speak(text)
        _ = audio.samples
        speak.append(time.perf_counter() - t0)
    for _ in range(repeat):
        t0 = time.perf_counter()
        stream = engine.stream(text)
        n = len(next(stream))
        first.append(time.perf_counter() - t0)
        for chunk in stream:
            n += len(chunk)
        whole.append(time.perf_counter() - t0)
    return {
        "audio_s": len(audio) / audio.sample_rate,
        "speak_s": statistics.median(speak),
        "first_chunk_ms": statistics.median(first) * 1e3,
        "stream_s": statistics.median(whole),
    }


def binding_cost(engine: voxide.Engine, calls: int = 2000) -> dict:
    """The fixed per-call cost of the Python layer, free of synthesis time:
    requests with empty text (argument parsing, permit, GIL release and
    re-acquire, the Audio object and its numpy view; for a stream also its
    thread and channel, and the end of the iterator). The engine's own work
    for an empty request is a few microseconds."""

    def per_call(f) -> float:
        for _ in range(100):
            f()
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        return (time.perf_counter() - t0) / calls * 1e6

    return {
        "speak_us": per_call(lambda: engine.speak("").samples),
        "stream_us": per_call(lambda: list(engine.stream(""))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voice", default=str(ROOT / "voices" / "en_US-joe-medium.onnx"))
    ap.add_argument("--cli", default=str(ROOT / "target" / "release" / "voxide"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="alternating Rust/Python rounds")
    ap.add_argument("--text", default=TEXT)
    args = ap.parse_args()

    engine = voxide.Engine(args.voice, device=args.device, threads=args.threads, max_concurrent=1)
    # Rounds of Rust then Python, alternating (the load of a shared machine
    # drifts); each figure is the median over the rounds of their medians.
    rs, ps = [], []
    for _ in range(args.rounds):
        r = rust_bench(args.cli, args.voice, args.text, args.device, args.threads, args.repeat)
        rs.append({"speak_s": r["wall_whole_s"], "first_chunk_ms": r["ttfa_p50_ms"], "stream_s": r["wall_s"]})
        ps.append(python_bench(engine, args.text, args.repeat))
    rust = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    py = {k: statistics.median(p[k] for p in ps) for k in ps[0]}
    fixed = binding_cost(engine)
    result = {
        "device": engine.device,
        "threads": engine.threads,
        "repeat": args.repeat,
        "rounds": args.rounds,
        "audio_s": py["audio_s"],
        "rust": rust,
        "python": {k: py[k] for k in rust},
        "ratio": {k: py[k] / rust[k] for k in rust},
        "binding_fixed_us": fixed,
        "overhead_ms": {
            "speak": (py["speak_s"] - rust["speak_s"]) * 1e3,
            "first_chunk": py["first_chunk_ms"] - rust["first_chunk_ms"],
            "stream": (py["stream_s"] - rust["stream_s"]) * 1e3,
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
