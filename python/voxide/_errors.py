"""The exceptions voxide raises: every one is a subclass of `voxide.Error`.

Where a builtin exception fits too, the class also derives from it
(`InvalidArgument` is a `ValueError`, `PermitTimeout` a `TimeoutError`, ...),
so code that catches the builtin keeps working.
"""


class Error(Exception):
    """Base class of every voxide error; `str(e)` is the engine's message."""


class InvalidArgument(Error, ValueError):
    """A bad argument or input: an option out of range, text the frontend
    rejects, an unknown speaker, a used permit."""


class SsmlError(InvalidArgument):
    """Malformed SSML (the message names the line and column)."""


class UnknownVoice(Error, LookupError):
    """No voice of that name is loaded in the engine."""


class VoiceIoError(Error, OSError):
    """A file could not be read or written (a bad voice path, an
    unwritable WAV path)."""


class ModelError(Error):
    """A voice model or its config is invalid."""


class PermitTimeout(Error, TimeoutError):
    """No permit became free within the timeout."""


class Busy(Error):
    """The engine's request queue is full; retry later."""


class Cancelled(Error):
    """The request was cancelled."""


class DeviceError(Error):
    """The compute device is not usable, or failed."""


class Unavailable(Error):
    """An optional component is not installed (for example libespeak-ng)."""


class OutOfMemory(Error, MemoryError):
    """Memory could not be allocated."""


class InternalError(Error):
    """An internal error (a caught panic); the engine stays usable."""


__all__ = [
    "Error",
    "InvalidArgument",
    "SsmlError",
    "UnknownVoice",
    "VoiceIoError",
    "ModelError",
    "PermitTimeout",
    "Busy",
    "Cancelled",
    "DeviceError",
    "Unavailable",
    "OutOfMemory",
    "InternalError",
]
