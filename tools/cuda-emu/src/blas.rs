//! cuBLAS: handles bound to a stream, and `cublasGemmEx` for f32 with
//! cuBLAS's column-major semantics: `C = alpha·op(A)·op(B) + beta·C`, where
//! `op` is `N` (as stored), `T` or `C` (transposed; the same for real
//! types); the argument checks cuBLAS makes (`CUBLAS_STATUS_INVALID_VALUE`
//! for negative sizes and for leading dimensions below `max(1, rows)`);
//! `beta = 0` never reads C (NaN in C does not propagate); and
//! `CUBLAS_COMPUTE_32F_FAST_TF32` rounds A and B to TF32 (10 mantissa bits,
//! round to nearest, ties away, as `cvt.rna.tf32.f32`) before multiplying
//! (products and sums stay f32). The GEMM runs on the stream like a kernel
//! (recorded when the stream captures).

use crate::cb::cublasStatus_t::{self, *};
use crate::cu::CUstream;
use crate::exec::Op;
use crate::fault::{self, Kind};
use crate::gemm::Gemm;
use crate::mem;
use std::ffi::{c_int, c_void};

struct Handle {
    stream: CUstream,
    workspace: (u64, usize),
}

#[no_mangle]
pub unsafe extern "C" fn cublasCreate_v2(h: *mut *mut c_void) -> cublasStatus_t {
    if h.is_null() {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    *h = Box::into_raw(Box::new(Handle {
        stream: std::ptr::null_mut(),
        workspace: (0, 0),
    })) as *mut c_void;
    CUBLAS_STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cublasDestroy_v2(h: *mut c_void) -> cublasStatus_t {
    if h.is_null() {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    drop(Box::from_raw(h as *mut Handle));
    CUBLAS_STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cublasSetStream_v2(h: *mut c_void, s: CUstream) -> cublasStatus_t {
    if h.is_null() {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    (*(h as *mut Handle)).stream = s;
    CUBLAS_STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cublasSetWorkspace_v2(
    h: *mut c_void,
    w: *mut c_void,
    bytes: usize,
) -> cublasStatus_t {
    if h.is_null() {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    if bytes > 0 {
        if let Err(e) = mem::check_range(w as u64, bytes) {
            mem::bad_pointer("cublasSetWorkspace", &e);
        }
    }
    (*(h as *mut Handle)).workspace = (w as u64, bytes);
    CUBLAS_STATUS_SUCCESS
}

const OP_N: c_int = 0;
const OP_T: c_int = 1;
const OP_C: c_int = 2;
const R_32F: c_int = 0;
const COMPUTE_32F: c_int = 68;
const COMPUTE_32F_PEDANTIC: c_int = 69;
const COMPUTE_32F_FAST_TF32: c_int = 77;

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cublasGemmEx(
    h: *mut c_void,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: *const c_void,
    a: *const c_void,
    atype: c_int,
    lda: c_int,
    b: *const c_void,
    btype: c_int,
    ldb: c_int,
    beta: *const c_void,
    c: *mut c_void,
    ctype: c_int,
    ldc: c_int,
    compute: c_int,
    _algo: c_int,
) -> cublasStatus_t {
    if h.is_null() {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    let handle = &*(h as *const Handle);
    let op_ok = |t: c_int| matches!(t, OP_N | OP_T | OP_C);
    if !op_ok(transa) || !op_ok(transb) || m < 0 || n < 0 || k < 0 {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    let (ta, tb) = (transa != OP_N, transb != OP_N);
    let rows_a = if ta { k } else { m };
    let rows_b = if tb { n } else { k };
    if lda < rows_a.max(1) || ldb < rows_b.max(1) || ldc < m.max(1) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if alpha.is_null() || beta.is_null() {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if atype != R_32F || btype != R_32F || ctype != R_32F {
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    let tf32 = match compute {
        COMPUTE_32F | COMPUTE_32F_PEDANTIC => false,
        COMPUTE_32F_FAST_TF32 => true,
        _ => return CUBLAS_STATUS_NOT_SUPPORTED,
    };
    if fault::inject(Kind::Gemm) {
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    let g = Gemm {
        ta,
        tb,
        m: m as usize,
        n: n as usize,
        k: k as usize,
        alpha: *(alpha as *const f32),
        a: a as u64,
        lda: lda as usize,
        b: b as u64,
        ldb: ldb as usize,
        beta: *(beta as *const f32),
        c: c as u64,
        ldc: ldc as usize,
        tf32,
    };
    crate::report::trace!("cublasGemmEx {g:?}");
    match crate::driver::submit(handle.stream, Op::Gemm(g)) {
        crate::cu::CUresult::CUDA_SUCCESS => CUBLAS_STATUS_SUCCESS,
        e => {
            eprintln!("voxide-cuda-emu: cublasGemmEx on its stream: {e:?}");
            CUBLAS_STATUS_EXECUTION_FAILED
        }
    }
}
