//! [`Speech`]: one request in flight on a backend `B` — its sentences (ids),
//! scales and seed, the sentence being rendered and where it stands — run
//! one chunk per step. The direct path and the scheduler's actor share it,
//! so both give the same samples.

use super::core::{Core, LoadedVoice};
use super::options::{Input, SpeakOptions};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{Noise, StageTimes, SynthOptions, Utterance, Vits};
use crate::text::Phonemizer;
use crate::voice::{phoneme_sentences, Scales};
use std::ops::ControlFlow;
use std::sync::Arc;

/// What a request delivers to its caller, in order.
pub(crate) enum Event<'a> {
    /// The next samples.
    Samples(&'a [f32]),
    /// A sentence ended.
    SentenceEnd,
}

/// The caller's side of a request: called for every event; `Break` cancels.
pub(crate) type Sink<'a> = dyn FnMut(Event<'_>) -> ControlFlow<()> + 'a;

/// What one [`Speech::step`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The next samples of the current sentence are in the buffer.
    Samples,
    /// A sentence ended (its samples all delivered).
    SentenceEnd,
    /// The request is complete.
    Done,
}

/// What a request does next: render output frames `a..b` of its current
/// sentence, or report a step that needs no rendering.
pub(crate) enum Next {
    Render(usize, usize),
    Ready(Step),
}

/// What a request renders, fixed once it starts: the voice, the sentences as
/// ids, the scales, the seed and the chunk sizes. Shared (read-only) by every
/// thread that renders one of its sentences.
pub(crate) struct Plan<B: Backend> {
    pub(crate) voice: Arc<LoadedVoice<B>>,
    pub(crate) sentences: Vec<Vec<i64>>,
    scales: Scales,
    seed: u64,
    max_frames: usize,
    first: usize,
    chunk: usize,
    /// Speaker of a multi-speaker voice (0 otherwise).
    speaker: usize,
}

/// Where the rendering of a request stands: the sentence, once prepared (its
/// encoder and durations), the next frame and the next chunk's size.
pub(crate) struct Cursor<B: Backend> {
    sentence: usize,
    /// The sentence being rendered (after its encoder and durations).
    pub(crate) utt: Option<Utterance<B>>,
    at: usize,
    size: usize,
}

impl<B: Backend> Cursor<B> {
    /// At the start of sentence `i`.
    pub(crate) fn at_sentence(i: usize) -> Self {
        Cursor {
            sentence: i,
            utt: None,
            at: 0,
            size: 0,
        }
    }

    /// The sentence this cursor renders (the next one once a sentence ended).
    pub(crate) fn sentence(&self) -> usize {
        self.sentence
    }
}

/// A request in flight: its plan and one cursor, stepped one chunk at a time.
pub(crate) struct Speech<B: Backend> {
    pub(crate) plan: Plan<B>,
    pub(crate) cur: Cursor<B>,
}

impl<B: Backend> Speech<B> {
    /// Check the options against the voice and turn the input into sentences of ids.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a speaker the voice lacks or input the
    /// frontend rejects.
    pub(crate) fn new(v: Arc<LoadedVoice<B>>, text: &str, o: &SpeakOptions) -> Result<Self> {
        // Speaker: `0..num_speakers` (None: 0, Piper's default).
        let n = v.config.num_speakers;
        let speaker = match o.speaker {
            None => 0,
            Some(s) => match usize::try_from(s) {
                Ok(i) if i < n => i,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "speaker {s} is outside this voice's speakers 0..{n}"
                    )))
                }
            },
        };
        let d = v.config.scales;
        let scales = Scales {
            noise_scale: o.noise_scale.unwrap_or(d.noise_scale),
            length_scale: o.length_scale.unwrap_or(d.length_scale),
            noise_w: o.noise_w.unwrap_or(d.noise_w),
        };
        let sentences = sentence_ids(&v, text, o.input, o.phonemizer)?;
        let first = o.first_chunk_frames.max(1);
        Ok(Speech {
            plan: Plan {
                voice: v,
                sentences,
                scales,
                seed: o.seed,
                max_frames: o.max_frames,
                first,
                chunk: o.chunk_frames.max(first),
                speaker,
            },
            cur: Cursor::at_sentence(0),
        })
    }

    /// Run the next step: render the next chunk into `buf`, or report the end
    /// of a sentence or of the request.
    pub(crate) fn step(&mut self, core: &Core<B>, buf: &mut Vec<f32>) -> Result<Step> {
        self.plan.step(core, &mut self.cur, buf)
    }

    /// Output frames `a..b` were rendered: move on, the next chunk larger.
    pub(crate) fn rendered(&mut self, b: usize) {
        self.plan.rendered(&mut self.cur, b);
    }

    /// Prepare the next sentence if needed (encoder + duration), and say what
    /// to render next, or the step that needs no rendering.
    pub(crate) fn next(&mut self, core: &Core<B>) -> Result<Next> {
        self.plan.next(core, &mut self.cur)
    }
}

impl<B: Backend> Plan<B> {
    /// The options of sentence `i` (each sentence has its own seed).
    fn synth_options(&self, i: usize) -> SynthOptions {
        SynthOptions {
            scales: self.scales,
            noise: Noise::Seeded(self.seed.wrapping_add(i as u64)),
            max_frames: self.max_frames,
            speaker: self.speaker,
        }
    }

    /// Whether `cur`'s chunks have reached their full size (its small
    /// first chunks are out), or it is between sentences.
    pub(crate) fn ramped(&self, cur: &Cursor<B>) -> bool {
        cur.utt.is_none() || cur.size >= self.chunk
    }

    /// Sentence `i` whole into `out`, in the chunks stepping it would use
    /// (so the same samples); its stage times.
    pub(crate) fn sentence_whole(
        &self,
        be: &B,
        i: usize,
        out: &mut Vec<f32>,
    ) -> Result<StageTimes> {
        let model: &Vits<B> = &self.voice.model;
        let mut u = model.prepare(be, &self.sentences[i], &self.synth_options(i))?;
        let f = u.frames();
        // Exactly the sentence's samples, in one allocation.
        out.reserve_exact(f * model.hop());
        let (mut a, mut size) = (0, self.first);
        while a < f {
            let b = (a + size).min(f);
            model.render(be, &mut u, a, b, out)?;
            a = b;
            size = (size * 4).min(self.chunk);
        }
        Ok(u.times)
    }

    /// Run the next step of `cur`: render its next chunk into `buf`, or
    /// report the end of a sentence or of the request.
    pub(crate) fn step(
        &self,
        core: &Core<B>,
        cur: &mut Cursor<B>,
        buf: &mut Vec<f32>,
    ) -> Result<Step> {
        let (a, b) = match self.next(core, cur)? {
            Next::Ready(step) => return Ok(step),
            Next::Render(a, b) => (a, b),
        };
        let model = &self.voice.model;
        let u = cur
            .utt
            .as_mut()
            .ok_or_else(|| Error::Device("no sentence in flight to render".into()))?;
        buf.clear();
        let be = &core.be;
        be.install(|| model.render(be, u, a, b, buf))?;
        self.rendered(cur, b);
        Ok(Step::Samples)
    }

    /// Output frames `a..b` of `cur`'s sentence were rendered: move on, the
    /// next chunk larger.
    pub(crate) fn rendered(&self, cur: &mut Cursor<B>, b: usize) {
        cur.at = b;
        cur.size = (cur.size * 4).min(self.chunk);
    }

    /// Prepare `cur`'s sentence if needed (encoder + duration), and say what
    /// to render next, or the step that needs no rendering. At the end of a
    /// sentence `cur` moves to the next one.
    pub(crate) fn next(&self, core: &Core<B>, cur: &mut Cursor<B>) -> Result<Next> {
        if cur.sentence >= self.sentences.len() {
            return Ok(Next::Ready(Step::Done));
        }
        let be = &core.be;
        let model = &self.voice.model;
        if cur.utt.is_none() {
            let opts = self.synth_options(cur.sentence);
            let ids = &self.sentences[cur.sentence];
            // Small first chunks only where the listener is waiting: at the
            // start of the request. Later sentences follow audio that is
            // already ahead of playback, and larger chunks cost less halo
            // (the samples are the same either way).
            cur.size = if cur.sentence == 0 {
                self.first
            } else {
                self.chunk
            };
            // The first small chunk needs the durations of the first ids
            // only: the rest waits until it is out.
            let soon = if cur.size < self.chunk {
                cur.size
            } else {
                usize::MAX
            };
            cur.utt = Some(be.install(|| model.prepare_first(be, ids, &opts, soon))?);
            cur.at = 0;
        }
        let Some(u) = cur.utt.as_mut() else {
            return Err(Error::Device("no sentence in flight".into()));
        };
        if cur.at > 0 && !u.durations_complete() {
            be.install(|| model.finish(be, u))?;
        }
        let f = u.frames();
        if cur.at >= f {
            core.add_times(u.times);
            cur.utt = None;
            cur.sentence += 1;
            return Ok(Next::Ready(Step::SentenceEnd));
        }
        Ok(Next::Render(cur.at, (cur.at + cur.size).min(f)))
    }
}

/// The sentences of a request as id sequences (after the text frontend or
/// the IPA mapping).
///
/// # Errors
/// [`Error::InvalidArgument`] for ids outside the voice or text the frontend
/// rejects; [`Error::Text`] when the phonemizer itself fails.
pub(crate) fn sentence_ids<B: Backend>(
    v: &LoadedVoice<B>,
    text: &str,
    input: Input,
    phonemizer: Phonemizer,
) -> Result<Vec<Vec<i64>>> {
    let ids = &v.ids;
    match input {
        Input::Ids => {
            if text.trim().is_empty() {
                return Ok(Vec::new());
            }
            Ok(vec![ids.parse_ids(text)?])
        }
        Input::Phonemes => Ok(phoneme_sentences(text)
            .into_iter()
            .map(|s| ids.sentence_ids(s).ids)
            .collect()),
        Input::Text => {
            let sentences =
                crate::text::phonemize_with(text, phonemizer, v.config.espeak_voice.as_deref())?;
            Ok(sentences.iter().map(|s| ids.sentence_ids(s).ids).collect())
        }
    }
}
