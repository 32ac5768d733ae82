//! [`EngineBuilder`]: the engine's settings (explicit, else from the
//! environment through [`Settings`], else defaults), and `build`, the one
//! place that picks the backend.

use super::handle::Engine;
use super::options::Device;
use super::runtime::{Runtime, Serve};
use super::settings::Settings;
use crate::backend::cpu::{CpuBackend, Isa};
use crate::backend::cuda::CudaBackend;
use crate::backend::Precision;
use crate::error::{Error, Result};
use crate::scheduler::SchedulerOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Builds an [`Engine`]. Every setting left unset takes its environment
/// variable's value ([`Settings`]), else its default.
#[derive(Clone, Debug)]
pub struct EngineBuilder {
    voices: Vec<(Option<String>, PathBuf, Option<PathBuf>)>,
    max_concurrent: usize,
    device: Option<Device>,
    threads: usize,
    precision: Option<Precision>,
    cpu_isa: Option<Isa>,
    cpu_winograd: Option<bool>,
    cuda_graphs: Option<bool>,
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
            cpu_isa: None,
            cpu_winograd: None,
            cuda_graphs: None,
            scheduler: None,
            queue_depth: 64,
            max_batch: 64,
            batch_max_wait: Duration::ZERO,
        }
    }
}

impl Engine {
    /// Start building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
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

    /// Compute device (default: `$VOXIDE_DEVICE`, else [`Device::Auto`]).
    pub fn device(mut self, d: Device) -> Self {
        self.device = Some(d);
        self
    }

    /// CPU threads (0: all cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Arithmetic (default: `$VOXIDE_PRECISION`, else [`Precision::Auto`]:
    /// [`Precision::Bf16x3`] on CPUs with AMX tiles, f32-grade and faster,
    /// else [`Precision::F32`], the reference). [`Precision::Bf16`] runs the
    /// decoder in bf16 on the CPU (TF32 on CUDA): faster only where the CPU
    /// has fast AVX-512 BF16 dot products, lower fidelity (see the README's
    /// performance section).
    pub fn precision(mut self, p: Precision) -> Self {
        self.precision = Some(p);
        self
    }

    /// The CPU kernel family (default: `$VOXIDE_CPU_ISA`, else [`Isa::Auto`],
    /// the best this CPU runs).
    pub fn cpu_isa(mut self, isa: Isa) -> Self {
        self.cpu_isa = Some(isa);
        self
    }

    /// Whether the `avx2` CPU kernels, and the `avx512` ones in f32, run the
    /// decoder's residual-block convs and the encoder's feed-forward convs
    /// as Winograd transforms (default: `$VOXIDE_CPU_WINOGRAD`, else on):
    /// fewer multiplies, f32 parity kept, chunks still bit-identical to
    /// whole sentences ([`crate::backend::ConvTiling`]). Off runs them as
    /// direct convs (as `portable`, bf16 and bf16x3 always do). See
    /// `docs/cpu.md`.
    pub fn cpu_winograd(mut self, on: bool) -> Self {
        self.cpu_winograd = Some(on);
        self
    }

    /// Record and replay CUDA graphs of the flow and decoder (default:
    /// `$VOXIDE_CUDA_GRAPHS`, else on); off runs every launch eagerly, for
    /// debugging.
    pub fn cuda_graphs(mut self, on: bool) -> Self {
        self.cuda_graphs = Some(on);
        self
    }

    /// Route requests through the device's scheduler actor (bounded queue,
    /// slots, per-request streams, batching; see `docs/scheduler.md`).
    /// Default: `$VOXIDE_SCHEDULER`, else off.
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
    /// [`Error::InvalidArgument`] without a voice or for a bad environment
    /// variable ([`Settings`]); [`Error::Io`] / [`Error::Model`] for
    /// unreadable or invalid voice files; [`Error::Device`] when CUDA is
    /// requested but not usable, or the CPU lacks a requested kernel family
    /// or precision.
    pub fn build(self) -> Result<Engine> {
        let env = Settings::from_env()?;
        let first = self
            .voices
            .first()
            .ok_or_else(|| Error::InvalidArgument("no voice given to the engine".into()))?;
        let default_voice = first.0.clone().unwrap_or_else(|| voice_name(&first.1));
        let scheduler =
            self.scheduler
                .or(env.scheduler)
                .unwrap_or(false)
                .then(|| SchedulerOptions {
                    queue_depth: self.queue_depth,
                    max_active: self.max_concurrent.max(1),
                    max_batch: self.max_batch,
                    max_wait: self.batch_max_wait,
                    ..SchedulerOptions::default()
                });
        let precision = self.precision.or(env.precision).unwrap_or_default();
        let graphs = self.cuda_graphs.or(env.cuda_graphs).unwrap_or(true);
        let cpu = || -> Result<Box<dyn Serve>> {
            let isa = self.cpu_isa.or(env.cpu_isa).unwrap_or_default();
            let winograd = self.cpu_winograd.or(env.cpu_winograd).unwrap_or(true);
            let be =
                CpuBackend::with_options(self.threads, precision, isa)?.with_winograd(winograd);
            Ok(Box::new(Runtime::new(be, scheduler)?))
        };
        let cuda = |n: usize| -> std::result::Result<CudaBackend, String> {
            CudaBackend::with_options(n, precision, graphs).map_err(|e| match e {
                crate::error::BackendError::Device(why) => why,
                e => e.to_string(),
            })
        };
        // The single dispatch point: the runtime for the chosen backend.
        let runtime: Box<dyn Serve> = match self.device.or(env.device).unwrap_or_default() {
            Device::Cpu => cpu()?,
            // Say exactly what is missing: the driver, the device, NVRTC, …
            Device::Cuda(n) => match cuda(n) {
                Ok(be) => Box::new(Runtime::new(be, scheduler)?),
                Err(why) => return Err(Error::Device(format!("cuda:{n} requested, but {why}"))),
            },
            // CUDA only when a driver and a GPU answer, the backend starts and
            // its self-check (a few ops against their CPU twins) passes; the
            // reason for the choice: `backend::cuda::auto_choice`, `VOXIDE_LOG=1`.
            Device::Auto => match crate::backend::cuda::probe(0)
                .map_err(|e| e.to_string())
                .and_then(|_| cuda(0))
                .and_then(|be| be.self_check().map(|()| be))
            {
                Ok(be) => {
                    crate::backend::cuda::note_auto_choice(format!(
                        "{} (driver, backend start and self-check passed)",
                        crate::backend::Executor::name(&be)
                    ));
                    Box::new(Runtime::new(be, scheduler)?)
                }
                Err(why) => {
                    crate::backend::cuda::note_auto_choice(format!("cpu: CUDA not used: {why}"));
                    cpu()?
                }
            },
        };
        let engine = Engine::new(runtime, self.max_concurrent, default_voice);
        for (name, path, config) in &self.voices {
            let name = name.clone().unwrap_or_else(|| voice_name(path));
            engine.rt().load_voice(&name, path, config.as_deref())?;
        }
        Ok(engine)
    }
}
