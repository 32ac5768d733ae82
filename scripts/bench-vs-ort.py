#!/usr/bin/env python3
"""voxide vs onnxruntime on the same phonemes, same threads, same run.

Phonemizes the text once with piper-tts (its espeak-ng), writes the IPA (one
sentence per line), runs `voxide bench --input phonemes --json` and
onnxruntime (CPUExecutionProvider, intra_op_num_threads = threads, one session
run per sentence as Piper does, default scales) on the very same ids, and
prints one JSON line per thread count with both xRT figures and the ratio.

Needs a Python with onnxruntime, piper-tts, numpy (e.g. /tmp/ref/venv from
../shared/ref/setup_ref.sh) and a release build of voxide.

  scripts/bench-vs-ort.py --text-file bench/paragraph.txt --threads 1,2
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def phonemize(model, text):
    from piper import PiperVoice

    voice = PiperVoice.load(model)
    sents = [s for s in voice.phonemize(text) if s]
    return ["".join(s) for s in sents], [voice.phonemes_to_ids(s) for s in sents], voice.config


def ort_run(model, ids_list, cfg, threads, repeat, device):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    t0 = time.perf_counter()
    sess = ort.InferenceSession(model, sess_options=so, providers=providers)
    load_ms = (time.perf_counter() - t0) * 1e3
    if device == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():
        # onnxruntime falls back to the CPU silently: that would not be a GPU comparison.
        sys.exit("onnxruntime has no CUDA provider here: pip install onnxruntime-gpu "
                 "(with CUDA 12 and cuDNN 9 libraries), or run with --device cpu")
    scales = np.array([cfg.noise_scale, cfg.length_scale, cfg.noise_w_scale], np.float32)

    def once():
        n = 0
        first = None
        t0 = time.perf_counter()
        for ids in ids_list:
            out = sess.run(None, {"input": np.array([ids], np.int64),
                                  "input_lengths": np.array([len(ids)], np.int64),
                                  "scales": scales})[0]
            if first is None:
                first = time.perf_counter() - t0
            n += out.size
        return n, time.perf_counter() - t0, first

    once()  # warm-up
    walls, firsts, n = [], [], 0
    for _ in range(repeat):
        n, w, f = once()
        walls.append(w)
        firsts.append(f)
    # time to first audio for Piper = the whole first sentence
    ttfa = []
    for ids in ids_list[:20]:
        t0 = time.perf_counter()
        sess.run(None, {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64),
                        "scales": scales})
        ttfa.append((time.perf_counter() - t0) * 1e3)
    audio_s = n / cfg.sample_rate
    wall = float(np.median(walls))
    return {"audio_s": audio_s, "wall_s": wall, "xrt": audio_s / wall, "ttfa_ms": float(np.median(ttfa)),
            "load_ms": load_ms}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text-file", default=os.path.join(ROOT, "bench", "paragraph.txt"))
    ap.add_argument("--model", default=os.path.join(ROOT, "voices", "en_US-joe-medium.onnx"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--voxide", default=os.path.join(ROOT, "target", "release", "voxide"))
    ap.add_argument("--extra", default="", help="extra arguments for voxide bench")
    a = ap.parse_args()
    text = open(a.text_file, encoding="utf-8").read()
    phon, ids, cfg = phonemize(a.model, text)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(phon) + "\n")
        phon_file = f.name
    for th in [int(x) for x in a.threads.split(",")]:
        cmd = [a.voxide, "bench", "--voice", a.model, "--text-file", phon_file, "--input", "phonemes",
               "--threads", str(th), "--repeat", str(a.repeat), "--device", a.device, "--json"] + a.extra.split()
        vx = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        o = ort_run(a.model, ids, cfg, th, a.repeat, a.device)
        print(json.dumps({
            "threads": th, "device": a.device, "sentences": len(ids), "words": len(text.split()),
            "voxide": vx, "onnxruntime": o,
            # Whole-text synthesis vs onnxruntime's sentence-by-sentence runs;
            # speed_ratio_stream: voxide streaming (small first chunks) instead.
            "speed_ratio": vx.get("xrt_whole", vx["xrt"]) / o["xrt"],
            "speed_ratio_stream": vx["xrt"] / o["xrt"],
            "ttfa_ratio": o["ttfa_ms"] / vx["ttfa_ms"] if vx["ttfa_ms"] else None,
        }))
        sys.stdout.flush()
    os.unlink(phon_file)


if __name__ == "__main__":
    main()
