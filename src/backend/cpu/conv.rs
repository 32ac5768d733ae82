//! Convolutions: "same"-padded 1-D convs as im2col + `gemm` over column
//! tiles, depthwise convs tap by tap, polyphase transposed convs. On x86-64
//! a weight packed for the direct AVX-512 / AMX kernels (`x86/`) runs there.

use super::gemm::{gemm, Operand};
use super::par::{rows, rows_mut, SendPtr};
#[cfg(target_arch = "x86_64")]
use super::x86::{
    direct,
    pack::{Packed, PackedT},
    Arith,
};
use crate::backend::{shape, Conv, ConvTranspose, Mat, Out};

/// A conv weight: `[cout, cin·k]` (its file layout) as the lhs of im2col
/// GEMMs, or on x86-64 packed for the direct kernels.
pub struct CpuConv {
    /// The portable layout (empty when packed).
    pub(crate) im2col: Vec<f32>,
    /// Packed for the direct kernels (never for a depthwise conv).
    #[cfg(target_arch = "x86_64")]
    pub(crate) direct: Option<Packed>,
    pub(crate) bias: Vec<f32>,
    pub(crate) cout: usize,
    pub(crate) cin: usize,
    pub(crate) k: usize,
    pub(crate) dilation: usize,
}

impl CpuConv {
    /// For the portable im2col + GEMM path.
    pub(crate) fn portable(c: &Conv) -> Self {
        CpuConv {
            im2col: c.w.clone(),
            #[cfg(target_arch = "x86_64")]
            direct: None,
            bias: c.b.clone().unwrap_or_else(|| vec![0.0; c.cout]),
            cout: c.cout,
            cin: c.cin,
            k: c.k,
            dilation: c.dilation,
        }
    }

    /// Packed for the direct kernels in arithmetic `a` (the backend checked
    /// the CPU runs them); a depthwise conv keeps the portable layout.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn packed(c: &Conv, a: Arith) -> Self {
        if c.cin == 1 && c.cout > 1 {
            return CpuConv::portable(c);
        }
        CpuConv {
            im2col: Vec::new(),
            direct: Some(Packed::new(a, &c.w, c.cout, c.cin, c.k)),
            bias: c.b.clone().unwrap_or_else(|| vec![0.0; c.cout]),
            cout: c.cout,
            cin: c.cin,
            k: c.k,
            dilation: c.dilation,
        }
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

/// A transposed conv weight per phase: `taps[j]` is `[cout, cin]` for
/// kernel tap j, or on x86-64 packed for the direct kernels.
pub struct CpuConvT {
    pub(crate) taps: Vec<f32>,
    #[cfg(target_arch = "x86_64")]
    pub(crate) direct: Option<PackedT>,
    pub(crate) bias: Vec<f32>,
    pub(crate) cout: usize,
    pub(crate) cin: usize,
    pub(crate) stride: usize,
}

impl CpuConvT {
    /// For the portable GEMM path.
    pub(crate) fn portable(c: &ConvTranspose) -> Self {
        let mut taps = vec![0.0; c.w.len()];
        for i in 0..c.cin {
            for o in 0..c.cout {
                for j in 0..c.k {
                    taps[(j * c.cout + o) * c.cin + i] = c.w[(i * c.cout + o) * c.k + j];
                }
            }
        }
        CpuConvT {
            taps,
            #[cfg(target_arch = "x86_64")]
            direct: None,
            bias: c.b.clone(),
            cout: c.cout,
            cin: c.cin,
            stride: c.stride,
        }
    }

    /// Packed for the direct kernels, as [`CpuConv::packed`].
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn packed(c: &ConvTranspose, a: Arith) -> Self {
        CpuConvT {
            taps: Vec::new(),
            direct: Some(PackedT::new(a, &c.w, &c.b, c.cin, c.cout, c.stride)),
            bias: c.b.clone(),
            cout: c.cout,
            cin: c.cin,
            stride: c.stride,
        }
    }
}

fn fill_bias(y: &mut [f32], ym: Mat, bias: &[f32]) {
    for (r, &b) in bias.iter().enumerate().take(ym.rows()) {
        let row = &mut y[ym.off() + r * ym.ld()..ym.off() + r * ym.ld() + ym.cols()];
        row.fill(b);
    }
}

fn add_bias(y: &mut [f32], ym: Mat, bias: &[f32]) {
    for (r, &b) in bias.iter().enumerate().take(ym.rows()) {
        for v in &mut y[ym.off() + r * ym.ld()..ym.off() + r * ym.ld() + ym.cols()] {
            *v += b;
        }
    }
}

/// Column tile so that an im2col tile stays around 256 KiB (L2-sized).
fn tile_cols(rows: usize, cols: usize, threads: usize) -> usize {
    let by_cache = (64 * 1024 / rows.max(1)).clamp(64, 4096);
    // Enough tiles to keep every thread busy.
    let by_threads = cols.div_ceil(threads.max(1) * 2).max(32);
    by_cache.min(by_threads).max(16)
}

/// Whether both views lie in their buffers and `rule` holds: checked again
/// in front of the unsafe direct kernels (the backend checked it first).
#[cfg(target_arch = "x86_64")]
fn x86_views_ok(x: &[f32], xm: Mat, y: &[f32], ym: Mat, rule: Result<(), String>) -> bool {
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
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = &w.direct {
        direct_conv(threads, w, p, x, xm, None, y, ym, out);
        return;
    }
    let depthwise_w = w.depthwise_for(xm);
    debug_assert!(shape::conv1d(w.cin, w.cout, depthwise_w, xm, ym).is_ok());
    let pad = w.dilation * (w.k - 1) / 2;
    if depthwise_w {
        depthwise(threads, w, x, xm, y, ym, out, pad);
        return;
    }
    im2col(threads, w, x, xm, y, ym, out, pad);
}

/// `y (op)= conv(LeakyReLU_slope(x))` in one pass over `x` where the weight
/// is packed for the direct kernels (the activation applied as the input
/// is staged); `false` (nothing done) otherwise. Views as [`conv1d`].
#[cfg(target_arch = "x86_64")]
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
    let Some(p) = &w.direct else {
        return false;
    };
    direct_conv(threads, w, p, x, xm, Some(slope), y, ym, out);
    true
}

/// `y += conv(LeakyReLU_slope(y))` in place with the direct kernels; `false`
/// (nothing done) where the weight is not packed for them. `ym` as both
/// views of [`conv1d`] (so `cin == cout`).
#[cfg(target_arch = "x86_64")]
pub(crate) fn conv1d_lrelu_add_inplace(
    threads: usize,
    w: &CpuConv,
    slope: f32,
    y: &mut [f32],
    ym: Mat,
) -> bool {
    let Some(p) = &w.direct else {
        return false;
    };
    assert!(
        x86_views_ok(y, ym, y, ym, shape::conv1d(w.cin, w.cout, false, ym, ym)),
        "conv1d view {ym:?} for a {}→{} conv",
        w.cin,
        w.cout
    );
    // SAFETY: packed only where the CPU has the kernels (checked when the
    // weight was prepared); bounds and shapes checked just above.
    unsafe {
        direct::conv1d_lrelu_add_inplace(threads, p, &w.bias, w.dilation, slope, y, ym);
    }
    true
}

/// [`conv1d`] (of `LeakyReLU_slope(x)` with `act = Some(slope)`) on the
/// direct kernels.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn direct_conv(
    threads: usize,
    w: &CpuConv,
    p: &Packed,
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
        x86_views_ok(x, xm, y, ym, shape::conv1d(w.cin, w.cout, false, xm, ym)),
        "conv1d views {xm:?} / {ym:?} for a {}→{} conv",
        w.cin,
        w.cout
    );
    // SAFETY: packed only where the CPU has the kernels (checked when the
    // weight was prepared); bounds and shapes checked just above.
    unsafe { direct::conv1d(threads, p, &w.bias, w.dilation, x, xm, act, y, ym, out) };
}

/// The portable conv: per column tile, `y_tile += W[cout, cin·k] ·
/// cols[cin·k, n]` with the im2col columns built in a per-thread buffer
/// (`x` itself for `k = 1`).
#[allow(clippy::too_many_arguments)]
fn im2col(
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
    let kk = w.cin * w.k;
    let tile = tile_cols(kk, t, threads);
    let n_tiles = t.div_ceil(tile);
    let yp = SendPtr(y.as_mut_ptr());
    let ylen = y.len();
    let run_tile = |ti: usize| {
        let c0 = ti * tile;
        let c1 = (c0 + tile).min(t);
        let n = c1 - c0;
        // SAFETY: each tile touches only columns c0..c1 of the rows of ym,
        // which no other tile touches; every access below is index-checked
        // against the whole of y (the gemm wrapper checks its operands).
        let y = unsafe { std::slice::from_raw_parts_mut(yp.get(), ylen) };
        let ytile = ym.sub_cols(c0, c1);
        match out {
            Out::Set | Out::SetRelu => fill_bias(y, ytile, &w.bias),
            Out::Add => add_bias(y, ytile, &w.bias),
        }
        let d = Operand {
            off: ytile.off(),
            rs: ym.ld() as isize,
            cs: 1,
        };
        // y_tile += W[cout, cin·k] · cols[cin·k, n]; for k = 1 the columns are x itself.
        let product = |y: &mut [f32], rhs: &[f32], r: Operand| {
            let l = Operand {
                off: 0,
                rs: kk as isize,
                cs: 1,
            };
            gemm(1, w.cout, n, kk, y, d, true, &w.im2col, l, rhs, r, 1.0);
        };
        if w.k == 1 {
            let r = Operand {
                off: xm.off() + c0,
                rs: xm.ld() as isize,
                cs: 1,
            };
            product(y, x, r);
        } else {
            COL.with(|col| {
                let mut col = col.borrow_mut();
                col.clear();
                col.resize(kk * n, 0.0);
                for i in 0..w.cin {
                    let xr = &x[xm.off() + i * xm.ld()..xm.off() + i * xm.ld() + t];
                    for j in 0..w.k {
                        let row = &mut col[(i * w.k + j) * n..(i * w.k + j + 1) * n];
                        let s = (c0 + j * w.dilation) as isize - pad as isize;
                        // row[q] = x[s + q] where in range, else 0.
                        let q0 = (-s).clamp(0, n as isize) as usize;
                        let q1 = (t as isize - s).clamp(0, n as isize) as usize;
                        row[..q0].fill(0.0);
                        if q1 > q0 {
                            let src = (s + q0 as isize) as usize;
                            row[q0..q1].copy_from_slice(&xr[src..src + (q1 - q0)]);
                        }
                        row[q1.max(q0)..].fill(0.0);
                    }
                }
                let r = Operand {
                    off: 0,
                    rs: n as isize,
                    cs: 1,
                };
                product(y, &col, r);
            });
        }
        if out == Out::SetRelu {
            for r in 0..ym.rows() {
                let o = ytile.off() + r * ym.ld();
                for v in &mut y[o..o + n] {
                    *v = v.max(0.0);
                }
            }
        }
    };
    if threads > 1 && n_tiles > 1 {
        use rayon::prelude::*;
        (0..n_tiles).into_par_iter().for_each(run_tile);
    } else {
        (0..n_tiles).for_each(run_tile);
    }
}

thread_local! {
    static COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
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
                let wj = w.im2col[c * w.k + j];
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
/// The backend checked the views ([`shape::conv_transpose`]).
pub(crate) fn conv_transpose(
    threads: usize,
    w: &CpuConvT,
    x: &[f32],
    xm: Mat,
    y: &mut [f32],
    ym: Mat,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = &w.direct {
        // The kernels are unsafe: no view reaches them unchecked, even
        // from a caller that skipped the backend's check.
        assert!(
            x86_views_ok(
                x,
                xm,
                y,
                ym,
                shape::conv_transpose(w.cin, w.cout, w.stride, xm, ym)
            ),
            "conv_transpose views {xm:?} / {ym:?}"
        );
        // SAFETY: packed only where the CPU has the kernels; bounds and
        // shapes checked just above.
        unsafe { direct::conv_transpose(threads, p, x, xm, y, ym) };
        return;
    }
    debug_assert!(shape::conv_transpose(w.cin, w.cout, w.stride, xm, ym).is_ok());
    let u = w.stride;
    let l = xm.cols();
    if l == 0 {
        return;
    }
    fill_bias(y, ym, &w.bias);
    let half = u / 2;
    let yp = SendPtr(y.as_mut_ptr());
    let ylen = y.len();
    // Phases write disjoint (strided) output columns: run them in parallel.
    let phase = |r: usize| {
        // SAFETY: phase r writes only columns n with (n + u/2) % u == r.
        let y = unsafe { std::slice::from_raw_parts_mut(yp.get(), ylen) };
        // Output columns n = t·u + r − u/2 for t in [t_lo, t_hi].
        let (t_lo, t_hi) = if r >= half { (0, l - 1) } else { (1, l) };
        if t_hi < t_lo {
            return;
        }
        let d = |t_first: usize| Operand {
            off: ym.off() + (t_first * u + r - half),
            rs: ym.ld() as isize,
            cs: u as isize,
        };
        // Term A: x[:, t] for t in [t_lo, min(t_hi, l-1)].
        let a_hi = t_hi.min(l - 1);
        if a_hi >= t_lo {
            gemm(
                1,
                w.cout,
                a_hi - t_lo + 1,
                w.cin,
                y,
                d(t_lo),
                true,
                &w.taps,
                Operand {
                    off: r * w.cout * w.cin,
                    rs: w.cin as isize,
                    cs: 1,
                },
                x,
                Operand {
                    off: xm.off() + t_lo,
                    rs: xm.ld() as isize,
                    cs: 1,
                },
                1.0,
            );
        }
        // Term B: x[:, t−1] for t in [max(t_lo, 1), t_hi].
        let b_lo = t_lo.max(1);
        if t_hi >= b_lo {
            gemm(
                1,
                w.cout,
                t_hi - b_lo + 1,
                w.cin,
                y,
                d(b_lo),
                true,
                &w.taps,
                Operand {
                    off: (r + u) * w.cout * w.cin,
                    rs: w.cin as isize,
                    cs: 1,
                },
                x,
                Operand {
                    off: xm.off() + b_lo - 1,
                    rs: xm.ld() as isize,
                    cs: 1,
                },
                1.0,
            );
        }
    };
    if threads > 1 {
        use rayon::prelude::*;
        (0..u).into_par_iter().for_each(phase);
    } else {
        (0..u).for_each(phase);
    }
}
