//! Scalar math of the CPU ops without libm calls, branch-free so the loops
//! over it vectorize: `exp`, `tanh`, `sigmoid`, `erf` and the erf GELU.

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
