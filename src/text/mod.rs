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
pub mod espeak;
pub mod g2p;
pub mod normalize;

use normalize::Piece;
use unicode_normalization::UnicodeNormalization;

/// Longest input accepted in one call (bytes).
pub const MAX_TEXT_BYTES: usize = 64 << 20;

/// Sentences longer than this many phoneme code points are split at clause punctuation.
pub const MAX_SENTENCE_PHONEMES: usize = 400;

/// Errors of the text frontend.
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
    /// The espeak-ng phonemizer is unavailable or failed.
    #[error("espeak phonemizer: {0}")]
    Espeak(String),
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

/// [`phonemize`] with a choice of phonemizer; `espeak_voice` is the voice's
/// espeak language (`en-us` when `None`), used only by [`Phonemizer::Espeak`].
///
/// # Errors
/// [`TextError::TooLong`]; [`TextError::Espeak`] when espeak-ng cannot be
/// loaded or does not know the voice.
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
            Ok(espeak::phonemize(text, espeak_voice.unwrap_or("en-us"))?
                .into_iter()
                .map(|s| s.nfd().collect())
                .collect())
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

/// Split text into sentences of pieces.
fn sentences(text: &str) -> Vec<Vec<Piece>> {
    let cleaned = clean(text);
    let mut out = Vec::new();
    let mut cur: Vec<Piece> = Vec::new();
    for tok in cleaned.split(' ').filter(|t| !t.is_empty()) {
        // Initials and dotted acronyms ("J.", "U.S.") are spelled, not sentence ends.
        if normalize::is_abbreviation(tok) && !tok.chars().next().is_some_and(char::is_lowercase) {
            let letters: String = tok.chars().filter(char::is_ascii_alphabetic).collect();
            let before = cur.len();
            let prev = cur.last().cloned();
            normalize::expand_token(tok, prev.as_ref(), &mut cur);
            if cur.len() > before {
                continue;
            }
            cur.push(Piece::Spell(letters.to_lowercase()));
            continue;
        }
        let prev = cur.last().cloned();
        normalize::expand_token(tok, prev.as_ref(), &mut cur);
        if cur.last().is_some_and(is_end) {
            out.push(std::mem::take(&mut cur));
        }
    }
    if cur.iter().any(|p| !matches!(p, Piece::Punct(_))) {
        out.push(cur);
    }
    out
}

/// IPA of one sentence's pieces, split further at clause punctuation when too long.
fn render(pieces: &[Piece], out: &mut Vec<String>) {
    let mut s = String::new();
    let mut count = 0usize;
    let mut clause: Vec<(Option<&str>, String)> = Vec::new();
    let flush = |clause: &mut Vec<(Option<&str>, String)>, s: &mut String, count: &mut usize| {
        if clause.is_empty() {
            return;
        }
        let ipa = context::glide_and_link(&context::clause_ipa(clause));
        clause.clear();
        if ipa.is_empty() {
            return;
        }
        if !s.is_empty() {
            s.push(' ');
        }
        *count += ipa.chars().count() + 1;
        s.push_str(&ipa);
    };
    for p in pieces {
        match p {
            Piece::Word(w) => clause.push((Some(w.as_str()), g2p::word_ipa(w))),
            Piece::Spell(l) => clause.push((None, g2p::spell(l))),
            Piece::Punct(c) => {
                flush(&mut clause, &mut s, &mut count);
                // Punctuation attaches to the previous word; a clause mark may end a long chunk.
                if s.is_empty() || s.ends_with(['.', ',', ';', ':', '!', '?']) {
                    continue;
                }
                s.push(*c);
                count += 1;
                if matches!(c, ',' | ';' | ':') && count > MAX_SENTENCE_PHONEMES {
                    out.push(std::mem::take(&mut s));
                    count = 0;
                }
            }
        }
    }
    flush(&mut clause, &mut s, &mut count);
    if !s.is_empty() {
        out.push(s);
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
    let mut out = Vec::new();
    for s in sentences(text) {
        render(&s, &mut out);
    }
    Ok(out.into_iter().map(|s| s.nfd().collect()).collect())
}
