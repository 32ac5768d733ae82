//! English text frontend: text -> sentences -> espeak-style en-us IPA, the
//! phoneme language Piper voices were trained on, without espeak.
//!
//! Pipeline: clean-up, tokens, normalisation ([`normalize`]: numbers,
//! currency, times, abbreviations, symbols, acronyms, read the way Piper's
//! espeak reads them), sentence splitting, word pronunciations ([`g2p`]: a
//! misaki + CMUdict lexicon mapped to espeak's conventions, inflection and
//! letter-rule fallbacks), context between words (function-word forms, joins,
//! heteronyms, linking r, the ʲ glide), punctuation kept as Piper passes it.
//! [`Phonemizer::Espeak`] instead loads espeak-ng at run time ([`espeak`]).
//!
//! ```
//! let s = voxide::text::phonemize("Hello world. Dr. Smith paid $3.50!").unwrap();
//! assert_eq!(s.len(), 2);
//! assert_eq!(s[0], "həlˈoʊ wˈɜːld.");
//! ```

mod context;
internal_mod! {
    /// The frontend with positions: words, marks, rates, silences.
    analysis;
}
internal_mod! {
    /// espeak-ng loaded at run time.
    espeak;
    /// Word pronunciations.
    g2p;
    /// Text normalisation.
    normalize;
    /// SSML documents -> runs of text, spoken forms, breaks and marks.
    ssml;
}

use normalize::Piece;
use unicode_normalization::UnicodeNormalization;

/// Longest input accepted in one call (bytes).
pub const MAX_TEXT_BYTES: usize = 64 << 20;

/// Longest piece of a sentence synthesized at once, in phoneme code points
/// (about 440 voice ids, 45 words, 5–6 s of speech). A longer sentence is cut
/// into the fewest pieces of balanced length, at clause punctuation where it
/// can be, else between words ([`split_long`]). This bounds the time to
/// first audio whatever the sentence (the encoder attends over the whole
/// piece: it is the one stage that cannot start on a part of it) and keeps
/// the input in the range of utterance lengths the voices were trained on.
pub const MAX_SENTENCE_PHONEMES: usize = 220;

/// Errors of the text frontend.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The input is larger than [`MAX_TEXT_BYTES`].
    #[error("text of {len} bytes is longer than the {max}-byte limit; split it")]
    TooLong {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The espeak-ng phonemizer cannot be loaded (libespeak-ng or its data
    /// is not installed).
    #[error("espeak phonemizer unavailable: {0}")]
    Unavailable(String),
    /// The espeak-ng phonemizer failed on this input or voice.
    #[error("espeak phonemizer: {0}")]
    Espeak(String),
    /// Malformed SSML (the message names line and column).
    #[error("{0}")]
    Ssml(String),
}

/// Which phonemizer turns text into phonemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Phonemizer {
    /// voxide's own English frontend (no espeak needed).
    #[default]
    BuiltIn,
    /// espeak-ng loaded at run time (`libespeak-ng.so.1`): exactly Piper's
    /// phonemes, in the voice's espeak language.
    Espeak,
}

impl Phonemizer {
    /// Parse `builtin` or `espeak`.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(s: &str) -> Result<Phonemizer, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "builtin" | "built-in" | "voxide" | "" => Ok(Phonemizer::BuiltIn),
            "espeak" | "espeak-ng" => Ok(Phonemizer::Espeak),
            other => Err(format!(
                "unknown phonemizer {other:?} (expected builtin or espeak)"
            )),
        }
    }
}

/// [`TextError::TooLong`] for inputs over [`MAX_TEXT_BYTES`].
pub(crate) fn check_len(text: &str) -> Result<(), TextError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(TextError::TooLong {
            len: text.len(),
            max: MAX_TEXT_BYTES,
        });
    }
    Ok(())
}

/// Text phonemized by espeak-ng, with the input words of the built-in
/// tokenizer. espeak does not say which of its words speaks which input
/// word: each input word is phonemized alone to count its IPA words, and
/// where those counts add up to the text's, the IPA words are dealt out by
/// them (exact); otherwise (espeak joined words across a boundary) in
/// proportion, which may shift a boundary by a word.
pub(crate) fn analyze_espeak(
    text: &str,
    espeak_voice: Option<&str>,
) -> Result<analysis::Analysis, TextError> {
    check_len(text)?;
    let words = analysis::analyze_text(text).words;
    let mut out = analysis::Analysis {
        words,
        ..analysis::Analysis::default()
    };
    let mut pieces = Vec::new();
    for s in espeak::phonemize(text, espeak_voice.unwrap_or("en-us"))? {
        push_pieces(&s.nfd().collect::<String>(), &mut pieces);
    }
    // IPA words (char ranges) of every piece.
    let spans: Vec<Vec<std::ops::Range<usize>>> = pieces
        .iter()
        .map(|p| {
            let mut v = Vec::new();
            let (mut start, mut end) = (None, 0);
            for (i, c) in p.chars().chain([' ']).enumerate() {
                if c == ' ' {
                    if let Some(a) = start.take() {
                        v.push(a..end);
                    }
                } else if !",.;:!?".contains(c) {
                    start.get_or_insert(i);
                    end = i + 1;
                }
            }
            v
        })
        .collect();
    let total: usize = spans.iter().map(Vec::len).sum();
    let n = out.words.len();
    // How many IPA words espeak gives each input word alone: where they add
    // up to the sentence's, each IPA word is dealt to its input word exactly.
    let voice = espeak_voice.unwrap_or("en-us");
    let counts: Vec<usize> = out
        .words
        .iter()
        .map(|w| {
            espeak::phonemize(&w.text, voice).map_or(1, |s| {
                s.iter()
                    .map(|x| x.split_whitespace().count())
                    .sum::<usize>()
            })
        })
        .collect();
    let owner: Vec<usize> = if counts.iter().sum::<usize>() == total {
        counts
            .iter()
            .enumerate()
            .flat_map(|(i, &c)| std::iter::repeat_n(i, c))
            .collect()
    } else {
        (0..total)
            .map(|k| (k * n).checked_div(total).unwrap_or(0))
            .collect()
    };
    let mut k = 0;
    for (p, sp) in pieces.into_iter().zip(spans) {
        let mut words: Vec<analysis::WordSpan> = Vec::new();
        for r in sp {
            let w = owner.get(k).copied().unwrap_or(0);
            k += 1;
            if n == 0 {
                continue;
            }
            match words.last_mut() {
                Some(last) if last.word == w => last.chars.end = r.end,
                _ => words.push(analysis::WordSpan { word: w, chars: r }),
            }
        }
        let len = p.chars().count();
        out.sentences.push(analysis::Spoken {
            ipa: p,
            words,
            marks: Vec::new(),
            rates: vec![1.0; len],
            voice: None,
            before: Vec::new(),
        });
    }
    Ok(out)
}

/// SSML analysed: its runs through the frontend (text words keep their
/// offsets in the SSML source; `say-as`, `sub` and `phoneme` are one input
/// word each; breaks become exact silences, `s`/`p` sentence boundaries).
///
/// # Errors
/// [`TextError::Ssml`] for malformed SSML (line and column).
pub(crate) fn analyze_ssml(text: &str) -> Result<analysis::Analysis, TextError> {
    check_len(text)?;
    let doc = ssml::parse(text).map_err(|e| TextError::Ssml(e.to_string()))?;
    let mut b = analysis::Builder::new();
    for run in doc.runs {
        match run {
            ssml::Run::Text {
                text,
                src,
                style: s,
            } => b.text(&text, Some(&src), &s),
            ssml::Run::Say {
                pieces,
                word,
                src,
                style: s,
            } => b.say(pieces, &word, src, &s),
            ssml::Run::Ipa {
                ipa,
                word,
                src,
                style: s,
            } => b.ipa(&ipa, &word, src, &s),
            ssml::Run::Break { ms } => b.silence(ms),
            ssml::Run::Mark { name } => b.mark(&name),
            ssml::Run::Boundary => b.boundary(),
        }
    }
    for w in doc.warnings {
        b.warn(w);
    }
    Ok(b.finish())
}

/// [`phonemize`] with a choice of phonemizer; `espeak_voice` is the voice's
/// espeak language (`en-us` when `None`), used only by [`Phonemizer::Espeak`].
///
/// # Errors
/// [`TextError::TooLong`]; [`TextError::Unavailable`] when espeak-ng cannot
/// be loaded; [`TextError::Espeak`] when it does not know the voice.
pub fn phonemize_with(
    text: &str,
    phonemizer: Phonemizer,
    espeak_voice: Option<&str>,
) -> Result<Vec<String>, TextError> {
    match phonemizer {
        Phonemizer::BuiltIn => phonemize(text),
        Phonemizer::Espeak => {
            if text.len() > MAX_TEXT_BYTES {
                return Err(TextError::TooLong {
                    len: text.len(),
                    max: MAX_TEXT_BYTES,
                });
            }
            let mut out = Vec::new();
            for s in espeak::phonemize(text, espeak_voice.unwrap_or("en-us"))? {
                push_pieces(&s.nfd().collect::<String>(), &mut out);
            }
            Ok(out)
        }
    }
}

fn clean(text: &str) -> String {
    text.nfkc()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' | '\u{02BC}' => '\'',
            '\u{201C}' | '\u{201D}' | '«' | '»' => '"',
            '\u{2013}' | '\u{2014}' => ',',
            c if c.is_control() || c.is_whitespace() => ' ',
            c => c,
        })
        .collect()
}

fn is_end(p: &Piece) -> bool {
    matches!(p, Piece::Punct('.' | '!' | '?'))
}

/// One sentence's IPA as the pieces [`split_long`] cuts it into.
fn push_pieces(ipa: &str, out: &mut Vec<String>) {
    out.extend(
        split_long(ipa, MAX_SENTENCE_PHONEMES)
            .into_iter()
            .map(str::to_owned),
    );
}

/// Cut one sentence's IPA into the fewest pieces of at most `max` code
/// points, as even as the cut points allow: after clause punctuation
/// (`,` `;` `:`) where that still leaves the rest enough room, else at the
/// space between two words nearest the even length (else the last space
/// that fits, else, in one word longer than `max`, inside the word). A
/// sentence that fits is returned whole.
pub fn split_long(ipa: &str, max: usize) -> Vec<&str> {
    let max = max.max(1);
    let mut out = Vec::new();
    let mut rest = ipa;
    // Code points left; each cut looks at the next `max + 1` only, so the
    // whole split is linear in the sentence.
    let mut len = ipa.chars().count();
    loop {
        if len <= max {
            if !rest.is_empty() {
                out.push(rest);
            }
            return out;
        }
        let pieces = len.div_ceil(max);
        let even = len.div_ceil(pieces);
        // Spaces where the piece fits: (code points before, byte index,
        // after clause punctuation, what follows fits in the other pieces).
        let mut prev = ' ';
        let cuts: Vec<(usize, usize, bool, bool)> = rest
            .char_indices()
            .take(max + 1)
            .enumerate()
            .filter_map(|(n, (i, c))| {
                let clause = matches!(prev, ',' | ';' | ':');
                prev = c;
                (c == ' ' && n > 0).then_some((n, i, clause, len - n - 1 <= (pieces - 1) * max))
            })
            .collect();
        let nearest = |clause_only: bool| {
            cuts.iter()
                .filter(|c| c.3 && (c.2 || !clause_only))
                .min_by_key(|c| c.0.abs_diff(even))
                .copied()
        };
        // No even cut: the longest piece that fits (the rest takes one more).
        match nearest(true)
            .or_else(|| nearest(false))
            .or_else(|| cuts.last().copied())
        {
            Some((n, i, ..)) => {
                out.push(&rest[..i]);
                rest = &rest[i + 1..];
                len -= n + 1;
            }
            None => {
                let i = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
                out.push(&rest[..i]);
                let after = rest[i..].trim_start_matches(' ');
                // The spaces trimmed are one byte each.
                len -= max + (rest.len() - i - after.len());
                rest = after;
            }
        }
    }
}

/// Split text into sentences and phonemize each: one espeak-style en-us IPA
/// string per sentence, as Piper feeds its voices (punctuation kept, NFD).
/// Empty or whitespace-only text gives no sentences. Never panics; time is
/// linear in the input length.
///
/// # Errors
/// [`TextError::TooLong`] for inputs over [`MAX_TEXT_BYTES`].
pub fn phonemize(text: &str) -> Result<Vec<String>, TextError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(TextError::TooLong {
            len: text.len(),
            max: MAX_TEXT_BYTES,
        });
    }
    Ok(analysis::analyze_text(text)
        .sentences
        .into_iter()
        .map(|s| s.ipa)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::split_long;

    fn words(n: usize, len: usize) -> Vec<String> {
        (0..n)
            .map(|i| std::iter::repeat_n(char::from(b'a' + (i % 26) as u8), len).collect())
            .collect()
    }

    #[test]
    fn short_sentences_stay_whole() {
        assert_eq!(split_long("həlˈoʊ wˈɜːld.", 20), vec!["həlˈoʊ wˈɜːld."]);
        assert!(split_long("", 20).is_empty());
    }

    #[test]
    fn cuts_at_the_clause_nearest_an_even_split() {
        // 3 clauses of 4 words of 4 letters: 19 code points each with ", ".
        let w = words(12, 4);
        let s = format!(
            "{}, {}, {}.",
            w[..4].join(" "),
            w[4..8].join(" "),
            w[8..].join(" ")
        );
        let p = split_long(&s, 45);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].ends_with(','), "{p:?}");
        assert!(p.iter().all(|x| x.chars().count() <= 45));
        // A clause mark that would leave too much for the rest is not used:
        // the cut falls between words near the middle instead.
        let s = format!("{}, {}.", w[0], w[1..12].join(" "));
        let p = split_long(&s, 35);
        assert_eq!(p.len(), 2, "{p:?}");
        let (a, b) = (p[0].chars().count(), p[1].chars().count());
        assert!(a <= 35 && b <= 35 && a.abs_diff(b) <= 5, "{p:?}");
        assert_eq!(p.join(" "), s);
    }

    #[test]
    fn pieces_fit_cover_everything_and_are_fewest() {
        for (n, len, max) in [(100, 3, 40), (57, 7, 50), (300, 1, 17), (10, 9, 10)] {
            let s = words(n, len).join(" ");
            let p = split_long(&s, max);
            assert!(p.iter().all(|x| x.chars().count() <= max), "{p:?}");
            assert_eq!(p.join(" "), s);
            let total = s.chars().count();
            // Cuts between words lose at most a word's room per piece.
            assert!(p.len() <= total.div_ceil(max - len), "{} pieces", p.len());
        }
        // One word longer than the limit is cut inside it.
        let long = "ə".repeat(50);
        let p = split_long(&long, 20);
        assert_eq!(p.len(), 3);
        assert_eq!(p.concat(), long);
    }
}
