//! Convolutions and polyphase transposed convs: the direct AVX-512 kernels
//! where the CPU has them, else the portable ones; depthwise convs by rows.

use super::direct::{self, Arith, Packed, PackedT};
use super::elementwise::{rows, rows_mut};
use super::portable::{self, Panels, PanelsT};
use crate::backend::{Conv, ConvTranspose};
use crate::backend::{Mat, Out};

/// A conv weight: packed for the direct AVX-512 kernels where the CPU has
/// them, else in panels for the portable kernels.
pub struct CpuConv {
    /// Depthwise weights `[cout, k]` (convs of one input channel only).
    pub(crate) plain: Vec<f32>,
    pub(crate) direct: Option<Packed>,
    pub(crate) portable: Option<Panels>,
    pub(crate) bias: Vec<f32>,
    pub(crate) cout: usize,
    pub(crate) cin: usize,
    pub(crate) k: usize,
    pub(crate) dilation: usize,
}

impl CpuConv {
    /// `kernels`: `Some(precision)` packs for the direct kernels (the caller
    /// checked the CPU supports them); depthwise convs keep the plain layout.
    pub(crate) fn new(c: &Conv, kernels: Option<Arith>) -> Self {
        let depthwise = c.cin == 1 && c.cout > 1;
        let direct = match kernels {
            Some(p) if !depthwise => Some(Packed::new(p, &c.w, c.cout, c.cin, c.k)),
            _ => None,
        };
        CpuConv {
            plain: if c.cin == 1 { c.w.clone() } else { Vec::new() },
            portable: direct
                .is_none()
                .then(|| Panels::new(&c.w, c.cout, c.cin, c.k)),
            direct,
            bias: c.b.clone().unwrap_or_else(|| vec![0.0; c.cout]),
            cout: c.cout,
            cin: c.cin,
            k: c.k,
            dilation: c.dilation,
        }
    }
}

/// A transposed conv weight: its phases stacked for the direct kernels or
/// the portable ones.
pub struct CpuConvT {
    pub(crate) direct: Option<PackedT>,
    pub(crate) portable: Option<PanelsT>,
    pub(crate) cout: usize,
    pub(crate) cin: usize,
    pub(crate) stride: usize,
}

impl CpuConvT {
    /// `kernels` as in [`CpuConv::new`].
    pub(crate) fn new(c: &ConvTranspose, kernels: Option<Arith>) -> Self {
        let (direct, portable) = match kernels {
            Some(p) => (
                Some(PackedT::new(p, &c.w, &c.b, c.cin, c.cout, c.stride)),
                None,
            ),
            None => (
                None,
                Some(PanelsT::new(&c.w, &c.b, c.cin, c.cout, c.stride)),
            ),
        };
        CpuConvT {
            direct,
            portable,
            cout: c.cout,
            cin: c.cin,
            stride: c.stride,
        }
    }
}

/// A raw pointer that may cross threads: parallel items (conv tiles,
/// attention heads) write disjoint parts of one output.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: used only to write disjoint column ranges from different tiles.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// `y (op)= conv(LeakyReLU_slope(x))` in one pass over `x` (the activation
/// applied as the input is staged); `false` (nothing done) for a depthwise
/// weight.
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
    conv1d_act(threads, w, x, xm, Some(slope), y, ym, out)
}

/// `y += conv(LeakyReLU_slope(y))` in place; `false` (nothing done) for a
/// depthwise weight.
pub(crate) fn conv1d_lrelu_add_inplace(
    threads: usize,
    w: &CpuConv,
    slope: f32,
    y: &mut [f32],
    ym: Mat,
) -> bool {
    assert_eq!((ym.rows(), ym.rows()), (w.cin, w.cout), "conv1d rows");
    assert!(ym.end() <= y.len());
    // SAFETY: as in conv1d_lrelu; input and output are the same view (the
    // kernels copy the input before they write any output).
    unsafe {
        if let Some(p) = &w.direct {
            direct::conv1d_lrelu_add_inplace(threads, p, &w.bias, w.dilation, slope, y, ym);
            return true;
        }
        let Some(p) = &w.portable else {
            return false;
        };
        let (yp, len) = (y.as_mut_ptr(), y.len());
        let x = std::slice::from_raw_parts(yp.cast_const(), len);
        portable::conv1d(
            threads,
            p,
            &w.bias,
            w.dilation,
            x,
            ym,
            Some(slope),
            yp,
            ym,
            Out::Add,
        );
    }
    true
}

pub(crate) fn conv1d(
    threads: usize,
    w: &CpuConv,
    x: &[f32],
    xm: Mat,
    y: &mut [f32],
    ym: Mat,
    out: Out,
) {
    conv1d_act(threads, w, x, xm, None, y, ym, out);
}

/// [`conv1d`] of `x`, or of `LeakyReLU_slope(x)` with `act = Some(slope)`:
/// the activation not on depthwise weights (`false`, nothing done).
#[allow(clippy::too_many_arguments)]
fn conv1d_act(
    threads: usize,
    w: &CpuConv,
    x: &[f32],
    xm: Mat,
    act: Option<f32>,
    y: &mut [f32],
    ym: Mat,
    out: Out,
) -> bool {
    assert_eq!(xm.cols(), ym.cols(), "conv1d keeps the length");
    assert_eq!(ym.rows(), w.cout, "conv1d output rows");
    assert!(xm.end() <= x.len() && ym.end() <= y.len());
    let pad = w.dilation * (w.k - 1) / 2;
    let depthwise_w = w.cin == 1 && xm.rows() == w.cout && w.cout > 1;
    if !depthwise_w {
        assert_eq!(xm.rows(), w.cin, "conv1d input rows");
    }
    if let (Some(p), false) = (&w.direct, depthwise_w) {
        // SAFETY: the pack exists only where the CPU has the kernels
        // (checked when the weight was prepared); bounds and shapes were
        // asserted above.
        unsafe { direct::conv1d(threads, p, &w.bias, w.dilation, x, xm, act, y, ym, out) };
        return true;
    }
    if depthwise_w {
        if act.is_some() {
            return false;
        }
        depthwise(threads, w, x, xm, y, ym, out, pad);
        return true;
    }
    let p = w.portable.as_ref().expect("a conv without direct kernels has panels");
    // SAFETY: bounds and shapes asserted above.
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
    true
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

/// Polyphase transposed conv: with `q = n + u/2`, `t = q / u`, `r = q % u`,
/// `y[:, n] = b + W_r · x[:, t] + W_{r+u} · x[:, t−1]` (terms outside x dropped).
pub(crate) fn conv_transpose(
    threads: usize,
    w: &CpuConvT,
    x: &[f32],
    xm: Mat,
    y: &mut [f32],
    ym: Mat,
) {
    let u = w.stride;
    let l = xm.cols();
    assert_eq!(ym.cols(), u * l, "conv_transpose output length");
    assert_eq!(
        (xm.rows(), ym.rows()),
        (w.cin, w.cout),
        "conv_transpose channels"
    );
    assert!(xm.end() <= x.len() && ym.end() <= y.len());
    if let Some(p) = &w.direct {
        // SAFETY: packed only where the CPU has the kernels; bounds and
        // shapes asserted above.
        unsafe { direct::conv_transpose(threads, p, x, xm, y, ym) };
        return;
    }
    let p = w.portable.as_ref().expect("a transposed conv has one pack");
    // SAFETY: bounds and shapes asserted above.
    unsafe { portable::conv_transpose(threads, p, x, xm, y, ym) };
}
