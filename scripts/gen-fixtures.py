#!/usr/bin/env python3
"""Generate the parity fixtures in tests/fixtures/ with onnxruntime (PyPI).

Run once by a developer (not by CI): needs onnx, onnxruntime, piper-tts, numpy
(`bash ../shared/ref/setup_ref.sh` makes such a venv in /tmp/ref) and the voice
in voices/. Writes, per case, little-endian float32 files and one index
`cases.json`:

  NAME.audio.f32   model output (raw, no normalisation)
  NAME.logw.f32    duration-predictor output logw [T]       (stage cases only)
  NAME.x.f32       encoder output x [192, T]                (stage cases only)
  NAME.ml.f32      m_p ++ logs_p [384, T]                   (stage cases only)
  NAME.z.f32       flow output (decoder input) [192, F]     (stage cases only)

Noise: "zero" runs use noise_scale = noise_w = 0. "seeded" runs feed both
RandomNormalLike nodes with voxide's own counter-based generator
(src/model/noise.rs, mirrored below), so the Rust test can use
Noise::Seeded(seed) and must match sample for sample.
"""
import argparse
import json
import os
import sys

import numpy as np

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(z):
    z = (z + np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def normal_block(seed, stream, rows, cols):
    """voxide's normal_at(seed, stream, row, col) for a rows x cols block."""
    with np.errstate(over="ignore"):
        r = np.arange(rows, dtype=np.uint64)[:, None]
        c = np.arange(cols, dtype=np.uint64)[None, :]
        counter = (np.uint64(stream) << np.uint64(56)) ^ ((r & np.uint64(0xFFFFFF)) << np.uint64(32)) ^ c
        a = splitmix64(splitmix64(np.uint64(seed)) ^ counter)
        b = splitmix64(a)
    u1 = ((a >> np.uint64(11)).astype(np.float64) + 1.0) * (1.0 / 2.0**53)
    u2 = (b >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


DUMPS = {
    "logw": "/dp/Split_output_0",
    "x": "/enc_p/encoder/Mul_2_output_0",
    "mp": "/enc_p/Split_output_0",
    "logsp": "/enc_p/Split_output_1",
    "z": "/Mul_7_output_0",
    "ceil": "/Ceil_output_0",
}

TEXTS = [
    ("hi", "Hi."),
    ("hello", "Hello world, this is a test."),
    ("medium", "The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden porch."),
    ("long", "When the committee finally published its report, after nearly three years of hearings, interviews and "
             "arguments about the budget, most readers were surprised to learn how little had actually changed in the "
             "way the city handled its water supply."),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "ref"))
    ap.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "..", "voices", "en_US-joe-medium.onnx"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.ref_dir))
    import piper_ref  # the shared onnxruntime reference helpers

    cfg = piper_ref.load_voice_config(a.model + ".json")
    shim = piper_ref._VoiceShim(cfg)
    cases = []
    for name, text in TEXTS:
        sents = [p for p in shim.phonemize(text) if p]
        assert len(sents) == 1, (name, len(sents))
        cases.append({"name": name, "phonemes": "".join(sents[0]), "ids": shim.phonemes_to_ids(sents[0])})
    rng = np.random.default_rng(20261124)
    rand = [1, 0]
    for _ in range(60):
        rand += [int(rng.integers(3, 151)), 0]
    rand.append(2)
    cases.insert(2, {"name": "random", "phonemes": None, "ids": rand})

    names = sorted(set(DUMPS.values()))
    model_bytes, _ = piper_ref.patch_noise_inputs(a.model, names)
    sess = piper_ref.make_session(model_bytes, 2)
    outs = [o.name for o in sess.get_outputs()]

    runs = []
    for c in cases:
        runs.append(dict(c, noise="zero", seed=None, scales=[0.0, 1.0, 0.0], stages=c["name"] in ("hi", "hello", "random", "medium")))
    for c in cases:
        if c["name"] in ("hi", "hello", "medium"):
            runs.append(dict(c, name=c["name"] + "-noise", noise="seeded", seed=42, scales=[0.667, 1.0, 0.8], stages=c["name"] == "hello"))
    runs.append(dict(cases[1], name="hello-slow", noise="seeded", seed=7, scales=[1.0, 1.3, 1.0], stages=False))

    os.makedirs(a.out, exist_ok=True)
    index = []
    for r in runs:
        ids = r["ids"]
        t = len(ids)
        fmax = 10 * t + 64
        if r["noise"] == "seeded":
            dp = normal_block(r["seed"], 0, 2, t)[None]
            z = normal_block(r["seed"], 1, 192, fmax)[None]
        else:
            dp = np.zeros((1, 2, t), np.float32)
            z = np.zeros((1, 192, fmax), np.float32)
        feeds = {
            "input": np.array([ids], np.int64),
            "input_lengths": np.array([t], np.int64),
            "scales": np.array(r["scales"], np.float32),
            "noise_dp": dp,
            "noise_z": z,
        }
        res = dict(zip(outs, sess.run(None, feeds)))
        audio = res["output"].reshape(-1).astype("<f4")
        frames = audio.size // 256
        assert frames <= fmax
        ceil = res[DUMPS["ceil"]].reshape(-1)
        audio.tofile(os.path.join(a.out, f"{r['name']}.audio.f32"))
        if r["stages"]:
            res[DUMPS["logw"]].reshape(-1).astype("<f4").tofile(os.path.join(a.out, f"{r['name']}.logw.f32"))
            res[DUMPS["x"]].reshape(192, t).astype("<f4").tofile(os.path.join(a.out, f"{r['name']}.x.f32"))
            ml = np.concatenate([res[DUMPS["mp"]].reshape(192, t), res[DUMPS["logsp"]].reshape(192, t)])
            ml.astype("<f4").tofile(os.path.join(a.out, f"{r['name']}.ml.f32"))
            res[DUMPS["z"]].reshape(192, frames).astype("<f4").tofile(os.path.join(a.out, f"{r['name']}.z.f32"))
        index.append({
            "name": r["name"], "ids": ids, "phonemes": r["phonemes"], "noise": r["noise"], "seed": r["seed"],
            "scales": r["scales"], "frames": int(frames), "durations": [int(v) for v in ceil], "stages": r["stages"],
        })
        print(f"{r['name']}: {t} ids, {frames} frames", file=sys.stderr)
    with open(os.path.join(a.out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/gen-fixtures.py", "onnxruntime": piper_ref.ort.__version__, "cases": index},
                  f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
