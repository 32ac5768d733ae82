//! The text side of a request: its input words, where each sentence's words
//! and marks sit among its ids, the silences and marks between sentences —
//! the [`Script`] — and the [`Timeline`], which turns the rendered audio
//! into word and mark events as the durations become known.
//!
//! Word and mark positions come from the model's own durations: the
//! renderer records each sentence's frames per id ([`Script::record`]) when
//! it prepares the sentence; the timeline, on the caller's side of every
//! path (direct, lanes, scheduler), counts the samples delivered and sends
//! a word as soon as the samples that complete it have gone out.

use crate::audio::{Mark, WordTiming};
use crate::text::analysis::{Gap, SourceWord};
use parking_lot::Mutex;
use std::ops::{ControlFlow, Range};
use std::sync::Arc;

/// One sentence of the script.
#[derive(Clone, Debug, Default)]
pub(crate) struct Line {
    /// Silences and marks before it.
    pub(crate) before: Vec<Gap>,
    /// Input words it speaks: the word and its id range.
    pub(crate) words: Vec<(usize, Range<usize>)>,
    /// Marks inside it: name and id position.
    pub(crate) marks: Vec<(String, usize)>,
    /// Samples per frame of its voice.
    pub(crate) hop: usize,
}

/// The text side of a request (shared by the renderers, which record the
/// durations, and the timeline, which reads them).
pub(crate) struct Script {
    pub(crate) words: Vec<SourceWord>,
    pub(crate) lines: Vec<Line>,
    /// Silences and marks after the last sentence.
    pub(crate) after: Vec<Gap>,
    pub(crate) sample_rate: u32,
    /// Warnings of the input (SSML elements ignored or spoken as text).
    pub(crate) warnings: Vec<String>,
    durations: Mutex<Vec<Option<Arc<[u32]>>>>,
}

impl Script {
    pub(crate) fn new(
        words: Vec<SourceWord>,
        lines: Vec<Line>,
        after: Vec<Gap>,
        sample_rate: u32,
    ) -> Self {
        let n = lines.len();
        Script {
            words,
            lines,
            after,
            sample_rate,
            warnings: Vec::new(),
            durations: Mutex::new(vec![None; n]),
        }
    }

    /// Sentence `i`'s frames per id (of its first ids while they are not
    /// all known).
    pub(crate) fn record(&self, i: usize, durations: &[u32]) {
        let mut d = self.durations.lock();
        if let Some(slot) = d.get_mut(i) {
            if slot.as_ref().is_none_or(|s| s.len() < durations.len()) {
                *slot = Some(durations.into());
            }
        }
    }

    fn durations(&self, i: usize) -> Option<Arc<[u32]>> {
        self.durations.lock().get(i).cloned().flatten()
    }

    /// Samples of `ms` milliseconds of silence.
    fn silence(&self, ms: u32) -> usize {
        (u64::from(ms) * u64::from(self.sample_rate)).div_ceil(1000) as usize
    }
}

/// Wraps a request's sink: forwards its audio and adds the word and mark
/// events and the silences of the script, in order.
pub(crate) struct Timeline<'a, 's> {
    script: &'a Script,
    sink: &'a mut Sink<'s>,
    /// The sentence under way.
    i: usize,
    /// Whether its `before` has gone out.
    begun: bool,
    /// Samples delivered.
    total: usize,
    /// Sample where sentence `i` begins.
    start: usize,
    /// Next word span and mark of sentence `i`.
    w: usize,
    m: usize,
    /// Next input word to send.
    next_word: usize,
    /// A word spoken over two sentences: its start.
    open: Option<usize>,
    /// Frame offsets of sentence `i`'s ids (prefix sums of its durations).
    cum: Vec<u64>,
}

/// What a request delivers to its caller, in order.
pub(crate) enum Event<'a> {
    /// The next samples.
    Samples(&'a [f32]),
    /// A sentence ended.
    SentenceEnd,
    /// An input word is complete (sent after the samples that end it).
    Word(&'a crate::audio::WordTiming),
    /// A mark was reached.
    Mark(&'a crate::audio::Mark),
}

/// The caller's side of a request: called for every event; `Break` cancels.
pub(crate) type Sink<'a> = dyn FnMut(Event<'_>) -> ControlFlow<()> + 'a;

const SILENCE_CHUNK: usize = 8192;

impl<'a, 's> Timeline<'a, 's> {
    pub(crate) fn new(script: &'a Script, sink: &'a mut Sink<'s>) -> Self {
        Timeline {
            script,
            sink,
            i: 0,
            begun: false,
            total: 0,
            start: 0,
            w: 0,
            m: 0,
            next_word: 0,
            open: None,
            cum: Vec::new(),
        }
    }

    /// Take one event of the renderer.
    pub(crate) fn on(&mut self, ev: Event<'_>) -> ControlFlow<()> {
        match ev {
            Event::Samples(s) => {
                self.begin()?;
                self.total += s.len();
                (self.sink)(Event::Samples(s))?;
                self.advance(false)
            }
            Event::SentenceEnd => {
                self.begin()?;
                (self.sink)(Event::SentenceEnd)?;
                self.advance(true)?;
                self.i += 1;
                self.begun = false;
                self.w = 0;
                self.m = 0;
                self.cum.clear();
                ControlFlow::Continue(())
            }
            other => (self.sink)(other),
        }
    }

    /// The request is complete: what follows the last sentence, and words
    /// that had no sound.
    pub(crate) fn finish(&mut self) -> ControlFlow<()> {
        let after = &self.script.after;
        self.gaps(after)?;
        self.flush_words(self.script.words.len(), self.total)
    }

    fn gaps(&mut self, gaps: &[Gap]) -> ControlFlow<()> {
        for g in gaps {
            match g {
                Gap::Silence(ms) => {
                    let n = self.script.silence(*ms);
                    if n == 0 {
                        continue;
                    }
                    let zeros = vec![0.0f32; n.min(SILENCE_CHUNK)];
                    let mut left = n;
                    while left > 0 {
                        let k = left.min(SILENCE_CHUNK);
                        (self.sink)(Event::Samples(&zeros[..k]))?;
                        self.total += k;
                        left -= k;
                    }
                    (self.sink)(Event::SentenceEnd)?;
                }
                Gap::Mark(name) => self.mark(name.clone(), self.total)?,
            }
        }
        ControlFlow::Continue(())
    }

    fn begin(&mut self) -> ControlFlow<()> {
        if !self.begun {
            self.begun = true;
            if let Some(line) = self.script.lines.get(self.i) {
                self.gaps(&line.before)?;
            }
            self.start = self.total;
        }
        ControlFlow::Continue(())
    }

    fn mark(&mut self, name: String, sample: usize) -> ControlFlow<()> {
        (self.sink)(Event::Mark(&Mark { name, sample }))
    }

    /// Words before `upto` not sent yet: no sound of their own, at `at`.
    fn flush_words(&mut self, upto: usize, at: usize) -> ControlFlow<()> {
        while self.next_word < upto.min(self.script.words.len()) {
            let start = self.open.take().unwrap_or(at);
            self.send_word(self.next_word, start, at.max(start))?;
        }
        ControlFlow::Continue(())
    }

    fn send_word(&mut self, k: usize, start: usize, end: usize) -> ControlFlow<()> {
        let w = &self.script.words[k];
        self.next_word = k + 1;
        (self.sink)(Event::Word(&WordTiming {
            text: w.text.clone(),
            char_start: w.src.start,
            char_end: w.src.end,
            start,
            end,
        }))
    }

    /// Send the words and marks of sentence `i` that the samples delivered
    /// complete (all of them at its end).
    fn advance(&mut self, end: bool) -> ControlFlow<()> {
        let script = self.script;
        let Some(line) = script.lines.get(self.i) else {
            return ControlFlow::Continue(());
        };
        if let Some(d) = self.script.durations(self.i) {
            if d.len() + 1 > self.cum.len() {
                self.cum.clear();
                self.cum.push(0);
                let mut acc = 0u64;
                for &x in d.iter() {
                    acc += u64::from(x);
                    self.cum.push(acc);
                }
            }
        }
        let cum = std::mem::take(&mut self.cum);
        let r = self.events(line, &cum, end);
        self.cum = cum;
        r
    }

    /// [`Timeline::advance`] with the frame offsets `cum` of the ids.
    fn events(&mut self, line: &Line, cum: &[u64], end: bool) -> ControlFlow<()> {
        let hop = line.hop as u64;
        let here = (self.total - self.start) as u64;
        // Sample (within the sentence) where id `j` begins, if known.
        let pos = |j: usize| -> Option<u64> {
            match cum.get(j) {
                Some(&f) => Some(f * hop),
                None if end => Some(here),
                None => None,
            }
        };
        loop {
            let word = line
                .words
                .get(self.w)
                .and_then(|(k, r)| Some((*k, pos(r.start)?, pos(r.end)?)));
            let mark = line
                .marks
                .get(self.m)
                .and_then(|(n, p)| Some((n.clone(), pos(*p)?)));
            // The earliest event the samples delivered complete.
            let w_at = word.as_ref().map(|w| w.2).filter(|&e| e <= here || end);
            let m_at = mark.as_ref().map(|m| m.1).filter(|&p| p <= here || end);
            match (w_at, m_at) {
                (Some(we), m) if m.is_none_or(|mp| we <= mp) => {
                    let (k, a, e) = word.unwrap_or_default();
                    let a = self.start + a as usize;
                    let e = self.start + e as usize;
                    self.w += 1;
                    self.flush_words(k, a)?;
                    if k < self.next_word {
                        // A later span of a word already sent (cannot happen
                        // with the frontend's order): nothing more to send.
                        continue;
                    }
                    let start = self.open.take().unwrap_or(a);
                    // The same word goes on in the next sentence: send it there.
                    let continues = self.w == line.words.len()
                        && self
                            .script
                            .lines
                            .get(self.i + 1)
                            .and_then(|l| l.words.first())
                            .is_some_and(|(k2, _)| *k2 == k);
                    if continues {
                        self.open = Some(start);
                    } else {
                        self.send_word(k, start, e)?;
                    }
                }
                (_, Some(mp)) => {
                    let (name, _) = mark.unwrap_or_default();
                    self.m += 1;
                    self.mark(name, self.start + mp as usize)?;
                }
                _ => return ControlFlow::Continue(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, a: usize) -> SourceWord {
        SourceWord {
            text: text.into(),
            src: a..a + text.len(),
        }
    }

    /// Two sentences with a break and marks: every position is the prefix
    /// sum of the durations times the hop, however the audio is chunked.
    #[test]
    fn positions_follow_the_durations_in_any_chunking() {
        let hop = 4;
        let lines = vec![
            Line {
                before: vec![Gap::Mark("start".into())],
                words: vec![(0, 2..6), (1, 6..10)],
                marks: vec![("mid".into(), 6)],
                hop,
            },
            Line {
                before: vec![Gap::Silence(1), Gap::Mark("after-break".into())],
                // Word 2 has no sound of its own: it sits where word 3 starts.
                words: vec![(3, 2..4)],
                marks: Vec::new(),
                hop,
            },
        ];
        let words = vec![
            word("one", 0),
            word("two", 4),
            word("x", 8),
            word("three", 10),
        ];
        let d0 = [1u32, 0, 2, 1, 3, 0, 1, 1, 2, 0, 1, 1];
        let d1 = [2u32, 0, 3, 0, 1];
        let f0: u32 = d0.iter().sum();
        let f1: u32 = d1.iter().sum();
        let rate = 8000; // 1 ms = 8 samples
        let mut seen: Vec<Vec<String>> = Vec::new();
        for chunk in [1usize, 3, 7, 1000] {
            let script = Script::new(
                words.clone(),
                lines.clone(),
                vec![Gap::Mark("end".into())],
                rate,
            );
            script.record(0, &d0[..6]);
            let mut log = Vec::new();
            let mut audio = 0usize;
            {
                let mut sink = |ev: Event<'_>| {
                    match ev {
                        Event::Samples(s) => audio += s.len(),
                        Event::SentenceEnd => log.push(format!("end@{audio}")),
                        Event::Word(w) => {
                            log.push(format!("{}:{}-{}@{audio}", w.text, w.start, w.end))
                        }
                        Event::Mark(m) => log.push(format!("{}={}@{audio}", m.name, m.sample)),
                    }
                    ControlFlow::Continue(())
                };
                let mut tl = Timeline::new(&script, &mut sink);
                let zeros = vec![0f32; chunk];
                for (i, f) in [(0, f0), (1, f1)] {
                    let mut left = f as usize * hop;
                    while left > 0 {
                        let k = left.min(chunk);
                        let _ = tl.on(Event::Samples(&zeros[..k]));
                        left -= k;
                        if i == 0 {
                            // The rest of the durations come after the first chunk.
                            script.record(0, &d0);
                        }
                    }
                    if i == 0 {
                        script.record(1, &d1);
                    }
                    let _ = tl.on(Event::SentenceEnd);
                }
                let _ = tl.finish();
            }
            let cum = |d: &[u32], j: usize| d[..j].iter().sum::<u32>() as usize * hop;
            let s1 = f0 as usize * hop + 8; // sentence 2 starts after 1 ms of silence
            let want_words = [
                format!("one:{}-{}", cum(&d0, 2), cum(&d0, 6)),
                format!("two:{}-{}", cum(&d0, 6), cum(&d0, 10)),
                format!("x:{}-{}", s1 + cum(&d1, 2), s1 + cum(&d1, 2)),
                format!("three:{}-{}", s1 + cum(&d1, 2), s1 + cum(&d1, 4)),
            ];
            let words_got: Vec<String> = log
                .iter()
                .filter(|l| l.contains(':'))
                .map(|l| l.split('@').next().unwrap_or("").to_string())
                .collect();
            assert_eq!(words_got, want_words, "chunk {chunk}: {log:?}");
            let marks: Vec<String> = log
                .iter()
                .filter(|l| l.contains('='))
                .map(|l| l.split('@').next().unwrap_or("").to_string())
                .collect();
            assert_eq!(
                marks,
                [
                    "start=0".to_string(),
                    format!("mid={}", cum(&d0, 6)),
                    format!("after-break={s1}"),
                    format!("end={}", s1 + f1 as usize * hop),
                ],
                "chunk {chunk}"
            );
            // Each word is sent once its end is delivered, not a chunk later.
            for l in log.iter().filter(|l| l.contains(':')) {
                let (span, at) = l.split_once('@').unwrap_or_default();
                let end: usize = span.rsplit('-').next().unwrap_or("0").parse().unwrap_or(0);
                let at: usize = at.parse().unwrap_or(0);
                assert!(
                    at >= end && at < end + chunk.max(1) + hop * 4,
                    "{l} chunk {chunk}"
                );
            }
            seen.push(words_got);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]));
    }
}
