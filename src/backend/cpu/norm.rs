//! LayerNorm over the channels of every column, with the residual add
//! before it or the erf GELU after it; columns split over the threads.

use super::math::gelu;
use super::par::{rows, rows_mut, SendPtr};
use crate::backend::Mat;

/// [`layer_norm`] with the columns split over the pool's threads when the
/// op is big (each column is normalised on its own: the same result bit for
/// bit whatever the split).
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm_par(
    threads: usize,
    x: &mut [f32],
    xm: Mat,
    r: Option<(&[f32], Mat)>,
    gamma: &[f32],
    beta: &[f32],
    gelu_after: bool,
) {
    const BLOCK: usize = 64;
    let blocks = xm.cols().div_ceil(BLOCK);
    if threads <= 1 || blocks < 2 || xm.rows() * xm.cols() < 1 << 15 {
        layer_norm(x, xm, r, gamma, beta, gelu_after);
        return;
    }
    assert!(xm.end() <= x.len(), "layer_norm view out of bounds");
    let (xp, xlen) = (SendPtr(x.as_mut_ptr()), x.len());
    let block = |b: usize| {
        let (c0, c1) = (b * BLOCK, ((b + 1) * BLOCK).min(xm.cols()));
        // SAFETY: each block reads and writes only columns c0..c1 of the
        // rows of xm, which no other block touches; bounds asserted above.
        let x = unsafe { std::slice::from_raw_parts_mut(xp.get(), xlen) };
        let r = r.map(|(r, rm)| (r, rm.sub_cols(c0, c1)));
        layer_norm(x, xm.sub_cols(c0, c1), r, gamma, beta, gelu_after);
    };
    use rayon::prelude::*;
    (0..blocks).into_par_iter().for_each(block);
}

/// `x = LN(x [+ r])` over rows for each column; optional GELU after.
/// AVX-512 code where the CPU has it (the same sums in the same order: the
/// vectors run across columns).
pub(crate) fn layer_norm(
    x: &mut [f32],
    xm: Mat,
    r: Option<(&[f32], Mat)>,
    gamma: &[f32],
    beta: &[f32],
    gelu_after: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if super::x86::has_avx512() {
        // SAFETY: the CPU has AVX-512F/BW (checked just above).
        unsafe { layer_norm_avx512(x, xm, r, gamma, beta, gelu_after) };
        return;
    }
    layer_norm_body(x, xm, r, gamma, beta, gelu_after);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn layer_norm_avx512(
    x: &mut [f32],
    xm: Mat,
    r: Option<(&[f32], Mat)>,
    gamma: &[f32],
    beta: &[f32],
    gelu_after: bool,
) {
    layer_norm_body(x, xm, r, gamma, beta, gelu_after);
}

#[inline(always)]
fn layer_norm_body(
    x: &mut [f32],
    xm: Mat,
    r: Option<(&[f32], Mat)>,
    gamma: &[f32],
    beta: &[f32],
    gelu_after: bool,
) {
    let t = xm.cols();
    let c = xm.rows() as f32;
    if let Some((r, rm)) = r {
        for (xr, rr) in rows_mut(x, xm).zip(rows(r, rm)) {
            for (a, b) in xr.iter_mut().zip(rr) {
                *a += b;
            }
        }
    }
    let mut mean = vec![0.0f32; t];
    for xr in rows(x, xm) {
        for (m, v) in mean.iter_mut().zip(xr) {
            *m += v;
        }
    }
    for m in &mut mean {
        *m /= c;
    }
    let mut var = vec![0.0f32; t];
    for xr in rows(x, xm) {
        for ((s, v), m) in var.iter_mut().zip(xr).zip(&mean) {
            let d = v - m;
            *s += d * d;
        }
    }
    for s in &mut var {
        *s = 1.0 / (*s / c + 1e-5).sqrt();
    }
    for (ch, xr) in rows_mut(x, xm).enumerate() {
        let (g, b) = (gamma[ch], beta[ch]);
        for ((v, m), inv) in xr.iter_mut().zip(&mean).zip(&var) {
            let n = (*v - m) * inv * g + b;
            *v = if gelu_after { gelu(n) } else { n };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LayerNorm (+ residual, + GELU) split over threads by columns equals
    /// the one-thread result bit for bit, on a strided view.
    #[test]
    fn layer_norm_par_equals_serial() {
        let (rows, cols, ld) = (192, 301, 320);
        let mut seed = 11u32;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32 - 0.5
        };
        let x: Vec<f32> = (0..rows * ld + 7).map(|_| rnd() * 3.0).collect();
        let r: Vec<f32> = (0..rows * ld + 7).map(|_| rnd()).collect();
        let gamma: Vec<f32> = (0..rows).map(|_| 1.0 + rnd()).collect();
        let beta: Vec<f32> = (0..rows).map(|_| rnd()).collect();
        let xm = Mat::strided(5, rows, cols, ld).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        for (res, gelu_after) in [(false, true), (true, false), (true, true)] {
            let rr = res.then_some((&r[..], xm));
            let mut one = x.clone();
            layer_norm(&mut one, xm, rr, &gamma, &beta, gelu_after);
            let mut two = x.clone();
            pool.install(|| layer_norm_par(2, &mut two, xm, rr, &gamma, &beta, gelu_after));
            assert!(one
                .iter()
                .zip(&two)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_ne!(one, x, "the op changed nothing");
        }
    }
}
