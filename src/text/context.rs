//! Effects between words inside a clause, as espeak-ng en-us writes them:
//! function words in their running-speech forms (before a consonant, before
//! a vowel, clause-final), word pairs written as one token ("of the" ->
//! ʌvðə), words reduced inside a clause, linking r and the ʲ glide.
//! The forms are observations of espeak's output (see
//! shared/spec/english-g2p-notes.md §1.3-1.4), not copies of its data files.

use super::g2p;

/// Forms of a function word: before a consonant, before a vowel, clause-final.
fn function_word(w: &str) -> Option<(&'static str, &'static str, &'static str)> {
    let f = |a, b, c| Some((a, b, c));
    let same = |a| Some((a, a, a));
    match w {
        "a" => f("ɐ", "ɐ", "ˈeɪ"),
        "an" => f("æn", "ɐn", "æn"),
        "the" => f("ðə", "ðɪ", "ðə"),
        "of" => same("ʌv"),
        "to" => f("tə", "tʊ", "tuː"),
        "and" => same("ænd"),
        "in" => f("ɪn", "ɪn", "ˈɪn"),
        "is" => same("ɪz"),
        "it" => f("ɪt", "ɪɾ", "ɪt"),
        "that" => f("ðæt", "ðæt", "ðˈæt"),
        "for" => same("fɔːɹ"),
        "on" => f("ˌɔn", "ˌɔn", "ˈɔn"),
        "was" => same("wʌz"),
        "with" => same("wɪð"),
        "as" => same("æz"),
        "at" => f("æt", "æɾ", "æt"),
        "by" => f("baɪ", "baɪ", "bˈaɪ"),
        "from" => same("fɹʌm"),
        "or" => same("ɔːɹ"),
        "be" => f("biː", "biː", "bˈiː"),
        "are" => same("ɑːɹ"),
        "were" => same("wɜː"),
        "been" => same("bˌɪn"),
        "has" => f("hɐz", "hɐz", "hˈæz"),
        "have" => f("hæv", "hæv", "hˈæv"),
        "had" => f("hæd", "hæd", "hˌæd"),
        "he" => same("hiː"),
        "she" => same("ʃiː"),
        "they" => same("ðeɪ"),
        "we" => same("wiː"),
        "you" => same("juː"),
        "i" => f("aɪ", "aɪ", "ˈaɪ"),
        "me" => same("mˌiː"),
        "him" => same("hˌɪm"),
        "her" => same("hɜː"),
        "us" => same("ˌʌs"),
        "them" => same("ðˌɛm"),
        "my" => f("maɪ", "maɪ", "mˈaɪ"),
        "your" => same("jʊɹ"),
        "his" => f("hɪz", "hɪz", "hˈɪz"),
        "its" | "it's" => same("ɪts"),
        "we're" => same("wɪɹ"),
        "you're" => same("jʊɹ"),
        "they're" => same("ðɛɹ"),
        "they've" => same("ðeɪv"),
        "we've" => same("wiːv"),
        "you've" => same("juːv"),
        "we'll" => same("wiːl"),
        "you'll" => same("juːl"),
        "they'll" => same("ðeɪl"),
        "he'll" => same("hiːl"),
        "she'll" => same("ʃiːl"),
        "he'd" => same("hiːd"),
        "she'd" => same("ʃiːd"),
        "we'd" => same("wiːd"),
        "they'd" => same("ðeɪd"),
        "he's" => same("hiːz"),
        "she's" => same("ʃiːz"),
        "who's" => same("hˌuːz"),
        "our" => same("ˌaʊɚ"),
        "their" => same("ðɛɹ"),
        "this" => f("ðɪs", "ðɪs", "ðˈɪs"),
        "these" => f("ðiːz", "ðiːz", "ðˈiːz"),
        "those" => f("ðoʊz", "ðoʊz", "ðˈoʊz"),
        "there" => f("ðɛɹ", "ðɛɹ", "ðˈɛɹ"),
        "not" => f("nˌɑːt", "nˌɑːt", "nˈɑːt"),
        "but" => same("bˌʌt"),
        "if" => same("ɪf"),
        "so" => f("sˌoʊ", "sˌoʊ", "sˈoʊ"),
        "than" => same("ðɐn"),
        "will" => f("wɪl", "wɪl", "wˈɪl"),
        "would" => f("wʊd", "wʊd", "wˈʊd"),
        "can" => f("kæn", "kæn", "kˈæn"),
        "could" => f("kʊd", "kʊd", "kˈʊd"),
        "should" => f("ʃˌʊd", "ʃˌʊd", "ʃˈʊd"),
        "shall" => f("ʃˌæl", "ʃˌæl", "ʃˈæl"),
        "might" => f("mˌaɪt", "mˌaɪt", "mˈaɪt"),
        "am" => same("æm"),
        "what" => f("wʌt", "wʌt", "wˈʌt"),
        "which" => f("wˌɪtʃ", "wˌɪtʃ", "wˈɪtʃ"),
        "who" => f("hˌuː", "hˌuː", "hˈuː"),
        "when" => f("wɛn", "wɛn", "wˈɛn"),
        "where" => f("wˌɛɹ", "wˌɛɹ", "wˈɛɹ"),
        "why" => f("wˌaɪ", "wˌaɪ", "wˈaɪ"),
        "how" => f("hˌaʊ", "hˌaʊ", "hˈaʊ"),
        "some" => same("sˌʌm"),
        "any" => same("ˌɛni"),
        "one" => f("wˈʌn", "wˈʌn", "wˌʌn"),
        "up" => f("ˌʌp", "ˌʌp", "ˈʌp"),
        "down" => f("dˌaʊn", "dˌaʊn", "dˈaʊn"),
        "over" => f("ˌoʊvɚ", "ˌoʊvɚ", "ˈoʊvɚ"),
        "into" => same("ˌɪntʊ"),
        "about" => f("ɐbˌaʊt", "ɐbˌaʊt", "ɐbˈaʊt"),
        "before" => f("bᵻfˌɔːɹ", "bᵻfˌɔːɹ", "bᵻfˈɔːɹ"),
        "under" => f("ˌʌndɚ", "ˌʌndɚ", "ˈʌndɚ"),
        "between" => f("bᵻtwˌiːn", "bᵻtwˌiːn", "bᵻtwˈiːn"),
        "through" => f("θɹuː", "θɹuː", "θɹˈuː"),
        _ => None,
    }
}

/// Words espeak reduces to a secondary stress inside a clause.
const SECONDARY_INSIDE: [&str; 30] = [
    "across",
    "nearly",
    "near",
    "behind",
    "without",
    "within",
    "going",
    "go",
    "make",
    "makes",
    "made",
    "while",
    "among",
    "amongst",
    "above",
    "below",
    "beneath",
    "beyond",
    "already",
    "put",
    "being",
    "having",
    "doing",
    "isn't",
    "aren't",
    "weren't",
    "couldn't",
    "shouldn't",
    "onto",
    "upon",
];

/// Words espeak leaves unstressed inside a clause.
const UNSTRESSED_INSIDE: [&str; 9] = [
    "goes", "went", "gone", "get", "got", "won't", "that's", "there's", "what's",
];

/// Word pairs espeak writes as one token.
fn join(a: &str, b: &str) -> Option<&'static str> {
    Some(match (a, b) {
        ("of", "a") => "əvə",
        ("of", "an") => "əvən",
        ("of", "the") => "ʌvðə",
        ("of", "which") => "ʌvwˈɪtʃ",
        ("to", "to") => "tʊtə",
        ("to", "be") => "təbi",
        ("in", "the") => "ɪnðə",
        ("in", "which") => "ɪnwˌɪtʃ",
        ("that", "a") => "ðˌæɾə",
        ("that", "the") => "ðætðə",
        ("that", "it") => "ðˌɐɾɪt",
        ("that", "one") => "ðˈætwˌʌn",
        ("for", "a") => "fɚɹə",
        ("for", "an") => "fɚɹən",
        ("for", "the") => "fɚðə",
        ("on", "the") => "ɔnðə",
        ("was", "a") => "wʌzɐ",
        ("was", "the") => "wʌzðə",
        ("with", "the") => "wɪððə",
        ("as", "is") => "ˌæzˌɪz",
        ("at", "a") => "æɾə",
        ("at", "will") => "ɐtwˈɪl",
        ("from", "the") => "fɹʌmðə",
        ("has", "been") => "hɐzbɪn",
        ("has", "not") => "həznɑːt",
        ("have", "been") => "hɐvbɪn",
        ("have", "not") => "hɐvnˌɑːt",
        ("had", "to") => "hædtə",
        ("had", "it") => "hˌædɪt",
        ("had", "been") => "hɐdbɪn",
        ("had", "them") => "hˌædðɛm",
        ("we", "shall") => "wiːʃˌɐl",
        ("i", "shall") => "aɪʃˌɐl",
        ("i", "am") => "aɪɐm",
        ("this", "one") => "ðˈɪswˌʌn",
        ("there", "was") => "ðɛɹwˌʌz",
        ("there", "be") => "ðɛɹbˈiː",
        ("there", "are") => "ðɛɹˌɑːɹ",
        ("there", "were") => "ðɛɹwˌɜː",
        ("not", "a") => "nˌɑːɾə",
        ("not", "have") => "nˌɑːɾɐv",
        ("than", "a") => "ðˌænə",
        ("than", "an") => "ðˌænən",
        ("do", "not") => "duːnˌɑːt",
        ("does", "not") => "dʌznˌɑːt",
        ("did", "not") => "dɪdnˌɑːt",
        ("will", "to") => "wˈɪltə",
        ("would", "have") => "wʊdhɐv",
        ("could", "have") => "kˌʊdɐv",
        ("should", "have") => "ʃˌʊdəv",
        ("may", "have") => "mˌeɪhɐv",
        ("might", "have") => "mˌaɪthɐv",
        ("must", "have") => "mˈʌstɐv",
        ("some", "one") => "sˈʌmwʌn",
        ("no", "one") => "nˈoʊwˈʌn",
        ("no", "more") => "nˈoʊmˌɔːɹ",
        ("out", "of") => "ˌaʊɾəv",
        ("many", "of") => "mˈɛnɪʲəv",
        _ => return None,
    })
}

/// Heteronyms espeak reads differently as noun and verb: (noun, verb).
fn heteronym(w: &str) -> Option<(&'static str, &'static str)> {
    Some(match w {
        "live" => ("lˈaɪv", "lˈɪv"),
        "lives" => ("lˈaɪvz", "lˈɪvz"),
        "record" => ("ɹˈɛkɚd", "ɹᵻkˈɔːɹd"),
        "records" => ("ɹˈɛkɚdz", "ɹᵻkˈɔːɹdz"),
        "use" => ("jˈuːs", "jˈuːz"),
        "close" => ("klˈoʊs", "klˈoʊz"),
        "increase" => ("ˈɪŋkɹiːs", "ɪŋkɹˈiːs"),
        "decrease" => ("dˈiːkɹiːs", "dᵻkɹˈiːs"),
        "present" => ("pɹˈɛzənt", "pɹᵻzˈɛnt"),
        "object" => ("ˈɑːbdʒɛkt", "əbdʒˈɛkt"),
        "project" => ("pɹˈɑːdʒɛkt", "pɹədʒˈɛkt"),
        "permit" => ("pˈɜːmɪt", "pɚmˈɪt"),
        "produce" => ("pɹˈoʊduːs", "pɹədˈuːs"),
        "conduct" => ("kˈɑːndʌkt", "kəndˈʌkt"),
        "contract" => ("kˈɑːntɹækt", "kəntɹˈækt"),
        "export" => ("ˈɛkspɔːɹt", "ɛkspˈɔːɹt"),
        "import" => ("ˈɪmpɔːɹt", "ɪmpˈɔːɹt"),
        "refuse" => ("ɹˈɛfjuːz", "ɹᵻfjˈuːz"),
        "content" => ("kˈɑːntɛnt", "kəntˈɛnt"),
        "desert" => ("dˈɛzɚt", "dᵻzˈɜːt"),
        _ => return None,
    })
}

/// Whether the previous word makes the next one a verb ("to record", "they live").
fn verb_context(prev: Option<&str>) -> bool {
    prev.is_some_and(|p| {
        [
            "to", "will", "would", "can", "could", "should", "may", "might", "must", "shall", "i",
            "you", "we", "they", "please", "not", "don't", "didn't", "never", "cannot", "can't",
            "won't", "who", "and", "or", "also", "still", "often", "always", "people",
        ]
        .contains(&p)
    })
}

/// One clause's words: the word (None for spelled letters) and its
/// stressed, context-free IPA. Returns the clause's IPA, words separated by
/// one space.
#[cfg(test)]
pub fn clause_ipa(words: &[(Option<&str>, String)]) -> String {
    let parts: Vec<String> = clause_parts(words).into_iter().map(|p| p.0).collect();
    parts.join(" ")
}

/// [`clause_ipa`] as its space-separated parts, each with the index of the
/// first word it speaks and how many words it speaks (2 for a pair espeak
/// writes as one token, like "in the" -> `ɪnðə`). Words whose IPA is empty
/// have no part.
pub fn clause_parts(words: &[(Option<&str>, String)]) -> Vec<(String, usize, usize)> {
    let n = words.len();
    let next_vowel = |i: usize| {
        words
            .get(i)
            .is_some_and(|(w, ipa)| match w.and_then(function_word) {
                Some((cons, _, _)) => g2p::starts_with_vowel_sound(cons),
                None => g2p::starts_with_vowel_sound(ipa),
            })
    };
    let mut parts: Vec<(String, usize, usize)> = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let (w, ipa) = &words[i];
        let last = i + 1 == n;
        if let (Some(a), Some((Some(b), _))) = (w, words.get(i + 1)) {
            if let Some(j) = join(a, b) {
                let mut s = j.to_string();
                if i + 2 < n && next_vowel(i + 2) {
                    if let Some(stem) = s.strip_suffix("ðə") {
                        s = format!("{stem}ðɪ");
                    }
                }
                parts.push((s, i, 2));
                i += 2;
                continue;
            }
        }
        let form = match w {
            Some("what") if i == 0 && !last => "wˌʌt".to_string(),
            Some(word) => match function_word(word) {
                Some((cons, vow, fin)) => {
                    if last {
                        fin
                    } else if next_vowel(i + 1) {
                        vow
                    } else {
                        cons
                    }
                }
                .to_string(),
                None if heteronym(word).is_some() => {
                    let (noun, verb) = heteronym(word).unwrap_or_default();
                    let prev = if i > 0 { words[i - 1].0 } else { None };
                    if verb_context(prev) { verb } else { noun }.to_string()
                }
                None if !last && SECONDARY_INSIDE.contains(word) => ipa.replace('ˈ', "ˌ"),
                None if !last && UNSTRESSED_INSIDE.contains(word) => ipa.replace(['ˈ', 'ˌ'], ""),
                None => ipa.clone(),
            },
            None => ipa.clone(),
        };
        parts.push((form, i, 1));
        i += 1;
    }
    parts.retain(|p| !p.0.is_empty());
    parts
}

/// Where the second word of a joined pair begins in the pair's IPA (a char
/// index): before the last occurrence of the first sound of the second
/// word's own IPA (`second`), a stress mark before it included; else in
/// proportion to the two words' own lengths.
pub fn join_split(joined: &str, first: &str, second: &str) -> usize {
    let c: Vec<char> = joined.chars().collect();
    let onset = second.chars().find(|&x| x != 'ˈ' && x != 'ˌ');
    if let Some(k) = onset.and_then(|o| c.iter().rposition(|&x| x == o)) {
        if k > 0 {
            return if matches!(c[k - 1], 'ˈ' | 'ˌ') && k > 1 {
                k - 1
            } else {
                k
            };
        }
    }
    let (a, b) = (first.chars().count().max(1), second.chars().count().max(1));
    (c.len() * a / (a + b)).clamp(1, c.len().saturating_sub(1).max(1))
}

fn is_vowel(c: char) -> bool {
    "ɛɪaæɔeɑʌiouɜʊəɚɐᵻ".contains(c)
}

/// Linking r after ɚ/ɜː and the ʲ glide after i, iː, ɪ, aɪ before a vowel,
/// inside a word or across one space (not across punctuation).
#[cfg(test)]
pub fn glide_and_link(s: &str) -> String {
    glide_and_link_map(s).0
}

/// [`glide_and_link`], and where each char of `s` went: `map[i]` is the
/// char index in the result of char `i` of `s` (`map[len]` = the result's
/// length). Inserted sounds belong to the char before them.
pub fn glide_and_link_map(s: &str) -> (String, Vec<usize>) {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    let mut map = Vec::with_capacity(c.len() + 1);
    let mut len = 0;
    for j in 0..c.len() {
        map.push(len);
        out.push(c[j]);
        len += 1;
        let prev = if j > 0 { c[j - 1] } else { ' ' };
        let glide_tail = (c[j] == 'i' && c.get(j + 1) != Some(&'ː'))
            || (c[j] == 'ː' && prev == 'i')
            || (c[j] == 'ɪ' && !"eɔ".contains(prev));
        let r_tail = c[j] == 'ɚ' || (c[j] == 'ː' && prev == 'ɜ');
        if !glide_tail && !r_tail {
            continue;
        }
        let mut m = j + 1;
        let skip_marks = |m: &mut usize| {
            while *m < c.len() && (c[*m] == 'ˈ' || c[*m] == 'ˌ') {
                *m += 1;
            }
        };
        skip_marks(&mut m);
        let mut space = false;
        if m < c.len() && c[m] == ' ' {
            space = true;
            m += 1;
            skip_marks(&mut m);
        }
        let Some(&v) = c.get(m) else { continue };
        if !is_vowel(v) {
            continue;
        }
        if r_tail {
            // espeak links r before a vowel, but not before "and" or "if".
            let rest: String = c[m..c.len().min(m + 4)].iter().collect();
            let unlinked = space
                && ["ænd", "ɪf"].iter().any(|w| {
                    rest.starts_with(w)
                        && !rest[w.len()..].starts_with(|x: char| x.is_alphabetic() && x != ' ')
                });
            if !unlinked {
                out.push('ɹ');
                len += 1;
            }
        } else {
            // No glide after aɪ across a word boundary.
            if space && c[j] == 'ɪ' && prev == 'a' {
                continue;
            }
            // No glide inside the iə unit, nor after aɪ before an unstressed
            // vowel of the same word (tɹˈaɪəl, hˈaɪɚ, tɹˈaɪɪŋ).
            let base_i = c[j] == 'i' || c[j] == 'ː';
            if !space && m == j + 1 && ((v == 'ə' && base_i) || (c[j] == 'ɪ' && prev == 'a')) {
                continue;
            }
            out.push('ʲ');
            len += 1;
        }
    }
    map.push(len);
    (out, map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(ws: &[&str]) -> String {
        let v: Vec<(Option<&str>, String)> =
            ws.iter().map(|w| (Some(*w), g2p::word_ipa(w))).collect();
        glide_and_link(&clause_ipa(&v))
    }

    #[test]
    fn function_words_follow_context() {
        assert_eq!(clause(&["the", "end"]), "ðɪʲ ˈɛnd");
        assert_eq!(clause(&["the", "dog"]), "ðə dˈɑːɡ");
        assert_eq!(clause(&["end", "of", "the", "month"]), "ˈɛnd ʌvðə mˈʌnθ");
        assert_eq!(clause(&["in", "the", "evening"]), "ɪnðɪʲ ˈiːvnɪŋ");
        assert_eq!(clause(&["after", "a"]), "ˈæftɚɹ ˈeɪ");
    }
}
