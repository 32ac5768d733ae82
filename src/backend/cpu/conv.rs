//! Convolutions: "same"-padded 1-D convs and polyphase transposed convs on
//! the portable kernels (`portable.rs`: register tiles, every output column
//! summed in one fixed order; AVX2 + FMA or plain Rust), depthwise convs
//! tap by tap. On x86-64 a weight packed for the direct AVX-512 / AMX
//! kernels (`x86/`) runs there.

use super::par::{rows, rows_mut};
use super::portable::{self, Panels, PanelsT};
#[cfg(target_arch = "x86_64")]
use super::winograd::{self, Wino};
#[cfg(target_arch = "x86_64")]
use super::x86::{
    direct,
    pack::{Packed, PackedT},
    Arith,
};
use crate::backend::{shape, Conv, ConvTiling, ConvTranspose, Mat, Out};

/// A conv weight: in panels for the portable kernels, or on x86-64 packed
/// for the direct ones; a conv of one input channel also keeps its file
/// layout for depthwise use.
pub struct CpuConv {
    /// `[cout, k]` for a conv of one input channel (depthwise use), else empty.
    pub(crate) plain: Vec<f32>,
    /// Panels for the portable kernels (`None` when packed).
    pub(crate) panels: Option<Panels>,
    /// Packed for the direct kernels (never for a conv of one input channel).
    #[cfg(target_arch = "x86_64")]
    pub(crate) direct: Option<Packed>,
    /// Transformed for the Winograd kernels (the decoder's residual-block
    /// convs and the encoder's feed-forward convs, f32 on `avx2` and
    /// `avx512`); then `panels` and `direct` are `None`.
    #[cfg(target_arch = "x86_64")]
    pub(crate) wino: Option<Wino>,
    pub(crate) bias: Vec<f32>,
    pub(crate) cout: usize,
    pub(crate) cin: usize,
    pub(crate) k: usize,
    pub(crate) dilation: usize,
}

impl CpuConv {
    /// For the portable kernels: the fused multiply-add tiles with `fused`
    /// (where the CPU has them, [`portable::fma_tiles`]), else the plain ones.
    pub(crate) fn portable(c: &Conv, fused: bool) -> Self {
        CpuConv {
            plain: if c.cin == 1 { c.w.clone() } else { Vec::new() },
            panels: Some(Panels::new(&c.w, c.cout, c.cin, c.k, fused)),
            #[cfg(target_arch = "x86_64")]
            direct: None,
            #[cfg(target_arch = "x86_64")]
            wino: None,
            bias: c.b.clone().unwrap_or_else(|| vec![0.0; c.cout]),
            cout: c.cout,
            cin: c.cin,
            k: c.k,
            dilation: c.dilation,
        }
    }

    /// Packed for the direct kernels in arithmetic `a` (the backend checked
    /// the CPU runs them); a conv of one input channel (used depthwise)
    /// stays portable.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn packed(c: &Conv, a: Arith) -> Self {
        if c.cin == 1 {
            return CpuConv::portable(c, true);
        }
        CpuConv {
            plain: Vec::new(),
            panels: None,
            direct: Some(Packed::new(a, &c.w, c.cout, c.cin, c.k)),
            wino: None,
            bias: c.b.clone().unwrap_or_else(|| vec![0.0; c.cout]),
            cout: c.cout,
            cin: c.cin,
            k: c.k,
            dilation: c.dilation,
        }
    }

    /// Transformed for the Winograd kernels, where they take this shape
    /// (`None` elsewhere; the backend checked the CPU has AVX2 + FMA).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn winograd(c: &Conv) -> Option<Self> {
        let wino = Wino::new(&c.w, c.cout, c.cin, c.k, c.dilation)?;
        Some(CpuConv {
            plain: Vec::new(),
            panels: None,
            direct: None,
            wino: Some(wino),
            bias: c.b.clone().unwrap_or_else(|| vec![0.0; c.cout]),
            cout: c.cout,
            cin: c.cin,
            k: c.k,
            dilation: c.dilation,
        })
    }

    /// How this conv's columns are computed: in Winograd tiles, or each alone.
    pub(crate) fn tiling(&self) -> ConvTiling {
        #[cfg(target_arch = "x86_64")]
        if let Some(w) = &self.wino {
            return ConvTiling {
                period: w.period(),
                margin: w.margin(),
            };
        }
        ConvTiling::COLUMNS
    }

    /// Whether `xm` (with `xm.rows()` = this conv's outputs) is the input of
    /// this weight used depthwise: one input channel per output channel.
    pub(crate) fn depthwise_for(&self, xm: Mat) -> bool {
        self.cin == 1 && self.cout > 1 && xm.rows() == self.cout
    }
}

/// Whether `c`'s arrays hold its shape (the kernels read them by it).
///
/// # Errors
/// What disagrees.
pub(crate) fn check_conv(c: &Conv) -> Result<(), String> {
    let n = c.cout.checked_mul(c.cin).and_then(|n| n.checked_mul(c.k));
    let ok = c.cout > 0
        && c.cin > 0
        && c.k > 0
        && c.dilation > 0
        && n == Some(c.w.len())
        && c.b.as_ref().is_none_or(|b| b.len() == c.cout);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "conv weight of {} floats, bias of {:?}, for cout {} cin {} k {} dilation {}",
            c.w.len(),
            c.b.as_ref().map(Vec::len),
            c.cout,
            c.cin,
            c.k,
            c.dilation
        ))
    }
}

/// Whether `c`'s arrays hold its shape, with kernel `2·stride` (the
/// polyphase layout).
///
/// # Errors
/// What disagrees.
pub(crate) fn check_conv_t(c: &ConvTranspose) -> Result<(), String> {
    let n = c.cin.checked_mul(c.cout).and_then(|n| n.checked_mul(c.k));
    let ok = c.cin > 0
        && c.cout > 0
        && c.stride > 0
        && Some(c.k) == c.stride.checked_mul(2)
        && n == Some(c.w.len())
        && c.b.len() == c.cout;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "transposed conv weight of {} floats, bias of {}, for cin {} cout {} k {} stride {} (k must be 2·stride)",
            c.w.len(),
            c.b.len(),
            c.cin,
            c.cout,
            c.k,
            c.stride
        ))
    }
}

/// A transposed conv weight: its phases stacked into one conv for the
/// portable kernels, or on x86-64 packed for the direct ones.
pub struct CpuConvT {
    pub(crate) panels: Option<PanelsT>,
    #[cfg(target_arch = "x86_64")]
    pub(crate) direct: Option<PackedT>,
    pub(crate) cout: usize,
    pub(crate) cin: usize,
    pub(crate) stride: usize,
}

impl CpuConvT {
    /// For the portable kernels (`fused` as [`CpuConv::portable`]).
    pub(crate) fn portable(c: &ConvTranspose, fused: bool) -> Self {
        CpuConvT {
            panels: Some(PanelsT::new(&c.w, &c.b, c.cin, c.cout, c.stride, fused)),
            #[cfg(target_arch = "x86_64")]
            direct: None,
            cout: c.cout,
            cin: c.cin,
            stride: c.stride,
        }
    }

    /// Packed for the direct kernels, as [`CpuConv::packed`].
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn packed(c: &ConvTranspose, a: Arith) -> Self {
        CpuConvT {
            panels: None,
            direct: Some(PackedT::new(a, &c.w, &c.b, c.cin, c.cout, c.stride)),
            cout: c.cout,
            cin: c.cin,
            stride: c.stride,
        }
    }
}

/// Whether both views lie in their buffers and `rule` holds: checked again
/// in front of the unsafe kernels (the backend checked it first).
fn views_ok(x: &[f32], xm: Mat, y: &[f32], ym: Mat, rule: Result<(), String>) -> bool {
    xm.fits(x.len()) && ym.fits(y.len()) && rule.is_ok()
}

/// `y (op)= conv(x) + b`, "same" padding; depthwise when the weight has one
/// input channel and `x` one row per output. The backend checked the views
/// ([`shape::conv1d`]).
pub(crate) fn conv1d(
    threads: usize,
    w: &CpuConv,
    x: &[f32],
    xm: Mat,
    y: &mut [f32],
    ym: Mat,
    out: Out,
) {
    if w.depthwise_for(xm) {
        debug_assert!(shape::conv1d(w.cin, w.cout, true, xm, ym).is_ok());
        let pad = w.dilation * (w.k - 1) / 2;
        depthwise(threads, w, x, xm, y, ym, out, pad);
        return;
    }
    tiled_conv(threads, w, x, xm, None, y, ym, out);
}

/// `y (op)= conv(LeakyReLU_slope(x))` in one pass over `x` (the activation
/// applied as the input is staged); `false` (nothing done) where the weight
/// is used depthwise. Views as [`conv1d`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv1d_lrelu(
    threads: usize,
    w: &CpuConv,
    slope: f32,
    x: &[f32],
    xm: Mat,
    y: &mut [f32],
    ym: Mat,
    out: Out,
) -> bool {
    if w.depthwise_for(xm) {
        return false;
    }
    tiled_conv(threads, w, x, xm, Some(slope), y, ym, out);
    true
}

/// `y += conv(LeakyReLU_slope(y))` in place. `ym` as both views of
/// [`conv1d`] (so `cin == cout`); `false` (nothing done) where the weight
/// is used depthwise.
pub(crate) fn conv1d_lrelu_add_inplace(
    threads: usize,
    w: &CpuConv,
    slope: f32,
    y: &mut [f32],
    ym: Mat,
) -> bool {
    if w.depthwise_for(ym) {
        return false;
    }
    assert!(
        views_ok(y, ym, y, ym, shape::conv1d(w.cin, w.cout, false, ym, ym)),
        "conv1d view {ym:?} for a {}→{} conv",
        w.cin,
        w.cout
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = &w.wino {
        let yp = y.as_mut_ptr();
        // SAFETY: transformed only where the CPU has AVX2 + FMA (checked
        // when the weight was prepared); bounds and shapes checked just
        // above; the kernel stages all input before writing (aliasing).
        unsafe {
            winograd::conv1d(threads, p, &w.bias, yp, ym, column(ym), Some(slope), yp, ym, Out::Add)
        };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = &w.direct {
        // SAFETY: packed only where the CPU has the kernels (checked when
        // the weight was prepared); bounds and shapes checked just above.
        unsafe {
            direct::conv1d_lrelu_add_inplace(threads, p, &w.bias, w.dilation, slope, y, ym);
        }
        return true;
    }
    let p = w.panels.as_ref().expect("a conv not packed has panels");
    // SAFETY: bounds and shapes checked just above; the FMA tiles only
    // where the CPU has them (checked when packed).
    unsafe { portable::conv1d_lrelu_add_inplace(threads, p, &w.bias, w.dilation, slope, y, ym) };
    true
}

/// [`conv1d`] (of `LeakyReLU_slope(x)` with `act = Some(slope)`) on the
/// direct kernels where the weight is packed for them, else the portable
/// ones.
#[allow(clippy::too_many_arguments)]
fn tiled_conv(
    threads: usize,
    w: &CpuConv,
    x: &[f32],
    xm: Mat,
    act: Option<f32>,
    y: &mut [f32],
    ym: Mat,
    out: Out,
) {
    // The kernels are unsafe: no view reaches them unchecked, even from a
    // caller that skipped the backend's check.
    assert!(
        views_ok(x, xm, y, ym, shape::conv1d(w.cin, w.cout, false, xm, ym)),
        "conv1d views {xm:?} / {ym:?} for a {}→{} conv",
        w.cin,
        w.cout
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = &w.wino {
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        // SAFETY: transformed only where the CPU has AVX2 + FMA (checked
        // when the weight was prepared); bounds and shapes checked just above.
        unsafe { winograd::conv1d(threads, p, &w.bias, xp, xm, column(ym), act, yp, ym, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = &w.direct {
        // SAFETY: packed only where the CPU has the kernels (checked when
        // the weight was prepared); bounds and shapes checked just above.
        unsafe { direct::conv1d(threads, p, &w.bias, w.dilation, x, xm, act, y, ym, out) };
        return;
    }
    let p = w.panels.as_ref().expect("a conv not packed has panels");
    // SAFETY: bounds and shapes checked just above; the FMA tiles only
    // where the CPU has them (checked when packed).
    unsafe {
        portable::conv1d(
            threads,
            p,
            &w.bias,
            w.dilation,
            x,
            xm,
            act,
            y.as_mut_ptr(),
            ym,
            out,
        )
    };
}

/// The column of its buffer's rows where view `m` starts (`off % ld`): the
/// tiles of tiled convs align to these columns ([`ConvTiling`]).
#[cfg(target_arch = "x86_64")]
fn column(m: Mat) -> usize {
    m.off().checked_rem(m.ld()).unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
fn depthwise(
    threads: usize,
    w: &CpuConv,
    x: &[f32],
    xm: Mat,
    y: &mut [f32],
    ym: Mat,
    out: Out,
    pad: usize,
) {
    let t = xm.cols();
    let row = |(c, (yr, xr)): (usize, (&mut [f32], &[f32]))| {
        DW.with(|acc| {
            let mut acc = acc.borrow_mut();
            acc.clear();
            acc.resize(t, 0.0);
            // Tap by tap over whole rows (vectorizes); each output still sums
            // bias, then taps in order, as the per-sample loop did.
            acc.fill(w.bias[c]);
            for j in 0..w.k {
                let wj = w.plain[c * w.k + j];
                let s = (j * w.dilation) as isize - pad as isize;
                // Outputs ti with 0 <= ti + s < t.
                let lo = (-s).clamp(0, t as isize) as usize;
                let hi = (t as isize - s).clamp(0, t as isize) as usize;
                if hi > lo {
                    let src = &xr[(lo as isize + s) as usize..(hi as isize + s) as usize];
                    for (a, &v) in acc[lo..hi].iter_mut().zip(src) {
                        *a += wj * v;
                    }
                }
            }
            match out {
                Out::Set => yr.copy_from_slice(&acc),
                Out::SetRelu => {
                    for (o, &a) in yr.iter_mut().zip(acc.iter()) {
                        *o = a.max(0.0);
                    }
                }
                Out::Add => {
                    for (o, &a) in yr.iter_mut().zip(acc.iter()) {
                        *o += a;
                    }
                }
            }
        })
    };
    let pairs = rows_mut(y, ym).zip(rows(x, xm)).take(w.cout).enumerate();
    // Rows are independent: split them over the threads when the op is big.
    if threads > 1 && w.cout * w.k * t >= 1 << 16 {
        use rayon::prelude::*;
        pairs.collect::<Vec<_>>().into_par_iter().for_each(row);
    } else {
        pairs.for_each(row);
    }
}

thread_local! {
    static DW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Transposed conv (kernel `2u`, stride `u`, padding `u/2`): with
/// `q = n + u/2`, `t = q / u`, `r = q % u`,
/// `y[:, n] = b + W_r · x[:, t] + W_{r+u} · x[:, t−1]` (terms outside x
/// dropped). The backend checked the views ([`shape::conv_transpose`]).
pub(crate) fn conv_transpose(
    threads: usize,
    w: &CpuConvT,
    x: &[f32],
    xm: Mat,
    y: &mut [f32],
    ym: Mat,
) {
    // The kernels are unsafe: no view reaches them unchecked, even from a
    // caller that skipped the backend's check.
    assert!(
        views_ok(
            x,
            xm,
            y,
            ym,
            shape::conv_transpose(w.cin, w.cout, w.stride, xm, ym)
        ),
        "conv_transpose views {xm:?} / {ym:?}"
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = &w.direct {
        // SAFETY: packed only where the CPU has the kernels; bounds and
        // shapes checked just above.
        unsafe { direct::conv_transpose(threads, p, x, xm, y, ym) };
        return;
    }
    let p = w.panels.as_ref().expect("a transposed conv not packed has panels");
    // SAFETY: bounds and shapes checked just above.
    unsafe { portable::conv_transpose(threads, p, x, xm, y, ym) };
}
