//! Word timestamps as files: the timestamps JSON of the CLI's
//! `--timestamps`, and captions as SubRip (`.srt`) or WebVTT (`.vtt`) cues.
//!
//! ```
//! use voxide::captions::{Captions, CueRules};
//! use voxide::WordTiming;
//! let w = |text: &str, a: usize, start: usize, end: usize| WordTiming {
//!     text: text.into(), char_start: a, char_end: a + text.len(), start, end,
//! };
//! let words = [w("Hello", 0, 2205, 11025), w("world", 7, 12000, 22050)];
//! let c = Captions::new(&words, 22050, Some("Hello, world."), CueRules::default());
//! assert_eq!(c.srt(), "1\n00:00:00,100 --> 00:00:01,000\nHello, world.\n\n");
//! assert!(c.vtt().starts_with("WEBVTT\n\n00:00:00.100 --> 00:00:01.000\nHello, world.\n"));
//! ```

use crate::audio::{Audio, Mark, WordTiming};
use serde_json::json;

/// How words are grouped into cues.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CueRules {
    /// Most words in one cue.
    pub max_words: usize,
    /// Most characters of text in one cue.
    pub max_chars: usize,
    /// Longest cue, in seconds.
    pub max_secs: f64,
    /// A pause at least this long (seconds) between words starts a new cue.
    pub gap_secs: f64,
}

impl Default for CueRules {
    fn default() -> Self {
        CueRules {
            max_words: 8,
            max_chars: 42,
            max_secs: 4.0,
            gap_secs: 0.6,
        }
    }
}

/// One caption cue: its samples and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue {
    /// First sample.
    pub start: usize,
    /// Sample past the last.
    pub end: usize,
    /// The text shown.
    pub text: String,
}

/// Words grouped into cues.
#[derive(Clone, Debug, PartialEq)]
pub struct Captions {
    cues: Vec<Cue>,
    rate: u32,
}

/// Whether a word ends a clause in `source` (punctuation right after it).
fn ends_clause(source: Option<&str>, w: &WordTiming) -> bool {
    source
        .and_then(|s| s.get(w.char_end..))
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| ".!?;:".contains(c))
}

impl Captions {
    /// Group `words` (at `rate` Hz) into cues. With the `source` text the
    /// words came from, a cue shows the source from its first word to its
    /// last (punctuation kept) and breaks after sentence punctuation;
    /// without it, the words joined by spaces.
    pub fn new(words: &[WordTiming], rate: u32, source: Option<&str>, rules: CueRules) -> Self {
        let rate_f = f64::from(rate.max(1));
        let mut cues = Vec::new();
        let mut group: Vec<&WordTiming> = Vec::new();
        let flush = |group: &mut Vec<&WordTiming>, cues: &mut Vec<Cue>| {
            let (Some(first), Some(last)) = (group.first(), group.last()) else {
                return;
            };
            let text = source
                .and_then(|s| {
                    let mut end = last.char_end;
                    // Punctuation right after the last word belongs to the cue.
                    let rest = s.get(end..).unwrap_or("");
                    end += rest
                        .char_indices()
                        .find(|&(_, c)| c.is_whitespace() || c.is_alphanumeric())
                        .map_or(rest.len(), |(i, _)| i);
                    s.get(first.char_start..end)
                })
                .filter(|t| !t.contains('<'))
                .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| {
                    group
                        .iter()
                        .map(|w| w.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                });
            cues.push(Cue {
                start: first.start,
                end: last.end.max(first.start),
                text,
            });
            group.clear();
        };
        for w in words {
            if let (Some(first), Some(last)) = (group.first(), group.last()) {
                let chars: usize = group.iter().map(|g| g.text.chars().count() + 1).sum();
                let long = (w.end.saturating_sub(first.start)) as f64 / rate_f > rules.max_secs;
                let gap = (w.start.saturating_sub(last.end)) as f64 / rate_f >= rules.gap_secs;
                if group.len() >= rules.max_words
                    || chars + w.text.chars().count() > rules.max_chars
                    || long
                    || gap
                    || ends_clause(source, last)
                {
                    flush(&mut group, &mut cues);
                }
            }
            group.push(w);
        }
        flush(&mut group, &mut cues);
        Captions { cues, rate }
    }

    /// The cues.
    pub fn cues(&self) -> &[Cue] {
        &self.cues
    }

    fn stamp(&self, sample: usize, sep: char) -> String {
        let ms = (sample as u128 * 1000 + u128::from(self.rate.max(1)) / 2)
            / u128::from(self.rate.max(1));
        let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        format!("{h:02}:{m:02}:{s:02}{sep}{ms:03}")
    }

    /// SubRip text.
    pub fn srt(&self) -> String {
        let mut out = String::new();
        for (i, c) in self.cues.iter().enumerate() {
            out.push_str(&format!(
                "{}\n{} --> {}\n{}\n\n",
                i + 1,
                self.stamp(c.start, ','),
                self.stamp(c.end, ','),
                c.text
            ));
        }
        out
    }

    /// WebVTT text.
    pub fn vtt(&self) -> String {
        let mut out = String::from("WEBVTT\n\n");
        for c in &self.cues {
            out.push_str(&format!(
                "{} --> {}\n{}\n\n",
                self.stamp(c.start, '.'),
                self.stamp(c.end, '.'),
                c.text.replace("-->", "->")
            ));
        }
        out
    }
}

/// The timestamps JSON of `voxide speak --timestamps`: sample rate, sample
/// count, words and marks.
pub fn timestamps_json(audio: &Audio) -> String {
    timestamps_json_of(
        audio.sample_rate().hz(),
        audio.samples().len(),
        audio.words(),
        audio.marks(),
    )
}

/// [`timestamps_json`] from its parts.
pub fn timestamps_json_of(
    rate: u32,
    samples: usize,
    words: &[WordTiming],
    marks: &[Mark],
) -> String {
    let words: Vec<_> = words
        .iter()
        .map(|w| {
            json!({"text": w.text, "char_start": w.char_start, "char_end": w.char_end,
                   "start": w.start, "end": w.end})
        })
        .collect();
    let marks: Vec<_> = marks
        .iter()
        .map(|m| json!({"name": m.name, "sample": m.sample}))
        .collect();
    let v = json!({"sample_rate": rate, "samples": samples, "words": words, "marks": marks});
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, a: usize, start: usize, end: usize) -> WordTiming {
        WordTiming {
            text: text.into(),
            char_start: a,
            char_end: a + text.len(),
            start,
            end,
        }
    }

    #[test]
    fn cues_break_at_sentences_pauses_and_length() {
        let src = "One two. Three four five six seven eight nine ten eleven.";
        let mut words = Vec::new();
        let mut t = 0;
        for (i, tok) in src.split(' ').enumerate() {
            let text = tok.trim_end_matches('.');
            let a = src.find(tok).unwrap_or(0);
            // A long pause before "three".
            if i == 2 {
                t += 22050;
            }
            words.push(w(text, a, t, t + 5000));
            t += 6000;
        }
        let c = Captions::new(&words, 22050, Some(src), CueRules::default());
        let texts: Vec<&str> = c.cues().iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts[0], "One two.");
        assert!(texts[1].starts_with("Three"));
        assert_eq!(texts.concat().replace(' ', ""), src.replace(' ', ""));
        assert!(c.cues().iter().all(|c| c.end >= c.start));
        let srt = c.srt();
        assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:00,499\nOne two.\n\n2\n"));
        let without = Captions::new(&words, 22050, None, CueRules::default());
        assert_eq!(without.cues()[0].text, "One two");
    }

    #[test]
    fn json_has_the_contract_fields() {
        let j = timestamps_json_of(
            22050,
            100,
            &[w("Hi", 0, 1, 50)],
            &[Mark {
                name: "m".into(),
                sample: 7,
            }],
        );
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["sample_rate"], 22050);
        assert_eq!(v["samples"], 100);
        assert_eq!(v["words"][0]["text"], "Hi");
        assert_eq!(v["words"][0]["char_end"], 2);
        assert_eq!(v["words"][0]["end"], 50);
        assert_eq!(v["marks"][0]["sample"], 7);
    }
}
