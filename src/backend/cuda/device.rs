//! [`CudaBackend`]: the model's ops on one CUDA device. GEMMs (convs as
//! im2col + GEMM, transposed convs as one stacked-phase GEMM, attention) go to
//! cuBLAS; everything else to the NVRTC-compiled kernels of `kernels/*.cu`.
//! One stream per backend; all work of a request runs inside
//! [`Backend::install`], which holds the device lock, so ops are enqueued in
//! order and graph capture sees only its own request's ops.
//!
//! Ops cannot fail in the `Backend` trait (the CPU's never do): a CUDA error is
//! recorded and returned by [`Backend::check`], which the model calls at the
//! end of every stage, so a request fails with the device's message instead
//! of the process aborting.

use super::graph::{GraphCache, Plan};
use crate::backend::Precision;
use crate::backend::{Backend, Executor, Mat, Out};
use crate::backend::{Conv, ConvTranspose};
use crate::error::BackendError;
use cudarc::cublas::{result as blas, sys as bsys};
use cudarc::driver::{
    result as dres, sys, CudaContext, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr,
    DeviceRepr, LaunchConfig, PushKernelArg,
};
use parking_lot::{Mutex, ReentrantMutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

/// A view as the kernels see it (`struct View` in `common.cuh`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct View {
    off: i64,
    rows: i32,
    cols: i32,
    ld: i32,
}

// SAFETY: a plain `repr(C)` struct of integers, laid out as the C `View`.
unsafe impl DeviceRepr for View {}

/// The kernels' view of `m` (callers checked its sizes with [`CudaBackend::fits`]).
fn view(m: Mat) -> View {
    View {
        off: m.off() as i64,
        rows: m.rows() as i32,
        cols: m.cols() as i32,
        ld: m.ld() as i32,
    }
}

/// Freed device memory waiting for the device lock (see `Drop for CudaBuf`).
type Graveyard = Mutex<Vec<CudaSlice<f32>>>;

/// A device buffer of `f32` and its address.
pub struct CudaBuf {
    mem: Option<CudaSlice<f32>>,
    ptr: u64,
    len: usize,
    graveyard: Weak<Graveyard>,
}

impl Drop for CudaBuf {
    /// A buffer may be dropped on any thread (an utterance ending, a voice
    /// replaced) while another thread records a graph on the stream: a free
    /// then would join that recording. So the memory goes to the backend's
    /// graveyard, emptied under the device lock outside recordings.
    fn drop(&mut self) {
        if let Some(mem) = self.mem.take() {
            match self.graveyard.upgrade() {
                Some(g) => g.lock().push(mem),
                None => drop(mem),
            }
        }
    }
}

impl CudaBuf {
    /// Address of element `off`.
    fn at(&self, off: usize) -> u64 {
        self.ptr + 4 * off as u64
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A conv weight on the device: `[cout, cin·k]` (the im2col GEMM's left side).
pub struct CudaConv {
    w: CudaBuf,
    bias: CudaBuf,
    cout: usize,
    cin: usize,
    k: usize,
    dilation: usize,
    depthwise: bool,
    tf32: bool,
}

/// A transposed conv on the device: the stacked phases `[u·cout, 2·cin]`.
pub struct CudaConvT {
    w: CudaBuf,
    bias: CudaBuf,
    cin: usize,
    cout: usize,
    stride: usize,
    tf32: bool,
}

/// Every kernel the backend launches.
struct Kernels {
    leaky_relu: CudaFunction,
    gate_tanh_sigmoid: CudaFunction,
    tanh: CudaFunction,
    axpy: CudaFunction,
    scale: CudaFunction,
    copy: CudaFunction,
    flip_rows: CudaFunction,
    embed: CudaFunction,
    expand_prior: CudaFunction,
    layer_norm: CudaFunction,
    im2col: CudaFunction,
    bias_act: CudaFunction,
    depthwise: CudaFunction,
    convt_interleave: CudaFunction,
    rel_logits: CudaFunction,
    softmax_rows: CudaFunction,
    rel_values: CudaFunction,
    rqs_inverse: CudaFunction,
    zero_cols: CudaFunction,
}

/// Shared scratch of the backend, grown on demand (never during a recording).
#[derive(Default)]
struct Scratch {
    slots: HashMap<Slot, CudaSlice<u8>>,
    /// Bumped whenever a slot that recordings use (the GEMM scratch) is
    /// reallocated: graphs of older generations are invalid.
    generation: u64,
}

/// A cuBLAS handle of our own (cudarc's wrapper panics if destroying it fails).
struct Blas(bsys::cublasHandle_t);
// SAFETY: the handle is used under the backend's mutex only.
unsafe impl Send for Blas {}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: the handle was created by cublasCreate and is destroyed once.
        let _ = unsafe { blas::destroy_handle(self.0) };
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Cols,
    Phases,
    Logits,
    Staging,
    Ids,
    Owner,
    Noise,
}

/// A recorded graph; only touched under the cache's lock.
struct Graph(CudaGraph);
// SAFETY: a CUDA graph may be used from any thread as long as calls on it are
// serialised; `Graph`s live only inside `Mutex<GraphCache<Graph>>`.
unsafe impl Send for Graph {}

/// `(file, PTX)` of every kernel file.
type Ptx = Vec<(&'static str, String)>;

/// PTX per virtual architecture, compiled once per process.
fn ptx_for(arch: &'static str) -> Result<Ptx, BackendError> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Ptx>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(p) = cache.lock().get(arch) {
        return Ok(p.clone());
    }
    let ptx = super::compile_all(arch)?;
    cache.lock().insert(arch, ptx.clone());
    Ok(ptx)
}

/// The virtual architecture to compile for: the device's, capped at what the
/// NVRTC of CUDA 12 knows (PTX JIT-compiles forward to newer GPUs).
pub fn arch_for(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (9, _) => "compute_90",
        (m, _) if m >= 10 => "compute_90",
        (8, 9) => "compute_89",
        (8, 6) | (8, 7) | (8, 8) => "compute_86",
        (8, _) => "compute_80",
        (7, 5) => "compute_75",
        _ => "compute_70",
    }
}

/// Blocks for a grid-stride loop over `n` elements (256 threads each).
fn grid(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).clamp(1, 1 << 20) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Threads per block for the per-column reductions: a power of two, 32..=256.
fn reduce_block(rows: usize) -> u32 {
    rows.clamp(32, 256).next_power_of_two().min(256) as u32
}

/// Launch a kernel. Arguments must be places (locals, fields), not
/// temporaries: the launch reads them through pointers.
macro_rules! launch {
    ($self:ident, $f:ident, $cfg:expr, $($a:expr),+ $(,)?) => {{
        let mut b = $self.stream.launch_builder(&$self.k.$f);
        $( b.arg(&$a); )+
        // SAFETY: the arguments match the kernel's parameter list in number,
        // order and type (`float`=f32, `int`=i32, `long long`=i64, pointers =
        // u64 device addresses, `View`=View); every view lies inside its buffer
        // (the model's shapes, asserted by the CPU twin's tests).
        let r = unsafe { b.launch($cfg) };
        $self.note(stringify!($f), r);
    }};
}

/// A CUDA device running the model.
pub struct CudaBackend {
    ordinal: usize,
    name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: Mutex<Blas>,
    _workspace: CudaSlice<u8>,
    graveyard: Arc<Graveyard>,
    k: Kernels,
    scratch: Mutex<Scratch>,
    graphs: Option<Mutex<GraphCache<Graph>>>,
    lock: ReentrantMutex<()>,
    error: Mutex<Option<String>>,
    capturing: AtomicBool,
    capture_broken: AtomicBool,
    tf32: bool,
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

fn dev_err(what: &str, e: impl std::fmt::Debug) -> BackendError {
    BackendError::Device(format!("{what}: {e:?}"))
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
        let name = super::probe(ordinal)?;
        // SAFETY: only tries to dlopen the library under its known names.
        if !std::panic::catch_unwind(|| unsafe { bsys::is_culib_present() }).unwrap_or(false) {
            return Err(BackendError::Device(
                "cuBLAS (libcublas.so.12 or libcublas.so) not found on the library path".into(),
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
        let arch = arch_for(major, minor);
        let mut funcs: HashMap<String, CudaFunction> = HashMap::new();
        for (file, ptx) in ptx_for(arch)? {
            let module = ctx
                .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                .map_err(|e| dev_err(&format!("loading {file} ({arch})"), e))?;
            for name in super::kernel_names(file) {
                let f = module
                    .load_function(&name)
                    .map_err(|e| dev_err(&format!("kernel {name}"), e))?;
                funcs.insert(name, f);
            }
        }
        let mut take = |n: &str| {
            funcs
                .remove(n)
                .ok_or_else(|| BackendError::Device(format!("kernel {n} missing from the PTX")))
        };
        let k = Kernels {
            leaky_relu: take("vx_leaky_relu")?,
            gate_tanh_sigmoid: take("vx_gate_tanh_sigmoid")?,
            tanh: take("vx_tanh")?,
            axpy: take("vx_axpy")?,
            scale: take("vx_scale")?,
            copy: take("vx_copy")?,
            flip_rows: take("vx_flip_rows")?,
            embed: take("vx_embed")?,
            expand_prior: take("vx_expand_prior")?,
            layer_norm: take("vx_layer_norm")?,
            im2col: take("vx_im2col")?,
            bias_act: take("vx_bias_act")?,
            depthwise: take("vx_depthwise")?,
            convt_interleave: take("vx_convt_interleave")?,
            rel_logits: take("vx_rel_logits")?,
            softmax_rows: take("vx_softmax_rows")?,
            rel_values: take("vx_rel_values")?,
            rqs_inverse: take("vx_rqs_inverse")?,
            zero_cols: take("vx_zero_cols")?,
        };
        let blas = Blas(blas::create_handle().map_err(|e| dev_err("cuBLAS", e))?);
        // SAFETY: a live handle and our stream.
        unsafe { blas::set_stream(blas.0, stream.cu_stream() as _) }
            .map_err(|e| dev_err("cuBLAS stream", e))?;
        // A workspace of our own, so cuBLAS never allocates while a graph records.
        const WORKSPACE: usize = 32 << 20;
        let workspace = stream
            .alloc_zeros::<u8>(WORKSPACE)
            .map_err(|e| dev_err("cuBLAS workspace", e))?;
        let (wp, _) = workspace.device_ptr(&stream);
        // SAFETY: the handle is live; the workspace outlives it (same struct, dropped after).
        unsafe {
            bsys::cublasSetWorkspace_v2(blas.0, wp as *mut _, WORKSPACE)
                .result()
                .map_err(|e| dev_err("cuBLAS workspace", e))?;
        }
        let graphs = graphs.then(|| Mutex::new(GraphCache::new(256)));
        Ok(CudaBackend {
            ordinal,
            name,
            ctx,
            stream,
            blas: Mutex::new(blas),
            _workspace: workspace,
            graveyard: Arc::new(Mutex::new(Vec::new())),
            k,
            scratch: Mutex::new(Scratch::default()),
            graphs,
            lock: ReentrantMutex::new(()),
            error: Mutex::new(None),
            capturing: AtomicBool::new(false),
            capture_broken: AtomicBool::new(false),
            tf32: precision == Precision::Bf16,
        })
    }

    /// Whether recorded graphs are used.
    pub fn graphs_enabled(&self) -> bool {
        self.graphs.is_some()
    }

    /// `(recorded, replayed)` graph counts so far.
    pub fn graph_counts(&self) -> (u64, u64) {
        self.graphs.as_ref().map_or((0, 0), |g| {
            let g = g.lock();
            (g.recorded, g.replays)
        })
    }

    /// Whether the decoder's GEMMs use TF32 tensor cores.
    pub fn reduced_precision(&self) -> bool {
        self.tf32
    }

    /// Keep the first error (during a recording, mark the recording broken instead).
    fn note<T, E: std::fmt::Debug>(&self, what: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                if self.capturing.load(Ordering::Relaxed) {
                    self.capture_broken.store(true, Ordering::Relaxed);
                } else {
                    let mut err = self.error.lock();
                    if err.is_none() {
                        *err = Some(format!("cuda:{} {what}: {e:?}", self.ordinal));
                    }
                }
                None
            }
        }
    }

    /// Whether every view lies inside its buffer and fits the kernels' `int`
    /// sizes; records an error naming `what` if not.
    fn fits(&self, what: &str, views: &[(&CudaBuf, Mat)]) -> bool {
        let small = |v: usize| i32::try_from(v).is_ok();
        for &(b, m) in views {
            if m.end() > b.len || !small(m.rows()) || !small(m.cols()) || !small(m.ld()) {
                self.note::<(), _>(
                    what,
                    Err(format!(
                        "view {m:?} outside its buffer of {} floats or too large",
                        b.len
                    )),
                );
                return false;
            }
        }
        true
    }

    /// Whether `ok` holds; records `msg` for `what` if not.
    fn check_shape(&self, what: &str, ok: bool, msg: impl FnOnce() -> String) -> bool {
        if !ok {
            self.note::<(), _>(what, Err(msg()));
        }
        ok
    }

    /// Free the buffers dropped since the last call (device lock held, no recording).
    fn bury(&self) {
        let dead = std::mem::take(&mut *self.graveyard.lock());
        drop(dead);
    }

    /// Host memory cannot take part in a recording: say so and skip the op.
    /// Otherwise make sure this thread has the context (raw driver calls follow).
    fn host_io_allowed(&self) -> bool {
        if self.capturing.load(Ordering::Relaxed) {
            self.capture_broken.store(true, Ordering::Relaxed);
            false
        } else {
            self.note("bind context", self.ctx.bind_to_thread())
                .is_some()
        }
    }

    /// Address of a scratch slot of at least `bytes` (grown outside recordings only).
    fn scratch(&self, s: &mut Scratch, slot: Slot, bytes: usize) -> Option<u64> {
        let bytes = bytes.max(4);
        let have = s.slots.get(&slot).map_or(0, |b| b.len());
        if have < bytes {
            if self.capturing.load(Ordering::Relaxed) {
                self.capture_broken.store(true, Ordering::Relaxed);
                return None;
            }
            let cap = bytes + bytes / 4;
            // SAFETY: scratch is fully written by the op before it is read.
            let buf = self.note("scratch allocation", unsafe {
                self.stream.alloc::<u8>(cap)
            })?;
            s.slots.insert(slot, buf);
            if matches!(slot, Slot::Cols | Slot::Phases) {
                s.generation += 1;
            }
        }
        s.slots.get(&slot).map(|b| b.device_ptr(&self.stream).0)
    }

    /// Upload host data into a scratch slot; its address.
    fn upload<T: DeviceRepr>(&self, s: &mut Scratch, slot: Slot, data: &[T]) -> Option<u64> {
        if !self.host_io_allowed() {
            return None;
        }
        let p = self.scratch(s, slot, std::mem::size_of_val(data))?;
        if !data.is_empty() {
            // SAFETY: p has room for `data`; pageable host memory is copied before return.
            self.note("upload", unsafe {
                dres::memcpy_htod_async(p, data, self.stream.cu_stream())
            })?;
        }
        Some(p)
    }

    /// Row-major `C[m, n] = alpha · op(A) · op(B) + beta · C` on cuBLAS, where
    /// `op(X)` is `X` stored row-major with row stride `ldx`, or its transpose.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        (m, n, k): (usize, usize, usize),
        (a, lda, ta): (u64, usize, bool),
        (b, ldb, tb): (u64, usize, bool),
        (c, ldc): (u64, usize),
        alpha: f32,
        beta: f32,
        tf32: bool,
    ) {
        if m == 0 || n == 0 || k == 0 {
            return;
        }
        let op = |t: bool| {
            if t {
                bsys::cublasOperation_t::CUBLAS_OP_T
            } else {
                bsys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let compute = if tf32 {
            bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
        } else {
            bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F
        };
        let f32t = bsys::cudaDataType::CUDA_R_32F;
        let handle = self.blas.lock();
        // Column-major view of row-major storage: C^T = op(B)^T · op(A)^T.
        // SAFETY: the addresses are live device buffers holding the operands
        // with the given strides (callers pass views inside their buffers).
        let r = unsafe {
            blas::gemm_ex(
                handle.0,
                op(tb),
                op(ta),
                n as i32,
                m as i32,
                k as i32,
                (&alpha as *const f32).cast(),
                b as usize as *const std::ffi::c_void,
                f32t,
                ldb as i32,
                a as usize as *const std::ffi::c_void,
                f32t,
                lda as i32,
                (&beta as *const f32).cast(),
                c as usize as *mut std::ffi::c_void,
                f32t,
                ldc as i32,
                compute,
                bsys::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        };
        self.note("cuBLAS GEMM", r);
    }

    fn upload_f32(&self, v: &[f32], what: &'static str) -> Result<CudaBuf, BackendError> {
        // Weights may be prepared on any thread (the model prepares its parts in parallel).
        self.ctx.bind_to_thread().map_err(|e| dev_err(what, e))?;
        let b = self.alloc(v.len(), what)?;
        if !v.is_empty() {
            // SAFETY: b holds v.len() floats.
            unsafe { dres::memcpy_htod_async(b.ptr, v, self.stream.cu_stream()) }
                .map_err(|e| dev_err(what, e))?;
        }
        Ok(b)
    }

    fn conv_weight(&self, c: &Conv, tf32: bool) -> Result<CudaConv, BackendError> {
        let depthwise = c.cin == 1 && c.cout > 1;
        Ok(CudaConv {
            w: self.upload_f32(&c.w, "conv weight")?,
            bias: self.upload_f32(
                &c.b.clone().unwrap_or_else(|| vec![0.0; c.cout]),
                "conv bias",
            )?,
            cout: c.cout,
            cin: c.cin,
            k: c.k,
            dilation: c.dilation,
            depthwise,
            tf32,
        })
    }

    /// `y = op(bias + y)`: the conv epilogue after the GEMM.
    fn bias_act(&self, y: &CudaBuf, ym: Mat, bias: &CudaBuf, relu: bool) {
        let (yv, r) = (view(ym), i32::from(relu));
        launch!(
            self,
            bias_act,
            grid(ym.rows() * ym.cols()),
            y.ptr,
            yv,
            bias.ptr,
            r
        );
    }

    /// Launch a recorded graph.
    fn replay(&self, cache: &mut GraphCache<Graph>, key: &[u64]) -> bool {
        let Some(launched) = cache.get(key).map(|g| g.0.launch()) else {
            return false;
        };
        cache.replays += 1;
        self.note("graph launch", launched).is_some()
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
        let Some(cache) = &self.graphs else {
            f();
            return;
        };
        let _device = self.lock.lock();
        self.bury();
        let generation = self.scratch.lock().generation;
        let full = GraphCache::<Graph>::key(generation, key);
        let mut c = cache.lock();
        match c.plan(&full) {
            Plan::Replay => {
                if !self.replay(&mut c, &full) {
                    f();
                }
                return;
            }
            Plan::Eager => {
                f();
                return;
            }
            Plan::Record => {}
        }
        let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        if self
            .note("graph capture", self.stream.begin_capture(mode))
            .is_none()
        {
            c.insert(full, None);
            f();
            return;
        }
        self.capture_broken.store(false, Ordering::Relaxed);
        self.capturing.store(true, Ordering::Relaxed);
        f();
        self.capturing.store(false, Ordering::Relaxed);
        let ended = self.stream.end_capture(sys::CUgraphInstantiate_flags(0));
        let broken = self.capture_broken.swap(false, Ordering::Relaxed);
        match ended {
            Ok(Some(g)) if !broken => {
                c.insert(full.clone(), Some(Graph(g)));
                if !self.replay(&mut c, &full) {
                    f();
                }
            }
            _ => {
                // Not recordable (a scratch buffer had to grow, host data, …):
                // run it eagerly, now and for this key from now on.
                c.insert(full, None);
                f();
            }
        }
    }

    fn check(&self) -> Result<(), BackendError> {
        match self.error.lock().take() {
            Some(e) => Err(BackendError::Device(e)),
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

impl Backend for CudaBackend {
    type Buf = CudaBuf;
    type Conv = CudaConv;
    type ConvT = CudaConvT;
    type Vector = CudaBuf;

    fn alloc(&self, len: usize, what: &'static str) -> Result<CudaBuf, BackendError> {
        let mem =
            self.stream
                .alloc_zeros::<f32>(len.max(1))
                .map_err(|_| BackendError::OutOfMemory {
                    bytes: len.saturating_mul(4),
                    what,
                })?;
        let ptr = mem.device_ptr(&self.stream).0;
        Ok(CudaBuf {
            mem: Some(mem),
            ptr,
            len,
            graveyard: Arc::downgrade(&self.graveyard),
        })
    }

    fn write(&self, dst: &mut CudaBuf, m: Mat, src: &[f32]) {
        let n = m.rows() * m.cols();
        if n == 0 || !self.fits("write", &[(dst, m)]) || !self.host_io_allowed() {
            return;
        }
        let Some(src) = src.get(..n) else {
            self.note::<(), _>("write", Err("host data shorter than the view"));
            return;
        };
        if m.ld() == m.cols() || m.rows() == 1 {
            // SAFETY: the view is inside dst; pageable memory is copied before return.
            let r =
                unsafe { dres::memcpy_htod_async(dst.at(m.off()), src, self.stream.cu_stream()) };
            self.note("write", r);
            return;
        }
        let mut s = self.scratch.lock();
        let Some(p) = self.upload(&mut s, Slot::Staging, src) else {
            return;
        };
        let (sv, dv) = (view(Mat::new(m.rows(), m.cols())), view(m));
        launch!(self, copy, grid(n), p, sv, dst.ptr, dv);
    }

    fn read(&self, src: &CudaBuf, m: Mat, dst: &mut [f32]) {
        let n = m.rows() * m.cols();
        if n == 0 || !self.fits("read", &[(src, m)]) || !self.host_io_allowed() {
            return;
        }
        let Some(dst) = dst.get_mut(..n) else {
            self.note::<(), _>("read", Err("host buffer shorter than the view"));
            return;
        };
        // The staging slot stays locked until the copy is queued.
        let mut s = self.scratch.lock();
        let from = if m.ld() == m.cols() || m.rows() == 1 {
            src.at(m.off())
        } else {
            let Some(p) = self.scratch(&mut s, Slot::Staging, 4 * n) else {
                return;
            };
            let (sv, dv) = (view(m), view(Mat::new(m.rows(), m.cols())));
            launch!(self, copy, grid(n), src.ptr, sv, p, dv);
            p
        };
        // SAFETY: `from` holds n floats; the stream is synchronised before return.
        let r = unsafe { dres::memcpy_dtoh_async(dst, from, self.stream.cu_stream()) };
        if self.note("read", r).is_some() {
            self.note("read", self.stream.synchronize());
        }
    }

    fn prepare_conv(&self, c: &Conv) -> Result<CudaConv, BackendError> {
        self.conv_weight(c, false)
    }

    fn prepare_conv_lowp(&self, c: &Conv) -> Result<CudaConv, BackendError> {
        self.conv_weight(c, self.tf32)
    }

    fn prepare_conv_t(&self, c: &ConvTranspose) -> Result<CudaConvT, BackendError> {
        let u = c.stride;
        if u == 0 || c.k != 2 * u {
            return Err(BackendError::Device(format!(
                "transposed conv with kernel {} and stride {u}: only kernel = 2·stride is supported",
                c.k
            )));
        }
        // Row r·cout + o: [W_{r+u}[o, :] for x[t−1] | W_r[o, :] for x[t]],
        // interleaved per input channel as im2col's rows (i·2 + j).
        let (cin, cout) = (c.cin, c.cout);
        let mut w = vec![0.0f32; u * cout * 2 * cin];
        for r in 0..u {
            for o in 0..cout {
                for i in 0..cin {
                    let row = (r * cout + o) * 2 * cin;
                    w[row + 2 * i] = c.w[(i * cout + o) * c.k + r + u];
                    w[row + 2 * i + 1] = c.w[(i * cout + o) * c.k + r];
                }
            }
        }
        Ok(CudaConvT {
            w: self.upload_f32(&w, "transposed conv weight")?,
            bias: self.upload_f32(&c.b, "transposed conv bias")?,
            cin,
            cout,
            stride: u,
            tf32: self.tf32,
        })
    }

    fn prepare_vector(&self, v: &[f32]) -> Result<CudaBuf, BackendError> {
        self.upload_f32(v, "weight vector")
    }

    fn embed(&self, table: &CudaBuf, ids: &[i64], scale: f32, y: &mut CudaBuf, ym: Mat) {
        let ym = ym.sub_cols(0, ym.cols().min(ids.len()));
        if ym.rows() == 0 || ym.cols() == 0 || !self.fits("embed", &[(y, ym)]) {
            return;
        }
        let mut s = self.scratch.lock();
        let Some(p) = self.upload(&mut s, Slot::Ids, &ids[..ym.cols()]) else {
            return;
        };
        let symbols = (table.len / ym.rows()) as i64;
        let yv = view(ym);
        launch!(
            self,
            embed,
            grid(ym.rows() * ym.cols()),
            table.ptr,
            symbols,
            p,
            scale,
            y.ptr,
            yv
        );
    }

    fn conv1d(&self, w: &CudaConv, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat, out: Out) {
        let t = xm.cols();
        let depthwise = w.depthwise && xm.rows() == w.cout;
        if !self.fits("conv1d", &[(x, xm), (y, ym)])
            || !self.check_shape(
                "conv1d",
                (depthwise || xm.rows() == w.cin) && ym.rows() == w.cout && ym.cols() == t,
                || {
                    format!(
                        "input {xm:?} / output {ym:?} for a {}→{} conv",
                        w.cin, w.cout
                    )
                },
            )
        {
            return;
        }
        if t == 0 || ym.rows() == 0 {
            return;
        }
        let mode = match out {
            Out::Set => 0i32,
            Out::SetRelu => 1,
            Out::Add => 2,
        };
        let (k, dil) = (w.k as i32, w.dilation as i32);
        if depthwise {
            let (xv, yv) = (view(xm), view(ym));
            launch!(
                self,
                depthwise,
                grid(ym.rows() * t),
                w.w.ptr,
                w.bias.ptr,
                x.ptr,
                xv,
                y.ptr,
                yv,
                k,
                dil,
                mode
            );
            return;
        }
        let beta = if out == Out::Add { 1.0 } else { 0.0 };
        let kk = w.cin * w.k;
        let mut s = self.scratch.lock();
        let (b, ldb) = if w.k == 1 {
            (x.at(xm.off()), xm.ld())
        } else {
            let Some(cols) = self.scratch(&mut s, Slot::Cols, 4 * kk * t) else {
                return;
            };
            let xv = view(xm);
            let (padl, n) = ((w.dilation * (w.k - 1) / 2) as i32, t as i32);
            launch!(self, im2col, grid(kk * t), x.ptr, xv, cols, k, dil, padl, n);
            (cols, t)
        };
        self.gemm(
            (w.cout, t, kk),
            (w.w.ptr, kk, false),
            (b, ldb, false),
            (y.at(ym.off()), ym.ld()),
            1.0,
            beta,
            w.tf32,
        );
        drop(s);
        self.bias_act(y, ym, &w.bias, out == Out::SetRelu);
    }

    fn conv_transpose(&self, w: &CudaConvT, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        let (u, l) = (w.stride, xm.cols());
        if !self.fits("conv_transpose", &[(x, xm), (y, ym)])
            || !self.check_shape(
                "conv_transpose",
                xm.rows() == w.cin && ym.rows() == w.cout && ym.cols() == u * l,
                || format!("input {xm:?} / output {ym:?} for a ×{u} transposed conv"),
            )
        {
            return;
        }
        if l == 0 {
            return;
        }
        let n = l + 1;
        let mut s = self.scratch.lock();
        let Some(cols) = self.scratch(&mut s, Slot::Cols, 4 * 2 * w.cin * n) else {
            return;
        };
        let Some(ph) = self.scratch(&mut s, Slot::Phases, 4 * u * w.cout * n) else {
            return;
        };
        let xv = view(xm);
        let (two, one, padl, ni) = (2i32, 1i32, 1i32, n as i32);
        launch!(
            self,
            im2col,
            grid(2 * w.cin * n),
            x.ptr,
            xv,
            cols,
            two,
            one,
            padl,
            ni
        );
        self.gemm(
            (u * w.cout, n, 2 * w.cin),
            (w.w.ptr, 2 * w.cin, false),
            (cols, n, false),
            (ph, n),
            1.0,
            0.0,
            w.tf32,
        );
        let (yv, ui, co, li) = (view(ym), u as i32, w.cout as i32, l as i32);
        launch!(
            self,
            convt_interleave,
            grid(ym.rows() * ym.cols()),
            ph,
            w.bias.ptr,
            y.ptr,
            yv,
            ui,
            co,
            li
        );
    }

    fn rel_attention(
        &self,
        qkv: &CudaBuf,
        q: Mat,
        k: Mat,
        v: Mat,
        rel_k: &CudaBuf,
        rel_v: &CudaBuf,
        heads: usize,
        y: &mut CudaBuf,
        ym: Mat,
    ) {
        let t = q.cols();
        let heads = heads.max(1);
        let d = q.rows() / heads;
        if !self.fits("rel_attention", &[(qkv, q), (qkv, k), (qkv, v), (y, ym)])
            || !self.check_shape(
                "rel_attention",
                k.cols() == t && v.cols() == t && ym.cols() == t && ym.rows() == q.rows(),
                || format!("q {q:?}, k {k:?}, v {v:?}, y {ym:?}"),
            )
        {
            return;
        }
        if t == 0 || d == 0 {
            return;
        }
        let w = (rel_k.len / d / 2) as i32;
        let scale = 1.0 / (d as f32).sqrt();
        let mut s = self.scratch.lock();
        let Some(logits) = self.scratch(&mut s, Slot::Logits, 4 * t * t) else {
            return;
        };
        let ti = t as i32;
        for h in 0..heads {
            let (qh, kh, vh, yh) = (
                q.sub_rows(h * d, (h + 1) * d),
                k.sub_rows(h * d, (h + 1) * d),
                v.sub_rows(h * d, (h + 1) * d),
                ym.sub_rows(h * d, (h + 1) * d),
            );
            // logits = (q / √d)ᵀ k
            self.gemm(
                (t, t, d),
                (qkv.at(qh.off()), qh.ld(), true),
                (qkv.at(kh.off()), kh.ld(), false),
                (logits, t),
                scale,
                0.0,
                false,
            );
            let qv = view(qh);
            launch!(
                self,
                rel_logits,
                grid(t * (2 * w as usize + 1)),
                qkv.ptr,
                qv,
                rel_k.ptr,
                w,
                scale,
                logits,
                ti
            );
            let cfg = LaunchConfig {
                grid_dim: (t as u32, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 256 * 4,
            };
            launch!(self, softmax_rows, cfg, logits, ti);
            // y_h = v Pᵀ (+ the relative values)
            self.gemm(
                (d, t, t),
                (qkv.at(vh.off()), vh.ld(), false),
                (logits, t, true),
                (y.at(yh.off()), yh.ld()),
                1.0,
                0.0,
                false,
            );
            let yv = view(yh);
            launch!(
                self,
                rel_values,
                grid(d * t),
                logits,
                rel_v.ptr,
                w,
                ti,
                y.ptr,
                yv
            );
        }
    }

    fn add_layer_norm(
        &self,
        x: &mut CudaBuf,
        xm: Mat,
        r: &CudaBuf,
        rm: Mat,
        gamma: &CudaBuf,
        beta: &CudaBuf,
    ) {
        let block = reduce_block(xm.rows());
        let cfg = LaunchConfig {
            grid_dim: (xm.cols().max(1) as u32, 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: block * 4,
        };
        let (xv, rv, has_r, gelu) = (view(xm), view(rm), 1i32, 0i32);
        if xm.cols() > 0 && self.fits("layer_norm", &[(x, xm), (r, rm)]) {
            launch!(self, layer_norm, cfg, x.ptr, xv, r.ptr, rv, has_r, gamma.ptr, beta.ptr, gelu);
        }
    }

    fn layer_norm_gelu(&self, x: &mut CudaBuf, xm: Mat, gamma: &CudaBuf, beta: &CudaBuf) {
        let block = reduce_block(xm.rows());
        let cfg = LaunchConfig {
            grid_dim: (xm.cols().max(1) as u32, 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: block * 4,
        };
        let (xv, has_r, gelu) = (view(xm), 0i32, 1i32);
        if xm.cols() > 0 && self.fits("layer_norm", &[(x, xm)]) {
            launch!(self, layer_norm, cfg, x.ptr, xv, x.ptr, xv, has_r, gamma.ptr, beta.ptr, gelu);
        }
    }

    fn axpy(&self, alpha: f32, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        let (xv, yv) = (view(xm), view(ym));
        if ym.rows() * ym.cols() > 0 && self.fits("axpy", &[(x, xm), (y, ym)]) {
            launch!(
                self,
                axpy,
                grid(ym.rows() * ym.cols()),
                alpha,
                x.ptr,
                xv,
                y.ptr,
                yv
            );
        }
    }

    fn scale(&self, alpha: f32, x: &mut CudaBuf, xm: Mat) {
        let xv = view(xm);
        if xm.rows() * xm.cols() > 0 && self.fits("scale", &[(x, xm)]) {
            launch!(self, scale, grid(xm.rows() * xm.cols()), alpha, x.ptr, xv);
        }
    }

    fn copy(&self, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        let (xv, yv) = (view(xm), view(ym));
        if ym.rows() * ym.cols() > 0 && self.fits("copy", &[(x, xm), (y, ym)]) {
            launch!(
                self,
                copy,
                grid(ym.rows() * ym.cols()),
                x.ptr,
                xv,
                y.ptr,
                yv
            );
        }
    }

    fn flip_rows(&self, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        let (xv, yv) = (view(xm), view(ym));
        if ym.rows() * ym.cols() > 0 && self.fits("flip_rows", &[(x, xm), (y, ym)]) {
            launch!(
                self,
                flip_rows,
                grid(ym.rows() * ym.cols()),
                x.ptr,
                xv,
                y.ptr,
                yv
            );
        }
    }

    fn gate_tanh_sigmoid(&self, a: &CudaBuf, am: Mat, y: &mut CudaBuf, ym: Mat) {
        let (av, yv) = (view(am), view(ym));
        if ym.rows() * ym.cols() > 0
            && am.rows() >= 2 * ym.rows()
            && self.fits("gate", &[(a, am), (y, ym)])
        {
            launch!(
                self,
                gate_tanh_sigmoid,
                grid(ym.rows() * ym.cols()),
                a.ptr,
                av,
                y.ptr,
                yv
            );
        }
    }

    fn leaky_relu(&self, slope: f32, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        let (xv, yv) = (view(xm), view(ym));
        if ym.rows() * ym.cols() > 0 && self.fits("leaky_relu", &[(x, xm), (y, ym)]) {
            launch!(
                self,
                leaky_relu,
                grid(ym.rows() * ym.cols()),
                x.ptr,
                xv,
                y.ptr,
                yv,
                slope
            );
        }
    }

    fn tanh(&self, x: &mut CudaBuf, xm: Mat) {
        let xv = view(xm);
        if xm.rows() * xm.cols() > 0 && self.fits("tanh", &[(x, xm)]) {
            launch!(self, tanh, grid(xm.rows() * xm.cols()), x.ptr, xv);
        }
    }

    fn spline_inverse(
        &self,
        z: &mut CudaBuf,
        zm: Mat,
        theta: &CudaBuf,
        thm: Mat,
        bins: usize,
        wh_scale: f32,
    ) {
        if zm.cols() == 0 || !self.fits("spline", &[(z, zm), (theta, thm)]) {
            return;
        }
        if bins == 0 || bins > 64 {
            self.note::<(), _>(
                "spline",
                Err(format!("{bins} bins (the kernel supports 1..=64)")),
            );
            return;
        }
        let cfg = LaunchConfig {
            grid_dim: (zm.cols().div_ceil(128) as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let (zv, tv, k) = (view(zm), view(thm), bins as i32);
        launch!(
            self,
            rqs_inverse,
            cfg,
            z.ptr,
            zv,
            theta.ptr,
            tv,
            k,
            wh_scale
        );
    }

    fn expand_prior(
        &self,
        ml: &CudaBuf,
        mlm: Mat,
        owner: &[u32],
        noise: &[f32],
        noise_scale: f32,
        y: &mut CudaBuf,
        ym: Mat,
    ) {
        let n = ym.rows() * ym.cols();
        if n == 0 || !self.fits("expand_prior", &[(ml, mlm), (y, ym)]) {
            return;
        }
        if owner.len() < ym.cols() || noise.len() < n {
            self.note::<(), _>(
                "expand_prior",
                Err("owner or noise shorter than the output"),
            );
            return;
        }
        if owner
            .iter()
            .any(|&o| o != u32::MAX && o as usize >= mlm.cols())
        {
            self.note::<(), _>("expand_prior", Err("owner outside the encoder output"));
            return;
        }
        let mut s = self.scratch.lock();
        let Some(op) = self.upload(&mut s, Slot::Owner, &owner[..ym.cols()]) else {
            return;
        };
        let Some(np) = self.upload(&mut s, Slot::Noise, &noise[..n]) else {
            return;
        };
        let (mv, yv) = (view(mlm), view(ym));
        launch!(
            self,
            expand_prior,
            grid(n),
            ml.ptr,
            mv,
            op,
            np,
            noise_scale,
            y.ptr,
            yv
        );
    }

    fn zero_cols(&self, x: &mut CudaBuf, xm: Mat, ranges: &[(usize, usize)]) {
        if xm.rows() == 0 || !self.fits("zero_cols", &[(x, xm)]) {
            return;
        }
        let xv = view(xm);
        for &(c0, c1) in ranges {
            let (c0, c1) = (c0.min(xm.cols()), c1.min(xm.cols()));
            if c0 < c1 {
                let (a, b) = (c0 as i32, c1 as i32);
                launch!(
                    self,
                    zero_cols,
                    grid(xm.rows() * (c1 - c0)),
                    x.ptr,
                    xv,
                    a,
                    b
                );
            }
        }
    }

    fn buf_key(&self, b: &CudaBuf) -> u64 {
        b.ptr ^ ((b.len as u64) << 48)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_matches_the_c_layout() {
        // struct View { long long off; int rows; int cols; int ld; } : 8 + 3·4, padded to 24.
        assert_eq!(std::mem::size_of::<View>(), 24);
        assert_eq!(std::mem::align_of::<View>(), 8);
        let v = view(Mat::new(3, 5).sub_cols(1, 4));
        assert_eq!((v.off, v.rows, v.cols, v.ld), (1, 3, 3, 5));
    }

    #[test]
    fn arch_choice() {
        assert_eq!(arch_for(9, 0), "compute_90");
        assert_eq!(arch_for(8, 0), "compute_80");
        assert_eq!(arch_for(8, 6), "compute_86");
        assert_eq!(arch_for(12, 0), "compute_90");
        assert_eq!(arch_for(7, 0), "compute_70");
    }

    #[test]
    fn launch_geometry() {
        assert_eq!(grid(1).grid_dim.0, 1);
        assert_eq!(grid(256).grid_dim.0, 1);
        assert_eq!(grid(257).grid_dim.0, 2);
        assert_eq!(grid(usize::MAX / 2).grid_dim.0, 1 << 20);
        assert_eq!(reduce_block(192), 256);
        assert_eq!(reduce_block(8), 32);
        assert_eq!(reduce_block(100), 128);
    }
}
