//! The frontend with positions: text (or SSML's runs) -> sentences of IPA
//! that know which input word each phoneme speaks, where marks fall, how
//! fast each phoneme is spoken and which silences come between sentences.
//! [`super::phonemize`] is this analysis without the positions, so text
//! spoken with timestamps is exactly the text spoken without them.
//!
//! Words: an input word is a whitespace-separated token that gives at least
//! one spoken word ("$3.50" is one input word, spoken "three dollars fifty
//! cents"); its text is the token without the punctuation around it. Each
//! input word owns the phonemes of its spoken words; a pair espeak writes as
//! one token ("in the" -> `ɪnðə`) is split where the second word's first
//! sound begins ([`context::join_split`]).

use super::normalize::{self, Piece};
use super::{clean, context, g2p, is_end, split_long, MAX_SENTENCE_PHONEMES};
use std::ops::Range;
use unicode_normalization::UnicodeNormalization;

/// A word of the input: its text as written and its byte range in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceWord {
    /// The word as written (punctuation around it left out).
    pub text: String,
    /// Byte range in the input (for SSML: in the SSML source).
    pub src: Range<usize>,
}

/// What comes before a sentence (or after the last one): exact silence or a
/// mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gap {
    /// Silence of this many milliseconds.
    Silence(u32),
    /// A mark at this point.
    Mark(String),
}

/// The chars `chars` of a sentence's IPA speak input word `word`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordSpan {
    /// Index into [`Analysis::words`].
    pub word: usize,
    /// Char (code point) range in [`Spoken::ipa`].
    pub chars: Range<usize>,
}

/// One sentence piece as the voice will speak it.
#[derive(Clone, Debug, PartialEq)]
pub struct Spoken {
    /// espeak-style IPA, NFD (one code point per phoneme).
    pub ipa: String,
    /// The input words it speaks, in order.
    pub words: Vec<WordSpan>,
    /// Marks inside it: name and char position in `ipa`.
    pub marks: Vec<(String, usize)>,
    /// Speaking rate per char of `ipa` (1 normal, 2 twice as fast).
    pub rates: Vec<f32>,
    /// The voice (or speaker) it is spoken with; `None`: the request's.
    pub voice: Option<String>,
    /// Silences and marks before it.
    pub before: Vec<Gap>,
}

/// A whole input analysed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Analysis {
    /// Every input word, in order.
    pub words: Vec<SourceWord>,
    /// The sentence pieces, in order.
    pub sentences: Vec<Spoken>,
    /// Silences and marks after the last sentence.
    pub after: Vec<Gap>,
    /// Warnings (from SSML).
    pub warnings: Vec<String>,
}

pub use super::ssml::Style;

/// One element of a sentence before rendering.
enum Item {
    Piece(Piece, Option<usize>, f32),
    Ipa(String, usize, f32),
    Mark(String),
}

/// Builds an [`Analysis`] from text, words with given pieces or IPA, breaks,
/// marks and boundaries, in order.
#[derive(Default)]
pub struct Builder {
    out: Analysis,
    items: Vec<Item>,
    voice: Option<String>,
    gaps: Vec<Gap>,
}

/// Chars that stay part of a word at its ends.
fn keeps(c: char) -> bool {
    c.is_alphanumeric() || "$€£¥%#@&+°§=".contains(c)
}

/// The word inside a token: its byte range (the token if nothing is left).
fn word_range(tok: &str) -> Range<usize> {
    let a = tok.find(keeps);
    let b = tok
        .char_indices()
        .rev()
        .find(|&(_, c)| keeps(c))
        .map(|(i, c)| i + c.len_utf8());
    match (a, b) {
        (Some(a), Some(b)) if a < b => a..b,
        _ => 0..tok.len(),
    }
}

impl Builder {
    /// An empty analysis.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Plain text. `src` maps each byte of `text` (and its end) to the
    /// byte offset reported for it; `None`: the offsets in `text` itself.
    pub fn text(&mut self, text: &str, src: Option<&[usize]>, style: &Style) {
        let at = |i: usize| src.map_or(i, |m| m.get(i).copied().unwrap_or(i));
        let mut start = None;
        let bytes = text.len();
        for (i, c) in text.char_indices().chain(std::iter::once((bytes, ' '))) {
            let sep = c.is_whitespace() || c.is_control();
            match (sep, start) {
                (true, Some(a)) => {
                    self.token(&text[a..i], a, &at, style);
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
    }

    /// One whitespace-free token of `text` at byte `a`.
    fn token(&mut self, tok: &str, a: usize, at: &dyn Fn(usize) -> usize, style: &Style) {
        self.switch(style);
        let wr = word_range(tok);
        let mut word: Option<usize> = None;
        let cleaned = clean(tok);
        for sub in cleaned.split(' ').filter(|t| !t.is_empty()) {
            let mut pieces = Vec::new();
            // Initials and dotted acronyms ("J.", "U.S.") are spelled, not sentence ends.
            if normalize::is_abbreviation(sub)
                && !sub.chars().next().is_some_and(char::is_lowercase)
            {
                let prev = self.last_piece();
                normalize::expand_token(sub, prev.as_ref(), &mut pieces);
                if pieces.is_empty() {
                    let letters: String = sub.chars().filter(char::is_ascii_alphabetic).collect();
                    pieces.push(Piece::Spell(letters.to_lowercase()));
                }
                self.push_pieces(pieces, &mut word, tok, wr.clone(), a, at, style);
                continue;
            }
            let prev = self.last_piece();
            normalize::expand_token(sub, prev.as_ref(), &mut pieces);
            let end = pieces.last().is_some_and(is_end);
            self.push_pieces(pieces, &mut word, tok, wr.clone(), a, at, style);
            if end {
                self.end_sentence();
            }
        }
    }

    /// Add a token's pieces; its word is made when the first spoken piece
    /// comes.
    #[allow(clippy::too_many_arguments)]
    fn push_pieces(
        &mut self,
        pieces: Vec<Piece>,
        word: &mut Option<usize>,
        tok: &str,
        wr: Range<usize>,
        a: usize,
        at: &dyn Fn(usize) -> usize,
        style: &Style,
    ) {
        for p in pieces {
            let w = match p {
                Piece::Punct(_) => None,
                _ => Some(*word.get_or_insert_with(|| {
                    self.out.words.push(SourceWord {
                        text: tok[wr.clone()].to_string(),
                        src: at(a + wr.start)..at(a + wr.end),
                    });
                    self.out.words.len() - 1
                })),
            };
            self.items.push(Item::Piece(p, w, style.rate));
        }
    }

    /// One input word spoken as `pieces` (SSML `say-as`, `sub`).
    pub fn say(&mut self, pieces: Vec<Piece>, word: &str, src: Range<usize>, style: &Style) {
        self.switch(style);
        let w = self.word(word, src);
        for p in pieces {
            let w = (!matches!(p, Piece::Punct(_))).then_some(w);
            self.items.push(Item::Piece(p, w, style.rate));
        }
    }

    /// One input word spoken as the IPA `ipa` (SSML `phoneme`).
    pub fn ipa(&mut self, ipa: &str, word: &str, src: Range<usize>, style: &Style) {
        self.switch(style);
        let w = self.word(word, src);
        self.items.push(Item::Ipa(ipa.nfd().collect(), w, style.rate));
    }

    fn word(&mut self, text: &str, src: Range<usize>) -> usize {
        self.out.words.push(SourceWord {
            text: text.to_string(),
            src,
        });
        self.out.words.len() - 1
    }

    /// Exact silence: the sentence so far ends here.
    pub fn silence(&mut self, ms: u32) {
        self.end_sentence();
        self.gaps.push(Gap::Silence(ms));
    }

    /// A mark at this point.
    pub fn mark(&mut self, name: &str) {
        if self.items.is_empty() {
            self.gaps.push(Gap::Mark(name.to_string()));
        } else {
            self.items.push(Item::Mark(name.to_string()));
        }
    }

    /// A sentence boundary.
    pub fn boundary(&mut self) {
        self.end_sentence();
    }

    /// Add a warning.
    pub fn warn(&mut self, w: String) {
        self.out.warnings.push(w);
    }

    /// The analysis.
    pub fn finish(mut self) -> Analysis {
        self.end_sentence();
        self.out.after = std::mem::take(&mut self.gaps);
        self.out
    }

    fn last_piece(&self) -> Option<Piece> {
        match self.items.iter().rev().find(|i| !matches!(i, Item::Mark(_))) {
            Some(Item::Piece(p, ..)) => Some(p.clone()),
            Some(Item::Ipa(..)) => Some(Piece::Word(String::new())),
            _ => None,
        }
    }

    /// A change of voice ends the sentence.
    fn switch(&mut self, style: &Style) {
        if style.voice != self.voice {
            self.end_sentence();
            self.voice.clone_from(&style.voice);
        }
    }

    fn end_sentence(&mut self) {
        let items = std::mem::take(&mut self.items);
        let spoken = items
            .iter()
            .any(|i| matches!(i, Item::Ipa(..) | Item::Piece(Piece::Word(_) | Piece::Spell(_), ..)));
        let r = if spoken {
            render(&items)
        } else {
            Rendered::default()
        };
        if r.s.is_empty() {
            // Nothing spoken: its marks stay at this point.
            for i in items {
                if let Item::Mark(m) = i {
                    self.gaps.push(Gap::Mark(m));
                }
            }
            for (m, _) in r.marks {
                self.gaps.push(Gap::Mark(m));
            }
            return;
        }
        let (ipa, map) = nfd_map(&r.s);
        let mut before = std::mem::take(&mut self.gaps);
        let mut char_rates: Vec<f32> = Vec::with_capacity(map[map.len() - 1]);
        for (i, &rate) in r.rates.iter().enumerate() {
            char_rates.extend(std::iter::repeat_n(rate, map[i + 1] - map[i]));
        }
        let spans: Vec<(usize, Range<usize>)> = r
            .spans
            .iter()
            .map(|(w, c)| (*w, map[c.start]..map[c.end]))
            .collect();
        let marks: Vec<(String, usize)> = r.marks.into_iter().map(|(m, p)| (m, map[p])).collect();
        let pieces = split_long(&ipa, MAX_SENTENCE_PHONEMES);
        let n = pieces.len();
        let mut placed = vec![false; marks.len()];
        for (k, piece) in pieces.into_iter().enumerate() {
            // The piece's char range in the sentence.
            let a = ipa[..piece.as_ptr() as usize - ipa.as_ptr() as usize]
                .chars()
                .count();
            let len = piece.chars().count();
            let b = a + len;
            let words = spans
                .iter()
                .filter(|(_, c)| c.start < b && c.end > a)
                .map(|(w, c)| WordSpan {
                    word: *w,
                    chars: c.start.max(a) - a..c.end.min(b) - a,
                })
                .collect();
            let mut pm = Vec::new();
            for (j, (m, p)) in marks.iter().enumerate() {
                if !placed[j] && (*p < b || k + 1 == n) {
                    placed[j] = true;
                    pm.push((m.clone(), p.saturating_sub(a).min(len)));
                }
            }
            self.out.sentences.push(Spoken {
                ipa: piece.to_string(),
                words,
                marks: pm,
                rates: char_rates[a..b].to_vec(),
                voice: self.voice.clone(),
                before: std::mem::take(&mut before),
            });
        }
    }
}

/// A sentence rendered: its IPA, the char ranges of its words, its marks
/// and the rate of each char.
#[derive(Default)]
struct Rendered {
    s: String,
    spans: Vec<(usize, Range<usize>)>,
    marks: Vec<(String, usize)>,
    rates: Vec<f32>,
}

/// Clause entries: (word for context, IPA), with the input word and rate of each.
#[derive(Default)]
struct Clause<'a> {
    entries: Vec<(Option<&'a str>, String)>,
    meta: Vec<(Option<usize>, f32)>,
    /// Marks before entry `k`.
    marks: Vec<(String, usize)>,
}

impl Rendered {
    fn len(&self) -> usize {
        self.rates.len()
    }

    fn push_char(&mut self, c: char) {
        let rate = self.rates.last().copied().unwrap_or(1.0);
        self.s.push(c);
        self.rates.push(rate);
    }

    /// Append a clause's IPA (context forms, joins, glides) with its spans.
    fn flush(&mut self, cl: &mut Clause<'_>) {
        if cl.entries.is_empty() {
            let at = self.len();
            self.marks.extend(cl.marks.drain(..).map(|(m, _)| (m, at)));
            return;
        }
        let parts = context::clause_parts(&cl.entries);
        let mut joined = String::new();
        let mut pieces: Vec<(Option<usize>, Range<usize>, f32)> = Vec::new();
        let mut starts: Vec<Option<usize>> = vec![None; cl.entries.len()];
        let mut pos = 0;
        for (k, (p, first, count)) in parts.iter().enumerate() {
            if k > 0 {
                joined.push(' ');
                pos += 1;
            }
            let n = p.chars().count();
            let (w0, r0) = cl.meta[*first];
            starts[*first] = Some(pos);
            if *count == 2 && cl.meta[first + 1].0 != w0 {
                let cut = context::join_split(p, &cl.entries[*first].1, &cl.entries[first + 1].1);
                pieces.push((w0, pos..pos + cut, r0));
                let (w1, r1) = cl.meta[first + 1];
                pieces.push((w1, pos + cut..pos + n, r1));
                starts[first + 1] = Some(pos + cut);
            } else {
                if *count == 2 {
                    starts[first + 1] = Some(pos);
                }
                pieces.push((w0, pos..pos + n, r0));
            }
            joined.push_str(p);
            pos += n;
        }
        let (g, map) = context::glide_and_link_map(&joined);
        let end_of = |k: usize| {
            starts[k..]
                .iter()
                .find_map(|s| *s)
                .map_or(map[map.len() - 1], |s| map[s])
        };
        let marks: Vec<(String, usize)> = cl
            .marks
            .drain(..)
            .map(|(m, k)| {
                let p = end_of(k);
                (m, p)
            })
            .collect();
        cl.entries.clear();
        cl.meta.clear();
        if g.is_empty() {
            let at = self.len();
            self.marks.extend(marks.into_iter().map(|(m, _)| (m, at)));
            return;
        }
        if !self.s.is_empty() {
            self.push_char(' ');
        }
        let base = self.len();
        let glen = map[map.len() - 1];
        let mut rates = vec![f32::NAN; glen];
        for (w, r, rate) in &pieces {
            let (a, b) = (map[r.start], map[r.end]);
            rates[a..b].iter_mut().for_each(|x| *x = *rate);
            if let Some(w) = w {
                // A token spoken as several words is one input word.
                match self.spans.last_mut() {
                    Some((last, r)) if last == w => r.end = base + b,
                    _ => self.spans.push((*w, base + a..base + b)),
                }
            }
        }
        // Spaces take the rate before them.
        let mut last = self.rates.last().copied().unwrap_or(1.0);
        for r in &mut rates {
            if r.is_nan() {
                *r = last;
            }
            last = *r;
        }
        self.marks
            .extend(marks.into_iter().map(|(m, p)| (m, base + p)));
        self.s.push_str(&g);
        self.rates.extend(rates);
    }
}

/// IPA of one sentence's items, with the positions of its words and marks.
fn render(items: &[Item]) -> Rendered {
    let mut r = Rendered::default();
    let mut cl = Clause::default();
    for item in items {
        match item {
            Item::Piece(Piece::Word(w), word, rate) => {
                cl.entries.push((Some(w.as_str()), g2p::word_ipa(w)));
                cl.meta.push((*word, *rate));
            }
            Item::Piece(Piece::Spell(l), word, rate) => {
                cl.entries.push((None, g2p::spell(l)));
                cl.meta.push((*word, *rate));
            }
            Item::Ipa(ipa, word, rate) => {
                cl.entries.push((None, ipa.clone()));
                cl.meta.push((Some(*word), *rate));
            }
            Item::Mark(m) => cl.marks.push((m.clone(), cl.entries.len())),
            Item::Piece(Piece::Punct(c), ..) => {
                r.flush(&mut cl);
                // Punctuation attaches to the previous word.
                if r.s.is_empty() || r.s.ends_with(['.', ',', ';', ':', '!', '?']) {
                    continue;
                }
                r.push_char(*c);
            }
        }
    }
    r.flush(&mut cl);
    r
}

/// NFD of `s` and where each char went: `map[i]` is the char index in the
/// result of char `i` (`map[len]` = the result's length).
fn nfd_map(s: &str) -> (String, Vec<usize>) {
    let mut map = Vec::with_capacity(s.len() + 1);
    let mut n = 0;
    for c in s.chars() {
        map.push(n);
        n += std::iter::once(c).nfd().count();
    }
    map.push(n);
    (s.nfd().collect(), map)
}

/// Plain text analysed by the built-in English frontend.
pub fn analyze_text(text: &str) -> Analysis {
    let mut b = Builder::new();
    b.text(text, None, &Style::default());
    b.finish()
}

/// `--phonemes` input analysed: one sentence per line; each
/// space-separated IPA word is an input word.
pub fn analyze_phonemes(text: &str) -> Analysis {
    let mut out = Analysis::default();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let at = line_start;
        line_start += line.len();
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let off = at + (line.len() - line.trim_start().len());
        let mut words = Vec::new();
        let mut ipa = String::new();
        let mut pos = 0;
        for (i, w) in trimmed.split(' ').enumerate() {
            if i > 0 {
                ipa.push(' ');
                pos += 1;
            }
            let n: String = w.nfd().collect();
            let len = n.chars().count();
            ipa.push_str(&n);
            let start = w.as_ptr() as usize - trimmed.as_ptr() as usize;
            let wr = word_range(w);
            if !w.is_empty() && w.contains(|c: char| !c.is_ascii_punctuation()) {
                out.words.push(SourceWord {
                    text: w[wr.clone()].to_string(),
                    src: off + start + wr.start..off + start + wr.end,
                });
                words.push(WordSpan {
                    word: out.words.len() - 1,
                    chars: pos..pos + len,
                });
            }
            pos += len;
        }
        let len = ipa.chars().count();
        out.sentences.push(Spoken {
            ipa,
            words,
            marks: Vec::new(),
            rates: vec![1.0; len],
            voice: None,
            before: Vec::new(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(a: &Analysis, text: &str) -> Vec<String> {
        a.words.iter().map(|w| text[w.src.clone()].to_string()).collect()
    }

    #[test]
    fn words_keep_their_offsets_and_cover_their_phonemes() {
        let text = "Hello, world! Dr. Smith paid $3.50 in the end.";
        let a = analyze_text(text);
        assert_eq!(
            words_of(&a, text),
            ["Hello", "world", "Dr", "Smith", "paid", "$3.50", "in", "the", "end"]
        );
        assert_eq!(a.sentences.len(), 2);
        assert_eq!(a.sentences[0].ipa, "həlˈoʊ, wˈɜːld!");
        let s0 = &a.sentences[0];
        assert_eq!(s0.words.len(), 2);
        let chars: Vec<char> = s0.ipa.chars().collect();
        let w = |k: usize| chars[s0.words[k].chars.clone()].iter().collect::<String>();
        assert_eq!(w(0), "həlˈoʊ");
        assert_eq!(w(1), "wˈɜːld");
        // Every word once, in order, across sentences.
        let order: Vec<usize> = a
            .sentences
            .iter()
            .flat_map(|s| s.words.iter().map(|w| w.word))
            .collect();
        let mut dedup = order.clone();
        dedup.dedup();
        assert_eq!(dedup, (0..a.words.len()).collect::<Vec<_>>());
        // "in the" is one token of IPA, split between the two words.
        let s1 = &a.sentences[1];
        let c1: Vec<char> = s1.ipa.chars().collect();
        let span = |i: usize| {
            let ws = s1.words.iter().find(|w| w.word == i).unwrap();
            c1[ws.chars.clone()].iter().collect::<String>()
        };
        assert_eq!(format!("{}|{}", span(6), span(7)), "ɪn|ðɪʲ");
        // "$3.50" is one input word over all its spoken words.
        assert_eq!(span(5), "dˈɑːlɚ θɹˈiː pɔɪnt fˈaɪv zˈiəɹoʊ");
    }

    #[test]
    fn same_ipa_as_phonemize() {
        for t in [
            "Hello world. Dr. Smith paid $3.50!",
            "It's 5:30 p.m. on Jan. 3rd, 2024; the U.S. team won 3-2.",
            "“Quoted” text — with dashes… and (brackets).",
        ] {
            let a: Vec<String> = analyze_text(t).sentences.into_iter().map(|s| s.ipa).collect();
            assert_eq!(a, crate::text::phonemize(t).unwrap(), "{t}");
        }
    }

    #[test]
    fn marks_breaks_and_rates() {
        let mut b = Builder::new();
        let st = Style::default();
        b.mark("start");
        b.text("Hello there", None, &st);
        b.mark("mid");
        b.text("world.", None, &Style { rate: 2.0, voice: None });
        b.silence(500);
        b.mark("end");
        let a = b.finish();
        assert_eq!(a.sentences.len(), 1);
        let s = &a.sentences[0];
        assert_eq!(s.before, vec![Gap::Mark("start".into())]);
        let world = &s.words[2];
        assert_eq!(s.marks, vec![("mid".to_string(), world.chars.start)]);
        assert_eq!(s.rates[world.chars.start], 2.0);
        assert_eq!(s.rates[0], 1.0);
        assert_eq!(s.rates.len(), s.ipa.chars().count());
        assert_eq!(a.after, vec![Gap::Silence(500), Gap::Mark("end".into())]);
    }

    #[test]
    fn phoneme_lines_are_words() {
        let t = "  həlˈoʊ wˈɜːld.\n\nbˈaɪ\n";
        let a = analyze_phonemes(t);
        assert_eq!(a.sentences.len(), 2);
        assert_eq!(words_of(&a, t), ["həlˈoʊ", "wˈɜːld", "bˈaɪ"]);
    }
}
