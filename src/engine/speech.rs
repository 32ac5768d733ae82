//! [`Speech`]: one request in flight on a backend `B` — its sentences (ids),
//! scales and seed, the sentence being rendered and where it stands — run
//! one chunk per step. The direct path and the scheduler's actor share it,
//! so both give the same samples.

use super::core::{Core, LoadedVoice};
use super::options::{Input, SpeakOptions, SPEED_RANGE};
use super::script::{Line, Script};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{Noise, StageTimes, SynthOptions, Utterance, Vits};
use crate::text::analysis::{self, Analysis};
use crate::text::Phonemizer;
use crate::voice::Scales;
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

/// What a request renders, fixed once it starts: the voice, the sentences as
/// ids, the scales, the seed and the chunk sizes. Shared (read-only) by every
/// thread that renders one of its sentences.
pub(crate) struct Plan<B: Backend> {
    pub(crate) voice: Arc<LoadedVoice<B>>,
    pub(crate) sentences: Vec<Vec<i64>>,
    /// Per sentence: a factor on the length scale per id (SSML rates).
    rates: Vec<Option<Arc<[f32]>>>,
    /// Per sentence: the speaker.
    speakers: Vec<usize>,
    /// Index of the first sentence in the request (a request whose SSML
    /// switches voices runs one plan per voice): seeds and the script count
    /// from it.
    base: usize,
    /// The request's text side; the durations are recorded in it.
    pub(crate) script: Arc<Script>,
    scales: Scales,
    seed: u64,
    max_frames: usize,
    first: usize,
    chunk: usize,
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
            noise: Noise::Seeded(self.seed.wrapping_add((self.base + i) as u64)),
            max_frames: self.max_frames,
            rates: self.rates.get(i).cloned().flatten(),
            speaker: self.speakers.get(i).copied().unwrap_or(0),
        }
    }

    /// Sentence `i`'s durations (so far) go to the script.
    fn record(&self, i: usize, durations: &[u32]) {
        self.script.record(self.base + i, durations);
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
        self.record(i, &u.durations);
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
            let u = be.install(|| model.prepare_first(be, ids, &opts, soon))?;
            self.record(cur.sentence, &u.durations);
            cur.utt = Some(u);
            cur.at = 0;
        }
        let Some(u) = cur.utt.as_mut() else {
            return Err(Error::Device("no sentence in flight".into()));
        };
        if cur.at > 0 && !u.durations_complete() {
            be.install(|| model.finish(be, u))?;
            self.record(cur.sentence, &u.durations);
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

/// A request made ready to render: its script and one speech per run of
/// sentences on the same voice (one, unless SSML switches voices).
pub(crate) struct Prepared<B: Backend> {
    pub(crate) script: Arc<Script>,
    pub(crate) speeches: Vec<Speech<B>>,
}

/// The sentences of a request as ids with their words, marks and rates:
/// `input` through the frontend (or SSML, or IPA, or ids as given).
///
/// # Errors
/// [`Error::InvalidArgument`] for bad options (speaker, speed), ids outside
/// the voice, text the frontend rejects, malformed SSML or an SSML voice
/// that names no loaded voice or speaker; [`Error::Text`] when the
/// phonemizer itself fails.
pub(crate) fn prepare<B: Backend>(
    core: &Core<B>,
    voice: Arc<LoadedVoice<B>>,
    text: &str,
    o: &SpeakOptions,
) -> Result<Prepared<B>> {
    let speaker = check_speaker(&voice, o.speaker)?;
    if !(SPEED_RANGE.contains(&o.speed)) {
        return Err(Error::InvalidArgument(format!(
            "speed {} is outside {}..={}",
            o.speed,
            SPEED_RANGE.start(),
            SPEED_RANGE.end()
        )));
    }
    let d = voice.config.scales;
    let scales = Scales {
        noise_scale: o.noise_scale.unwrap_or(d.noise_scale),
        length_scale: o.length_scale.unwrap_or(d.length_scale) / o.speed,
        noise_w: o.noise_w.unwrap_or(d.noise_w),
    };
    let rate = voice.config.sample_rate;
    let analysis = match o.input {
        Input::Ids => {
            // One utterance, no words.
            let ids = if text.trim().is_empty() {
                Vec::new()
            } else {
                vec![voice.ids.parse_ids(text)?]
            };
            let lines = ids
                .iter()
                .map(|_| Line {
                    hop: voice.model.hop(),
                    ..Line::default()
                })
                .collect();
            let script = Arc::new(Script::new(Vec::new(), lines, Vec::new(), rate));
            let n = ids.len();
            return Ok(Prepared {
                speeches: vec![Speech::of(
                    voice,
                    ids,
                    vec![None; n],
                    vec![speaker; n],
                    0,
                    &script,
                    scales,
                    o,
                )],
                script,
            });
        }
        Input::Phonemes => analysis::analyze_phonemes(text),
        Input::Text => match o.phonemizer {
            Phonemizer::BuiltIn => {
                crate::text::check_len(text)?;
                analysis::analyze_text(text)
            }
            Phonemizer::Espeak => {
                crate::text::analyze_espeak(text, voice.config.espeak_voice.as_deref())?
            }
        },
        Input::Ssml => crate::text::analyze_ssml(text)?,
    };
    let Analysis {
        words,
        sentences,
        after,
        warnings,
    } = analysis;
    // Each sentence on its voice and speaker, as ids with positions.
    let mut lines = Vec::with_capacity(sentences.len());
    let mut groups: Vec<(Arc<LoadedVoice<B>>, usize)> = Vec::new();
    let mut ids_of = Vec::with_capacity(sentences.len());
    let mut rates_of = Vec::with_capacity(sentences.len());
    let mut speakers = Vec::with_capacity(sentences.len());
    for (i, s) in sentences.into_iter().enumerate() {
        let (v, spk) = match &s.voice {
            None => (Arc::clone(&voice), speaker),
            Some(name) => resolve_voice(core, &voice, name, speaker)?,
        };
        if v.config.sample_rate != rate {
            return Err(Error::InvalidArgument(format!(
                "SSML voice {:?} runs at {} Hz, the request's voice at {rate} Hz: one request has one sample rate",
                s.voice.as_deref().unwrap_or_default(),
                v.config.sample_rate
            )));
        }
        let (ids, at) = v.ids.sentence_ids_at(&s.ipa);
        let rates = id_rates(&s.rates, &at, ids.len());
        lines.push(Line {
            before: s.before,
            words: s
                .words
                .iter()
                .map(|w| (w.word, at[w.chars.start]..at[w.chars.end]))
                .collect(),
            marks: s.marks.iter().map(|(m, p)| (m.clone(), at[*p])).collect(),
            hop: v.model.hop(),
        });
        match groups.last_mut() {
            Some((g, _)) if Arc::ptr_eq(g, &v) => {}
            _ => groups.push((v, i)),
        }
        ids_of.push(ids);
        rates_of.push(rates);
        speakers.push(spk);
    }
    let mut script = Script::new(words, lines, after, rate);
    script.warnings = warnings;
    let script = Arc::new(script);
    let mut speeches = Vec::with_capacity(groups.len().max(1));
    let n = ids_of.len();
    let bounds: Vec<usize> = groups.iter().map(|g| g.1).chain([n]).collect();
    for (k, (v, base)) in groups.into_iter().enumerate().rev() {
        let end = bounds[k + 1];
        let ids: Vec<Vec<i64>> = ids_of.drain(base..end).collect();
        let rates = rates_of.drain(base..end).collect();
        let spk = speakers.drain(base..end).collect();
        speeches.push(Speech::of(v, ids, rates, spk, base, &script, scales, o));
    }
    speeches.reverse();
    if speeches.is_empty() {
        // No sentence: the script's silences and marks still go out.
        speeches.push(Speech::of(
            voice,
            Vec::new(),
            Vec::new(),
            Vec::new(),
            0,
            &script,
            scales,
            o,
        ));
    }
    Ok(Prepared { script, speeches })
}

impl<B: Backend> Speech<B> {
    /// Sentences `base..` of a request on voice `v`.
    #[allow(clippy::too_many_arguments)]
    fn of(
        v: Arc<LoadedVoice<B>>,
        sentences: Vec<Vec<i64>>,
        rates: Vec<Option<Arc<[f32]>>>,
        speakers: Vec<usize>,
        base: usize,
        script: &Arc<Script>,
        scales: Scales,
        o: &SpeakOptions,
    ) -> Self {
        let first = o.first_chunk_frames.max(1);
        Speech {
            plan: Plan {
                voice: v,
                sentences,
                rates,
                speakers,
                base,
                script: Arc::clone(script),
                scales,
                seed: o.seed,
                max_frames: o.max_frames,
                first,
                chunk: o.chunk_frames.max(first),
            },
            cur: Cursor::at_sentence(0),
        }
    }
}

/// The speaker a request asks for, checked against the voice.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the voice's speakers.
fn check_speaker<B: Backend>(v: &LoadedVoice<B>, speaker: Option<i64>) -> Result<usize> {
    match speaker {
        None => Ok(0),
        Some(s) => Ok(v.config.resolve_speaker(&s.to_string())? as usize),
    }
}

/// A speaker of `v` by id or name.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the speaker and the voice's speakers.
pub(crate) fn speaker_of<B: Backend>(v: &LoadedVoice<B>, spec: &str) -> Result<i64> {
    v.config.resolve_speaker(spec)
}

/// An SSML `voice name`: a loaded voice, else a speaker of the request's voice.
fn resolve_voice<B: Backend>(
    core: &Core<B>,
    voice: &Arc<LoadedVoice<B>>,
    name: &str,
    speaker: usize,
) -> Result<(Arc<LoadedVoice<B>>, usize)> {
    if let Ok(v) = core.voice(name) {
        let spk = if Arc::ptr_eq(&v, voice) { speaker } else { 0 };
        return Ok((v, spk));
    }
    if voice.config.num_speakers > 1 {
        if let Ok(id) = voice.config.resolve_speaker(name) {
            return Ok((Arc::clone(voice), id as usize));
        }
    }
    Err(Error::InvalidArgument(format!(
        "SSML voice {name:?} is neither a loaded voice ({}) nor a speaker of this voice ({})",
        core.voices
            .read()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        voice.config.speaker_list()
    )))
}

/// Per id, the factor on the length scale (1 / rate) from the rate of each
/// char; `None` when every rate is 1. `at` as from
/// [`crate::voice::PhonemeIdMap::sentence_ids_at`].
fn id_rates(char_rates: &[f32], at: &[usize], ids: usize) -> Option<Arc<[f32]>> {
    if char_rates.iter().all(|&r| r == 1.0) {
        return None;
    }
    let first = char_rates.first().copied().unwrap_or(1.0);
    let mut out = vec![1.0 / first; ids];
    for (k, &r) in char_rates.iter().enumerate() {
        let (a, b) = (at[k], at.get(k + 1).copied().unwrap_or(ids));
        out[a..b].iter_mut().for_each(|x| *x = 1.0 / r);
    }
    // The end-of-sentence ids take the last char's rate.
    let last = char_rates.last().copied().unwrap_or(1.0);
    if let Some(&e) = at.last() {
        out[e.min(ids)..].iter_mut().for_each(|x| *x = 1.0 / last);
    }
    Some(out.into())
}
