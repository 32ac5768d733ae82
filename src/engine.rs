//! The domain layer: [`Engine`], [`EngineBuilder`], [`Permit`]. Admission
//! (a permit per request), the loaded voices, and dispatch of a request to the
//! text frontend and the model. Coordination only: no model math here.

use crate::audio::{Audio, AudioSample, SampleRate};
use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::CudaBackend;
use crate::backend::Precision;
use crate::backend::{Backend, Executor};
use crate::error::{Error, Result};
use crate::model::{
    BatchItem, Noise, StageTimes, SynthOptions, Utterance, Vits, DEFAULT_MAX_FRAMES,
};
use crate::scheduler::{Job, Scheduler, SchedulerOptions};
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
    /// Frames in the first streamed chunk (default 8, about 93 ms of audio; later
    /// chunks grow ×4 up to `chunk_frames`). Smaller means earlier first audio.
    /// Only the request's first sentence starts this small: later sentences
    /// start at `chunk_frames` (their audio follows audio already delivered).
    pub first_chunk_frames: usize,
    /// Frames per streamed chunk after the first ones.
    pub chunk_frames: usize,
    /// Phonemizer for [`Input::Text`]: built-in, or espeak-ng loaded at run time.
    pub phonemizer: crate::text::Phonemizer,
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
            first_chunk_frames: 8,
            chunk_frames: 128,
            phonemizer: crate::text::Phonemizer::BuiltIn,
        }
    }
}

/// Frames per chunk when the whole audio is returned at once (one sentence
/// in flight: larger chunks, a little less halo work).
const WHOLE_CHUNK_FRAMES: usize = 192;
/// The same with sentences in parallel on several CPU threads: each sentence
/// in flight holds decoder scratch in proportion (about 230 KB per frame for
/// Piper medium voices), so smaller chunks keep peak RSS down; the cut ends
/// of a chunk skip their halo work, so they cost about the same.
const WHOLE_CHUNK_FRAMES_PARALLEL: usize = 128;

/// A voice on the device. Host copies of the weights are dropped after upload.
struct LoadedVoice {
    config: VoiceConfig,
    ids: PhonemeIdMap,
    model: Model,
}

/// The device an engine runs on.
enum Dev {
    Cpu(CpuBackend),
    Cuda(Box<CudaBackend>),
}

/// A voice's model, on the engine's device (one per voice, behind an `Arc`:
/// the variants' size difference does not matter).
#[allow(clippy::large_enum_variant)]
enum Model {
    Cpu(Vits<CpuBackend>),
    Cuda(Vits<CudaBackend>),
}

/// The sentence in flight of a request, on whichever device it runs.
#[derive(Default)]
struct UttSlot {
    cpu: Option<Utterance<CpuBackend>>,
    cuda: Option<Utterance<CudaBackend>>,
}

/// A backend the engine can run on: how to find its parts in the enums.
trait OnDevice: Backend + Sized {
    fn model(m: &Model) -> Option<&Vits<Self>>;
    fn utt(slot: &mut UttSlot) -> &mut Option<Utterance<Self>>;
}

impl OnDevice for CpuBackend {
    fn model(m: &Model) -> Option<&Vits<Self>> {
        match m {
            Model::Cpu(v) => Some(v),
            Model::Cuda(_) => None,
        }
    }
    fn utt(slot: &mut UttSlot) -> &mut Option<Utterance<Self>> {
        &mut slot.cpu
    }
}

impl OnDevice for CudaBackend {
    fn model(m: &Model) -> Option<&Vits<Self>> {
        match m {
            Model::Cuda(v) => Some(v),
            Model::Cpu(_) => None,
        }
    }
    fn utt(slot: &mut UttSlot) -> &mut Option<Utterance<Self>> {
        &mut slot.cuda
    }
}

struct Semaphore {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Inner {
    backend: Dev,
    voices: RwLock<BTreeMap<String, Arc<LoadedVoice>>>,
    default_voice: String,
    permits: Semaphore,
    max_concurrent: usize,
    stage_times: Mutex<StageTimes>,
    /// The device's actor when requests go through the scheduler.
    scheduler: Option<Scheduler<SpeakJob>>,
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
    precision: Option<Precision>,
    scheduler: Option<bool>,
    queue_depth: usize,
    max_batch: usize,
    batch_max_wait: Duration,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            voices: Vec::new(),
            max_concurrent: 2,
            device: None,
            threads: 0,
            precision: None,
            scheduler: None,
            queue_depth: 64,
            max_batch: 64,
            batch_max_wait: Duration::ZERO,
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

    /// Conv arithmetic on the CPU (default: `$VOXIDE_PRECISION`, else
    /// [`Precision::Auto`]: [`Precision::Bf16x3`] on CPUs with AMX tiles,
    /// f32-grade and faster, else [`Precision::F32`], the reference).
    /// [`Precision::Bf16`] runs the decoder in bf16: faster only where the
    /// CPU has fast AVX-512 BF16 dot products, lower fidelity (see the
    /// README's performance section).
    pub fn precision(mut self, p: Precision) -> Self {
        self.precision = Some(p);
        self
    }

    /// Route requests through the device's scheduler actor (bounded queue,
    /// slots, per-request streams; see `voxide::scheduler`). Default:
    /// `$VOXIDE_SCHEDULER` (`1`), else off.
    pub fn scheduler(mut self, on: bool) -> Self {
        self.scheduler = Some(on);
        self
    }

    /// Requests that may wait in the scheduler's queue before callers block
    /// (backpressure). Default 64; only used with [`EngineBuilder::scheduler`].
    pub fn queue_depth(mut self, n: usize) -> Self {
        self.queue_depth = n.max(1);
        self
    }

    /// Requests whose chunks the scheduler runs as one batched step at most
    /// (a power of two: 1, 2, 4, … 64). Default 64; only used with
    /// [`EngineBuilder::scheduler`].
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// How long a new request's first batch may wait for others to join it.
    /// Default zero (never wait: a lone request is never held back); only
    /// used with [`EngineBuilder::scheduler`].
    pub fn batch_max_wait(mut self, d: Duration) -> Self {
        self.batch_max_wait = d;
        self
    }

    /// Load the voices and start the device.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a voice; [`Error::Io`] / [`Error::Model`]
    /// for unreadable or invalid voice files; [`Error::Device`] when CUDA is
    /// requested but not usable.
    pub fn build(self) -> Result<Engine> {
        let use_scheduler = match self.scheduler {
            Some(b) => b,
            None => matches!(
                std::env::var("VOXIDE_SCHEDULER").as_deref(),
                Ok("1") | Ok("on") | Ok("true")
            ),
        };
        let device = match self.device {
            Some(d) => d,
            None => match std::env::var("VOXIDE_DEVICE") {
                Ok(s) => Device::parse(&s)?,
                Err(_) => Device::Auto,
            },
        };
        let precision = match self.precision {
            Some(p) => p,
            None => match std::env::var("VOXIDE_PRECISION") {
                Ok(s) if !s.trim().is_empty() => Precision::parse(&s)
                    .map_err(|e| Error::InvalidArgument(format!("VOXIDE_PRECISION: {e}")))?,
                _ => Precision::Auto,
            },
        };
        let backend = match device {
            Device::Cpu => Dev::Cpu(CpuBackend::with_precision(self.threads, precision)?),
            Device::Cuda(n) => match CudaBackend::new(n, precision) {
                Ok(be) => Dev::Cuda(Box::new(be)),
                // Say exactly what is missing: the driver, the device, NVRTC, …
                Err(crate::error::BackendError::Device(why)) => {
                    return Err(Error::Device(format!("cuda:{n} requested, but {why}")))
                }
                Err(e) => return Err(Error::Device(format!("cuda:{n} requested, but {e}"))),
            },
            // CUDA only when a driver and a GPU answer and the backend starts.
            Device::Auto => {
                match crate::backend::cuda::probe(0).and_then(|_| CudaBackend::new(0, precision)) {
                    Ok(be) => Dev::Cuda(Box::new(be)),
                    Err(_) => Dev::Cpu(CpuBackend::with_precision(self.threads, precision)?),
                }
            }
        };
        let sched_name = match &backend {
            Dev::Cpu(_) => "cpu".to_string(),
            Dev::Cuda(be) => be.name(),
        };
        let scheduler = if use_scheduler {
            Some(Scheduler::start(
                &sched_name,
                SchedulerOptions {
                    queue_depth: self.queue_depth,
                    max_active: self.max_concurrent.max(1),
                    max_batch: self.max_batch,
                    max_wait: self.batch_max_wait,
                    ..SchedulerOptions::default()
                },
            )?)
        } else {
            None
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
            scheduler,
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
        // On the CPU, inside its pool: reading and converting the weights
        // then use every thread.
        let voice = match &self.inner.backend {
            Dev::Cpu(be) => be.install(|| Voice::load(path, config))?,
            Dev::Cuda(_) => Voice::load(path, config)?,
        };
        let model = match &self.inner.backend {
            Dev::Cpu(be) => Model::Cpu(be.install(|| Vits::new(be, &voice.weights))?),
            Dev::Cuda(be) => {
                let be = be.as_ref();
                Model::Cuda(be.install(|| Vits::new(be, &voice.weights))?)
            }
        };
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
        match &self.inner.backend {
            Dev::Cpu(be) => be.name(),
            Dev::Cuda(be) => be.name(),
        }
    }

    /// Device memory `(used, total)` in bytes on a GPU; `None` on the CPU.
    pub fn device_memory(&self) -> Option<(usize, usize)> {
        match &self.inner.backend {
            Dev::Cpu(_) => None,
            Dev::Cuda(be) => be.memory().map(|(free, total)| (total - free, total)),
        }
    }

    /// CPU threads used by the engine.
    pub fn threads(&self) -> usize {
        match &self.inner.backend {
            Dev::Cpu(be) => be.threads(),
            // One host thread drives the GPU.
            Dev::Cuda(_) => 1,
        }
    }

    /// The conv arithmetic in use (`f32` unless bf16 was asked for).
    pub fn precision(&self) -> Precision {
        match &self.inner.backend {
            Dev::Cpu(be) => be.precision(),
            // Reduced precision on the GPU: TF32 tensor cores for the decoder.
            Dev::Cuda(be) if be.reduced_precision() => Precision::Bf16,
            Dev::Cuda(_) => Precision::F32,
        }
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
        // Nobody waits for a first chunk here: start with full-size chunks,
        // which spends less on small-chunk halos (same samples: chunked ==
        // whole).
        let chunk = match &self.inner.backend {
            Dev::Cpu(be) if be.threads() > 1 => WHOLE_CHUNK_FRAMES_PARALLEL,
            _ => WHOLE_CHUNK_FRAMES,
        };
        let options = &SpeakOptions {
            first_chunk_frames: chunk,
            chunk_frames: chunk,
            ..options.clone()
        };
        let job = Speech::new(Arc::clone(&v), text, options)?;
        if let (None, Dev::Cpu(be)) = (&self.inner.scheduler, &self.inner.backend) {
            if be.threads() > 1 && job.sentences.len() > 1 {
                self.whole_in_parallel(be, &job, &mut audio)?;
                drop(permit);
                return Ok(audio);
            }
        }
        self.run_speech(job, |ev| {
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
        sentence_ids(&v, text, input, crate::text::Phonemizer::BuiltIn)
    }

    fn run(
        &self,
        v: &Arc<LoadedVoice>,
        text: &str,
        o: &SpeakOptions,
        sink: impl FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        self.run_speech(Speech::new(Arc::clone(v), text, o)?, sink)
    }

    /// Whole audio of a request of several sentences on a multi-threaded CPU
    /// backend: the threads take sentences in turn (each sentence's ops also
    /// split over idle threads), and finished sentences join the audio in
    /// order. The samples are those of the sequential path: every sentence
    /// has its own seed and the kernels give the same sums on any thread count.
    fn whole_in_parallel(&self, be: &CpuBackend, job: &Speech, audio: &mut Audio) -> Result<()> {
        let model = CpuBackend::model(&job.voice.model)
            .ok_or_else(|| Error::Device("the voice is not loaded on this device".into()))?;
        let n = job.sentences.len();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = Mutex::new(Joined {
            pending: BTreeMap::new(),
            due: 0,
            error: None,
            audio,
        });
        let worker = || loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= n {
                return;
            }
            let mut out = Vec::new();
            let r = job.sentence_whole(be, model, i, &mut out);
            let mut d = done.lock();
            match r {
                Ok(times) => {
                    *self.inner.stage_times.lock() += times;
                    d.pending.insert(i, out);
                    // Join finished sentences in order as soon as possible:
                    // memory stays about one copy of the audio.
                    let d = &mut *d;
                    while let Some(s) = d.pending.remove(&d.due) {
                        d.audio.push_sentence(crate::audio::from_f32(&s));
                        d.due += 1;
                    }
                }
                Err(e) => {
                    if d.error.is_none() {
                        d.error = Some(e);
                    }
                    // Stop handing out sentences.
                    next.store(n, std::sync::atomic::Ordering::Relaxed);
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
        match done.into_inner().error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn run_speech(
        &self,
        mut job: Speech,
        mut sink: impl FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        if let Some(sched) = &self.inner.scheduler {
            let stream = sched.submit(SpeakJob {
                inner: Arc::clone(&self.inner),
                speech: job,
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
        let mut buf = Vec::new();
        loop {
            let ev = match job.step(&self.inner, &mut buf)? {
                Step::Samples => Event::Samples(&buf),
                Step::SentenceEnd => Event::SentenceEnd,
                Step::Done => return Ok(()),
            };
            if sink(ev).is_break() {
                return Err(Error::Cancelled);
            }
        }
    }
}

/// Sentences finished out of order, waiting for their turn to join the audio.
struct Joined<'a> {
    /// Finished sentences by index, waiting for the ones before them.
    pending: BTreeMap<usize, Vec<f32>>,
    /// The next sentence the audio takes.
    due: usize,
    /// The first failure (the request then fails).
    error: Option<Error>,
    audio: &'a mut Audio,
}

/// What a scheduled request streams back.
enum Out {
    Samples(Vec<f32>),
    SentenceEnd,
}

/// A speak request as the scheduler's actor advances it, one chunk per step.
struct SpeakJob {
    inner: Arc<Inner>,
    speech: Speech,
}

impl Job for SpeakJob {
    type Item = Out;

    fn step(&mut self) -> Result<Option<Out>> {
        let mut buf = Vec::new();
        Ok(match self.speech.step(&self.inner, &mut buf)? {
            Step::Samples => Some(Out::Samples(buf)),
            Step::SentenceEnd => Some(Out::SentenceEnd),
            Step::Done => None,
        })
    }

    /// Encoder + duration of new sentences run per request; the flow +
    /// decoder chunks of all requests on the same voice run as one
    /// [`Vits::render_batch`] (the CPU needs no padding to the bucket).
    fn step_batch(jobs: &mut [&mut Self], _bucket: usize) -> Vec<Result<Option<Out>>> {
        // One scheduler per engine: every job runs on the same device.
        let Some(inner) = jobs.first().map(|j| Arc::clone(&j.inner)) else {
            return Vec::new();
        };
        match &inner.backend {
            Dev::Cpu(be) => batch_on(be, jobs),
            Dev::Cuda(be) => batch_on(be.as_ref(), jobs),
        }
    }
}

/// [`SpeakJob::step_batch`] on one backend.
fn batch_on<B: OnDevice>(be: &B, jobs: &mut [&mut SpeakJob]) -> Vec<Result<Option<Out>>> {
    let n = jobs.len();
    let mut res: Vec<Option<Result<Option<Out>>>> = (0..n).map(|_| None).collect();
    let mut want: Vec<Option<(usize, usize)>> = vec![None; n];
    for (i, j) in jobs.iter_mut().enumerate() {
        let inner = Arc::clone(&j.inner);
        match j.speech.next_on(be, &inner) {
            Ok(Next::Render(a, b)) => want[i] = Some((a, b)),
            Ok(Next::Ready(step)) => res[i] = Some(Ok(step.into_out(Vec::new()))),
            Err(e) => res[i] = Some(Err(e)),
        }
    }
    let mut bufs: Vec<Vec<f32>> = vec![Vec::new(); n];
    // One batched render per voice among the requests with a chunk to render.
    while let Some(head) = (0..n).find(|&i| want[i].is_some() && res[i].is_none()) {
        let voice = Arc::clone(&jobs[head].speech.voice);
        let members: Vec<usize> = (0..n)
            .filter(|&i| {
                want[i].is_some() && res[i].is_none() && Arc::ptr_eq(&jobs[i].speech.voice, &voice)
            })
            .collect();
        let Some(model) = B::model(&voice.model) else {
            for &i in &members {
                res[i] = Some(Err(Error::Device(
                    "the voice is not loaded on this device".into(),
                )));
            }
            continue;
        };
        let mut items: Vec<BatchItem<'_, B>> = Vec::with_capacity(members.len());
        let mut rendered = Vec::with_capacity(members.len());
        for (i, (j, buf)) in jobs.iter_mut().zip(bufs.iter_mut()).enumerate() {
            let (Some((a, b)), true) = (want[i], members.contains(&i)) else {
                continue;
            };
            if let Some(u) = B::utt(&mut j.speech.utt).as_mut() {
                items.push(BatchItem {
                    utt: u,
                    a,
                    b,
                    out: buf,
                });
                rendered.push((i, b));
            }
        }
        let r = be.install(|| model.render_batch(be, &mut items));
        drop(items);
        for &i in &members {
            res[i] = Some(match &r {
                Err(e) => Err(share_error(e)),
                Ok(()) => match rendered.iter().find(|x| x.0 == i) {
                    Some(&(_, b)) => {
                        jobs[i].speech.rendered(b);
                        Ok(Some(Out::Samples(std::mem::take(&mut bufs[i]))))
                    }
                    None => Err(Error::Device(
                        "a request in a batch had no sentence to render".into(),
                    )),
                },
            });
        }
    }
    res.into_iter().map(|r| r.unwrap_or(Ok(None))).collect()
}

/// The same failure for every request of a failed batch.
fn share_error(e: &Error) -> Error {
    match e {
        Error::OutOfMemory(m) => Error::OutOfMemory(m.clone()),
        Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
        Error::Device(m) => Error::Device(m.clone()),
        other => Error::Device(format!("a batched render failed: {other}")),
    }
}

impl Step {
    fn into_out(self, buf: Vec<f32>) -> Option<Out> {
        match self {
            Step::Samples => Some(Out::Samples(buf)),
            Step::SentenceEnd => Some(Out::SentenceEnd),
            Step::Done => None,
        }
    }
}

/// What a request does next: render output frames `a..b` of its current
/// sentence, or report a step that needs no rendering.
enum Next {
    Render(usize, usize),
    Ready(Step),
}

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

/// A request in flight: its sentences and where it stands, run one chunk per
/// step. The direct path and the scheduler's actor share it, so both give the
/// same samples.
pub(crate) struct Speech {
    voice: Arc<LoadedVoice>,
    sentences: Vec<Vec<i64>>,
    scales: Scales,
    seed: u64,
    max_frames: usize,
    first: usize,
    chunk: usize,
    sentence: usize,
    utt: UttSlot,
    at: usize,
    size: usize,
}

impl Speech {
    fn new(v: Arc<LoadedVoice>, text: &str, o: &SpeakOptions) -> Result<Speech> {
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
            utt: UttSlot::default(),
            at: 0,
            size: first,
        })
    }

    /// Sentence `i` whole into `out`, in the chunks stepping it would use
    /// (so the same samples); its stage times.
    fn sentence_whole<B: OnDevice>(
        &self,
        be: &B,
        model: &Vits<B>,
        i: usize,
        out: &mut Vec<f32>,
    ) -> Result<StageTimes> {
        let opts = SynthOptions {
            scales: self.scales,
            noise: Noise::Seeded(self.seed.wrapping_add(i as u64)),
            max_frames: self.max_frames,
        };
        let mut u = model.prepare(be, &self.sentences[i], &opts)?;
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

    fn step(&mut self, inner: &Inner, buf: &mut Vec<f32>) -> Result<Step> {
        match &inner.backend {
            Dev::Cpu(be) => self.step_on(be, inner, buf),
            Dev::Cuda(be) => self.step_on(be.as_ref(), inner, buf),
        }
    }

    fn step_on<B: OnDevice>(&mut self, be: &B, inner: &Inner, buf: &mut Vec<f32>) -> Result<Step> {
        let (a, b) = match self.next_on(be, inner)? {
            Next::Ready(step) => return Ok(step),
            Next::Render(a, b) => (a, b),
        };
        let v = Arc::clone(&self.voice);
        let model = B::model(&v.model)
            .ok_or_else(|| Error::Device("the voice is not loaded on this device".into()))?;
        let u = B::utt(&mut self.utt)
            .as_mut()
            .ok_or_else(|| Error::Device("no sentence in flight to render".into()))?;
        buf.clear();
        be.install(|| model.render(be, u, a, b, buf))?;
        self.rendered(b);
        Ok(Step::Samples)
    }

    /// Output frames `a..b` were rendered: move on, the next chunk larger.
    fn rendered(&mut self, b: usize) {
        self.at = b;
        self.size = (self.size * 4).min(self.chunk);
    }

    /// Prepare the next sentence if needed (encoder + duration), and say what
    /// to render next, or the step that needs no rendering.
    fn next_on<B: OnDevice>(&mut self, be: &B, inner: &Inner) -> Result<Next> {
        let v = Arc::clone(&self.voice);
        let model = B::model(&v.model)
            .ok_or_else(|| Error::Device("the voice is not loaded on this device".into()))?;
        if self.sentence >= self.sentences.len() {
            return Ok(Next::Ready(Step::Done));
        }
        let slot = B::utt(&mut self.utt);
        let u = match slot {
            Some(u) => u,
            None => {
                let opts = SynthOptions {
                    scales: self.scales,
                    noise: Noise::Seeded(self.seed.wrapping_add(self.sentence as u64)),
                    max_frames: self.max_frames,
                };
                let ids = &self.sentences[self.sentence];
                // Small first chunks only where the listener is waiting: at
                // the start of the request. Later sentences follow audio
                // that is already ahead of playback, and larger chunks cost
                // less halo (the samples are the same either way).
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
                let u = be.install(|| model.prepare_first(be, ids, &opts, soon))?;
                self.at = 0;
                slot.insert(u)
            }
        };
        if self.at > 0 && !u.durations_complete() {
            be.install(|| model.finish(be, u))?;
        }
        let f = u.frames();
        if self.at >= f {
            *inner.stage_times.lock() += u.times;
            *slot = None;
            self.sentence += 1;
            return Ok(Next::Ready(Step::SentenceEnd));
        }
        Ok(Next::Render(self.at, (self.at + self.size).min(f)))
    }
}

enum Event<'a> {
    Samples(&'a [f32]),
    SentenceEnd,
}

fn sentence_ids(
    v: &LoadedVoice,
    text: &str,
    input: Input,
    phonemizer: crate::text::Phonemizer,
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
                crate::text::phonemize_with(text, phonemizer, v.config.espeak_voice.as_deref())
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            Ok(sentences.iter().map(|s| ids.sentence_ids(s).ids).collect())
        }
    }
}
