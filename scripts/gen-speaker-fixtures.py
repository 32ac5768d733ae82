#!/usr/bin/env python3
"""onnxruntime fixtures of the test voices in tests/fixtures/voices/ (made by
scripts/make-test-voices.py): per speaker of test-3spk, and for test-de.

Run by a developer (not by CI) in the reference venv of
scripts/gen-fixtures.py (onnx, onnxruntime, piper-tts, numpy; /tmp/ref/venv):

    /tmp/ref/venv/bin/python scripts/gen-speaker-fixtures.py

Noise as in scripts/gen-fixtures.py: "zero" runs use noise_scale = noise_w = 0;
"seeded" runs feed both RandomNormalLike nodes with voxide's generator
(`normal_block`, shared with that script), so the Rust test uses
Noise::Seeded(seed). Multi-speaker runs feed `sid`. Writes NAME.audio.f32
(raw model output, little-endian float32) and cases.json (ids, phonemes,
speaker, scales, seed, frames, durations).
"""
import argparse
import importlib.util
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

spec = importlib.util.spec_from_file_location("gen_fixtures", os.path.join(HERE, "gen-fixtures.py"))
gen_fixtures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_fixtures)
normal_block = gen_fixtures.normal_block

CEIL = "/Ceil_output_0"

# voice, case, text, speaker, noise, seed, scales
RUNS = [("test-3spk", f"spk{s}-{kind}", text, s, noise, seed, scales)
        for s in range(3)
        for kind, text, noise, seed, scales in [
            ("hi", "Hi there.", "zero", None, [0.0, 1.0, 0.0]),
            ("hello", "Hello world, this is a test.", "seeded", 42, [0.667, 1.0, 0.8]),
        ]] + [
    ("test-3spk", "spk1-slow", "The quick brown fox.", 1, "seeded", 7, [1.0, 1.3, 1.0]),
    ("test-de", "de-zero", "Guten Tag, wie geht es dir?", 0, "zero", None, [0.0, 1.0, 0.0]),
    ("test-de", "de-noise", "Guten Tag, wie geht es dir?", 0, "seeded", 42, [0.667, 1.0, 0.8]),
]


def patch(model_path):
    """The model with each RandomNormalLike replaced by a slice of an input
    (noise_dp [1, 2, n], noise_z [1, C, n]) and Ceil as an extra output."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load(model_path)
    g = m.graph
    chans = next(t.dims[1] for t in g.initializer if t.name == "dec.conv_pre.weight")
    nodes = []
    for n in g.node:
        if n.op_type != "RandomNormalLike":
            nodes.append(n)
            continue
        key = "dp" if n.name.startswith("/dp/") else "z"
        inp = f"noise_{key}"
        g.input.append(helper.make_tensor_value_info(inp, TensorProto.FLOAT,
                                                     [1, 2 if key == "dp" else chans, f"{inp}_len"]))
        p = f"{n.name}_patch"
        nodes += [
            helper.make_node("Shape", [n.input[0]], [p + "_shape"], name=p + "/Shape"),
            helper.make_node("Constant", [], [p + "_zeros"], name=p + "/Zeros",
                             value=helper.make_tensor(p + "_zv", TensorProto.INT64, [3], [0, 0, 0])),
            helper.make_node("Slice", [inp, p + "_zeros", p + "_shape"], [n.output[0]], name=p + "/Slice"),
        ]
    del g.node[:]
    g.node.extend(nodes)
    g.output.append(helper.make_empty_tensor_value_info(CEIL))
    return m.SerializeToString(), chans


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    refs = [os.path.join(ROOT, *[".."] * up, "shared", "ref") for up in (1, 2)]
    ap.add_argument("--ref-dir", default=next((r for r in refs if os.path.isdir(r)), refs[0]))
    ap.add_argument("--dir", default=os.path.join(ROOT, "tests", "fixtures", "voices"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.ref_dir))
    import piper_ref  # the shared onnxruntime reference helpers

    sessions = {}
    index = []
    for voice, name, text, speaker, noise, seed, scales in RUNS:
        path = os.path.join(a.dir, f"{voice}.onnx")
        if voice not in sessions:
            cfg = piper_ref.load_voice_config(path + ".json")
            model, chans = patch(path)
            sess = piper_ref.make_session(model, 2)
            sessions[voice] = (piper_ref._VoiceShim(cfg), sess, chans, cfg.num_speakers)
        shim, sess, chans, n_spk = sessions[voice]
        sents = [p for p in shim.phonemize(text) if p]
        assert len(sents) == 1, (name, len(sents))
        ids = shim.phonemes_to_ids(sents[0])
        t = len(ids)
        fmax = 20 * t + 64
        if noise == "seeded":
            dp = normal_block(seed, 0, 2, t)[None]
            z = normal_block(seed, 1, chans, fmax)[None]
        else:
            dp = np.zeros((1, 2, t), np.float32)
            z = np.zeros((1, chans, fmax), np.float32)
        feeds = {
            "input": np.array([ids], np.int64),
            "input_lengths": np.array([t], np.int64),
            "scales": np.array(scales, np.float32),
            "noise_dp": dp,
            "noise_z": z,
        }
        if n_spk > 1:
            feeds["sid"] = np.array([speaker], np.int64)
        outs = [o.name for o in sess.get_outputs()]
        res = dict(zip(outs, sess.run(None, feeds)))
        audio = res["output"].reshape(-1).astype("<f4")
        frames = audio.size // 256
        assert frames <= fmax
        audio.tofile(os.path.join(a.dir, f"{name}.audio.f32"))
        index.append({
            "voice": voice, "name": name, "text": text, "phonemes": "".join(sents[0]), "ids": ids,
            "speaker": speaker, "noise": noise, "seed": seed, "scales": scales, "frames": int(frames),
            "durations": [int(v) for v in res[CEIL].reshape(-1)],
        })
        print(f"{name}: {t} ids, {frames} frames, peak {np.abs(audio).max():.3f}", file=sys.stderr)
    with open(os.path.join(a.dir, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/gen-speaker-fixtures.py", "onnxruntime": piper_ref.ort.__version__,
                   "cases": index}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
