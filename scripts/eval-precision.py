#!/usr/bin/env python3
"""Reduced-precision check: voxide --precision bf16 against f32 on the same
sentences, same seed. Reports per-sentence SNR (bf16 vs f32 samples; the
encoder and duration predictor stay f32, so lengths match) and the Whisper
tiny.en word error rate of each (../shared/ref/asr_wer.py, offline).

Usage: scripts/eval-precision.py [--voxide target/release/voxide]
         [--sentences eval/sentences.tsv] [--limit N] [--asr PATH] [--out eval/PRECISION.md]
Needs numpy, and faster-whisper + the model for the ASR part (the reference
venv made by ../shared/ref/setup_ref.sh has both).
"""
import argparse, io, json, os, subprocess, sys, tempfile, wave
import numpy as np


def speak(voxide, text, precision):
    r = subprocess.run([voxide, "speak", "--precision", precision, "--text", text,
                        "--output", "-"], capture_output=True, check=True)
    w = wave.open(io.BytesIO(r.stdout))
    return w.getframerate(), r.stdout, np.frombuffer(
        w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--voxide", default="target/release/voxide")
    ap.add_argument("--sentences", default="eval/sentences.tsv")
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--asr", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "ref", "asr_wer.py"))
    ap.add_argument("--out", default="eval/PRECISION.md")
    a = ap.parse_args()
    rows = [l.rstrip("\n").split("\t") for l in open(a.sentences, encoding="utf-8") if l.strip()]
    rows = [(r[0], r[-1]) for r in rows][: a.limit]
    tmp = tempfile.mkdtemp(prefix="voxide-prec-")
    snrs, pairs = [], {"f32": [], "bf16": []}
    for i, (cat, text) in enumerate(rows):
        ref = None
        for p in ("f32", "bf16"):
            _, raw, x = speak(a.voxide, text, p)
            path = os.path.join(tmp, f"{p}-{i:03}.wav")
            open(path, "wb").write(raw)
            pairs[p].append((path, text))
            if ref is None:
                ref = x
            elif len(ref) != len(x):
                sys.exit(f"sentence {i}: lengths differ ({len(ref)} vs {len(x)})")
            else:
                err = ((ref - x) ** 2).sum()
                snrs.append(10 * np.log10((ref ** 2).sum() / max(err, 1e-12)))
    wer = {}
    for p, items in pairs.items():
        tsv = os.path.join(tmp, f"{p}.tsv")
        with open(tsv, "w", encoding="utf-8") as f:
            for path, text in items:
                f.write(f"{path}\t{text}\n")
        js = os.path.join(tmp, f"{p}.json")
        subprocess.run([sys.executable, a.asr, "--tsv", tsv, "--json", js],
                       check=True, capture_output=True)
        wer[p] = json.load(open(js))
    def corpus(j):
        for k in ("corpus_wer", "wer", "WER"):
            if k in j:
                return float(j[k])
        raise KeyError(f"no corpus WER in {list(j)}")
    s = np.array(snrs)
    lines = [
        "# Reduced precision: bf16 decoder vs f32",
        "",
        f"{len(rows)} sentences from `{a.sentences}`, seed 0, `scripts/eval-precision.py`.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| SNR bf16 vs f32, min | {s.min():.1f} dB |",
        f"| SNR bf16 vs f32, median | {np.median(s):.1f} dB |",
        f"| SNR bf16 vs f32, mean | {s.mean():.1f} dB |",
        f"| Whisper tiny.en WER, f32 | {100 * corpus(wer['f32']):.2f} % |",
        f"| Whisper tiny.en WER, bf16 | {100 * corpus(wer['bf16']):.2f} % |",
        "",
    ]
    open(a.out, "w").write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
