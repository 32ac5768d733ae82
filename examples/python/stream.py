"""Stream speech chunk by chunk to the sound card (with the optional
`sounddevice` package) or to a WAV file as the chunks arrive.

    python examples/python/stream.py "A long text ..." --output out.wav
    python examples/python/stream.py "A long text ..." --play   # pip install sounddevice
"""

from __future__ import annotations

import argparse
import pathlib
import time
import wave

import numpy as np

import voxide

ROOT = pathlib.Path(__file__).resolve().parents[2]


def to_pcm16(chunk: np.ndarray) -> bytes:
    """float32 in (-1, 1) to 16-bit little-endian PCM (clipped)."""
    return (np.clip(chunk, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("text")
    ap.add_argument("--voice", default=str(ROOT / "voices" / "en_US-joe-medium.onnx"))
    ap.add_argument("--output", default="stream.wav")
    ap.add_argument("--play", action="store_true", help="play on the default sound card (sounddevice)")
    args = ap.parse_args()

    engine = voxide.Engine(args.voice)
    start = time.perf_counter()
    with engine.stream(args.text) as stream:
        if args.play:
            import sounddevice  # optional: not a voxide dependency

            with sounddevice.OutputStream(samplerate=stream.sample_rate, channels=1, dtype="float32") as out:
                for i, chunk in enumerate(stream):
                    if i == 0:
                        print(f"first audio after {(time.perf_counter() - start) * 1000:.0f} ms")
                    out.write(chunk)
        else:
            with wave.open(args.output, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(stream.sample_rate)
                for i, chunk in enumerate(stream):
                    if i == 0:
                        print(f"first audio after {(time.perf_counter() - start) * 1000:.0f} ms")
                    w.writeframes(to_pcm16(chunk))
            print(f"{args.output}: {stream.samples_delivered / stream.sample_rate:.2f} s")


if __name__ == "__main__":
    main()
