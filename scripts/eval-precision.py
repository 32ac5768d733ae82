#!/usr/bin/env python3
"""Precision check: voxide --precision P (bf16, bf16x3, ...) against f32 on
the same sentences, same seed. Reports per-sentence SNR (P vs f32 samples;
sentences whose durations come out different, so lengths differ, are
counted and left out of the SNR) and the Whisper tiny.en word error rate of
each (../shared/ref/asr_wer.py, offline).

Usage: scripts/eval-precision.py [--voxide target/release/voxide] [--precisions bf16,bf16x3]
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
    ap.add_argument("--precisions", default="bf16,bf16x3")
    a = ap.parse_args()
    precs = ["f32"] + [p for p in a.precisions.split(",") if p and p != "f32"]
    rows = [l.rstrip("\n").split("\t") for l in open(a.sentences, encoding="utf-8") if l.strip()]
    rows = [(r[0], r[-1]) for r in rows][: a.limit]
    tmp = tempfile.mkdtemp(prefix="voxide-prec-")
    snrs = {p: [] for p in precs[1:]}
    length_diff = {p: 0 for p in precs[1:]}
    pairs = {p: [] for p in precs}
    for i, (cat, text) in enumerate(rows):
        ref = None
        for p in precs:
            _, raw, x = speak(a.voxide, text, p)
            path = os.path.join(tmp, f"{p}-{i:03}.wav")
            open(path, "wb").write(raw)
            pairs[p].append((path, text))
            if ref is None:
                ref = x
            elif len(ref) != len(x):
                length_diff[p] += 1
            else:
                err = ((ref - x) ** 2).sum()
                snrs[p].append(10 * np.log10((ref ** 2).sum() / max(err, 1e-12)))
        print(f"{i + 1}/{len(rows)}", file=sys.stderr, flush=True)
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
    lines = [
        "# Precision: bf16 (decoder) and bf16x3 (all convs and attention products) vs f32",
        "",
        f"{len(rows)} sentences from `{a.sentences}`, seed 0, `scripts/eval-precision.py`.",
        "",
        "| measure | " + " | ".join(precs) + " |",
        "|---|" + "---|" * len(precs),
    ]
    def row(name, f):
        return f"| {name} | " + " | ".join(f(p) for p in precs) + " |"
    lines.append(row("SNR vs f32, min", lambda p: "—" if p == "f32" else f"{np.min(snrs[p]):.1f} dB"))
    lines.append(row("SNR vs f32, median", lambda p: "—" if p == "f32" else f"{np.median(snrs[p]):.1f} dB"))
    lines.append(row("SNR vs f32, mean", lambda p: "—" if p == "f32" else f"{np.mean(snrs[p]):.1f} dB"))
    lines.append(row("sentences with other durations", lambda p: "—" if p == "f32" else str(length_diff[p])))
    lines.append(row("Whisper tiny.en WER", lambda p: f"{100 * corpus(wer[p]):.2f} %"))
    lines.append("")
    open(a.out, "w").write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
