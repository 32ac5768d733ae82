//! Grapheme to phoneme for single words: a lexicon (misaki, then CMUdict;
//! see data/README.md) in ARPAbet, mapped to espeak-ng en-us IPA as Piper
//! emits it: stress marks before the vowel, espeak's reduced vowels (ɪ ᵻ ɐ
//! chosen from the spelling), r-coloured vowels, flapped t, `ʔn̩`, short ɔ,
//! plus an inflection fallback and a letter-rule fallback for words the
//! lexicon lacks. Context effects between words (function-word forms, joins,
//! linking r, the ʲ glide) are in [`super::context`].

static LEXICON_TSV: &str = include_str!("../../data/lexicon.tsv");

/// The phone alphabet of data/lexicon.tsv: the phone at index i is written as
/// the byte 0x21 + i (scripts/build-lexicon.py holds the same table).
const PHONES: [&str; 72] = [
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2", "AW0",
    "AW1", "AW2", "AY0", "AY1", "AY2", "EH0", "EH1", "EH2", "ER0", "ER1", "ER2", "EY0", "EY1",
    "EY2", "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "OW0", "OW1", "OW2", "OY0", "OY1", "OY2",
    "UH0", "UH1", "UH2", "UW0", "UW1", "UW2", "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L",
    "M", "N", "NG", "P", "R", "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH", "DX", "Q", "IX0",
];

/// The pronunciation of `word` in data/lexicon.tsv, searched in place: the
/// file is sorted by word in byte order with one entry per word
/// (scripts/build-lexicon.py writes it so; a test checks), so a binary search
/// over its lines needs no table built at run time (building one took ~20 ms
/// of the first request).
fn lexicon_get(word: &str) -> Option<&'static str> {
    let text = LEXICON_TSV.as_bytes();
    // Invariant: `lo` is the start of a line, `hi` the end of one (or of the
    // text); the word, if present, is on a line inside `lo..hi`.
    let (mut lo, mut hi) = (0usize, text.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = text[lo..mid]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(lo, |p| lo + p + 1);
        let end = text[start..hi]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(hi, |p| start + p);
        // Both ends sit next to a newline (ASCII): char boundaries.
        let (w, pron) = LEXICON_TSV.get(start..end)?.split_once('\t')?;
        match w.cmp(word) {
            std::cmp::Ordering::Equal => return Some(pron),
            std::cmp::Ordering::Less => lo = end + 1,
            std::cmp::Ordering::Greater => hi = start,
        }
    }
    None
}

/// One phone: ARPAbet base ("AA", "T", "IX", "DX"), stress 0/1/2 for vowels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct P {
    base: &'static str,
    stress: u8,
    vowel: bool,
    /// An IPA override chosen by a spelling rule (ɐ, ɪ, ɛ, ᵻ).
    ipa: Option<&'static str>,
}

impl P {
    fn parse(s: &'static str) -> P {
        match s.as_bytes().last() {
            Some(d @ b'0'..=b'2') => P {
                base: &s[..s.len() - 1],
                stress: d - b'0',
                vowel: true,
                ipa: None,
            },
            _ => P {
                base: s,
                stress: 0,
                vowel: false,
                ipa: None,
            },
        }
    }
    fn is(&self, bases: &[&str]) -> bool {
        bases.contains(&self.base)
    }
}

fn lookup(word: &str) -> Option<Vec<P>> {
    let enc = lexicon_get(word)?;
    Some(
        enc.bytes()
            .filter_map(|b| PHONES.get(usize::from(b.wrapping_sub(0x21))))
            .map(|s| P::parse(s))
            .collect(),
    )
}

/// Whether an all-caps token is read as a word (it is in the lexicon) rather than spelled.
pub fn is_pronounceable_acronym(letters: &str) -> bool {
    letters.len() >= 4 && lexicon_get(letters.to_lowercase().as_str()).is_some()
}

fn cons(base: &'static str) -> P {
    P {
        base,
        stress: 0,
        vowel: false,
        ipa: None,
    }
}

/// espeak's ᵻ of the -es/-ed endings.
fn ix() -> P {
    P {
        base: "IX",
        stress: 0,
        vowel: true,
        ipa: Some("ᵻ"),
    }
}

fn vowel0(base: &'static str) -> P {
    P {
        base,
        stress: 0,
        vowel: true,
        ipa: None,
    }
}

const SIBILANTS: [&str; 6] = ["S", "Z", "SH", "ZH", "CH", "JH"];
const VOICELESS: [&str; 6] = ["P", "K", "F", "TH", "S", "SH"];

/// The string without its last character (char-boundary safe).
fn drop_last(s: &str) -> &str {
    s.char_indices().last().map_or("", |(i, _)| &s[..i])
}

/// Pronunciation of a word the lexicon may lack, from a known stem and a regular suffix.
fn inflected(word: &str) -> Option<Vec<P>> {
    let stem_plus = |stem: &str, f: &dyn Fn(&mut Vec<P>)| -> Option<Vec<P>> {
        if stem.len() < 2 {
            return None;
        }
        let mut p = lookup(stem)?;
        f(&mut p);
        Some(p)
    };
    let plural = |p: &mut Vec<P>| match p.last() {
        Some(l) if l.is(&SIBILANTS) => p.extend([ix(), cons("Z")]),
        Some(l) if l.is(&["P", "T", "K", "F", "TH"]) => p.push(cons("S")),
        _ => p.push(cons("Z")),
    };
    let past = |p: &mut Vec<P>| match p.last() {
        Some(l) if l.is(&["T", "D"]) => p.extend([ix(), cons("D")]),
        Some(l) if l.is(&VOICELESS) || l.is(&["CH"]) => p.push(cons("T")),
        _ => p.push(cons("D")),
    };
    let ing = |p: &mut Vec<P>| p.extend([vowel0("IH"), cons("NG")]);
    for (suf, stems) in [
        ("'s", &["", ""][..]),
        ("s'", &[""]),
        ("'", &[""]),
        ("ies", &["y"]),
        ("es", &["", "e"]),
        ("s", &[""]),
    ] {
        if let Some(b) = word.strip_suffix(suf) {
            for add in stems {
                if let Some(p) = stem_plus(&format!("{b}{add}"), &plural) {
                    return Some(p);
                }
            }
        }
    }
    if let Some(b) = word.strip_suffix("ied") {
        if let Some(p) = stem_plus(&format!("{b}y"), &past) {
            return Some(p);
        }
    }
    if let Some(b) = word.strip_suffix("ed") {
        for stem in [b.to_string(), format!("{b}e"), drop_last(b).to_string()] {
            if let Some(p) = stem_plus(&stem, &past) {
                return Some(p);
            }
        }
    }
    if let Some(b) = word.strip_suffix("ing") {
        for stem in [b.to_string(), format!("{b}e"), drop_last(b).to_string()] {
            if let Some(p) = stem_plus(&stem, &ing) {
                return Some(p);
            }
        }
    }
    for (suf, add) in [
        ("ly", &[("L", 9), ("IY", 0)][..]),
        ("er", &[("ER", 0)]),
        ("ers", &[("ER", 0), ("Z", 9)]),
        ("ness", &[("N", 9), ("AH", 0), ("S", 9)]),
    ] {
        if let Some(b) = word.strip_suffix(suf) {
            if let Some(p) = stem_plus(b, &|p: &mut Vec<P>| {
                for &(base, s) in add {
                    p.push(if s == 9 { cons(base) } else { vowel0(base) });
                }
            }) {
                return Some(p);
            }
        }
    }
    None
}

/// espeak's own readings of a few common words where both lexicons differ
/// from it (reduced or dropped syllables, stress).
fn override_word(w: &str) -> Option<&'static str> {
    Some(match w {
        "every" => "ˈɛvɹi",
        "everything" => "ˈɛvɹɪθˌɪŋ",
        "everyone" => "ˈɛvɹɪwˌʌn",
        "everybody" => "ˈɛvɹɪbˌɑːdi",
        "several" => "sˈɛvɹəl",
        "restaurant" => "ɹˈɛstɹɑːnt",
        "different" => "dˈɪfɹənt",
        "family" => "fˈæmɪli",
        "thirteen" => "θˈɜːtiːn",
        "fourteen" => "fˈɔːɹtiːn",
        "fifteen" => "fˈɪftiːn",
        "sixteen" => "sˈɪkstiːn",
        "seventeen" => "sˈɛvəntˌiːn",
        "eighteen" => "ˈeɪtiːn",
        "nineteen" => "nˈaɪntiːn",
        "eleven" => "ɪlˈɛvən",
        "hundred" => "hˈʌndɹɪd",
        "thousand" => "θˈaʊzənd",
        "million" => "mˈɪliən",
        "billion" => "bˈɪliən",
        "zero" => "zˈiəɹoʊ",
        "point" => "pɔɪnt",
        "percent" => "pɚsˈɛnt",
        "dollar" => "dˈɑːlɚ",
        "minus" => "mˈaɪnəs",
        "roman" => "ɹˌoʊmən",
        "dash" => "dˈæʃ",
        "didn't" => "dˈɪdnt",
        "dog" => "dˈɑːɡ",
        "because" => "bɪkˈʌz",
        "begin" => "bɪɡˈɪn",
        "idea" => "aɪdˈiə",
        "really" => "ɹˈiəli",
        "minutes" => "mˈɪnɪts",
        "minute" => "mˈɪnɪt",
        "mountain" => "mˈaʊntɪn",
        "mountains" => "mˈaʊntɪnz",
        "science" => "sˈaɪəns",
        "scientists" => "sˈaɪəntɪsts",
        "scientist" => "sˈaɪəntɪst",
        "across" => "əkɹˈɑːs",
        "above" => "əbˈʌv",
        "gone" => "ɡˈɔn",
        "want" => "wˈɔnt",
        "wants" => "wˈɔnts",
        "anything" => "ˈɛnɪθˌɪŋ",
        "anyone" => "ˈɛnɪwˌʌn",
        "anywhere" => "ˈɛnɪwˌɛɹ",
        "anybody" => "ˈɛnɪbˌɑːdi",
        "uses" => "jˈuːsᵻz",
        "ninety" => "nˈaɪnti",
        "thirteenth" => "θˈɜːtiːnθ",
        "fourteenth" => "fˈɔːɹtiːnθ",
        "fifteenth" => "fˈɪftiːnθ",
        "sixteenth" => "sˈɪkstiːnθ",
        "seventeenth" => "sˈɛvəntˌiːnθ",
        "eighteenth" => "ˈeɪtiːnθ",
        "nineteenth" => "nˈaɪntiːnθ",
        "i'm" => "aɪm",
        "i'll" => "aɪl",
        "i'd" => "aɪd",
        "i've" => "aɪv",
        _ => return None,
    })
}

/// Vowel-letter groups of a spelling with the index just past each group.
fn vowel_groups(word: &str) -> Vec<(String, usize)> {
    let b: Vec<char> = word.chars().collect();
    let is_v = |i: usize| {
        let c = b[i];
        "aeiou".contains(c) || (c == 'y' && i > 0)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if is_v(i) {
            let s = i;
            while i < b.len() && is_v(i) {
                i += 1;
            }
            out.push((b[s..i].iter().collect(), i));
        } else {
            i += 1;
        }
    }
    out
}

/// Spelling-driven choice of espeak's reduced vowels.
fn reduce_by_spelling(word: &str, p: &mut [P]) {
    let chars: Vec<char> = word.chars().collect();
    let vidx: Vec<usize> = (0..p.len()).filter(|&i| p[i].vowel).collect();
    let mut groups = vowel_groups(word);
    if groups.len() == vidx.len() + 1
        && word.ends_with('e')
        && groups.last().is_some_and(|g| g.0 == "e")
    {
        groups.pop();
    }
    if groups.len() == vidx.len() + 1
        && (word.ends_with("ed") || word.ends_with("es"))
        && groups.last().is_some_and(|g| g.0 == "e")
    {
        groups.pop();
    }
    let n = vidx.len();
    // ᵻ endings: -ed after t/d, -es after a sibilant, -ity.
    if n >= 2 && p.len() >= 3 {
        let l = p.len();
        let (a, v, z) = (p[l - 3], p[l - 2], p[l - 1]);
        let reduced = v.vowel && v.stress == 0 && v.is(&["AH", "IH", "IX"]);
        if reduced
            && ((word.ends_with("ed") && a.is(&["T", "D", "DX"]) && z.is(&["D"]))
                || (word.ends_with("es") && a.is(&SIBILANTS) && z.is(&["Z"])))
        {
            p[l - 2].ipa = Some("ᵻ");
        }
    }
    if word.ends_with("ity") {
        if let Some(k) = (1..p.len().saturating_sub(1))
            .rev()
            .find(|&k| p[k].is(&["T", "DX"]) && p[k + 1].is(&["IY"]))
        {
            if p[k - 1].vowel && p[k - 1].stress == 0 && p[k - 1].is(&["AH", "IH", "IX"]) {
                p[k - 1].ipa = Some("ᵻ");
            }
        }
    }
    // Unstressed prefixes re-/de-/be-/pre-/se- -> ᵻ (ɪ before a vowel).
    if let Some(&f) = vidx.first() {
        let v = p[f];
        let prefix = ["re", "de", "be", "pre", "se"]
            .iter()
            .any(|x| word.starts_with(x) && word.len() > x.len() + 2);
        let keeps_i = [
            "design", "determin", "resign", "develop", "begin", "began", "begun", "because",
        ]
        .iter()
        .any(|x| word.starts_with(x));
        if prefix && n >= 2 && v.stress == 0 && v.is(&["IH", "IY", "AH", "IX"]) {
            let before_vowel = p.get(f + 1).is_some_and(|q| q.vowel);
            p[f].ipa = Some(if before_vowel || keeps_i { "ɪ" } else { "ᵻ" });
        }
        // Initial unstressed a- -> ɐ; ex- -> ɛ.
        let second = word.chars().nth(1).unwrap_or('a');
        if f == 0
            && v.stress == 0
            && word.starts_with('a')
            && !"aeiouy".contains(second)
            && v.is(&["AH"])
            && n >= 2
        {
            p[f].ipa = Some("ɐ");
        }
        let e_prefix = ["ex", "en", "em"].iter().any(|x| word.starts_with(x));
        if e_prefix && v.stress == 0 && v.is(&["AH", "IH", "EH"]) && f == 0 {
            p[f].ipa = Some("ɛ");
        }
        // Initial unstressed e- before a consonant: ᵻ (elect, eleven).
        if f == 0
            && !e_prefix
            && word.starts_with('e')
            && !"aeiouy".contains(second)
            && v.stress == 0
            && v.is(&["IH", "IY", "AH"])
            && n >= 2
        {
            p[f].ipa = Some("ᵻ");
        }
        // un- keeps its vowel, unstressed.
        if word.starts_with("un") && v.is(&["AH"]) && n >= 2 && v.stress != 1 {
            p[f].stress = 0;
            p[f].ipa = Some("ʌ");
        }
    }
    // Superlative -est: ɪ.
    if word.ends_with("est") && n >= 2 {
        if let Some(&l) = vidx.last() {
            if p[l].stress == 0 && p[l].is(&["IX", "AH"]) {
                p[l].ipa = Some("ɪ");
            }
        }
    }
    if groups.len() != n {
        return;
    }
    for (k, &i) in vidx.iter().enumerate() {
        if p[i].stress != 0 || p[i].ipa.is_some() || !p[i].is(&["AH"]) {
            continue;
        }
        let (g, end) = (&groups[k].0, groups[k].1);
        let next = chars.get(end).copied();
        let final_l = next == Some('l') && end + 1 == chars.len();
        if final_l {
            continue;
        }
        let e_reduced = g == "e" && next.is_some_and(|c| !"nlmr".contains(c));
        if g == "i" || g == "y" || e_reduced {
            p[i].ipa = Some("ɪ");
        }
    }
}

/// Stress clean-up: espeak drops a secondary stress next to the primary and
/// on a final open syllable; a content word always has a primary.
fn adjust_stress(p: &mut [P]) {
    let vidx: Vec<usize> = (0..p.len()).filter(|&i| p[i].vowel).collect();
    if !vidx.iter().any(|&i| p[i].stress == 1) {
        if let Some(&i) = vidx
            .iter()
            .find(|&&i| p[i].stress == 2)
            .or_else(|| vidx.iter().find(|&&i| !p[i].is(&["AH", "IX"])))
            .or(vidx.first())
        {
            p[i].stress = 1;
        }
    }
    for k in 0..vidx.len() {
        let i = vidx[k];
        if p[i].stress != 2 {
            continue;
        }
        let near = |j: Option<&usize>| j.is_some_and(|&j| p[j].stress == 1);
        let final_happy = k + 1 == vidx.len()
            && p[i].is(&["IY", "IH"])
            && p[i + 1..].iter().all(|q| q.is(&["Z", "S", "D", "T"]));
        if near(vidx.get(k + 1))
            || (k > 0 && near(vidx.get(k - 1)))
            || i + 1 == p.len()
            || final_happy
        {
            p[i].stress = 0;
        }
    }
}

fn vowel_ipa(v: &P, next: Option<&P>, after: Option<&P>) -> &'static str {
    let before_r = next.is_some_and(|n| n.is(&["R"]));
    let next_vowel = next.is_some_and(|n| n.vowel);
    if let Some(o) = v.ipa {
        return o;
    }
    match v.base {
        "AA" => "ɑː",
        "AE" => "æ",
        "AH" if v.stress == 0 => "ə",
        "AH" => "ʌ",
        "AO" if before_r => "ɔː",
        "AO" => {
            let short = next.is_some_and(|n| n.is(&["NG", "F", "TH", "S"]))
                || (next.is_some_and(|n| n.is(&["N"])) && after.is_some_and(|a| a.is(&["T", "D"])))
                || (next.is_some_and(|n| n.is(&["L"])) && after.is_some_and(|a| a.is(&["T"])));
            if short {
                "ɔ"
            } else {
                "ɔː"
            }
        }
        "AW" => "aʊ",
        "AY" => "aɪ",
        "EH" => "ɛ",
        "ER" if v.stress == 0 => "ɚ",
        "ER" => "ɜː",
        "EY" if before_r => "ɛ",
        "EY" => "eɪ",
        "IH" => "ɪ",
        "IY" if before_r => "ɪ",
        "IY" if next.is_some_and(|n| n.vowel && n.stress == 0 && n.is(&["AH"])) => "i",
        "IY" if next_vowel && v.stress == 0 => "ɪ",
        "IY" if v.stress == 0 => "i",
        "IY" => "iː",
        "OW" => "oʊ",
        "OY" => "ɔɪ",
        "UH" => "ʊ",
        "UW" if before_r => "ʊ",
        "UW" => "uː",
        "IX" => "ɪ",
        _ => "ə",
    }
}

fn consonant_ipa(p: &str) -> &'static str {
    match p {
        "B" => "b",
        "CH" => "tʃ",
        "D" => "d",
        "DH" => "ð",
        "F" => "f",
        "G" => "ɡ",
        "HH" => "h",
        "JH" => "dʒ",
        "K" => "k",
        "L" => "l",
        "M" => "m",
        "N" => "n",
        "NG" => "ŋ",
        "P" => "p",
        "R" => "ɹ",
        "S" => "s",
        "SH" => "ʃ",
        "T" => "t",
        "TH" => "θ",
        "V" => "v",
        "W" => "w",
        "Y" => "j",
        "Z" => "z",
        "ZH" => "ʒ",
        "Q" => "ʔ",
        _ => "",
    }
}

/// Phones -> espeak-style IPA (the spelling decides a few reduced vowels).
fn phones_to_ipa(word: &str, mut p: Vec<P>) -> String {
    // -ia/-ion/-ian: "j ə" after a consonant is espeak's "iə".
    let iə_suffix = ["ion", "ions", "ian", "ians", "ia", "ias", "ium", "iums"]
        .iter()
        .any(|x| word.ends_with(x));
    if iə_suffix {
        for i in 1..p.len().saturating_sub(1) {
            if p[i].is(&["Y"]) && !p[i - 1].vowel && p[i + 1].vowel && p[i + 1].stress == 0 {
                p[i] = vowel0("IY");
                p[i + 1].base = "AH";
            }
        }
    }
    reduce_by_spelling(word, &mut p);
    adjust_stress(&mut p);
    let has_t = word.contains('t');
    let n_vowels = p.iter().filter(|q| q.vowel).count();
    let mut out = String::new();
    let mut i = 0;
    while i < p.len() {
        let cur = p[i];
        let next = p.get(i + 1);
        let after = p.get(i + 2);
        if cur.vowel {
            match cur.stress {
                1 => out.push('ˈ'),
                2 if n_vowels > 1 => out.push('ˌ'),
                _ => {}
            }
            out.push_str(vowel_ipa(&cur, next, after));
            // r-coloured vowel before a vowel: linking r inside the word.
            if cur.is(&["ER"]) && cur.ipa.is_none() && next.is_some_and(|n| n.vowel) {
                out.push('ɹ');
            }
            // After ʊɹ a second ɹ comes before a vowel.
            if cur.is(&["UH", "UW"])
                && next.is_some_and(|n| n.is(&["R"]))
                && after.is_some_and(|a| a.vowel)
            {
                out.push('ɹ');
            }
            i += 1;
            continue;
        }
        let prev = if i > 0 { Some(p[i - 1]) } else { None };
        let prev_vowelish = prev.is_some_and(|q| q.vowel)
            || (prev.is_some_and(|q| q.is(&["R"])) && i > 1 && p[i - 2].vowel);
        // "hw" is written w.
        if cur.is(&["HH"]) && next.is_some_and(|n| n.is(&["W"])) {
            i += 1;
            continue;
        }
        if cur.is(&["Q"]) && next.is_some_and(|n| n.is(&["N"])) && i + 2 == p.len() {
            out.push_str("ʔn\u{329}");
            break;
        }
        // t + unstressed vowel + n at the end of a word: glottal stop and syllabic n.
        if cur.is(&["T", "Q"])
            && prev_vowelish
            && i + 3 == p.len()
            && next.is_some_and(|n| n.vowel && n.stress == 0 && n.is(&["AH", "IH"]))
            && after.is_some_and(|a| a.is(&["N"]))
            && !prev.is_some_and(|q| q.is(&["R"]))
        {
            out.push_str("ʔn\u{329}");
            break;
        }
        let after_r = prev.is_some_and(|q| q.is(&["R", "ER"]));
        let next_unstressed = next.is_some_and(|n| {
            n.vowel
                && n.stress == 0
                && (n.is(&["IH", "IY", "ER", "IX", "UW"]) || (n.is(&["AH"]) && !after_r))
        });
        if cur.is(&["T"]) && prev_vowelish && next_unstressed {
            out.push('ɾ');
        } else if cur.is(&["N"]) && next.is_some_and(|n| n.is(&["K", "G"])) {
            out.push('ŋ');
        } else if cur.is(&["DX"]) {
            out.push(if has_t { 'ɾ' } else { 'd' });
        } else {
            out.push_str(consonant_ipa(cur.base));
        }
        i += 1;
    }
    out
}

/// IPA of one lower-case word in its stressed (content-word) form.
pub fn word_ipa(word: &str) -> String {
    if word.contains('-') {
        return word
            .split('-')
            .filter(|w| !w.is_empty())
            .map(word_ipa)
            .collect();
    }
    if let Some(o) = override_word(word) {
        return o.to_string();
    }
    let w = word.trim_matches('\'');
    if let Some(p) = lookup(word).or_else(|| lookup(w)).or_else(|| inflected(w)) {
        return phones_to_ipa(w, p);
    }
    if w.chars().all(|c| c.is_ascii_alphabetic()) && !w.is_empty() && !has_vowel_letter(w) {
        return spell(w);
    }
    letters_to_sounds(w)
}

fn has_vowel_letter(w: &str) -> bool {
    w.chars().any(|c| "aeiouy".contains(c))
}

/// Letter names for spelling acronyms ("fbi" -> ˌɛfbˌiːˈaɪ): `ˌ` on every
/// letter but the last.
pub fn spell(letters: &str) -> String {
    let names: Vec<&str> = letters
        .chars()
        .filter_map(|c| {
            Some(match c {
                'a' => "eɪ",
                'b' => "biː",
                'c' => "siː",
                'd' => "diː",
                'e' => "iː",
                'f' => "ɛf",
                'g' => "dʒiː",
                'h' => "eɪtʃ",
                'i' => "aɪ",
                'j' => "dʒeɪ",
                'k' => "keɪ",
                'l' => "ɛl",
                'm' => "ɛm",
                'n' => "ɛn",
                'o' => "oʊ",
                'p' => "piː",
                'q' => "kjuː",
                'r' => "ɑːɹ",
                's' => "ɛs",
                't' => "tiː",
                'u' => "juː",
                'v' => "viː",
                'w' => "dʌbəljuː",
                'x' => "ɛks",
                'y' => "waɪ",
                'z' => "ziː",
                _ => return None,
            })
        })
        .collect();
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        let mark = if i + 1 == names.len() { 'ˈ' } else { 'ˌ' };
        let v = name
            .find(|c: char| "aeiouɛɪʌɑæɔəʊ".contains(c))
            .unwrap_or(0);
        out.push_str(&name[..v]);
        out.push(mark);
        out.push_str(&name[v..]);
    }
    out
}

/// A rough letter-to-sound fallback for out-of-lexicon words: common
/// digraphs, then single letters; primary stress on the first vowel.
pub fn letters_to_sounds(word: &str) -> String {
    let chars: Vec<char> = word.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    let mut out = String::new();
    let mut stressed = false;
    let mut i = 0;
    let vowel = |c: char| "aeiouy".contains(c);
    while i < chars.len() {
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let (ipa, len, is_v) = match two.as_str() {
            "th" => ("θ", 2, false),
            "sh" => ("ʃ", 2, false),
            "ch" => ("tʃ", 2, false),
            "ph" => ("f", 2, false),
            "ng" => ("ŋ", 2, false),
            "ck" => ("k", 2, false),
            "qu" => ("kw", 2, false),
            "wh" => ("w", 2, false),
            "ee" | "ea" => ("iː", 2, true),
            "oo" => ("uː", 2, true),
            "ai" | "ay" => ("eɪ", 2, true),
            "ou" | "ow" => ("aʊ", 2, true),
            "oi" | "oy" => ("ɔɪ", 2, true),
            "au" | "aw" => ("ɔː", 2, true),
            "er" if i + 2 == chars.len() => ("ɚ", 2, false),
            _ => {
                let c = chars[i];
                let last = i + 1 == chars.len();
                match c {
                    'a' if stressed => ("ə", 1, true),
                    'a' => ("æ", 1, true),
                    'e' if last && i > 0 => ("", 1, false),
                    'e' if stressed => ("ɪ", 1, true),
                    'e' => ("ɛ", 1, true),
                    'i' => ("ɪ", 1, true),
                    'o' if stressed => ("oʊ", 1, true),
                    'o' => ("ɑː", 1, true),
                    'u' if stressed => ("ə", 1, true),
                    'u' => ("ʌ", 1, true),
                    'y' if last => ("i", 1, false),
                    'y' if i == 0 => ("j", 1, false),
                    'y' => ("ɪ", 1, true),
                    'c' if chars.get(i + 1).is_some_and(|&n| "eiy".contains(n)) => ("s", 1, false),
                    'c' | 'k' | 'q' => ("k", 1, false),
                    'g' => ("ɡ", 1, false),
                    'j' => ("dʒ", 1, false),
                    'r' => ("ɹ", 1, false),
                    'x' => ("ks", 1, false),
                    's' if i > 0 && last && vowel(chars[i - 1]) => ("z", 1, false),
                    'b' => ("b", 1, false),
                    'd' => ("d", 1, false),
                    'f' => ("f", 1, false),
                    'h' => ("h", 1, false),
                    'l' => ("l", 1, false),
                    'm' => ("m", 1, false),
                    'n' => ("n", 1, false),
                    'p' => ("p", 1, false),
                    's' => ("s", 1, false),
                    't' => ("t", 1, false),
                    'v' => ("v", 1, false),
                    'w' => ("w", 1, false),
                    'z' => ("z", 1, false),
                    _ => ("", 1, false),
                }
            }
        };
        // Doubled consonants sound once.
        if len == 1 && i > 0 && chars[i] == chars[i - 1] && !vowel(chars[i]) {
            i += 1;
            continue;
        }
        if is_v && !stressed {
            out.push('ˈ');
            stressed = true;
        }
        out.push_str(ipa);
        i += len;
    }
    out
}

/// Whether a word's pronunciation starts with a vowel sound.
pub fn starts_with_vowel_sound(ipa: &str) -> bool {
    ipa.trim_start_matches(['ˈ', 'ˌ'])
        .starts_with(|c: char| "aeiouɛɪʌɑæɔəʊɜɚɐᵻ".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicon_file_is_sorted_unique_and_searchable() {
        let mut prev: Option<&str> = None;
        let mut n = 0;
        for line in LEXICON_TSV.lines() {
            let (w, pron) = line.split_once('\t').expect("word<TAB>phones");
            assert!(!w.is_empty() && !pron.is_empty(), "line {line:?}");
            if let Some(p) = prev {
                assert!(p < w, "not sorted/unique: {p:?} then {w:?}");
            }
            prev = Some(w);
            // Every 97th entry is found by the in-place search.
            if n % 97 == 0 {
                assert_eq!(lexicon_get(w), Some(pron), "{w}");
            }
            n += 1;
        }
        assert!(n > 100_000);
        let (first, last) = (LEXICON_TSV.lines().next(), LEXICON_TSV.lines().last());
        for l in [first, last].into_iter().flatten() {
            let (w, pron) = l.split_once('\t').expect("entry");
            assert_eq!(lexicon_get(w), Some(pron));
        }
        for absent in [
            "",
            "zzzzzzzzzz",
            "\u{0}",
            "aaaaaaaaaaaaaaaaaaaaaaa",
            "quux_not_a_word",
        ] {
            assert_eq!(lexicon_get(absent), None, "{absent:?}");
        }
    }

    #[test]
    fn lexicon_words_map_to_espeak_conventions() {
        assert_eq!(word_ipa("water"), "wˈɔːɾɚ");
        assert_eq!(word_ipa("city"), "sˈɪɾi");
        assert_eq!(word_ipa("debate"), "dᵻbˈeɪt");
        assert_eq!(word_ipa("voted"), "vˈoʊɾᵻd");
        assert_eq!(word_ipa("button"), "bˈʌʔn\u{329}");
        assert_eq!(word_ipa("long"), "lˈɔŋ");
        assert_eq!(word_ipa("full-time"), "fˈʊltˈaɪm");
    }

    #[test]
    fn unknown_words_fall_back_without_panicking() {
        for w in ["caféed", "naïveing", "éed", "ü's", "ßes", "ed", "ing", "'"] {
            let _ = word_ipa(w);
        }
        assert!(!word_ipa("zxqvbnm").is_empty());
        assert!(!word_ipa("blorptastic").is_empty());
        assert_eq!(word_ipa(""), "");
    }
}
