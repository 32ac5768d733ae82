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
  scripts/bench-vs-ort.py --isa avx2,portable --markdown   # one row per CPU kernel family
  scripts/bench-vs-ort.py --isa avx2,avx2-direct            # avx2 with and without Winograd

With --isa, voxide runs once per family (`voxide bench --isa F`) right after
onnxruntime at each thread count, so every row compares against the same
onnxruntime run; onnxruntime picks its own kernels (MLAS dispatches on the
CPU's features at run time: AVX-512, AVX2 or SSE on x86-64, NEON on ARM).
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
    ap.add_argument("--isa", default="", help="comma-separated CPU kernel families for voxide "
                    "(auto, avx512, avx2, portable; avx2-direct, avx512-direct: without the "
                    "Winograd convs, VOXIDE_CPU_WINOGRAD=0); default: voxide's own choice")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table at the end")
    a = ap.parse_args()
    text = open(a.text_file, encoding="utf-8").read()
    phon, ids, cfg = phonemize(a.model, text)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(phon) + "\n")
        phon_file = f.name
    isas = [i for i in a.isa.split(",") if i] or [None]
    rows = []
    for th in [int(x) for x in a.threads.split(",")]:
        o = ort_run(a.model, ids, cfg, th, a.repeat, a.device)
        for isa in isas:
            cmd = [a.voxide, "bench", "--voice", a.model, "--text-file", phon_file, "--input", "phonemes",
                   "--threads", str(th), "--repeat", str(a.repeat), "--device", a.device, "--json"]
            env = dict(os.environ)
            if isa:
                family, _, variant = isa.partition("-")
                cmd += ["--isa", family]
                if variant == "direct":
                    env["VOXIDE_CPU_WINOGRAD"] = "0"
            run = subprocess.run(cmd + a.extra.split(), capture_output=True, text=True, env=env)
            if run.returncode != 0:
                print(json.dumps({"threads": th, "isa": isa, "error": run.stderr.strip()}))
                continue
            vx = json.loads(run.stdout)
            row = {
                "threads": th, "device": a.device, "sentences": len(ids),
                "isa": (vx.get("isa") or "") + (" + winograd" if vx.get("winograd") else ""),
                "words": len(text.split()), "voxide": vx, "onnxruntime": o,
                # Whole-text synthesis vs onnxruntime's sentence-by-sentence runs;
                # speed_ratio_stream: voxide streaming (small first chunks) instead.
                "speed_ratio": vx.get("xrt_whole", vx["xrt"]) / o["xrt"],
                "speed_ratio_stream": vx["xrt"] / o["xrt"],
                "ttfa_ratio": o["ttfa_ms"] / vx["ttfa_ms"] if vx["ttfa_ms"] else None,
            }
            rows.append(row)
            print(json.dumps(row))
            sys.stdout.flush()
    os.unlink(phon_file)
    if a.markdown and rows:
        print(f"\nonnxruntime {ort.__version__} ({a.device}), {len(ids)} sentences, "
              f"{rows[0]['voxide']['audio_s']:.1f} s of audio, median of {a.repeat}\n")
        print("| voxide kernels | threads | voxide whole xRT | voxide streamed xRT | onnxruntime xRT "
              "| whole ratio | streamed ratio | TTFA median / max (ms) | onnxruntime TTFA (ms) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            v, o = r["voxide"], r["onnxruntime"]
            print(f"| {r['isa'] or v['device']} | {r['threads']} | {v.get('xrt_whole', v['xrt']):.1f} "
                  f"| {v['xrt']:.1f} | {o['xrt']:.1f} | {r['speed_ratio']:.2f}x "
                  f"| {r['speed_ratio_stream']:.2f}x | {v['ttfa_ms']:.0f} / {v['ttfa_max_ms']:.0f} "
                  f"| {o['ttfa_ms']:.0f} |")


if __name__ == "__main__":
    main()
