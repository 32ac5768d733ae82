//! The GEMM behind `cublasGemmEx`: cuBLAS's column-major semantics on
//! validated operands (checked against live device memory first), TF32
//! rounding of the inputs when asked, `beta = 0` never reading C. `blas`
//! validates a call and queues it as an `exec::Op`; running the op comes
//! here, below both.

use crate::mem::{self, Activity};

/// One GEMM, as `cublasGemmEx` was called (validated).
#[derive(Clone, Debug)]
pub struct Gemm {
    pub ta: bool,
    pub tb: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub a: u64,
    pub lda: usize,
    pub b: u64,
    pub ldb: usize,
    pub beta: f32,
    pub c: u64,
    pub ldc: usize,
    pub tf32: bool,
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
