"""Type stubs of the Rust extension `voxide._voxide` (PyO3)."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Iterator, Mapping, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, "os.PathLike[str]"]

class Word:
    """A word of the input and when it is spoken."""

    text: str
    """The word as written (without the punctuation around it)."""
    char_start: int
    """First byte of the word in the input (UTF-8; for SSML, in the SSML source)."""
    char_end: int
    """Byte past the word in the input."""
    start: int
    """First sample of the word."""
    end: int
    """Sample past the word's last."""

class Mark:
    """An SSML `<mark name="..."/>` and the sample it falls on."""

    name: str
    sample: int

class Audio:
    """One request's speech (immutable). Owns its samples; independent of
    the engine once returned."""

    @property
    def samples(self) -> npt.NDArray[np.float32]:
        """The samples as a read-only 1-D float32 numpy array that views this
        object's memory without a copy (the array keeps the `Audio` alive).
        Equal to the samples of `voxide speak --raw` for the same input and
        options. Copy it (`.copy()`) to modify."""
    @property
    def sample_rate(self) -> int:
        """Samples per second."""
    @property
    def duration(self) -> float:
        """Length in seconds."""
    @property
    def words(self) -> list[Word]:
        """The input's words with their sample ranges."""
    @property
    def marks(self) -> list[Mark]:
        """The SSML marks reached, with their samples."""
    @property
    def warnings(self) -> list[str]:
        """Warnings of the request (for example words spelled out)."""
    def to_wav(self, path: _Path) -> None:
        """Write a 16-bit mono WAV file (the bytes of `voxide speak --output`).
        Raises `VoiceIoError` when the file cannot be written."""
    def to_bytes(self, format: str = "wav") -> bytes:
        """`wav` (a 16-bit WAV file), `pcm` (16-bit little-endian samples) or
        `f32` (float32 little-endian, the bytes of `voxide speak --raw`).
        Raises `InvalidArgument` for another format."""
    def _repr_html_(self) -> str:
        """An HTML `<audio>` player with the WAV inline (notebooks)."""
    def __len__(self) -> int: ...

class Permit:
    """The right to run one request, taken ahead with `Engine.permit`.
    A request given `permit=` uses it up; an unused permit is given back by
    `release()`, on leaving its `with` block, or when it is garbage."""

    @property
    def valid(self) -> bool:
        """Whether it is still unused (neither used nor released)."""
    def release(self) -> None:
        """Give it back now if unused (else nothing)."""
    def __enter__(self) -> Permit: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

class Stream(Iterator[npt.NDArray[np.float32]]):
    """`Engine.stream`'s iterator of float32 numpy chunks. Synthesis runs on
    a Rust thread a few chunks ahead; `close()` (or leaving its `with`
    block, or dropping it) stops it and gives its permit back. Errors met
    during synthesis (for example `SsmlError`) raise from `next()`."""

    def __iter__(self) -> Stream: ...
    def __next__(self) -> npt.NDArray[np.float32]: ...
    def close(self) -> None:
        """Stop the synthesis and wait for its thread to end; idempotent."""
    def __enter__(self) -> Stream: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def words(self) -> list[Word]:
        """The words completed so far (each after the chunk that ends it)."""
    @property
    def samples_delivered(self) -> int: ...

class Engine:
    """See `voxide.Engine`."""

    def __init__(
        self,
        voice: _Path | None = None,
        *,
        voices: Mapping[str, _Path] | Sequence[_Path] | None = None,
        max_concurrent: int = 2,
        device: str = "auto",
        threads: int = 0,
        precision: str = "auto",
    ) -> None: ...
    def speak(
        self,
        text: str,
        *,
        voice: str | None = None,
        speaker: int | str | None = None,
        speed: float = 1.0,
        seed: int = 0,
        input: str = "text",
        noise_scale: float | None = None,
        length_scale: float | None = None,
        noise_w: float | None = None,
        permit: Permit | None = None,
    ) -> Audio:
        """Speak `text` and return the whole audio. `input` is `text`,
        `ssml`, `phonemes` (espeak IPA, a sentence a line) or `ids`;
        `speaker` an id or a name of a multi-speaker voice; the scales
        default to the voice's. Takes a permit (waiting, GIL released)
        unless given one. Raises `UnknownVoice`, `InvalidArgument` (bad
        option or speaker, used permit), `SsmlError`, `DeviceError`."""
    def stream(
        self,
        text: str,
        *,
        voice: str | None = None,
        speaker: int | str | None = None,
        speed: float = 1.0,
        seed: int = 0,
        input: str = "text",
        noise_scale: float | None = None,
        length_scale: float | None = None,
        noise_w: float | None = None,
        permit: Permit | None = None,
    ) -> Stream:
        """Speak `text` chunk by chunk (the first after about 0.1 s of audio);
        the chunks concatenate to `speak`'s samples. Voice, speaker and option
        errors raise here, synthesis errors from `next()`."""
    def permit(self, timeout: float | None = None) -> Permit:
        """Wait up to `timeout` seconds (None: no limit) for a permit.
        Raises `PermitTimeout` (also a builtin `TimeoutError`)."""
    def try_permit(self) -> Permit | None:
        """A permit if one is free now, else None."""
    def add_voice(self, name: str, path: _Path) -> None:
        """Load another voice under `name`."""
    @property
    def voices(self) -> list[str]:
        """Names of the loaded voices."""
    @property
    def default_voice(self) -> str: ...
    @property
    def device(self) -> str:
        """`cpu` or `cuda:N (name)`."""
    @property
    def max_concurrent(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def precision(self) -> str: ...
    def sample_rate(self, voice: str | None = None) -> int: ...
    def speaker_id(self, name: str, voice: str | None = None) -> int: ...
