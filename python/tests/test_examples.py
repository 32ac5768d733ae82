"""The Starlette example's endpoint, driven in-process through ASGI (the Ray
Serve example runs as its own smoke test: scripts/test-python.sh)."""

from __future__ import annotations

import asyncio
import importlib.util
import struct

import numpy as np
import pytest

from conftest import ROOT

starlette = pytest.importorskip("starlette", reason="starlette comes with ray[serve] in scripts/test-python.sh")


def load_app(voice, monkeypatch):
    monkeypatch.setenv("VOXIDE_VOICE", str(voice))
    spec = importlib.util.spec_from_file_location("starlette_app", ROOT / "examples" / "python" / "starlette_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def asgi_get(app, path: str, query: bytes) -> tuple[int, bytes, int]:
    """GET through the ASGI app; (status, body, number of body messages)."""
    sent: list[dict] = []
    first = True
    never = asyncio.Event()

    async def receive():
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # no disconnect; cancelled when the response ends
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query, "headers": [], "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    bodies = [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]
    return status, b"".join(bodies), sum(1 for b in bodies if b)


def test_starlette_streams_the_speech(voice, monkeypatch):
    mod = load_app(voice, monkeypatch)
    text = "Hello there. This is streamed."
    status, body, parts = asyncio.run(asgi_get(mod.app, "/speak", b"text=Hello+there.+This+is+streamed.&seed=3"))
    assert status == 200
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE"
    assert struct.unpack("<I", body[24:28])[0] == 22050
    pcm = np.frombuffer(body[44:], dtype="<i2")
    samples = mod.engine.speak(text, seed=3).samples
    expected = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    np.testing.assert_array_equal(pcm, expected)
    assert parts > 2  # header + several chunks: streamed, not one body


def test_starlette_bad_voice_is_400(voice, monkeypatch):
    mod = load_app(voice, monkeypatch)
    status, body, _ = asyncio.run(asgi_get(mod.app, "/speak", b"text=Hi&voice=nobody"))
    assert status == 400 and b"nobody" in body
