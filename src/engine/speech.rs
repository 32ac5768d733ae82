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
use std::sync::Arc;

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

/// A request in flight.
pub(crate) struct Speech<B: Backend> {
    pub(crate) voice: Arc<LoadedVoice<B>>,
    pub(crate) sentences: Vec<Vec<i64>>,
    scales: Scales,
    seed: u64,
    max_frames: usize,
    first: usize,
    chunk: usize,
    sentence: usize,
    /// The sentence being rendered (after its encoder and durations).
    pub(crate) utt: Option<Utterance<B>>,
    at: usize,
    size: usize,
}

impl<B: Backend> Speech<B> {
    /// Check the options against the voice and turn the input into sentences of ids.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a speaker the voice lacks or input the
    /// frontend rejects.
    pub(crate) fn new(v: Arc<LoadedVoice<B>>, text: &str, o: &SpeakOptions) -> Result<Self> {
        if let Some(s) = o.speaker {
            if s != 0 || v.config.num_speakers > 1 {
                return Err(Error::InvalidArgument(format!(
                    "speaker {s}: this voice has {} speaker(s) and multi-speaker voices are not supported yet",
                    v.config.num_speakers
                )));
            }
        }
        let d = v.config.scales;
        let scales = Scales {
            noise_scale: o.noise_scale.unwrap_or(d.noise_scale),
            length_scale: o.length_scale.unwrap_or(d.length_scale),
            noise_w: o.noise_w.unwrap_or(d.noise_w),
        };
        let sentences = sentence_ids(&v, text, o.input, o.phonemizer)?;
        let first = o.first_chunk_frames.max(1);
        Ok(Speech {
            voice: v,
            sentences,
            scales,
            seed: o.seed,
            max_frames: o.max_frames,
            first,
            chunk: o.chunk_frames.max(first),
            sentence: 0,
            utt: None,
            at: 0,
            size: first,
        })
    }

    /// The options of sentence `i` (each sentence has its own seed).
    fn synth_options(&self, i: usize) -> SynthOptions {
        SynthOptions {
            scales: self.scales,
            noise: Noise::Seeded(self.seed.wrapping_add(i as u64)),
            max_frames: self.max_frames,
        }
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

    /// Run the next step: render the next chunk into `buf`, or report the end
    /// of a sentence or of the request.
    pub(crate) fn step(&mut self, core: &Core<B>, buf: &mut Vec<f32>) -> Result<Step> {
        let (a, b) = match self.next(core)? {
            Next::Ready(step) => return Ok(step),
            Next::Render(a, b) => (a, b),
        };
        let v = Arc::clone(&self.voice);
        let u = self
            .utt
            .as_mut()
            .ok_or_else(|| Error::Device("no sentence in flight to render".into()))?;
        buf.clear();
        let be = &core.be;
        be.install(|| v.model.render(be, u, a, b, buf))?;
        self.rendered(b);
        Ok(Step::Samples)
    }

    /// Output frames `a..b` were rendered: move on, the next chunk larger.
    pub(crate) fn rendered(&mut self, b: usize) {
        self.at = b;
        self.size = (self.size * 4).min(self.chunk);
    }

    /// Prepare the next sentence if needed (encoder + duration), and say what
    /// to render next, or the step that needs no rendering.
    pub(crate) fn next(&mut self, core: &Core<B>) -> Result<Next> {
        if self.sentence >= self.sentences.len() {
            return Ok(Next::Ready(Step::Done));
        }
        let be = &core.be;
        let model = &self.voice.model;
        if self.utt.is_none() {
            let opts = self.synth_options(self.sentence);
            let ids = &self.sentences[self.sentence];
            // Small first chunks only where the listener is waiting: at the
            // start of the request. Later sentences follow audio that is
            // already ahead of playback, and larger chunks cost less halo
            // (the samples are the same either way).
            self.size = if self.sentence == 0 {
                self.first
            } else {
                self.chunk
            };
            // The first small chunk needs the durations of the first ids
            // only: the rest waits until it is out.
            let soon = if self.size < self.chunk {
                self.size
            } else {
                usize::MAX
            };
            self.utt = Some(be.install(|| model.prepare_first(be, ids, &opts, soon))?);
            self.at = 0;
        }
        let Some(u) = self.utt.as_mut() else {
            return Err(Error::Device("no sentence in flight".into()));
        };
        if self.at > 0 && !u.durations_complete() {
            be.install(|| model.finish(be, u))?;
        }
        let f = u.frames();
        if self.at >= f {
            core.add_times(u.times);
            self.utt = None;
            self.sentence += 1;
            return Ok(Next::Ready(Step::SentenceEnd));
        }
        Ok(Next::Render(self.at, (self.at + self.size).min(f)))
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
