//! [`Engine`]: the handle callers hold — cheap to clone, shared by every
//! thread — over the engine's runtime and its admission control.

use super::options::{Input, SpeakOptions};
use super::permit::{Admission, Permit};
use super::runtime::Serve;
use super::script::Event;
use crate::audio::{Audio, AudioSample, SampleRate, SpeechEvent};
use crate::backend::{cpu::Isa, Precision};
use crate::error::{Error, Result};
use crate::model::StageTimes;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What the clones of an engine and its permits share.
struct Shared {
    runtime: Box<dyn Serve>,
    admission: Arc<Admission>,
    default_voice: String,
}

/// A loaded TTS engine: voices, a device, and admission control. Cheap to
/// clone (shared); `Send + Sync`.
///
/// ```no_run
/// use voxide::{Device, Engine};
/// let engine = Engine::builder()
///     .voice("voices/en_US-joe-medium.onnx")
///     .max_concurrent(4)
///     .device(Device::Cpu)
///     .build()?;
/// let permit = engine.acquire_permit()?;
/// let audio = engine.speak("Hello.", None, permit)?;
/// audio.write_wav("hello.wav")?;
/// # Ok::<(), voxide::Error>(())
/// ```
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("device", &self.device_name())
            .field("voices", &self.voice_names())
            .field("max_concurrent", &self.max_concurrent())
            .finish()
    }
}

impl Engine {
    pub(super) fn new(
        runtime: Box<dyn Serve>,
        max_concurrent: usize,
        default_voice: String,
    ) -> Engine {
        Engine {
            shared: Arc::new(Shared {
                runtime,
                admission: Admission::new(max_concurrent),
                default_voice,
            }),
        }
    }

    pub(super) fn rt(&self) -> &dyn Serve {
        self.shared.runtime.as_ref()
    }

    /// Load another voice under `name` (replacing one of the same name).
    ///
    /// # Errors
    /// As [`EngineBuilder::build`] for the voice files.
    pub fn add_voice(&self, name: &str, path: impl AsRef<Path>) -> Result<()> {
        if name.is_empty() {
            return Err(Error::InvalidArgument("voice name is empty".into()));
        }
        self.rt().load_voice(name, path.as_ref(), None)
    }

    /// Names of the loaded voices.
    pub fn voice_names(&self) -> Vec<String> {
        self.rt().voice_names()
    }

    /// The default voice's name.
    pub fn default_voice(&self) -> &str {
        &self.shared.default_voice
    }

    fn voice<'a>(&'a self, name: Option<&'a str>) -> &'a str {
        name.unwrap_or(&self.shared.default_voice)
    }

    /// Sample rate of a voice (`None`: the default).
    ///
    /// # Errors
    /// [`Error::UnknownVoice`].
    pub fn sample_rate(&self, voice: Option<&str>) -> Result<SampleRate> {
        Ok(SampleRate(self.rt().sample_rate(self.voice(voice))?))
    }

    /// The device in use: `cpu` or `cuda:N (name)`.
    pub fn device_name(&self) -> String {
        self.rt().device_name()
    }

    /// Device memory `(used, total)` in bytes on a GPU; `None` on the CPU.
    pub fn device_memory(&self) -> Option<(usize, usize)> {
        self.rt()
            .memory()
            .map(|(free, total)| (total.saturating_sub(free), total))
    }

    /// CPU threads used by the engine (1 on a GPU: one host thread drives it).
    pub fn threads(&self) -> usize {
        self.rt().threads()
    }

    /// The arithmetic in use ([`Precision::Auto`] resolved by the device).
    pub fn precision(&self) -> Precision {
        self.rt().precision()
    }

    /// The CPU kernel family in use ([`Isa::Auto`] resolved: `avx512`,
    /// `avx2` or `portable`); `None` on a GPU.
    pub fn cpu_isa(&self) -> Option<Isa> {
        self.rt().cpu_isa()
    }

    /// Whether the CPU runs the decoder's residual-block convs and the
    /// encoder's feed-forward convs as Winograd transforms
    /// ([`crate::EngineBuilder::cpu_winograd`]; the `avx2` family, and
    /// `avx512` in f32); `false` on a GPU.
    pub fn cpu_winograd(&self) -> bool {
        self.rt().cpu_winograd()
    }

    /// Seconds spent per model stage by all finished sentences so far
    /// (for benchmarks: read before and after a run).
    pub fn stage_times(&self) -> StageTimes {
        self.rt().stage_times()
    }

    /// Permits in total.
    pub fn max_concurrent(&self) -> usize {
        self.shared.admission.total()
    }

    /// Wait for a permit.
    ///
    /// # Errors
    /// Never in practice; the `Result` leaves room for shutdown.
    pub fn acquire_permit(&self) -> Result<Permit> {
        self.acquire(None)
    }

    /// Take a permit if one is free now.
    pub fn try_acquire_permit(&self) -> Option<Permit> {
        self.acquire(Some(Duration::ZERO)).ok()
    }

    /// Wait up to `timeout` for a permit.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none became free in time.
    pub fn acquire_permit_timeout(&self, timeout: Duration) -> Result<Permit> {
        self.acquire(Some(timeout))
    }

    fn acquire(&self, timeout: Option<Duration>) -> Result<Permit> {
        let keep: Arc<dyn std::any::Any + Send + Sync> = self.shared.clone();
        self.shared.admission.acquire(timeout, keep)
    }

    fn check_permit(&self, permit: &Permit) -> Result<()> {
        if self.shared.admission.issued(permit) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "the permit belongs to another engine".into(),
            ))
        }
    }

    /// Speak plain text with the default options. Empty text gives empty audio.
    ///
    /// # Errors
    /// [`Error::UnknownVoice`], [`Error::InvalidArgument`] (text the frontend
    /// rejects, a sentence over the frame cap), an out-of-memory or device
    /// error ([`Error::kind`]).
    pub fn speak(&self, text: &str, voice: Option<&str>, permit: Permit) -> Result<Audio> {
        self.speak_with(text, voice, &SpeakOptions::default(), permit)
    }

    /// Speak with options; returns the whole audio.
    ///
    /// # Errors
    /// As [`Engine::speak`].
    pub fn speak_with(
        &self,
        text: &str,
        voice: Option<&str>,
        options: &SpeakOptions,
        permit: Permit,
    ) -> Result<Audio> {
        self.check_permit(&permit)?;
        let voice = self.voice(voice);
        let mut audio = Audio::empty(self.sample_rate(Some(voice))?);
        self.rt().speak_whole(voice, text, options, &mut audio)?;
        drop(permit);
        Ok(audio)
    }

    /// Speak `text`, delivering the audio to `on_chunk` as it is ready
    /// (the first chunk after about 0.1 s of audio is rendered); return
    /// `ControlFlow::Break(())` to cancel (the call then returns
    /// [`Error::Cancelled`]). The samples are those of [`Engine::speak_with`].
    ///
    /// # Errors
    /// As [`Engine::speak_with`]; [`Error::Cancelled`]; [`Error::Panic`] when
    /// the callback panics.
    pub fn speak_stream(
        &self,
        text: &str,
        voice: Option<&str>,
        options: &SpeakOptions,
        permit: Permit,
        mut on_chunk: impl FnMut(&[AudioSample]) -> ControlFlow<()>,
    ) -> Result<()> {
        self.speak_events(text, voice, options, permit, |ev| match ev {
            SpeechEvent::Audio(chunk) => on_chunk(chunk),
            _ => ControlFlow::Continue(()),
        })
    }

    /// [`Engine::speak_stream`] with every event: the audio chunks, each
    /// input word once it is complete ([`SpeechEvent::Word`], right after
    /// the chunk that ends it), SSML marks when reached, and sentence ends.
    ///
    /// ```no_run
    /// # use voxide::{Engine, SpeakOptions, SpeechEvent};
    /// # use std::ops::ControlFlow;
    /// # let engine = Engine::builder().voice("voices/en_US-joe-medium.onnx").build()?;
    /// let permit = engine.acquire_permit()?;
    /// engine.speak_events("Hello world.", None, &SpeakOptions::default(), permit, |ev| {
    ///     if let SpeechEvent::Word(w) = ev {
    ///         println!("{} at {}..{}", w.text, w.start, w.end);
    ///     }
    ///     ControlFlow::Continue(())
    /// })?;
    /// # Ok::<(), voxide::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Engine::speak_stream`].
    pub fn speak_events(
        &self,
        text: &str,
        voice: Option<&str>,
        options: &SpeakOptions,
        permit: Permit,
        mut on_event: impl FnMut(SpeechEvent<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        self.check_permit(&permit)?;
        // A panic in the caller's callback stops the request and becomes
        // `Error::Panic`; it never unwinds through the engine (whose state
        // stays usable) or, via the C ABI, into C.
        let mut panicked = None;
        let r = self
            .rt()
            .speak_stream(self.voice(voice), text, options, &mut |ev| {
                let ev = match ev {
                    Event::Samples(s) => SpeechEvent::Audio(crate::audio::from_f32(s)),
                    Event::SentenceEnd => SpeechEvent::SentenceEnd,
                    Event::Word(w) => SpeechEvent::Word(w),
                    Event::Mark(m) => SpeechEvent::Mark(m),
                };
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_event(ev))) {
                    Ok(flow) => flow,
                    Err(payload) => {
                        panicked = Some(crate::error::panic_message(payload.as_ref()));
                        // A payload whose destructor panics must not unwind either.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                            drop(payload)
                        }));
                        ControlFlow::Break(())
                    }
                }
            });
        drop(permit);
        match panicked {
            Some(msg) => Err(Error::Panic(format!("the stream callback panicked: {msg}"))),
            None => r,
        }
    }

    /// The id of a speaker of a multi-speaker voice, by name (from the
    /// voice's `speaker_id_map`) or as a number in range.
    ///
    /// # Errors
    /// [`Error::UnknownVoice`]; [`Error::InvalidArgument`] naming the
    /// voice's speakers.
    pub fn speaker_id(&self, voice: Option<&str>, name: &str) -> Result<i64> {
        self.rt().speaker_id(self.voice(voice), name)
    }

    /// Sentences of a request as id sequences (after the text frontend or IPA mapping).
    ///
    /// # Errors
    /// [`Error::UnknownVoice`], [`Error::InvalidArgument`].
    pub fn sentence_ids(
        &self,
        text: &str,
        voice: Option<&str>,
        input: Input,
    ) -> Result<Vec<Vec<i64>>> {
        self.rt().sentence_ids(self.voice(voice), text, input)
    }
}
