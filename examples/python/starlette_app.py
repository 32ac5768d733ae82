"""A Starlette endpoint that streams speech as a WAV while it is rendered,
on asyncio (`engine.astream`): the event loop serves other requests
meanwhile. FastAPI works the same way (it is Starlette underneath).

    pip install starlette uvicorn
    VOXIDE_VOICE=voices/en_US-joe-medium.onnx uvicorn --app-dir examples/python starlette_app:app
    curl -o hello.wav 'http://127.0.0.1:8000/speak?text=Hello+there.'
"""

from __future__ import annotations

import os
import pathlib
import struct
from typing import AsyncIterator

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

import voxide

ROOT = pathlib.Path(__file__).resolve().parents[2]
VOICE = os.environ.get("VOXIDE_VOICE", str(ROOT / "voices" / "en_US-joe-medium.onnx"))

engine = voxide.Engine(VOICE, max_concurrent=2)


def wav_header(rate: int) -> bytes:
    """A 16-bit mono WAV header of unknown length (players read to the end)."""
    size = 0xFFFFFFFF
    return (
        b"RIFF" + struct.pack("<I", size) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", size - 36)
    )


async def wav_stream(text: str, **options) -> AsyncIterator[bytes]:
    yield wav_header(engine.sample_rate(options.get("voice")))
    async for chunk in engine.astream(text, **options):
        yield (np.clip(chunk, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


async def speak(request: Request):
    text = request.query_params.get("text") or (await request.body()).decode()
    try:
        options = {"seed": int(request.query_params.get("seed", 0)), "voice": request.query_params.get("voice")}
        # Fail before the response starts: unknown voice.
        engine.sample_rate(options["voice"])
    except (ValueError, voxide.Error) as e:  # voxide.InvalidArgument is a ValueError too
        return JSONResponse({"error": str(e)}, status_code=400)
    return StreamingResponse(wav_stream(text, **options), media_type="audio/wav")


app = Starlette(routes=[Route("/speak", speak, methods=["GET", "POST"])])
