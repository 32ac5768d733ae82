//! The domain layer: [`Engine`], [`EngineBuilder`], [`Permit`]. Admission
//! (a permit per request), the loaded voices, and dispatch of a request to the
//! text frontend and the model. Coordination only: no model math here.

use crate::audio::{Audio, AudioSample, SampleRate};
use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{Noise, StageTimes, SynthOptions, Utterance, Vits, DEFAULT_MAX_FRAMES};
use crate::voice::{phoneme_sentences, PhonemeIdMap, Scales, Voice, VoiceConfig};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which compute device runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA when a usable GPU and driver are present, else CPU.
    #[default]
    Auto,
    /// The CPU backend.
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
}

impl Device {
    /// Parse `auto`, `cpu`, `cuda` or `cuda:N`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for anything else.
    pub fn parse(s: &str) -> Result<Device> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "unknown device {s:?} (expected auto, cpu, cuda or cuda:N)"
                    ))
                }),
        }
    }
}

/// What the `text` of a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Input {
    /// Plain text, phonemized by the text frontend.
    #[default]
    Text,
    /// espeak-style IPA, one sentence per line.
    Phonemes,
    /// Comma-separated phoneme ids of one utterance.
    Ids,
}

/// Per-request options. `None` scales take the voice's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeakOptions {
    /// Prior noise scale.
    pub noise_scale: Option<f32>,
    /// Duration multiplier (larger is slower).
    pub length_scale: Option<f32>,
    /// Duration noise scale.
    pub noise_w: Option<f32>,
    /// Noise seed; the same input and options give the same samples.
    pub seed: u64,
    /// Speaker id for multi-speaker voices.
    pub speaker: Option<i64>,
    /// Kind of input.
    pub input: Input,
    /// Cap on frames per sentence.
    pub max_frames: usize,
    /// Frames in the first streamed chunk (later chunks grow ×4 up to `chunk_frames`).
    pub first_chunk_frames: usize,
    /// Frames per streamed chunk after the first ones.
    pub chunk_frames: usize,
}

impl Default for SpeakOptions {
    fn default() -> Self {
        SpeakOptions {
            noise_scale: None,
            length_scale: None,
            noise_w: None,
            seed: 0,
            speaker: None,
            input: Input::Text,
            max_frames: DEFAULT_MAX_FRAMES,
            first_chunk_frames: 16,
            chunk_frames: 256,
        }
    }
}

/// A voice on the device. Host copies of the weights are dropped after upload.
struct LoadedVoice {
    config: VoiceConfig,
    ids: PhonemeIdMap,
    model: Vits<CpuBackend>,
}

struct Semaphore {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Inner {
    backend: CpuBackend,
    voices: RwLock<BTreeMap<String, Arc<LoadedVoice>>>,
    default_voice: String,
    permits: Semaphore,
    max_concurrent: usize,
    stage_times: Mutex<StageTimes>,
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
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("device", &self.device_name())
            .field("voices", &self.voice_names())
            .finish()
    }
}

/// The right to run one request. Obtained from [`Engine::acquire_permit`],
/// moved into `speak`; dropping it unused gives it back. Keeps the engine alive.
#[must_use = "a permit is needed to speak; dropping it gives it back"]
pub struct Permit {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Permit")
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut free = self.inner.permits.free.lock();
        *free += 1;
        self.inner.permits.cv.notify_one();
    }
}

/// Builds an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineBuilder {
    voices: Vec<(Option<String>, PathBuf, Option<PathBuf>)>,
    max_concurrent: usize,
    device: Option<Device>,
    threads: usize,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            voices: Vec::new(),
            max_concurrent: 2,
            device: None,
            threads: 0,
        }
    }
}

/// Default name of a voice: its file name without `.onnx`.
fn voice_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".onnx").unwrap_or(&name).to_string()
}

impl EngineBuilder {
    /// Add a voice (`NAME.onnx`, config `NAME.onnx.json`); the first is the default.
    pub fn voice(mut self, path: impl Into<PathBuf>) -> Self {
        self.voices.push((None, path.into(), None));
        self
    }

    /// Add a voice under an explicit name.
    pub fn named_voice(mut self, name: &str, path: impl Into<PathBuf>) -> Self {
        self.voices
            .push((Some(name.to_string()), path.into(), None));
        self
    }

    /// Config file of the most recently added voice (default: voice path + `.json`).
    pub fn config(mut self, path: impl Into<PathBuf>) -> Self {
        if let Some(v) = self.voices.last_mut() {
            v.2 = Some(path.into());
        }
        self
    }

    /// Requests that may run at once (permits); at least 1.
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    /// Compute device (default: `$VOXIDE_DEVICE`, else `Auto`).
    pub fn device(mut self, d: Device) -> Self {
        self.device = Some(d);
        self
    }

    /// CPU threads (0: all cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Load the voices and start the device.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a voice; [`Error::Io`] / [`Error::Model`]
    /// for unreadable or invalid voice files; [`Error::Device`] when CUDA is
    /// requested but not usable.
    pub fn build(self) -> Result<Engine> {
        let device = match self.device {
            Some(d) => d,
            None => match std::env::var("VOXIDE_DEVICE") {
                Ok(s) => Device::parse(&s)?,
                Err(_) => Device::Auto,
            },
        };
        let backend = match device {
            Device::Auto | Device::Cpu => CpuBackend::new(self.threads)?,
            Device::Cuda(n) => {
                return Err(Error::Device(format!(
                    "cuda:{n} requested, but this build of voxide has no usable CUDA backend"
                )))
            }
        };
        let first = self
            .voices
            .first()
            .ok_or_else(|| Error::InvalidArgument("no voice given to the engine".into()))?;
        let default_voice = first.0.clone().unwrap_or_else(|| voice_name(&first.1));
        let inner = Arc::new(Inner {
            backend,
            voices: RwLock::new(BTreeMap::new()),
            default_voice,
            permits: Semaphore {
                free: Mutex::new(self.max_concurrent),
                cv: Condvar::new(),
            },
            max_concurrent: self.max_concurrent,
            stage_times: Mutex::new(StageTimes::default()),
        });
        let engine = Engine { inner };
        for (name, path, config) in &self.voices {
            let name = name.clone().unwrap_or_else(|| voice_name(path));
            engine.load_voice(&name, path, config.as_deref())?;
        }
        Ok(engine)
    }
}

impl Engine {
    /// Start building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Load another voice under `name` (replacing one of the same name).
    ///
    /// # Errors
    /// As [`EngineBuilder::build`] for the voice files.
    pub fn add_voice(&self, name: &str, path: impl AsRef<Path>) -> Result<()> {
        if name.is_empty() {
            return Err(Error::InvalidArgument("voice name is empty".into()));
        }
        self.load_voice(name, path.as_ref(), None)
    }

    fn load_voice(&self, name: &str, path: &Path, config: Option<&Path>) -> Result<()> {
        let voice = Voice::load(path, config)?;
        let be = &self.inner.backend;
        let model = be.install(|| Vits::new(be, &voice.weights))?;
        let Voice { config, ids, .. } = voice;
        self.inner.voices.write().insert(
            name.to_string(),
            Arc::new(LoadedVoice { config, ids, model }),
        );
        Ok(())
    }

    fn get_voice(&self, name: Option<&str>) -> Result<Arc<LoadedVoice>> {
        let name = name.unwrap_or(&self.inner.default_voice);
        self.inner
            .voices
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownVoice(name.to_string()))
    }

    /// Names of the loaded voices.
    pub fn voice_names(&self) -> Vec<String> {
        self.inner.voices.read().keys().cloned().collect()
    }

    /// The default voice's name.
    pub fn default_voice(&self) -> &str {
        &self.inner.default_voice
    }

    /// Sample rate of a voice (`None`: the default).
    ///
    /// # Errors
    /// [`Error::UnknownVoice`].
    pub fn sample_rate(&self, voice: Option<&str>) -> Result<SampleRate> {
        Ok(SampleRate(self.get_voice(voice)?.config.sample_rate))
    }

    /// The device in use: `cpu` or `cuda:N (name)`.
    pub fn device_name(&self) -> String {
        self.inner.backend.name()
    }

    /// CPU threads used by the engine.
    pub fn threads(&self) -> usize {
        self.inner.backend.threads()
    }

    /// Seconds spent per model stage by all finished sentences so far
    /// (for benchmarks: read before and after a run).
    pub fn stage_times(&self) -> StageTimes {
        *self.inner.stage_times.lock()
    }

    /// Permits in total.
    pub fn max_concurrent(&self) -> usize {
        self.inner.max_concurrent
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
        let sem = &self.inner.permits;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut free = sem.free.lock();
        while *free == 0 {
            match deadline {
                None => sem.cv.wait(&mut free),
                Some(d) => {
                    if Instant::now() >= d
                        || sem.cv.wait_until(&mut free, d).timed_out() && *free == 0
                    {
                        return Err(Error::Timeout);
                    }
                }
            }
        }
        *free -= 1;
        Ok(Permit {
            inner: Arc::clone(&self.inner),
        })
    }

    fn check_permit(&self, permit: &Permit) -> Result<()> {
        if Arc::ptr_eq(&permit.inner, &self.inner) {
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
    /// rejects, a sentence over the frame cap), [`Error::OutOfMemory`].
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
        let v = self.get_voice(voice)?;
        let mut audio = Audio::empty(SampleRate(v.config.sample_rate));
        let mut sentence = Vec::new();
        self.run(&v, text, options, |ev| {
            match ev {
                Event::Samples(s) => sentence.extend_from_slice(s),
                Event::SentenceEnd => {
                    audio.push_sentence(crate::audio::from_f32(&sentence));
                    sentence.clear();
                }
            }
            ControlFlow::Continue(())
        })?;
        drop(permit);
        Ok(audio)
    }

    /// Speak and deliver audio in chunks as soon as each is ready. `on_chunk`
    /// returns `ControlFlow::Break(())` to cancel (the call then returns
    /// [`Error::Cancelled`]). Chunks concatenated equal [`Engine::speak_with`]'s samples.
    ///
    /// A panic inside `on_chunk` is caught: the request stops, its permit is
    /// given back and the call returns [`Error::Panic`]; the engine stays usable.
    ///
    /// # Errors
    /// As [`Engine::speak`], plus [`Error::Cancelled`], and [`Error::Panic`]
    /// when `on_chunk` panicked.
    pub fn speak_stream(
        &self,
        text: &str,
        voice: Option<&str>,
        options: &SpeakOptions,
        permit: Permit,
        mut on_chunk: impl FnMut(&[AudioSample]) -> ControlFlow<()>,
    ) -> Result<()> {
        self.check_permit(&permit)?;
        let v = self.get_voice(voice)?;
        // A panic in the caller's callback stops the request and becomes
        // `Error::Panic`; it never unwinds through the engine (whose state
        // stays usable) or, via the C ABI, into C.
        let mut panicked = None;
        let r = self.run(&v, text, options, |ev| match ev {
            Event::Samples(s) => {
                let chunk = crate::audio::from_f32(s);
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_chunk(chunk))) {
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
            }
            Event::SentenceEnd => ControlFlow::Continue(()),
        });
        drop(permit);
        match panicked {
            Some(msg) => Err(Error::Panic(format!("the stream callback panicked: {msg}"))),
            None => r,
        }
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
        let v = self.get_voice(voice)?;
        sentence_ids(&v.ids, text, input)
    }

    fn run(
        &self,
        v: &LoadedVoice,
        text: &str,
        o: &SpeakOptions,
        mut sink: impl FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
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
        let sentences = sentence_ids(&v.ids, text, o.input)?;
        let be = &self.inner.backend;
        let first = o.first_chunk_frames.max(1);
        let chunk = o.chunk_frames.max(first);
        for (i, ids) in sentences.iter().enumerate() {
            let opts = SynthOptions {
                scales,
                noise: Noise::Seeded(o.seed.wrapping_add(i as u64)),
                max_frames: o.max_frames,
            };
            let mut u: Utterance<CpuBackend> = be.install(|| v.model.prepare(be, ids, &opts))?;
            let f = u.frames();
            let mut a = 0;
            let mut size = first;
            let mut buf = Vec::new();
            while a < f {
                let b = (a + size).min(f);
                buf.clear();
                be.install(|| v.model.render(be, &mut u, a, b, &mut buf))?;
                if sink(Event::Samples(&buf)).is_break() {
                    return Err(Error::Cancelled);
                }
                a = b;
                size = (size * 4).min(chunk);
            }
            *self.inner.stage_times.lock() += u.times;
            if sink(Event::SentenceEnd).is_break() {
                return Err(Error::Cancelled);
            }
        }
        Ok(())
    }
}

enum Event<'a> {
    Samples(&'a [f32]),
    SentenceEnd,
}

fn sentence_ids(ids: &PhonemeIdMap, text: &str, input: Input) -> Result<Vec<Vec<i64>>> {
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
                crate::text::phonemize(text).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            Ok(sentences.iter().map(|s| ids.sentence_ids(s).ids).collect())
        }
    }
}
