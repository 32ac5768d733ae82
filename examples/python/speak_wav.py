"""Speak a sentence to a WAV file.

    python examples/python/speak_wav.py "Hello from voxide." hello.wav
"""

from __future__ import annotations

import argparse
import pathlib

import voxide

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("text")
    ap.add_argument("output", nargs="?", default="out.wav")
    ap.add_argument("--voice", default=str(ROOT / "voices" / "en_US-joe-medium.onnx"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    engine = voxide.Engine(args.voice)
    try:
        audio = engine.speak(args.text, seed=args.seed)
    except voxide.Error as e:
        raise SystemExit(f"voxide: {e}")
    audio.to_wav(args.output)
    words = ", ".join(f"{w.text}@{w.start / audio.sample_rate:.2f}s" for w in audio.words)
    print(f"{args.output}: {audio.duration:.2f} s at {audio.sample_rate} Hz on {engine.device}; {words}")


if __name__ == "__main__":
    main()
