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
use crate::exec::{Gemm, Op};
use crate::fault::{self, Kind};
use crate::mem::{self, Activity};
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

/// Bytes spanned by a column-major `rows × cols` operand with leading dimension `ld`.
fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        4 * ((cols - 1) * ld + rows)
    }
}

/// Round to TF32: 10 mantissa bits, to nearest, ties away from zero.
pub fn tf32(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    f32::from_bits((x.to_bits() + 0x1000) & !0x1FFF)
}

/// Run a validated GEMM (its operands are checked against live memory first).
pub fn run(g: &Gemm) {
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return;
    }
    let (ar, ac) = if g.ta { (k, m) } else { (m, k) };
    let (br, bc) = if g.tb { (n, k) } else { (k, n) };
    for (name, p, bytes) in [
        ("A", g.a, span(ar, ac, g.lda)),
        ("B", g.b, span(br, bc, g.ldb)),
        ("C", g.c, span(m, n, g.ldc)),
    ] {
        if let Err(e) = mem::check_range(p, bytes) {
            mem::bad_pointer("cublasGemmEx", &format!("argument {name}: {e}"));
        }
    }
    mem::set_activity(Some(Activity {
        what: "cublasGemmEx".into(),
        args: vec![("A".into(), g.a), ("B".into(), g.b), ("C".into(), g.c)],
    }));
    let c = g.c as *mut f32;
    let at = |i: usize, j: usize| i + j * g.ldc;
    if k == 0 || g.alpha == 0.0 {
        // C = beta·C; beta = 0 writes zeros without reading C.
        for j in 0..n {
            for i in 0..m {
                // SAFETY: inside C (checked above).
                unsafe {
                    let p = c.add(at(i, j));
                    *p = if g.beta == 0.0 { 0.0 } else { g.beta * *p };
                }
            }
        }
        mem::set_activity(None);
        return;
    }
    // op(A) is m × k, op(B) is k × n: strides (row, column) in elements.
    let (mut a, mut a_rs, mut a_cs) = if g.ta {
        (g.a as *const f32, g.lda as isize, 1)
    } else {
        (g.a as *const f32, 1, g.lda as isize)
    };
    let (mut b, mut b_rs, mut b_cs) = if g.tb {
        (g.b as *const f32, g.ldb as isize, 1)
    } else {
        (g.b as *const f32, 1, g.ldb as isize)
    };
    let (ra, rb);
    if g.tf32 {
        // Dense TF32 copies of op(A) (m × k, column-major) and op(B) (k × n).
        // SAFETY: every element read lies inside the checked operands.
        unsafe {
            ra = (0..k)
                .flat_map(|p| (0..m).map(move |i| (i, p)))
                .map(|(i, p)| tf32(*a.offset(i as isize * a_rs + p as isize * a_cs)))
                .collect::<Vec<f32>>();
            rb = (0..n)
                .flat_map(|j| (0..k).map(move |p| (p, j)))
                .map(|(p, j)| tf32(*b.offset(p as isize * b_rs + j as isize * b_cs)))
                .collect::<Vec<f32>>();
        }
        (a, a_rs, a_cs) = (ra.as_ptr(), 1, m as isize);
        (b, b_rs, b_cs) = (rb.as_ptr(), 1, k as isize);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: dst/lhs/rhs lie inside the checked buffers with these strides;
    // gemm computes dst = a·dst + b·lhs·rhs, reading dst only when asked.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            g.ldc as isize,
            1,
            g.beta != 0.0,
            a,
            a_cs,
            a_rs,
            b,
            b_cs,
            b_rs,
            g.beta,
            g.alpha,
            false,
            false,
            false,
            if threads > 1 && m * n * k > 1 << 18 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        );
    }
    mem::set_activity(None);
}

#[cfg(test)]
mod tests {
    use super::tf32;

    #[test]
    fn tf32_rounds_to_ten_mantissa_bits() {
        assert_eq!(tf32(1.0), 1.0);
        // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: away from zero.
        assert_eq!(tf32(1.0 + 2f32.powi(-11)), 1.0 + 2f32.powi(-10));
        assert_eq!(tf32(1.0 + 2f32.powi(-12)), 1.0);
        assert_eq!(tf32(-1.0 - 2f32.powi(-11)), -1.0 - 2f32.powi(-10));
        assert!(tf32(f32::NAN).is_nan());
    }
}
