//! The rational-quadratic spline inverse of the stochastic duration
//! predictor's flows (spec 4.4): per value ([`rqs_inverse`]) and the op over
//! a row ([`spline_inverse`]).

use crate::backend::Mat;

/// The most bins [`rqs_inverse`] takes (its knots live on the stack).
pub(crate) const MAX_BINS: usize = 64;

/// Whether the spline's knot arrays hold `bins` bins.
///
/// # Errors
/// The bin count and the limit.
pub(crate) fn bins_fit(bins: usize) -> Result<(), String> {
    if bins <= MAX_BINS {
        Ok(())
    } else {
        Err(format!(
            "{bins} spline bins; the CPU spline takes at most {MAX_BINS}"
        ))
    }
}

/// `z[t] ← RQS⁻¹(z[t]; θ[:, t])` along the one row of `zm`, `θ` with
/// `3·bins − 1` rows (the backend checked the views and `bins`).
pub(crate) fn spline_inverse(
    z: &mut [f32],
    zm: Mat,
    theta: &[f32],
    thm: Mat,
    bins: usize,
    wh_scale: f32,
) {
    let mut col = vec![0.0f32; thm.rows()];
    for t in 0..zm.cols() {
        for (r, c) in col.iter_mut().enumerate() {
            *c = theta[thm.off() + r * thm.ld() + t];
        }
        let v = &mut z[zm.off() + t];
        *v = rqs_inverse(*v, &col, bins, wh_scale);
    }
}

fn softplus(v: f32) -> f32 {
    if v > 20.0 {
        v
    } else {
        libm::log1pf(libm::expf(v))
    }
}

fn softmax_into(u: impl Iterator<Item = f32> + Clone, out: &mut [f32]) {
    let mx = u.clone().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for (o, v) in out.iter_mut().zip(u) {
        *o = libm::expf(v - mx);
        s += *o;
    }
    for o in out.iter_mut() {
        *o /= s;
    }
}

/// Knots `[-B, ..., B]` from unnormalised bin sizes (min bin size 1e-3).
fn knots(u: impl Iterator<Item = f32> + Clone, k: usize, tail: f32, out: &mut [f32]) {
    const MIN: f32 = 1e-3;
    let mut p = [0.0f32; MAX_BINS];
    softmax_into(u, &mut p[..k]);
    out[0] = -tail;
    let mut cum = 0.0f32;
    for i in 0..k {
        cum += MIN + (1.0 - MIN * k as f32) * p[i];
        out[i + 1] = 2.0 * tail * cum - tail;
    }
    out[k] = tail;
}

/// Inverse rational-quadratic spline of one value (see spec 4.4); `theta`
/// holds `3·k − 1` values, `k ≤ MAX_BINS`.
pub(crate) fn rqs_inverse(y: f32, theta: &[f32], k: usize, wh_scale: f32) -> f32 {
    const TAIL: f32 = 5.0;
    const MIN_D: f32 = 1e-3;
    if !(-TAIL..=TAIL).contains(&y) {
        return y;
    }
    let mut xk = [0.0f32; MAX_BINS + 1];
    let mut yk = [0.0f32; MAX_BINS + 1];
    knots(theta[0..k].iter().map(|v| v / wh_scale), k, TAIL, &mut xk);
    knots(
        theta[k..2 * k].iter().map(|v| v / wh_scale),
        k,
        TAIL,
        &mut yk,
    );
    // Boundary derivatives: δ + softplus(ln(e^{1−δ} − 1)) = 1.
    let kappa = libm::logf(libm::expf(1.0f32 - MIN_D) - 1.0);
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

    /// The knot arrays' limit is a named error, and the limit itself runs.
    #[test]
    fn bins_past_the_limit_are_refused() {
        assert!(bins_fit(MAX_BINS).is_ok());
        let e = bins_fit(MAX_BINS + 1).unwrap_err();
        assert!(
            e.contains("65 spline bins") && e.contains("at most 64"),
            "{e}"
        );
        let theta = vec![0.1f32; 3 * MAX_BINS - 1];
        assert!(rqs_inverse(0.5, &theta, MAX_BINS, 1.0).is_finite());
    }
}
