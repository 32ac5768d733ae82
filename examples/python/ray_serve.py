"""A Ray Serve deployment of voxide: 2 replicas, each with its own engine,
behind Serve's HTTP proxy; POST text to /speak, get a WAV back.

    pip install "ray[serve]"
    python examples/python/ray_serve.py            # serve on 127.0.0.1:8000 until Ctrl-C
    python examples/python/ray_serve.py --smoke    # start, check both replicas answer, stop

Each replica uses `aspeak`, so a replica keeps accepting requests while
one is synthesized (up to its engine's permits).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import sys
import time
import urllib.request

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

ROOT = pathlib.Path(__file__).resolve().parents[2]


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.5})
class Speaker:
    def __init__(self, voice: str, threads: int) -> None:
        import voxide

        self.voxide = voxide
        self.engine = voxide.Engine(voice, max_concurrent=2, threads=threads)

    async def __call__(self, request: Request) -> Response:
        text = (await request.body()).decode() or request.query_params.get("text", "")
        try:
            audio = await self.engine.aspeak(text, seed=int(request.query_params.get("seed", 0)))
        except self.voxide.Error as e:
            return JSONResponse({"error": str(e), "kind": type(e).__name__}, status_code=400)
        return Response(
            audio.to_bytes("wav"),
            media_type="audio/wav",
            headers={"x-replica-pid": str(os.getpid())},
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, text: str, timeout: float) -> tuple[bytes, str]:
    req = urllib.request.Request(url, data=text.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read(), r.headers.get("x-replica-pid", "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voice", default=str(ROOT / "voices" / "en_US-joe-medium.onnx"))
    ap.add_argument("--port", type=int, default=0, help="0: 8000, or a free port with --smoke")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per replica's engine")
    ap.add_argument("--smoke", action="store_true", help="start, send requests, check, stop")
    args = ap.parse_args()
    port = args.port or (free_port() if args.smoke else 8000)

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(Speaker.bind(args.voice, args.threads), name="voxide", route_prefix="/speak")
        url = f"http://127.0.0.1:{port}/speak"
        replicas = sum(
            n for state, n in serve.status().applications["voxide"].deployments["Speaker"].replica_states.items()
            if str(state).endswith("RUNNING")
        )
        print(f"serving {url} with {replicas} replicas", flush=True)
        if not args.smoke:
            while True:
                time.sleep(3600)
        if replicas != 2:
            print(f"smoke: expected 2 running replicas, got {replicas}", file=sys.stderr)
            return 1
        pids = set()
        for text in ("Hello from Ray Serve.", "A second request."):
            wav, pid = post(url, text, timeout=60)
            if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE" or len(wav) < 44 + 2 * 2205:
                print(f"smoke: not a WAV of speech ({len(wav)} bytes)", file=sys.stderr)
                return 1
            pids.add(pid)
            print(f"smoke: {len(wav)} bytes of WAV from replica pid {pid}", flush=True)
        # A bad request comes back as a 400 with the voxide error.
        try:
            urllib.request.urlopen(
                urllib.request.Request(url + "?seed=-1", data=b"x", method="POST"), timeout=60
            )
            print("smoke: a bad seed was accepted", file=sys.stderr)
            return 1
        except urllib.error.HTTPError as e:
            body = e.read().decode()
            if e.code != 400 or "InvalidArgument" not in body:
                print(f"smoke: bad request gave {e.code} {body}", file=sys.stderr)
                return 1
        print(f"smoke: ok ({len(pids)} replica(s) answered)")
        return 0
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
