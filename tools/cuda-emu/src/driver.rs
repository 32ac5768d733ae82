//! The CUDA driver API as cudarc calls it: init and the device, the primary
//! context, memory, streams (run in order: every op runs when it is
//! enqueued), stream capture into graphs and their replay, modules from the
//! emulator's NVRTC, and launches. Calls the real driver refuses are refused
//! with its error codes (no context, bad launch geometry, work the driver
//! forbids while a stream captures: synchronising the capturing stream,
//! pageable host copies, "potentially unsafe" calls, legacy-stream use in
//! global mode), and a refused capture is invalidated as the real one is.

use crate::cu::{
    CUcontext, CUdevice, CUdeviceptr, CUfunction, CUgraph, CUgraphExec, CUmodule, CUresult,
    CUstream,
};
use crate::exec::{self, Module, Op};
use crate::fault::{self, Kind};
use crate::mem;
use crate::nvrtc::HOST_TAG;
use crate::report::trace;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;

use CUresult::*;

static INIT: AtomicBool = AtomicBool::new(false);
static RETAINED: AtomicI32 = AtomicI32::new(0);
/// The primary context's handle is the address of this.
static PRIMARY: u64 = 0x5658_4f49_4445_4355;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

fn primary() -> CUcontext {
    &PRIMARY as *const u64 as CUcontext
}

/// `CUDA_SUCCESS` when the driver is initialised and this thread has the context.
fn need_ctx() -> CUresult {
    if !INIT.load(Ordering::Relaxed) {
        CUDA_ERROR_NOT_INITIALIZED
    } else if CURRENT.with(|c| c.get()) == 0 {
        CUDA_ERROR_INVALID_CONTEXT
    } else {
        CUDA_SUCCESS
    }
}

macro_rules! need {
    ($e:expr) => {{
        let r = $e;
        if r != CUDA_SUCCESS {
            return r;
        }
    }};
}

const MODE_GLOBAL: c_int = 0;
const MODE_RELAXED: c_int = 2;

struct Capture {
    mode: c_int,
    thread: ThreadId,
    ops: Vec<Op>,
    invalid: bool,
}

#[derive(Default)]
struct StreamState {
    /// 0: blocking (synchronises with the legacy stream), 1: non-blocking.
    flags: c_uint,
    capture: Option<Capture>,
}

#[derive(Default)]
struct Dev {
    streams: HashMap<usize, StreamState>,
    next: usize,
    modules: HashMap<String, &'static Module>,
}

fn dev() -> MutexGuard<'static, Dev> {
    static DEV: OnceLock<Mutex<Dev>> = OnceLock::new();
    DEV.get_or_init(|| Mutex::new(Dev::default()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The legacy default stream (0 or `CU_STREAM_LEGACY`).
fn legacy(s: CUstream) -> bool {
    s.is_null() || s as usize == 1
}

/// The per-thread default stream.
fn per_thread(s: CUstream) -> bool {
    s as usize == 2
}

impl Dev {
    /// Invalidate every capture `pred` selects; whether there was one.
    fn invalidate(&mut self, pred: impl Fn(&Capture, c_uint) -> bool) -> bool {
        let mut any = false;
        for st in self.streams.values_mut() {
            let flags = st.flags;
            if let Some(c) = st.capture.as_mut() {
                if !c.invalid && pred(c, flags) {
                    c.invalid = true;
                    any = true;
                }
            }
        }
        any
    }

    /// A "potentially unsafe" call (one that may synchronise implicitly):
    /// prohibited while this thread captures (not relaxed) or another thread
    /// captures in global mode; the captures are invalidated.
    fn unsafe_call(&mut self, what: &str) -> CUresult {
        let me = std::thread::current().id();
        if self.invalidate(|c, _| {
            (c.thread == me && c.mode != MODE_RELAXED) || (c.thread != me && c.mode == MODE_GLOBAL)
        }) {
            trace!("{what} during stream capture: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED");
            CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
        } else {
            CUDA_SUCCESS
        }
    }

    /// Work on the legacy stream while a blocking stream captures: an
    /// implicit dependency on the capture, which the driver refuses.
    fn legacy_use(&mut self, s: CUstream) -> CUresult {
        if legacy(s) && self.invalidate(|_, flags| flags == 0) {
            CUDA_ERROR_STREAM_CAPTURE_IMPLICIT
        } else {
            CUDA_SUCCESS
        }
    }

    fn stream(&mut self, s: CUstream) -> Result<&mut StreamState, CUresult> {
        if legacy(s) || per_thread(s) {
            return Ok(self.streams.entry(s as usize).or_default());
        }
        self.streams
            .get_mut(&(s as usize))
            .ok_or(CUDA_ERROR_INVALID_HANDLE)
    }
}

/// Enqueue `op` on stream `s`: recorded when the stream captures, else run now.
pub fn submit(s: CUstream, op: Op) -> CUresult {
    {
        let mut d = dev();
        need!(d.legacy_use(s));
        let st = match d.stream(s) {
            Ok(st) => st,
            Err(e) => return e,
        };
        if let Some(c) = st.capture.as_mut() {
            if c.invalid {
                return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
            }
            c.ops.push(op);
            return CUDA_SUCCESS;
        }
    }
    op.run();
    CUDA_SUCCESS
}

/// Host memory in an op on stream `s` (pageable copies): refused while it captures.
fn host_copy_allowed(s: CUstream) -> CUresult {
    let mut d = dev();
    need!(d.legacy_use(s));
    let st = match d.stream(s) {
        Ok(st) => st,
        Err(e) => return e,
    };
    if let Some(c) = st.capture.as_mut() {
        c.invalid = true;
        trace!("pageable host copy during capture: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED");
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    CUDA_SUCCESS
}

// ---- init, device, context -------------------------------------------------

#[no_mangle]
pub extern "C" fn cuInit(flags: c_uint) -> CUresult {
    trace!("cuInit({flags})");
    if crate::nvrtc::in_nvrtc() {
        // The real NVRTC probing for a driver: there is no device for it.
        return CUDA_ERROR_NO_DEVICE;
    }
    if flags != 0 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    mem::install_handler();
    INIT.store(true, Ordering::Relaxed);
    CUDA_SUCCESS
}

/// The driver's private interface to NVIDIA's own libraries: not emulated.
#[no_mangle]
pub unsafe extern "C" fn cuGetExportTable(
    table: *mut *const c_void,
    _id: *const c_void,
) -> CUresult {
    if !table.is_null() {
        *table = std::ptr::null();
    }
    CUDA_ERROR_NOT_SUPPORTED
}

#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(v: *mut c_int) -> CUresult {
    if v.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *v = 12080;
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(n: *mut c_int) -> CUresult {
    if !INIT.load(Ordering::Relaxed) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if n.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *n = 1;
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(d: *mut CUdevice, ordinal: c_int) -> CUresult {
    trace!("cuDeviceGet({ordinal})");
    if !INIT.load(Ordering::Relaxed) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if d.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if ordinal != 0 {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    *d = 0;
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, d: CUdevice) -> CUresult {
    if !INIT.load(Ordering::Relaxed) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if d != 0 {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    if name.is_null() || len <= 0 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let s = crate::DEVICE_NAME.as_bytes();
    let n = s.len().min(len as usize - 1);
    std::ptr::copy_nonoverlapping(s.as_ptr(), name as *mut u8, n);
    *name.add(n) = 0;
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    pi: *mut c_int,
    attrib: c_int,
    d: CUdevice,
) -> CUresult {
    if !INIT.load(Ordering::Relaxed) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if d != 0 {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    if pi.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as c_int;
    let v = match attrib {
        1 => 1024,       // max threads per block
        2 | 3 => 1024,   // max block dim x, y
        4 => 64,         // max block dim z
        5 => i32::MAX,   // max grid dim x
        6 | 7 => 65535,  // max grid dim y, z
        8 => 48 << 10,   // shared memory per block
        9 => 64 << 10,   // constant memory
        10 => 32,        // warp size
        12 => 65536,     // registers per block
        13 => 1_000_000, // clock rate (kHz)
        16 => cpus,      // multiprocessors: the host's CPUs
        18 => 0,         // integrated
        31 => 1,         // concurrent kernels
        39 => 2048,      // threads per multiprocessor
        41 => 1,         // unified addressing
        75 => 9,         // compute capability major
        76 => 0,         // compute capability minor
        81 => 228 << 10, // shared memory per multiprocessor
        83 => 0,         // managed memory
        97 => 227 << 10, // shared memory per block, opt-in
        115 => 1,        // memory pools (stream-ordered allocation)
        _ => {
            trace!("cuDeviceGetAttribute({attrib}): not emulated");
            return CUDA_ERROR_INVALID_VALUE;
        }
    };
    *pi = v;
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, d: CUdevice) -> CUresult {
    if !INIT.load(Ordering::Relaxed) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if d != 0 {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    if bytes.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *bytes = mem::total();
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(ctx: *mut CUcontext, d: CUdevice) -> CUresult {
    if !INIT.load(Ordering::Relaxed) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if d != 0 {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    if ctx.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    RETAINED.fetch_add(1, Ordering::Relaxed);
    *ctx = primary();
    CUDA_SUCCESS
}

#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(d: CUdevice) -> CUresult {
    if d != 0 {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    if RETAINED.fetch_sub(1, Ordering::Relaxed) <= 0 {
        RETAINED.fetch_add(1, Ordering::Relaxed);
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(ctx: *mut CUcontext) -> CUresult {
    if !INIT.load(Ordering::Relaxed) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if ctx.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *ctx = CURRENT.with(|c| c.get()) as CUcontext;
    CUDA_SUCCESS
}

#[no_mangle]
pub extern "C" fn cuCtxSetCurrent(ctx: CUcontext) -> CUresult {
    if !INIT.load(Ordering::Relaxed) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if !ctx.is_null() && ctx != primary() {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    if !ctx.is_null() && RETAINED.load(Ordering::Relaxed) <= 0 {
        return CUDA_ERROR_CONTEXT_IS_DESTROYED;
    }
    CURRENT.with(|c| c.set(ctx as usize));
    CUDA_SUCCESS
}

#[no_mangle]
pub extern "C" fn cuCtxSynchronize() -> CUresult {
    need!(need_ctx());
    dev().unsafe_call("cuCtxSynchronize")
}

static NAMES: OnceLock<Mutex<HashMap<u32, &'static CStr>>> = OnceLock::new();

/// The codes the emulator returns (the others are never handed out).
const CODES: &[CUresult] = &[
    CUDA_SUCCESS,
    CUDA_ERROR_INVALID_VALUE,
    CUDA_ERROR_OUT_OF_MEMORY,
    CUDA_ERROR_NOT_INITIALIZED,
    CUDA_ERROR_INVALID_DEVICE,
    CUDA_ERROR_INVALID_IMAGE,
    CUDA_ERROR_INVALID_CONTEXT,
    CUDA_ERROR_CONTEXT_IS_DESTROYED,
    CUDA_ERROR_INVALID_HANDLE,
    CUDA_ERROR_NOT_FOUND,
    CUDA_ERROR_ILLEGAL_STATE,
    CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
    CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
    CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
    CUDA_ERROR_STREAM_CAPTURE_IMPLICIT,
    CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD,
    CUDA_ERROR_NOT_SUPPORTED,
    CUDA_ERROR_NO_DEVICE,
];

fn describe(e: u32, long: bool) -> Option<&'static CStr> {
    let code = CODES.iter().find(|c| **c as u32 == e)?;
    let mut names = NAMES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let key = e | if long { 1 << 31 } else { 0 };
    let s = names.entry(key).or_insert_with(|| {
        let name = format!("{code:?}");
        let text = if long {
            format!("{name} (voxide emulated CUDA device)")
        } else {
            name
        };
        Box::leak(CString::new(text).unwrap().into_boxed_c_str())
    });
    Some(*s)
}

#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(e: u32, s: *mut *const c_char) -> CUresult {
    if s.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    match describe(e, false) {
        Some(c) => {
            *s = c.as_ptr();
            CUDA_SUCCESS
        }
        None => {
            *s = std::ptr::null();
            CUDA_ERROR_INVALID_VALUE
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuGetErrorString(e: u32, s: *mut *const c_char) -> CUresult {
    if s.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    match describe(e, true) {
        Some(c) => {
            *s = c.as_ptr();
            CUDA_SUCCESS
        }
        None => {
            *s = std::ptr::null();
            CUDA_ERROR_INVALID_VALUE
        }
    }
}

// ---- memory ------------------------------------------------------------------

unsafe fn do_alloc(p: *mut CUdeviceptr, size: usize, pooled: bool) -> CUresult {
    if p.is_null() || size == 0 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if fault::inject(Kind::Alloc) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    match mem::alloc(size, pooled) {
        Some(a) => {
            *p = a;
            trace!("alloc {size} bytes -> {a:#x}");
            CUDA_SUCCESS
        }
        None => CUDA_ERROR_OUT_OF_MEMORY,
    }
}

fn do_free(p: CUdeviceptr, what: &str, pooled: bool) -> CUresult {
    match mem::free(p, pooled) {
        Ok(_) => CUDA_SUCCESS,
        Err(e) => {
            eprintln!("voxide-cuda-emu: {what}: {e}");
            CUDA_ERROR_INVALID_VALUE
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuMemAlloc_v2(p: *mut CUdeviceptr, size: usize) -> CUresult {
    need!(need_ctx());
    do_alloc(p, size, false)
}

#[no_mangle]
pub unsafe extern "C" fn cuMemAllocAsync(
    p: *mut CUdeviceptr,
    size: usize,
    s: CUstream,
) -> CUresult {
    need!(need_ctx());
    {
        let mut d = dev();
        need!(d.legacy_use(s));
        let st = match d.stream(s) {
            Ok(st) => st,
            Err(e) => return e,
        };
        if let Some(c) = st.capture.as_mut() {
            if c.invalid {
                return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
            }
            // An allocation node: the memory belongs to the graph, fresh on
            // every replay (it stays allocated: graphs here never free it).
            let r = do_alloc(p, size, false);
            if r == CUDA_SUCCESS {
                c.ops.push(Op::Alloc { ptr: *p, n: size });
            }
            return r;
        }
    }
    do_alloc(p, size, true)
}

#[no_mangle]
pub extern "C" fn cuMemFree_v2(p: CUdeviceptr) -> CUresult {
    need!(need_ctx());
    need!(dev().unsafe_call("cuMemFree"));
    do_free(p, "cuMemFree", false)
}

#[no_mangle]
pub extern "C" fn cuMemFreeAsync(p: CUdeviceptr, s: CUstream) -> CUresult {
    need!(need_ctx());
    {
        let mut d = dev();
        need!(d.legacy_use(s));
        let st = match d.stream(s) {
            Ok(st) => st,
            Err(e) => return e,
        };
        if let Some(c) = st.capture.as_mut() {
            // Freeing memory the graph did not allocate, inside a graph: refused.
            c.invalid = true;
            eprintln!(
                "voxide-cuda-emu: cuMemFreeAsync({p:#x}) while the stream captures: CUDA_ERROR_INVALID_VALUE, capture invalidated"
            );
            return CUDA_ERROR_INVALID_VALUE;
        }
    }
    do_free(p, "cuMemFreeAsync", true)
}

#[no_mangle]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    need!(need_ctx());
    if free.is_null() || total.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *total = mem::total();
    *free = mem::total().saturating_sub(mem::used());
    CUDA_SUCCESS
}

#[no_mangle]
pub extern "C" fn cuMemsetD8Async(dst: CUdeviceptr, v: u8, n: usize, s: CUstream) -> CUresult {
    need!(need_ctx());
    submit(s, Op::Memset { dst, value: v, n })
}

#[no_mangle]
pub extern "C" fn cuMemsetD8_v2(dst: CUdeviceptr, v: u8, n: usize) -> CUresult {
    need!(need_ctx());
    need!(dev().unsafe_call("cuMemsetD8"));
    submit(std::ptr::null_mut(), Op::Memset { dst, value: v, n })
}

#[no_mangle]
pub extern "C" fn cuMemcpyDtoDAsync_v2(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    n: usize,
    s: CUstream,
) -> CUresult {
    need!(need_ctx());
    submit(s, Op::Copy { dst, src, n })
}

unsafe fn htod(dst: CUdeviceptr, src: *const c_void, n: usize, what: &str) -> CUresult {
    if n == 0 {
        return CUDA_SUCCESS;
    }
    if src.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if let Err(e) = mem::check_range(dst, n) {
        mem::bad_pointer(what, &format!("destination: {e}"));
    }
    std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, n);
    CUDA_SUCCESS
}

unsafe fn dtoh(dst: *mut c_void, src: CUdeviceptr, n: usize, what: &str) -> CUresult {
    if n == 0 {
        return CUDA_SUCCESS;
    }
    if dst.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if let Err(e) = mem::check_range(src, n) {
        mem::bad_pointer(what, &format!("source: {e}"));
    }
    std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, n);
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    n: usize,
    s: CUstream,
) -> CUresult {
    need!(need_ctx());
    need!(host_copy_allowed(s));
    htod(dst, src, n, "cuMemcpyHtoDAsync")
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: CUdeviceptr,
    n: usize,
    s: CUstream,
) -> CUresult {
    need!(need_ctx());
    need!(host_copy_allowed(s));
    dtoh(dst, src, n, "cuMemcpyDtoHAsync")
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    n: usize,
) -> CUresult {
    need!(need_ctx());
    need!(dev().unsafe_call("cuMemcpyHtoD"));
    need!(host_copy_allowed(std::ptr::null_mut()));
    htod(dst, src, n, "cuMemcpyHtoD")
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, n: usize) -> CUresult {
    need!(need_ctx());
    need!(dev().unsafe_call("cuMemcpyDtoH"));
    need!(host_copy_allowed(std::ptr::null_mut()));
    dtoh(dst, src, n, "cuMemcpyDtoH")
}

// ---- streams and capture -----------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(s: *mut CUstream, flags: c_uint) -> CUresult {
    need!(need_ctx());
    if s.is_null() || flags > 1 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let mut d = dev();
    d.next += 1;
    let h = 0x5000_0000usize + 0x40 * d.next;
    d.streams.insert(
        h,
        StreamState {
            flags,
            capture: None,
        },
    );
    *s = h as CUstream;
    trace!("cuStreamCreate -> {h:#x}");
    CUDA_SUCCESS
}

#[no_mangle]
pub extern "C" fn cuStreamDestroy_v2(s: CUstream) -> CUresult {
    need!(need_ctx());
    let mut d = dev();
    if legacy(s) || per_thread(s) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    match d.streams.remove(&(s as usize)) {
        Some(st) if st.capture.is_some() => {
            // The real driver refuses to destroy a capturing stream's capture silently.
            d.streams.insert(s as usize, st);
            CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
        }
        Some(_) => CUDA_SUCCESS,
        None => CUDA_ERROR_INVALID_HANDLE,
    }
}

#[no_mangle]
pub extern "C" fn cuStreamSynchronize(s: CUstream) -> CUresult {
    need!(need_ctx());
    let mut d = dev();
    need!(d.legacy_use(s));
    let st = match d.stream(s) {
        Ok(st) => st,
        Err(e) => return e,
    };
    if let Some(c) = st.capture.as_mut() {
        c.invalid = true;
        trace!("cuStreamSynchronize on a capturing stream: invalidated");
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    CUDA_SUCCESS
}

#[no_mangle]
pub extern "C" fn cuStreamBeginCapture_v2(s: CUstream, mode: c_int) -> CUresult {
    need!(need_ctx());
    if !(0..=2).contains(&mode) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if legacy(s) {
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    let mut d = dev();
    let st = match d.stream(s) {
        Ok(st) => st,
        Err(e) => return e,
    };
    if st.capture.is_some() {
        return CUDA_ERROR_ILLEGAL_STATE;
    }
    st.capture = Some(Capture {
        mode,
        thread: std::thread::current().id(),
        ops: Vec::new(),
        invalid: false,
    });
    trace!("capture begins on {:#x} (mode {mode})", s as usize);
    CUDA_SUCCESS
}

/// A captured graph: the ops in stream order.
pub struct Graph {
    ops: Vec<Op>,
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamEndCapture(s: CUstream, g: *mut CUgraph) -> CUresult {
    need!(need_ctx());
    if g.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let mut d = dev();
    let st = match d.stream(s) {
        Ok(st) => st,
        Err(e) => return e,
    };
    let Some(c) = st.capture.as_ref() else {
        return CUDA_ERROR_ILLEGAL_STATE;
    };
    if c.mode != MODE_RELAXED && c.thread != std::thread::current().id() {
        return CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD;
    }
    let c = st.capture.take().expect("capture");
    if c.invalid {
        *g = std::ptr::null_mut();
        trace!("capture ends invalidated");
        return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    }
    trace!("capture ends: {} ops", c.ops.len());
    *g = Box::into_raw(Box::new(Graph { ops: c.ops })) as CUgraph;
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamIsCapturing(s: CUstream, status: *mut c_int) -> CUresult {
    need!(need_ctx());
    if status.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let mut d = dev();
    let st = match d.stream(s) {
        Ok(st) => st,
        Err(e) => return e,
    };
    *status = match &st.capture {
        None => 0,
        Some(c) if c.invalid => 2,
        Some(_) => 1,
    };
    CUDA_SUCCESS
}

// ---- graphs ------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cuGraphInstantiateWithFlags(
    e: *mut CUgraphExec,
    g: CUgraph,
    _flags: u64,
) -> CUresult {
    need!(need_ctx());
    if e.is_null() || g.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if fault::inject(Kind::Graph) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    let graph = &*(g as *const Graph);
    *e = Box::into_raw(Box::new(Graph {
        ops: graph.ops.clone(),
    })) as CUgraphExec;
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuGraphLaunch(e: CUgraphExec, s: CUstream) -> CUresult {
    need!(need_ctx());
    if e.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let exec = &*(e as *const Graph);
    for op in &exec.ops {
        need!(submit(s, op.clone()));
    }
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuGraphExecDestroy(e: CUgraphExec) -> CUresult {
    if e.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    drop(Box::from_raw(e as *mut Graph));
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuGraphDestroy(g: CUgraph) -> CUresult {
    if g.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    drop(Box::from_raw(g as *mut Graph));
    CUDA_SUCCESS
}

// ---- modules and launches ----------------------------------------------------

struct ModHandle {
    module: &'static Module,
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadData(m: *mut CUmodule, image: *const c_void) -> CUresult {
    need!(need_ctx());
    if m.is_null() || image.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let text = CStr::from_ptr(image as *const c_char).to_string_lossy();
    let Some(path) = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(HOST_TAG))
        .map(|p| p.trim().to_string())
    else {
        eprintln!(
            "voxide-cuda-emu: cuModuleLoadData: the image did not come from the emulator's NVRTC (no host module named in it); only PTX compiled through it can run here"
        );
        return CUDA_ERROR_INVALID_IMAGE;
    };
    let mut d = dev();
    let module = match d.modules.get(&path) {
        Some(m) => *m,
        None => match Module::load(&path) {
            Ok(mo) => {
                let leaked: &'static Module = Box::leak(Box::new(mo));
                d.modules.insert(path.clone(), leaked);
                leaked
            }
            Err(e) => {
                eprintln!("voxide-cuda-emu: cuModuleLoadData: {e}");
                return CUDA_ERROR_INVALID_IMAGE;
            }
        },
    };
    *m = Box::into_raw(Box::new(ModHandle { module })) as CUmodule;
    CUDA_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleGetFunction(
    f: *mut CUfunction,
    m: CUmodule,
    name: *const c_char,
) -> CUresult {
    need!(need_ctx());
    if f.is_null() || m.is_null() || name.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    let h = &*(m as *const ModHandle);
    let n = CStr::from_ptr(name).to_string_lossy();
    match h.module.functions.get(n.as_ref()) {
        Some(func) => {
            *f = &**func as *const exec::Function as CUfunction;
            CUDA_SUCCESS
        }
        None => CUDA_ERROR_NOT_FOUND,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleUnload(m: CUmodule) -> CUresult {
    if m.is_null() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    // The host object stays loaded: graphs may still name its kernels.
    drop(Box::from_raw(m as *mut ModHandle));
    CUDA_SUCCESS
}

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cuLaunchKernel(
    f: CUfunction,
    gx: c_uint,
    gy: c_uint,
    gz: c_uint,
    bx: c_uint,
    by: c_uint,
    bz: c_uint,
    shared: c_uint,
    s: CUstream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    need!(need_ctx());
    if f.is_null() {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    let func = &*(f as *const exec::Function);
    trace!(
        "launch {} <<<({gx},{gy},{gz}), ({bx},{by},{bz}), {shared}>>>",
        func.name
    );
    if !extra.is_null() {
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    let threads = bx as u64 * by as u64 * bz as u64;
    if gx == 0 || gy == 0 || gz == 0 || threads == 0 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if threads > 1024 || bx > 1024 || by > 1024 || bz > 64 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if gx > i32::MAX as u32 || gy > 65535 || gz > 65535 || shared > 48 << 10 {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if params.is_null() && !func.sizes.is_empty() {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if fault::inject(Kind::Launch) {
        return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
    }
    let args = exec::copy_args(func, params);
    submit(
        s,
        Op::Kernel {
            f: func,
            grid: [gx, gy, gz],
            block: [bx, by, bz],
            shared,
            args,
        },
    )
}
