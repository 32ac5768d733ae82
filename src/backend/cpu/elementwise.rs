//! Element-wise and normalisation ops, and the rational-quadratic spline.

use crate::backend::Mat;

pub(crate) fn rows_mut(y: &mut [f32], m: Mat) -> impl Iterator<Item = &mut [f32]> {
    let (off, ld, cols) = (m.off(), m.ld().max(1), m.cols());
    y[off..m.end().max(off)]
        .chunks_mut(ld)
        .take(m.rows())
        .map(move |r| &mut r[..cols])
}

pub(crate) fn rows(x: &[f32], m: Mat) -> impl Iterator<Item = &[f32]> {
    let (off, ld, cols) = (m.off(), m.ld().max(1), m.cols());
    x[off..m.end().max(off)]
        .chunks(ld)
        .take(m.rows())
        .map(move |r| &r[..cols])
}

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
    let (xp, xlen) = (super::conv::SendPtr(x.as_mut_ptr()), x.len());
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
    if super::direct::has_avx512() {
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

/// GELU `½x(1 + erf(x/√2))` with [`erf_fast`] (absolute error of erf < 1e-6).
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf in f32 (Abramowitz & Stegun 7.1.26: |error| ≤ 1.5e-7 in exact arithmetic, < 1e-6 in f32).
#[inline(always)]
pub(crate) fn erf_fast(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    // Branch-free (fast_exp, copysign) so LayerNorm+GELU loops vectorize.
    let r = 1.0 - poly * fast_exp(-a * a);
    r.copysign(x)
}

/// `e^x` without a libm call: `2^n · p(r)` with `r = x − n·ln 2`, a degree-6
/// polynomial; relative error below 3e-7 over the f32 range, branch-free so
/// loops over it vectorize (plain multiply-adds: `mul_add` is a libm call
/// on the baseline x86-64 target).
#[inline(always)]
pub(crate) fn fast_exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round x·log2(e) to an integer with the 1.5·2^23 shifter.
    let shifter = 12_582_912.0f32;
    let shifted = x * std::f32::consts::LOG2_E + shifter;
    let n = shifted - shifter;
    // n as an integer, read from the shifted value's low mantissa bits (an
    // `as i32` cast is a scalar, saturating conversion per lane).
    let k = (shifted.to_bits() as i32).wrapping_sub(0x4b40_0000);
    let r = n * -0.693_145_75 + x;
    let r = n * -1.428_606_8e-6 + r;
    let p = r * (1.0 / 720.0) + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    p * f32::from_bits(((k + 127) << 23) as u32)
}

/// `tanh(x)` as `(1 − e)/(1 + e)` with `e = e^{−2|x|}`: absolute error below 3e-7.
#[inline(always)]
pub(crate) fn fast_tanh(x: f32) -> f32 {
    let e = fast_exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// `1 / (1 + e^{−x})`.
#[inline(always)]
pub(crate) fn fast_sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

#[cfg(test)]
/// Reference erf in f64 (tests): to ~1e-12 relative: series for |x| < 2.5, continued fraction for erfc beyond.
pub(crate) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let ax = x.abs();
    let r = if ax < 2.5 {
        // erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
        let x2 = ax * ax;
        let mut term = ax;
        let mut sum = ax;
        // At most ~45 terms are needed for |x| < 2.5; the bound also ends
        // the loop for x = 0 (all terms 0) and NaN.
        for n in 1..64 {
            let n = n as f64;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() <= 1e-17 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if ax < 27.0 {
        // erfc(x) = exp(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
        let mut f = ax;
        for k in (1..60).rev() {
            f = ax + (k as f64 * 0.5) / f;
        }
        1.0 - (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt())
    } else {
        1.0
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

fn softplus(v: f32) -> f32 {
    if v > 20.0 {
        v
    } else {
        v.exp().ln_1p()
    }
}

fn softmax_into(u: impl Iterator<Item = f32> + Clone, out: &mut [f32]) {
    let mx = u.clone().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for (o, v) in out.iter_mut().zip(u) {
        *o = (v - mx).exp();
        s += *o;
    }
    for o in out.iter_mut() {
        *o /= s;
    }
}

/// Knots `[-B, ..., B]` from unnormalised bin sizes (min bin size 1e-3).
fn knots(u: impl Iterator<Item = f32> + Clone, k: usize, tail: f32, out: &mut [f32]) {
    const MIN: f32 = 1e-3;
    let mut p = [0.0f32; 64];
    softmax_into(u, &mut p[..k]);
    out[0] = -tail;
    let mut cum = 0.0f32;
    for i in 0..k {
        cum += MIN + (1.0 - MIN * k as f32) * p[i];
        out[i + 1] = 2.0 * tail * cum - tail;
    }
    out[k] = tail;
}

/// Inverse rational-quadratic spline of one value (see spec 4.4).
pub(crate) fn rqs_inverse(y: f32, theta: &[f32], k: usize, wh_scale: f32) -> f32 {
    const TAIL: f32 = 5.0;
    const MIN_D: f32 = 1e-3;
    if !(-TAIL..=TAIL).contains(&y) {
        return y;
    }
    let mut xk = [0.0f32; 65];
    let mut yk = [0.0f32; 65];
    knots(theta[0..k].iter().map(|v| v / wh_scale), k, TAIL, &mut xk);
    knots(
        theta[k..2 * k].iter().map(|v| v / wh_scale),
        k,
        TAIL,
        &mut yk,
    );
    // Boundary derivatives: δ + softplus(ln(e^{1−δ} − 1)) = 1.
    let kappa = ((1.0f32 - MIN_D).exp() - 1.0).ln();
    let deriv = |i: usize| -> f32 {
        if i == 0 || i == k {
            MIN_D + softplus(kappa)
        } else {
            MIN_D + softplus(theta[2 * k + i - 1])
        }
    };
    // Bin search with the last knot nudged by 1e-6.
    let mut bin = 0usize;
    for (j, &knot) in yk.iter().enumerate().take(k + 1) {
        let kn = if j == k { knot + 1e-6 } else { knot };
        if y >= kn {
            bin = j;
        }
    }
    let bin = bin.min(k - 1);
    let (x0, w) = (xk[bin], xk[bin + 1] - xk[bin]);
    let (y0, h) = (yk[bin], yk[bin + 1] - yk[bin]);
    let (d0, d1) = (deriv(bin), deriv(bin + 1));
    let s = h / w;
    let dy = y - y0;
    let ss = d0 + d1 - 2.0 * s;
    let a = dy * ss + h * (s - d0);
    let b = h * d0 - dy * ss;
    let c = -s * dy;
    let disc = (b * b - 4.0 * a * c).max(0.0);
    let xi = (2.0 * c) / (-b - disc.sqrt());
    xi * w + x0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exponent of `fast_exp` read from the shifted value's bits is the
    /// integer the plain `as i32` cast of the rounded value gave (so the same
    /// results bit for bit), over the whole clamped range.
    #[test]
    fn fast_exp_exponent_from_bits_equals_cast() {
        let shifter = 12_582_912.0f32;
        let mut x = -86.0f32;
        while x <= 88.0 {
            let shifted = x * std::f32::consts::LOG2_E + shifter;
            let n = (shifted - shifter) as i32;
            let from_bits = (shifted.to_bits() as i32).wrapping_sub(0x4b40_0000);
            assert_eq!(from_bits, n, "x = {x}");
            // fast_exp(x) = p · 2^n with p = e^r, |r| <= ln2/2: a wrong
            // exponent would put it off by a power of two.
            let p = f64::from(fast_exp(x)) * 2f64.powi(-n);
            assert!((0.70..=1.42).contains(&p), "x = {x}: mantissa part {p}");
            x += 0.000_37;
        }
    }

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

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (1e-30, 1.128_379_167_095_512_6e-30),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-1.5, -0.966_105_146_475_310_7),
        ] {
            assert!((erf(x) - want).abs() < 1e-12, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn fast_erf_is_within_its_bound() {
        let mut worst = 0.0f64;
        for i in -60000..=60000 {
            let x = i as f64 * 1e-4;
            worst = worst.max((erf_fast(x as f32) as f64 - erf(x)).abs());
        }
        assert!(worst < 1e-6, "max |erf_fast - erf| = {worst}");
    }

    #[test]
    fn erf_terminates_on_zero_and_nan() {
        assert_eq!(gelu(0.0), 0.0);
        assert!(erf(f64::NAN).is_nan());
    }

    #[test]
    fn spline_with_uniform_bins_is_identity() {
        // Equal widths and heights, all derivatives 1 -> the identity map.
        let k = 10;
        let mut theta = vec![0.0f32; 3 * k - 1];
        let d_unnorm = ((1.0f32 - 1e-3).exp() - 1.0).ln();
        for v in &mut theta[2 * k..] {
            *v = d_unnorm;
        }
        for y in [-4.9f32, -1.0, 0.0, 0.3, 2.5, 4.99] {
            let x = rqs_inverse(y, &theta, k, 1.0);
            assert!((x - y).abs() < 1e-5, "{y} -> {x}");
        }
        assert_eq!(rqs_inverse(7.0, &theta, k, 1.0), 7.0);
    }

    #[test]
    fn fast_exp_tanh_sigmoid_are_accurate() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64);
        let mut x = -90.0f32;
        while x < 90.0 {
            let e = f64::from(x).exp();
            let rel = ((f64::from(super::fast_exp(x)) - e) / e).abs();
            if x > -86.0 && x < 87.0 {
                worst.0 = worst.0.max(rel);
            }
            let th = (f64::from(super::fast_tanh(x)) - f64::from(x).tanh()).abs();
            worst.1 = worst.1.max(th);
            let sg =
                (f64::from(super::fast_sigmoid(x)) - 1.0 / (1.0 + (-f64::from(x)).exp())).abs();
            worst.2 = worst.2.max(sg);
            x += 0.001_37;
        }
        assert!(worst.0 < 3e-7, "exp relative error {}", worst.0);
        assert!(worst.1 < 4e-7, "tanh absolute error {}", worst.1);
        assert!(worst.2 < 3e-7, "sigmoid absolute error {}", worst.2);
        assert_eq!(super::fast_tanh(0.0), 0.0);
        assert!(super::fast_tanh(-1e-3) < 0.0);
    }
}
