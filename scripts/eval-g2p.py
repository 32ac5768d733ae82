#!/usr/bin/env python3
"""Phoneme error rate of voxide's English frontend against Piper's (piper-tts
1.8, its bundled espeak-ng), per category and overall.

  eval/sentences.tsv: category<TAB>sentence, one per line
  PER = sum of Levenshtein distances over code points / sum of reference lengths
  (spaces and punctuation count; a multi-sentence result is joined with a space).

Needs a Python with piper-tts (e.g. /tmp/ref/venv from ../shared/ref/setup_ref.sh)
and a release build (`cargo build --release`). Writes eval/RESULTS.md.
"""
import collections
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def lev(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def main():
    from piper import PiperVoice

    voice = PiperVoice.load(os.path.join(ROOT, "voices", "en_US-joe-medium.onnx"))
    rows = [l.rstrip("\n").split("\t", 1) for l in open(os.path.join(ROOT, "eval", "sentences.tsv"), encoding="utf-8") if "\t" in l]
    exe = os.path.join(ROOT, "target", "release", "voxide")
    errs, lens, worst = collections.Counter(), collections.Counter(), []
    for cat, text in rows:
        ref = " ".join("".join(s) for s in voice.phonemize(text) if s)
        got = " ".join(subprocess.run([exe, "phonemize", "--text", text], check=True, capture_output=True, text=True).stdout.split("\n")).strip()
        d = lev(ref, got)
        errs[cat] += d
        lens[cat] += len(ref)
        worst.append((d / max(1, len(ref)), text, ref, got))
    lines = ["# G2P evaluation: voxide vs piper-tts 1.8 (espeak-ng)", "",
             f"{len(rows)} sentences from eval/sentences.tsv; PER over code points.", "",
             "| category | sentences | PER |", "|---|---|---|"]
    counts = collections.Counter(c for c, _ in rows)
    for cat in sorted(lens):
        lines.append(f"| {cat} | {counts[cat]} | {100 * errs[cat] / lens[cat]:.2f} % |")
    total = 100 * sum(errs.values()) / sum(lens.values())
    lines.append(f"| **all** | {len(rows)} | **{total:.2f} %** |")
    lines += ["", "Worst sentences:", ""]
    for r, text, ref, got in sorted(worst, reverse=True)[:10]:
        lines += [f"- {100 * r:.1f} % `{text}`", f"  - ref `{ref}`", f"  - got `{got}`"]
    open(os.path.join(ROOT, "eval", "RESULTS.md"), "w", encoding="utf-8").write("\n".join(lines) + "\n")
    print("\n".join(lines[:len(lens) + 7]))


if __name__ == "__main__":
    sys.exit(main())
