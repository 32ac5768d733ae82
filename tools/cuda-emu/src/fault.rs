//! Failures injected by environment variable: `VOXIDE_EMU_FAIL_ALLOC=N` fails
//! the Nth device allocation (`CUDA_ERROR_OUT_OF_MEMORY`), `..._LAUNCH=N` the
//! Nth kernel launch (`CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES`), `..._GEMM=N` the
//! Nth `cublasGemmEx` (`CUBLAS_STATUS_EXECUTION_FAILED`), `..._GRAPH=N` the Nth
//! graph instantiation (`CUDA_ERROR_OUT_OF_MEMORY`). Counting starts at 1, over
//! the whole process; each fails once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

#[derive(Clone, Copy)]
pub enum Kind {
    Alloc,
    Launch,
    Gemm,
    Graph,
}

const VARS: [&str; 4] = [
    "VOXIDE_EMU_FAIL_ALLOC",
    "VOXIDE_EMU_FAIL_LAUNCH",
    "VOXIDE_EMU_FAIL_GEMM",
    "VOXIDE_EMU_FAIL_GRAPH",
];
const WHAT: [&str; 4] = ["allocation", "launch", "GEMM", "graph instantiation"];

static COUNT: [AtomicU64; 4] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

fn targets() -> &'static [Option<u64>; 4] {
    static T: OnceLock<[Option<u64>; 4]> = OnceLock::new();
    T.get_or_init(|| {
        VARS.map(|v| {
            let s = std::env::var(v).ok()?;
            match s.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => crate::report::fatal(&format!("{v}={s:?}: expected a count from 1")),
            }
        })
    })
}

/// Count one call of `kind`; whether it must fail.
pub fn inject(kind: Kind) -> bool {
    let i = kind as usize;
    let n = COUNT[i].fetch_add(1, Ordering::Relaxed) + 1;
    if targets()[i] == Some(n) {
        eprintln!(
            "voxide-cuda-emu: injected failure: {} #{n} ({})",
            WHAT[i], VARS[i]
        );
        true
    } else {
        false
    }
}

/// The emulator's own entry point (not CUDA's): the calls counted so far,
/// `[allocations, launches, GEMMs, graph instantiations]`, so a test can aim
/// an injected failure at a given request.
///
/// # Safety
/// `out` points to 4 writable `u64`.
#[no_mangle]
pub unsafe extern "C" fn voxide_emu_counts(out: *mut u64) {
    if out.is_null() {
        return;
    }
    for (i, c) in COUNT.iter().enumerate() {
        *out.add(i) = c.load(Ordering::Relaxed);
    }
}
