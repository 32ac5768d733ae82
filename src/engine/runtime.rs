//! The engine's one generic runtime, [`Runtime<B>`] over a backend `B`, and
//! the single dispatch point to it: the object-safe [`Serve`] trait, which
//! [`super::Engine`] holds as `Box<dyn Serve>`. The builder picks the backend
//! once; below this line everything is monomorphic code for that backend.

use super::ahead;
use super::core::{Core, LoadedVoice};
use super::job::{Out, SpeakJob};
use super::options::{Input, SpeakOptions};
use super::script::{Event, Sink, Timeline};
use super::speech::{prepare, speaker_of, Prepared, Speech, Step};
use crate::audio::Audio;
use crate::backend::{Backend, Precision};
use crate::error::{Error, Result};
use crate::model::{StageTimes, Vits};
use crate::scheduler::{Scheduler, SchedulerOptions};
use crate::voice::Voice;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What the engine needs from its runtime, whatever the backend (the
/// engine's single dispatch point).
pub(crate) trait Serve: Send + Sync {
    /// `cpu`, `cuda:N (name)`.
    fn device_name(&self) -> String;
    /// The arithmetic in use.
    fn precision(&self) -> Precision;
    /// The CPU kernel family in use; `None` off the CPU.
    fn cpu_isa(&self) -> Option<crate::backend::cpu::Isa>;
    /// Whether the CPU runs the decoder's residual-block convs and the encoder's
    /// feed-forward convs as Winograd transforms.
    fn cpu_winograd(&self) -> bool;
    /// Host threads running the ops.
    fn threads(&self) -> usize;
    /// Device memory `(free, total)`; `None` on the CPU.
    fn memory(&self) -> Option<(usize, usize)>;
    /// Seconds per stage of the finished sentences so far.
    fn stage_times(&self) -> StageTimes;
    /// Load a voice under `name` (replacing one of that name).
    fn load_voice(&self, name: &str, path: &Path, config: Option<&Path>) -> Result<()>;
    /// Loaded voice names, sorted.
    fn voice_names(&self) -> Vec<String>;
    /// The sample rate of a loaded voice.
    fn sample_rate(&self, name: &str) -> Result<u32>;
    /// The sentences of `text` as ids.
    fn sentence_ids(&self, voice: &str, text: &str, input: Input) -> Result<Vec<Vec<i64>>>;
    /// A speaker of a voice by name (or id).
    fn speaker_id(&self, voice: &str, name: &str) -> Result<i64>;
    /// Run a request, delivering its events to `sink` as they are ready.
    fn speak_stream(
        &self,
        voice: &str,
        text: &str,
        options: &SpeakOptions,
        sink: &mut Sink<'_>,
    ) -> Result<()>;
    /// Run a request whose whole audio the caller waits for, into `audio`.
    fn speak_whole(
        &self,
        voice: &str,
        text: &str,
        options: &SpeakOptions,
        audio: &mut Audio,
    ) -> Result<()>;
}

/// Frames per chunk when the whole audio is returned at once (one sentence
/// in flight: larger chunks, a little less halo work).
const WHOLE_CHUNK_FRAMES: usize = 192;
/// The same with sentences in parallel on several CPU threads: each sentence
/// in flight holds decoder scratch in proportion (about 230 KB per frame for
/// Piper medium voices), so smaller chunks keep peak RSS down; the cut ends
/// of a chunk skip their halo work, so they cost about the same.
const WHOLE_CHUNK_FRAMES_PARALLEL: usize = 128;

/// The engine's runtime on backend `B`: the shared core, and the device's
/// scheduler actor when requests go through it.
pub(crate) struct Runtime<B: Backend> {
    core: Arc<Core<B>>,
    scheduler: Option<Scheduler<SpeakJob<B>>>,
}

impl<B: Backend> Runtime<B> {
    /// A runtime on `be`, with a scheduler actor when `scheduler` is given.
    ///
    /// # Errors
    /// When the scheduler's thread cannot start.
    pub(crate) fn new(be: B, scheduler: Option<SchedulerOptions>) -> Result<Self> {
        let scheduler = match scheduler {
            Some(o) => Some(Scheduler::start(&be.name(), o)?),
            None => None,
        };
        Ok(Runtime {
            core: Arc::new(Core {
                be,
                voices: RwLock::new(BTreeMap::new()),
                stage_times: Mutex::new(StageTimes::default()),
            }),
            scheduler,
        })
    }

    /// Run `speech` to the end, delivering its events to `sink`.
    fn run(&self, mut speech: Speech<B>, sink: &mut Sink<'_>) -> Result<()> {
        if let Some(sched) = &self.scheduler {
            let stream = sched.submit(SpeakJob {
                core: Arc::clone(&self.core),
                speech,
            })?;
            for out in stream {
                let flow = match out? {
                    Out::Samples(s) => sink(Event::Samples(&s)),
                    Out::SentenceEnd => sink(Event::SentenceEnd),
                };
                if flow.is_break() {
                    return Err(Error::Cancelled);
                }
            }
            return Ok(());
        }
        // Several sentences on several CPU threads: render them side by side
        // (same samples, delivered in order; see `ahead.rs`).
        let threads = self.core.be.threads();
        if threads > 1 && speech.plan.sentences.len() > 1 {
            return ahead::stream(&self.core, &speech.plan, threads, sink);
        }
        let mut buf = Vec::new();
        loop {
            let ev = match speech.step(&self.core, &mut buf)? {
                Step::Samples => Event::Samples(&buf),
                Step::SentenceEnd => Event::SentenceEnd,
                Step::Done => return Ok(()),
            };
            if sink(ev).is_break() {
                return Err(Error::Cancelled);
            }
        }
    }

    /// The whole audio of a request of several sentences on a backend with
    /// several threads: the threads take sentences in turn, longest first
    /// (so that no long sentence starts last while the other threads idle;
    /// each sentence's ops also split over idle threads), and finished
    /// sentences join `audio` in order. The samples are those of the
    /// sequential path: every sentence has its own seed and the kernels give
    /// the same sums on any thread count.
    fn whole_in_parallel(&self, speech: &Speech<B>, sink: &mut Sink<'_>) -> Result<()> {
        let be = &self.core.be;
        let n = speech.plan.sentences.len();
        // Longest first (ids as the measure of work; ties in order).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(speech.plan.sentences[i].len()));
        let next = AtomicUsize::new(0);
        let done = Mutex::new(Joined {
            pending: BTreeMap::new(),
            error: None,
        });
        let worker = || loop {
            let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            // After a failure only the sentences before it still run: the
            // request fails with its first failing sentence's error, as on
            // the sequential path.
            if done.lock().error.as_ref().is_some_and(|(f, _)| i > *f) {
                continue;
            }
            let mut out = Vec::new();
            let r = speech.plan.sentence_whole(be, i, &mut out);
            let mut d = done.lock();
            match r {
                Ok(times) => {
                    self.core.add_times(times);
                    d.pending.insert(i, out);
                }
                Err(e) => {
                    if d.error.as_ref().is_none_or(|(f, _)| i < *f) {
                        d.error = Some((i, e));
                    }
                }
            }
        };
        be.install(|| {
            rayon::scope(|s| {
                for _ in 1..be.threads().min(n) {
                    s.spawn(|_| worker());
                }
                worker();
            })
        });
        let Joined { mut pending, error } = done.into_inner();
        if let Some((_, e)) = error {
            return Err(e);
        }
        // In order; each sentence freed as it goes (memory stays about one
        // copy of the audio).
        for i in 0..n {
            let s = pending.remove(&i).unwrap_or_default();
            if sink(Event::Samples(&s)).is_break() || sink(Event::SentenceEnd).is_break() {
                return Err(Error::Cancelled);
            }
        }
        Ok(())
    }

    /// Run a prepared request to the end: its speeches in order, through
    /// the timeline (words, marks, silences), to `sink`.
    fn run_prepared(&self, prepared: Prepared<B>, whole: bool, sink: &mut Sink<'_>) -> Result<()> {
        let Prepared { script, speeches } = prepared;
        let mut tl = Timeline::new(&script, sink);
        let threads = self.core.be.threads();
        for speech in speeches {
            let mut on = |ev: Event<'_>| tl.on(ev);
            if whole && self.scheduler.is_none() && threads > 1 && speech.plan.sentences.len() > 1 {
                self.whole_in_parallel(&speech, &mut on)?;
            } else {
                self.run(speech, &mut on)?;
            }
        }
        if tl.finish().is_break() {
            return Err(Error::Cancelled);
        }
        Ok(())
    }
}

/// Sentences finished out of order, waiting for their turn.
struct Joined {
    /// Finished sentences by index.
    pending: BTreeMap<usize, Vec<f32>>,
    /// The failure of the first failing sentence (by index) that ran: the
    /// request then fails with it.
    error: Option<(usize, Error)>,
}

impl<B: Backend> Serve for Runtime<B> {
    fn device_name(&self) -> String {
        self.core.be.name()
    }

    fn precision(&self) -> Precision {
        self.core.be.precision()
    }

    fn cpu_isa(&self) -> Option<crate::backend::cpu::Isa> {
        self.core.be.cpu_isa()
    }

    fn cpu_winograd(&self) -> bool {
        self.core.be.cpu_winograd()
    }

    fn threads(&self) -> usize {
        self.core.be.threads()
    }

    fn memory(&self) -> Option<(usize, usize)> {
        self.core.be.memory()
    }

    fn stage_times(&self) -> StageTimes {
        *self.core.stage_times.lock()
    }

    fn load_voice(&self, name: &str, path: &Path, config: Option<&Path>) -> Result<()> {
        let be = &self.core.be;
        // Inside the backend's pool: reading and converting the weights
        // then use every thread.
        let voice = be.install(|| Voice::load(path, config))?;
        let model = be.install(|| Vits::new(be, &voice.weights))?;
        let Voice { config, ids, .. } = voice;
        self.core.voices.write().insert(
            name.to_string(),
            Arc::new(LoadedVoice { config, ids, model }),
        );
        Ok(())
    }

    fn voice_names(&self) -> Vec<String> {
        self.core.voices.read().keys().cloned().collect()
    }

    fn sample_rate(&self, name: &str) -> Result<u32> {
        Ok(self.core.voice(name)?.config.sample_rate)
    }

    fn sentence_ids(&self, voice: &str, text: &str, input: Input) -> Result<Vec<Vec<i64>>> {
        let v = self.core.voice(voice)?;
        let p = prepare(&self.core, v, text, &SpeakOptions::default().input(input))?;
        Ok(p.speeches
            .into_iter()
            .flat_map(|s| s.plan.sentences)
            .collect())
    }

    fn speaker_id(&self, voice: &str, name: &str) -> Result<i64> {
        speaker_of(&*self.core.voice(voice)?, name)
    }

    fn speak_stream(
        &self,
        voice: &str,
        text: &str,
        options: &SpeakOptions,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let v = self.core.voice(voice)?;
        let prepared = prepare(&self.core, v, text, options)?;
        self.run_prepared(prepared, false, sink)
    }

    fn speak_whole(
        &self,
        voice: &str,
        text: &str,
        options: &SpeakOptions,
        audio: &mut Audio,
    ) -> Result<()> {
        let v = self.core.voice(voice)?;
        // Nobody waits for a first chunk: start with full-size chunks, which
        // spends less on small-chunk halos (same samples: chunked == whole).
        let threads = self.core.be.threads();
        let chunk = if threads > 1 {
            WHOLE_CHUNK_FRAMES_PARALLEL
        } else {
            WHOLE_CHUNK_FRAMES
        };
        let options = options
            .clone()
            .first_chunk_frames(chunk)
            .chunk_frames(chunk);
        let prepared = prepare(&self.core, v, text, &options)?;
        for w in &prepared.script.warnings {
            audio.push_warning(w.clone());
        }
        let mut sentence = Vec::new();
        self.run_prepared(prepared, true, &mut |ev| {
            match ev {
                Event::Samples(s) => sentence.extend_from_slice(s),
                Event::SentenceEnd => {
                    audio.push_sentence(crate::audio::from_f32(&sentence));
                    sentence.clear();
                }
                Event::Word(w) => audio.push_word(w.clone()),
                Event::Mark(m) => audio.push_mark(m.clone()),
            }
            ControlFlow::Continue(())
        })
    }
}
