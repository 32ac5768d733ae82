"""voxide: native neural text-to-speech (Piper/VITS voices) for Python.

    import voxide
    engine = voxide.Engine("voices/en_US-joe-medium.onnx")
    audio = engine.speak("Hello from voxide.")
    audio.samples        # numpy float32, no copy
    audio.to_wav("hello.wav")

The engine is Rust (the same as the `voxide` command and the C library);
synthesis runs with the GIL released, so threads and asyncio stay live.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import numpy as np

from . import _errors, _voxide
from ._errors import (
    Busy,
    Cancelled,
    DeviceError,
    Error,
    InternalError,
    InvalidArgument,
    ModelError,
    OutOfMemory,
    PermitTimeout,
    SsmlError,
    Unavailable,
    UnknownVoice,
    VoiceIoError,
)
from ._voxide import Audio, Mark, Permit, Stream, Word

__version__: str = _voxide.__version__


def _next_or_none(stream: Stream) -> "np.ndarray | None":
    return next(stream, None)


class Engine(_voxide.Engine):
    """A text-to-speech engine: loaded voices, a compute device and
    `max_concurrent` permits (requests that may run at once).

    `Engine(voice=None, *, voices=None, max_concurrent=2, device="auto",
    threads=0, precision="auto")`: `voice` is the path of the default voice
    (`NAME.onnx` beside `NAME.onnx.json`; None: `$VOXIDE_VOICE`); `voices` a
    dict name -> path or a list of paths (named by file stem). The engine is
    safe to share between threads; it lives as long as a reference to it or
    to one of its permits, audio objects keep no reference to it.

    Raises `VoiceIoError` (unreadable voice file), `ModelError` (invalid
    model or config), `InvalidArgument` (bad option, no voice),
    `DeviceError` (CUDA asked for but unusable).
    """

    async def aspeak(self, text: str, **options: Any) -> Audio:
        """`speak` for asyncio: runs in a worker thread (the GIL released
        during synthesis), so the event loop keeps running. Same options and
        exceptions as `speak`."""
        return await asyncio.to_thread(self.speak, text, **options)

    async def astream(self, text: str, **options: Any) -> AsyncIterator[np.ndarray]:
        """`stream` for asyncio: `async for chunk in engine.astream(text)`.
        Each chunk is awaited in a worker thread; leaving the loop early (or
        cancelling) stops the synthesis and gives its permit back. Same
        options and exceptions as `stream`."""
        stream = await asyncio.to_thread(self.stream, text, **options)
        try:
            while True:
                chunk = await asyncio.to_thread(_next_or_none, stream)
                if chunk is None:
                    return
                yield chunk
        finally:
            await asyncio.shield(asyncio.to_thread(stream.close))


__all__ = [
    "Engine",
    "Audio",
    "Word",
    "Mark",
    "Permit",
    "Stream",
    *_errors.__all__,
    "__version__",
]
