//! Grapheme to phoneme: CMUdict (ARPAbet) mapped to espeak-style en-us IPA,
//! espeak's unstressed function words, flapped t/d, and a letter-rule
//! fallback for words the lexicon lacks.

use std::sync::OnceLock;

static LEXICON_TSV: &str = include_str!("../../data/cmudict.tsv");

/// The lexicon as a sorted table (binary search). A plain Vec rather than a
/// hash map: its heap block is referenced from its start, so leak checkers
/// see this process-lifetime cache as reachable.
struct Lexicon(Vec<(&'static str, &'static str)>);

impl Lexicon {
    fn get(&self, word: &str) -> Option<&'static str> {
        self.0
            .binary_search_by(|(w, _)| (*w).cmp(word))
            .ok()
            .map(|i| self.0[i].1)
    }

    fn contains_key(&self, word: &str) -> bool {
        self.get(word).is_some()
    }
}

fn lexicon() -> &'static Lexicon {
    static L: OnceLock<Lexicon> = OnceLock::new();
    L.get_or_init(|| {
        let mut v: Vec<(&str, &str)> = LEXICON_TSV
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        Lexicon(v)
    })
}

/// Whether an all-caps token is read as a word (it is in the lexicon) rather than spelled.
pub fn is_pronounceable_acronym(letters: &str) -> bool {
    letters.len() >= 4 && lexicon().contains_key(letters.to_lowercase().as_str())
}

/// espeak's forms of common function words (unstressed in running speech).
fn function_word(w: &str, next_starts_with_vowel: bool) -> Option<&'static str> {
    Some(match w {
        "the" if next_starts_with_vowel => "ðɪ",
        "the" => "ðə",
        "a" => "ɐ",
        "an" => "ɐn",
        "to" if next_starts_with_vowel => "tʊ",
        "to" => "tə",
        "of" => "ʌv",
        "and" => "ænd",
        "in" => "ɪn",
        "is" => "ɪz",
        "it" => "ɪt",
        "was" => "wʌz",
        "for" => "fɔːɹ",
        "from" => "fɹʌm",
        "with" => "wɪð",
        "his" => "hɪz",
        "her" => "hɜː",
        "my" => "maɪ",
        "by" => "baɪ",
        "at" => "æt",
        "as" => "æz",
        "or" => "ɔːɹ",
        "you" => "juː",
        "she" => "ʃiː",
        "he" => "hiː",
        "we" => "wiː",
        "me" => "miː",
        "be" => "biː",
        "i" => "aɪ",
        "this" => "ðɪs",
        "on" => "ɔn",
        "are" => "ɑːɹ",
        "were" => "wɜː",
        "been" => "bɪn",
        "has" => "hæz",
        "had" => "hæd",
        "do" => "duː",
        "but" => "bˌʌt",
        "if" => "ɪf",
        "so" => "sˌoʊ",
        "than" => "ðɐn",
        "then" => "ðˈɛn",
        "them" => "ðˌɛm",
        "us" => "ˌʌs",
        "our" => "aʊɚ",
        "their" => "ðɛɹ",
        "your" => "jʊɹ",
        "its" => "ɪts",
        "can" => "kæn",
        "will" => "wɪl",
        "would" => "wʊd",
        "should" => "ʃˌʊd",
        "could" => "kʊd",
        "there" => "ðɛɹ",
        "who" => "hˌuː",
        "which" => "wˌɪtʃ",
        "when" => "wˌɛn",
        "what" => "wˌʌt",
        _ => return None,
    })
}

fn is_vowel_phone(p: &str) -> bool {
    p.as_bytes().last().is_some_and(u8::is_ascii_digit)
}

fn vowel_ipa(base: &str, stress: u8, next: Option<&str>) -> &'static str {
    let before_r = next == Some("R");
    match (base, stress) {
        ("AA", _) => "ɑː",
        ("AE", _) => "æ",
        ("AH", 0) => "ə",
        ("AH", _) => "ʌ",
        ("AO", _) if before_r => "ɔː",
        ("AO", _) => "ɔː",
        ("AW", _) => "aʊ",
        ("AY", _) => "aɪ",
        ("EH", _) => "ɛ",
        ("ER", 0) => "ɚ",
        ("ER", _) => "ɜː",
        ("EY", _) if before_r => "ɛ",
        ("EY", _) => "eɪ",
        ("IH", _) => "ɪ",
        ("IY", _) if before_r => "ɪ",
        ("IY", 0) => "i",
        ("IY", _) => "iː",
        ("OW", _) => "oʊ",
        ("OY", _) => "ɔɪ",
        ("UH", _) => "ʊ",
        ("UW", 0) => "u",
        ("UW", _) => "uː",
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
        _ => "",
    }
}

/// ARPAbet phones -> espeak-style IPA with stress marks before the vowel.
pub fn arpabet_to_ipa(phones: &[&str]) -> String {
    let mut out = String::new();
    let n_vowels = phones.iter().filter(|p| is_vowel_phone(p)).count();
    for (i, p) in phones.iter().enumerate() {
        let next = phones.get(i + 1).copied();
        if is_vowel_phone(p) {
            let (base, s) = p.split_at(p.len() - 1);
            let mut stress = s.parse::<u8>().unwrap_or(0);
            // espeak leaves a word-final open syllable with secondary stress
            // unstressed ("company" -> ...ni, not ...ˌiː).
            if stress == 2 && i + 1 == phones.len() {
                stress = 0;
            }
            match stress {
                1 => out.push('ˈ'),
                2 if n_vowels > 1 => out.push('ˌ'),
                _ => {}
            }
            out.push_str(vowel_ipa(base, stress, next));
        } else {
            // Flap: t/d after a vowel (or r after a vowel) before an unstressed vowel.
            let prev_vowelish = i > 0
                && (is_vowel_phone(phones[i - 1])
                    || (phones[i - 1] == "R" && i > 1 && is_vowel_phone(phones[i - 2])));
            let next_unstressed = next.is_some_and(|n| is_vowel_phone(n) && n.ends_with('0'));
            if (*p == "T" || *p == "D") && prev_vowelish && next_unstressed {
                out.push('ɾ');
            } else {
                out.push_str(consonant_ipa(p));
            }
        }
    }
    out
}

fn lookup(word: &str) -> Option<String> {
    let phones: Vec<&str> = lexicon().get(word)?.split(' ').collect();
    Some(arpabet_to_ipa(&phones))
}

/// IPA of one lower-case word; `next_vowel`: the next word starts with a vowel sound.
pub fn word_ipa(word: &str, next_vowel: bool) -> String {
    if let Some(f) = function_word(word, next_vowel) {
        return f.to_string();
    }
    if let Some(p) = lookup(word) {
        return p;
    }
    // Possessives and plurals of known words.
    for (suffix, add) in [
        ("'s", "z"),
        ("s'", "z"),
        ("'", ""),
        ("s", "z"),
        ("es", "ᵻz"),
        ("ed", "d"),
        ("ing", "ɪŋ"),
        ("ly", "li"),
        ("er", "ɚ"),
    ] {
        if let Some(base) = word.strip_suffix(suffix) {
            if base.len() >= 2 {
                if let Some(p) = lookup(base) {
                    return format!("{p}{add}");
                }
            }
        }
    }
    letters_to_sounds(word)
}

/// Letter names for spelling acronyms ("fbi" -> ɛfbˌiːˈaɪ).
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
        // Stress mark before the letter name's vowel.
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
                    'a' => ("æ", 1, true),
                    'e' if last && i > 0 => ("", 1, false),
                    'e' => ("ɛ", 1, true),
                    'i' => ("ɪ", 1, true),
                    'o' => ("ɑː", 1, true),
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
        .starts_with(|c: char| "aeiouɛɪʌɑæɔəʊɜɚɐ".contains(c))
}
