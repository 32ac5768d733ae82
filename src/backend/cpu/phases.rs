//! Transposed convs (kernel `2u`, stride `u`, padding `u/2`) as one conv of
//! their `u` phases stacked (two taps each) followed by an interleave:
//! shared by the portable and the direct kernels, which differ only in how
//! they run the stacked conv.

#![allow(unsafe_op_in_unsafe_fn)]

use super::par::SendPtr;
use crate::backend::Mat;

thread_local! {
    /// The stacked phases' output, reused call to call on each thread.
    static PHASES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `w` (`[cin, cout, 2u]`, row-major) as the stacked conv
/// `[u·cout, cin, 2]` and its bias repeated for every phase. Phase `r`:
/// `y[:, t·u + r − u/2] = b + W[:, :, r]·x[t] + W[:, :, r + u]·x[t − 1]`.
pub(crate) fn stack(
    w: &[f32],
    bias: &[f32],
    cin: usize,
    cout: usize,
    stride: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (u, k) = (stride, 2 * stride);
    let mut st = vec![0.0f32; u * cout * cin * 2];
    for r in 0..u {
        for o in 0..cout {
            for i in 0..cin {
                let row = ((r * cout + o) * cin + i) * 2;
                st[row] = w[(i * cout + o) * k + r + u];
                st[row + 1] = w[(i * cout + o) * k + r];
            }
        }
    }
    (st, (0..u).flat_map(|_| bias.iter().copied()).collect())
}

/// The transposed conv of `l` input columns into `ym` (`ym.cols() = u·l`,
/// `c` output rows): `stacked(out, m)` runs the stacked conv (one tap of
/// left padding) over `l + 1` columns into the dense view `m`
/// (`[u·c, l + 1]`) of `out`; then each output row is interleaved from its
/// phases.
///
/// # Safety
/// `y` holds `ym` with `ym.rows() >= c`, `ym.cols() == u·l`; `stacked`
/// writes only inside `m`.
pub(crate) unsafe fn transpose(
    threads: usize,
    u: usize,
    c: usize,
    l: usize,
    y: *mut f32,
    ym: Mat,
    stacked: impl FnOnce(*mut f32, Mat),
) {
    if l == 0 {
        return;
    }
    let half = u / 2;
    let cols = l + 1;
    let mut ph = PHASES.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if ph.len() < u * c * cols {
        ph.resize(u * c * cols, 0.0);
    }
    stacked(ph.as_mut_ptr(), Mat::new(u * c, cols));
    // y[o, n] = phase (n + u/2) % u, column (n + u/2) / u.
    let yp = SendPtr(y);
    let src = SendPtr(ph.as_mut_ptr());
    let row = |o: usize| {
        let yr = yp.get().add(ym.off() + o * ym.ld());
        let src = src.get().cast_const();
        let n_end = (u * l) as isize;
        for t in 0..cols {
            let base = (t * u) as isize - half as isize;
            for r in 0..u {
                let n = base + r as isize;
                if n >= 0 && n < n_end {
                    *yr.offset(n) = *src.add((r * c + o) * cols + t);
                }
            }
        }
    };
    if threads > 1 && c * u * l >= 1 << 15 {
        use rayon::prelude::*;
        (0..c).into_par_iter().for_each(row);
    } else {
        (0..c).for_each(row);
    }
    PHASES.with(|p| *p.borrow_mut() = ph);
}
