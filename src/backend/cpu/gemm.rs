//! Thin safe-ish wrapper over the `gemm` crate for strided f32 matrices.

use gemm::Parallelism;

/// A strided matrix operand: pointer offset into a slice plus row/col strides.
#[derive(Clone, Copy)]
pub(crate) struct Operand {
    pub off: usize,
    pub rs: isize,
    pub cs: isize,
}

fn max_index(op: Operand, rows: usize, cols: usize) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    let r = (rows - 1) as isize * op.rs;
    let c = (cols - 1) as isize * op.cs;
    debug_assert!(r >= 0 && c >= 0);
    op.off + (r + c) as usize
}

/// `dst[m×n] = (accumulate ? dst : 0) + beta · lhs[m×k] · rhs[k×n]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    d: Operand,
    accumulate: bool,
    lhs: &[f32],
    l: Operand,
    rhs: &[f32],
    r: Operand,
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(max_index(d, m, n) < dst.len(), "gemm dst out of bounds");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[d.off + (i as isize * d.rs + j as isize * d.cs) as usize] = 0.0;
                }
            }
        }
        return;
    }
    assert!(max_index(l, m, k) < lhs.len(), "gemm lhs out of bounds");
    assert!(max_index(r, k, n) < rhs.len(), "gemm rhs out of bounds");
    let par = if threads > 1 && m * n * k >= 32 * 1024 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: all indices touched are within the slices (checked above); dst
    // does not alias lhs/rhs because it is borrowed mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(d.off),
            d.cs,
            d.rs,
            accumulate,
            lhs.as_ptr().add(l.off),
            l.cs,
            l.rs,
            rhs.as_ptr().add(r.off),
            r.cs,
            r.rs,
            1.0,
            beta,
            false,
            false,
            false,
            par,
        );
    }
}
