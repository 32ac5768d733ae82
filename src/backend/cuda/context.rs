//! [`CudaBackend`]: one CUDA device and one stream, its state, how it starts,
//! how it records faults (a failed CUDA call as a device error, views that do
//! not fit as a shape error), and its [`Executor`] side. It holds the parts
//! of `blas.rs` (cuBLAS), `module.rs` (the kernels) and `graph.rs` (recorded
//! graphs), and the state that `memory.rs` manages (scratch slots, the
//! graveyard); `memory.rs` and the op files build on it.
//!
//! All work of a request runs inside [`Executor::install`], which holds the
//! device lock, so ops are enqueued in order and graph capture sees only its
//! own request's ops. Ops cannot fail in the `Backend` trait (the CPU's never
//! do): a fault is recorded and returned by [`Executor::check`], which the
//! model calls at the end of every stage, so a request fails with the
//! device's message instead of the process aborting.

use super::blas::{self, Blas};
use super::graph::{Capture, Graphs};
use super::module::{arch_for, dev_err, Kernels, CUBLAS_LIB, DRIVER_LIB};
use crate::backend::{shape, Executor, Mat, Precision};
use crate::error::BackendError;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use parking_lot::{Mutex, ReentrantMutex};
use std::collections::HashMap;
use std::sync::Arc;

/// Freed device memory waiting for the device lock (see `Drop for CudaBuf`
/// in `memory.rs`).
pub(super) type Graveyard = Mutex<Vec<CudaSlice<f32>>>;

/// Shared scratch of the backend, grown on demand (never during a recording;
/// see `CudaBackend::scratch` in `memory.rs`).
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) slots: HashMap<Slot, CudaSlice<u8>>,
    /// Bumped whenever a slot that recordings use (the GEMM scratch) is
    /// reallocated: graphs of older generations are invalid.
    pub(super) generation: u64,
}

/// What a scratch buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Slot {
    /// im2col columns of a conv or transposed conv.
    Cols,
    /// The stacked phases of a transposed conv.
    Phases,
    /// One attention head's logits.
    Logits,
    /// A strided view on its way to or from the host.
    Staging,
    /// Token ids of `embed`.
    Ids,
    /// Frame owners of `expand_prior`.
    Owner,
    /// Noise of `expand_prior`.
    Noise,
}

/// A CUDA device running the model.
pub struct CudaBackend {
    ordinal: usize,
    name: String,
    pub(super) ctx: Arc<CudaContext>,
    pub(super) stream: Arc<CudaStream>,
    blas: Mutex<Blas>,
    pub(super) graveyard: Arc<Graveyard>,
    pub(super) k: Kernels,
    pub(super) scratch: Mutex<Scratch>,
    graphs: Option<Graphs>,
    lock: ReentrantMutex<()>,
    /// The first fault since the last `check`.
    error: Mutex<Option<BackendError>>,
    pub(super) capture: Capture,
    pub(super) tf32: bool,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.name())
            .field("graphs", &self.graphs.is_some())
            .field("tf32", &self.tf32)
            .finish()
    }
}

/// Find CUDA device `ordinal`: its name, or why it is not usable (no driver
/// library, no device, driver error).
///
/// # Errors
/// [`BackendError::Device`] naming the cause.
pub fn probe(ordinal: usize) -> Result<String, BackendError> {
    // SAFETY: only tries to dlopen the driver library under its known names.
    let present = std::panic::catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() })
        .unwrap_or(false);
    if !present {
        return Err(BackendError::Device(
            format!("no CUDA driver ({DRIVER_LIB} not found)"),
        ));
    }
    let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
        .map_err(|_| BackendError::Device("the CUDA driver panicked at start".into()))?
        .map_err(|e| BackendError::Device(format!("cuda:{ordinal} is not usable: {e:?}")))?;
    ctx.name().map_err(|e| {
        BackendError::Device(format!(
            "cuda:{ordinal}: cannot read the device name: {e:?}"
        ))
    })
}

impl CudaBackend {
    /// Open device `ordinal` with recorded graphs on:
    /// [`CudaBackend::with_options`]`(ordinal, precision, true)`.
    ///
    /// # Errors
    /// As [`CudaBackend::with_options`].
    pub fn new(ordinal: usize, precision: Precision) -> Result<Self, BackendError> {
        Self::with_options(ordinal, precision, true)
    }

    /// Open device `ordinal`: context, stream, cuBLAS, and the kernels
    /// (compiled with NVRTC for the device's architecture, once per process).
    /// `precision` [`Precision::Bf16`] runs the decoder's convs and transposed
    /// convs on TF32 tensor cores (f32 storage and accumulation); every other
    /// precision ([`Precision::Auto`] included) is f32, and the encoder and
    /// duration predictor always stay f32. `graphs` turns the recording and
    /// replay of the flow and decoder ([`Executor::recorded`]) on or off.
    ///
    /// # Errors
    /// [`BackendError::Device`] naming the step that failed (driver, device,
    /// NVRTC, module load, cuBLAS).
    pub fn with_options(
        ordinal: usize,
        precision: Precision,
        graphs: bool,
    ) -> Result<Self, BackendError> {
        // cudarc panics when a library it loads lazily is missing: never let
        // that reach the host.
        std::panic::catch_unwind(|| Self::open(ordinal, precision, graphs)).unwrap_or_else(|p| {
            Err(BackendError::Device(format!(
                "the CUDA libraries failed at start: {}",
                crate::error::panic_message(p.as_ref())
            )))
        })
    }

    fn open(ordinal: usize, precision: Precision, graphs: bool) -> Result<Self, BackendError> {
        let name = probe(ordinal)?;
        if !blas::available() {
            return Err(BackendError::Device(
                format!("cuBLAS ({CUBLAS_LIB}) not found on the library path"),
            ));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| dev_err("CUDA context", e))?;
        // One stream, used in order: the event bookkeeping for several streams is not needed.
        // SAFETY: every buffer of this backend is used on `stream` only.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| dev_err("CUDA stream", e))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| dev_err("compute capability", e))?;
        let k = Kernels::load(&ctx, arch_for(major, minor))?;
        let blas = Blas::new(&stream)?;
        Ok(CudaBackend {
            ordinal,
            name,
            ctx,
            stream,
            blas: Mutex::new(blas),
            graveyard: Arc::new(Mutex::new(Vec::new())),
            k,
            scratch: Mutex::new(Scratch::default()),
            graphs: graphs.then(Graphs::new),
            lock: ReentrantMutex::new(()),
            error: Mutex::new(None),
            capture: Capture::default(),
            tf32: precision == Precision::Bf16,
        })
    }

    /// Whether recorded graphs are used.
    pub fn graphs_enabled(&self) -> bool {
        self.graphs.is_some()
    }

    /// `(recorded, replayed)` graph counts so far.
    pub fn graph_counts(&self) -> (u64, u64) {
        self.graphs.as_ref().map_or((0, 0), Graphs::counts)
    }

    /// Whether the decoder's GEMMs use TF32 tensor cores.
    pub fn reduced_precision(&self) -> bool {
        self.tf32
    }

    /// Keep the first fault (during a recording, mark the recording broken
    /// instead: the ops then run again eagerly and fault there).
    fn fault(&self, e: impl FnOnce() -> BackendError) {
        if self.capture.active() {
            self.capture.spoil();
        } else {
            let mut err = self.error.lock();
            if err.is_none() {
                *err = Some(e());
            }
        }
    }

    /// The value of a CUDA call, or `None` with its failure kept as a device
    /// error naming `what`.
    pub(super) fn note<T, E: std::fmt::Debug>(&self, what: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.fault(|| BackendError::Device(format!("cuda:{} {what}: {e:?}", self.ordinal)));
                None
            }
        }
    }

    /// Whether every `(buffer length, view)` pair fits (inside its buffer,
    /// sizes within the kernels' `int`) and `rule`, the op's shared shape
    /// rule ([`shape`]), holds. Otherwise the op must do nothing: its fault
    /// is kept as a [`BackendError::Shape`] for [`Executor::check`], worded
    /// as the CPU words it.
    pub(super) fn admit(&self, op: &str, views: &[(usize, Mat)], rule: Result<(), String>) -> bool {
        match shape::views_fit(views)
            .and_then(|()| int_sized(views))
            .and(rule)
        {
            Ok(()) => true,
            Err(e) => {
                self.fault(|| BackendError::Shape(format!("{op}: {e}")));
                false
            }
        }
    }

    /// Free the buffers dropped since the last call (device lock held, no recording).
    fn bury(&self) {
        let dead = std::mem::take(&mut *self.graveyard.lock());
        drop(dead);
    }

    /// [`Blas::gemm`] on the stream; a failure is kept.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gemm(
        &self,
        mnk: (usize, usize, usize),
        a: (u64, usize, bool),
        b: (u64, usize, bool),
        c: (u64, usize),
        alpha: f32,
        beta: f32,
        tf32: bool,
    ) {
        let r = self.blas.lock().gemm(mnk, a, b, c, alpha, beta, tf32);
        self.note("cuBLAS GEMM", r);
    }
}

/// The kernels take rows, columns and strides as `int`.
fn int_sized(views: &[(usize, Mat)]) -> Result<(), String> {
    let small = |v: usize| i32::try_from(v).is_ok();
    match views
        .iter()
        .find(|(_, m)| !small(m.rows()) || !small(m.cols()) || !small(m.ld()))
    {
        Some((_, m)) => Err(format!(
            "view {m:?} too large for the kernels' 32-bit sizes"
        )),
        None => Ok(()),
    }
}

impl Executor for CudaBackend {
    fn name(&self) -> String {
        format!("cuda:{} ({})", self.ordinal, self.name)
    }

    fn precision(&self) -> Precision {
        // Reduced precision on the GPU: TF32 tensor cores for the decoder.
        if self.tf32 {
            Precision::Bf16
        } else {
            Precision::F32
        }
    }

    fn memory(&self) -> Option<(usize, usize)> {
        self.ctx.mem_get_info().ok()
    }

    fn recorded(&self, key: &[u64], f: &mut dyn FnMut()) {
        let Some(graphs) = &self.graphs else {
            f();
            return;
        };
        let _device = self.lock.lock();
        self.bury();
        let generation = || self.scratch.lock().generation;
        let note = |what: &str, e: &dyn std::fmt::Debug| {
            self.note::<(), _>(what, Err(e));
        };
        graphs.run(&self.stream, &self.capture, (&generation, key), f, &note);
    }

    /// The first fault since the last call: [`BackendError::Shape`] for views
    /// an op refused, [`BackendError::Device`] for a failed CUDA call.
    fn check(&self) -> Result<(), BackendError> {
        match self.error.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let outer = !self.lock.is_owned_by_current_thread();
        let _device = self.lock.lock();
        if outer {
            // A new piece of work: failures recorded before it (a buffer's
            // drop, an earlier request that stopped early) are not its own.
            let _ = self.ctx.check_err();
            *self.error.lock() = None;
            self.note("bind context", self.ctx.bind_to_thread());
            self.bury();
        }
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_must_fit_the_kernels_int() {
        assert!(int_sized(&[(100, Mat::new(10, 10))]).is_ok());
        let wide = Mat::strided(0, 1, 1 << 31, 1 << 31).unwrap();
        assert!(int_sized(&[(100, Mat::new(1, 1)), (1 << 32, wide)])
            .unwrap_err()
            .contains("32-bit"));
    }

    /// With a GPU: a refused view is a shape error worded as on the CPU, the
    /// op leaves its output alone, and `check` forgets it once returned.
    #[test]
    fn a_bad_shape_is_a_shape_error_on_the_gpu() {
        use crate::backend::Backend;
        let be = match CudaBackend::new(0, Precision::F32) {
            Ok(be) => be,
            Err(e) => {
                eprintln!("skipped: no usable GPU ({e})");
                return;
            }
        };
        be.install(|| {
            let mut x = be.alloc(6, "x").expect("alloc");
            let mut y = be.alloc(8, "y").expect("alloc");
            be.write(&mut x, Mat::new(2, 3), &[1.0; 6]);
            be.axpy(1.0, &x, Mat::new(2, 3), &mut y, Mat::new(2, 4));
            match be.check() {
                Err(BackendError::Shape(m)) => {
                    assert_eq!(m, "axpy: input 2×3 and output 2×4 differ")
                }
                other => panic!("expected a shape error, got {other:?}"),
            }
            let mut out = [9.0; 8];
            be.read(&y, Mat::new(2, 4), &mut out);
            assert_eq!(out, [0.0; 8], "the refused op wrote nothing");
            be.scale(2.0, &mut x, Mat::new(2, 4));
            assert!(
                matches!(be.check(), Err(BackendError::Shape(m)) if m.starts_with("scale: view"))
            );
            assert!(be.check().is_ok(), "a fault is returned once");
        });
    }
}
