//! Convolutions as shifted GEMMs (one per tap) and polyphase transposed convs.

use super::gemm::{gemm, Operand};
use crate::backend::{Mat, Out};
use crate::voice::{Conv, ConvTranspose};

/// A conv weight laid out per tap: `taps[j]` is the `[cout, cin]` matrix of tap j.
pub struct CpuConv {
    pub(crate) taps: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) cout: usize,
    pub(crate) cin: usize,
    pub(crate) k: usize,
    pub(crate) dilation: usize,
}

impl CpuConv {
    pub(crate) fn new(c: &Conv) -> Self {
        let mut taps = vec![0.0; c.w.len()];
        for o in 0..c.cout {
            for i in 0..c.cin {
                for j in 0..c.k {
                    taps[(j * c.cout + o) * c.cin + i] = c.w[(o * c.cin + i) * c.k + j];
                }
            }
        }
        CpuConv {
            taps,
            bias: c.b.clone().unwrap_or_else(|| vec![0.0; c.cout]),
            cout: c.cout,
            cin: c.cin,
            k: c.k,
            dilation: c.dilation,
        }
    }
}

/// A transposed conv weight per phase: `taps[j]` is `[cout, cin]` for kernel tap j.
pub struct CpuConvT {
    pub(crate) taps: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) cout: usize,
    pub(crate) cin: usize,
    pub(crate) stride: usize,
}

impl CpuConvT {
    pub(crate) fn new(c: &ConvTranspose) -> Self {
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
            bias: c.b.clone(),
            cout: c.cout,
            cin: c.cin,
            stride: c.stride,
        }
    }
}

fn fill_bias(y: &mut [f32], ym: Mat, bias: &[f32]) {
    for (r, &b) in bias.iter().enumerate().take(ym.rows) {
        let row = &mut y[ym.off + r * ym.ld..ym.off + r * ym.ld + ym.cols];
        row.fill(b);
    }
}

fn add_bias(y: &mut [f32], ym: Mat, bias: &[f32]) {
    for (r, &b) in bias.iter().enumerate().take(ym.rows) {
        for v in &mut y[ym.off + r * ym.ld..ym.off + r * ym.ld + ym.cols] {
            *v += b;
        }
    }
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
    assert_eq!(xm.cols, ym.cols, "conv1d keeps the length");
    assert_eq!(ym.rows, w.cout, "conv1d output rows");
    assert!(xm.end() <= x.len() && ym.end() <= y.len());
    let t = xm.cols;
    let pad = w.dilation * (w.k - 1) / 2;
    if w.cin == 1 && xm.rows == w.cout && w.cout > 1 {
        depthwise(w, x, xm, y, ym, out, pad);
        return;
    }
    assert_eq!(xm.rows, w.cin, "conv1d input rows");
    match out {
        Out::Set | Out::SetRelu => fill_bias(y, ym, &w.bias),
        Out::Add => add_bias(y, ym, &w.bias),
    }
    for j in 0..w.k {
        let s = (j * w.dilation) as isize - pad as isize;
        let t0 = (-s).max(0) as usize;
        let t1 = (t as isize - s).clamp(0, t as isize) as usize;
        if t1 <= t0 {
            continue;
        }
        gemm(
            threads,
            w.cout,
            t1 - t0,
            w.cin,
            y,
            Operand {
                off: ym.off + t0,
                rs: ym.ld as isize,
                cs: 1,
            },
            true,
            &w.taps,
            Operand {
                off: j * w.cout * w.cin,
                rs: w.cin as isize,
                cs: 1,
            },
            x,
            Operand {
                off: (xm.off as isize + t0 as isize + s) as usize,
                rs: xm.ld as isize,
                cs: 1,
            },
            1.0,
        );
    }
    if out == Out::SetRelu {
        for r in 0..ym.rows {
            for v in &mut y[ym.off + r * ym.ld..ym.off + r * ym.ld + ym.cols] {
                *v = v.max(0.0);
            }
        }
    }
}

fn depthwise(w: &CpuConv, x: &[f32], xm: Mat, y: &mut [f32], ym: Mat, out: Out, pad: usize) {
    let t = xm.cols as isize;
    for c in 0..w.cout {
        let xr = &x[xm.off + c * xm.ld..xm.off + c * xm.ld + xm.cols];
        let yr = &mut y[ym.off + c * ym.ld..ym.off + c * ym.ld + ym.cols];
        for (ti, yv) in yr.iter_mut().enumerate() {
            let mut acc = w.bias[c];
            for j in 0..w.k {
                let src = ti as isize + (j * w.dilation) as isize - pad as isize;
                if src >= 0 && src < t {
                    acc += w.taps[j * w.cout + c] * xr[src as usize];
                }
            }
            *yv = match out {
                Out::Set => acc,
                Out::SetRelu => acc.max(0.0),
                Out::Add => *yv + acc,
            };
        }
    }
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
    let l = xm.cols;
    assert_eq!(ym.cols, u * l, "conv_transpose output length");
    assert_eq!(
        (xm.rows, ym.rows),
        (w.cin, w.cout),
        "conv_transpose channels"
    );
    assert!(xm.end() <= x.len() && ym.end() <= y.len());
    fill_bias(y, ym, &w.bias);
    let half = u / 2;
    for r in 0..u {
        // Output columns n = t·u + r − u/2 for t in [t_lo, t_hi].
        let (t_lo, t_hi) = if r >= half { (0, l - 1) } else { (1, l) };
        if l == 0 || t_hi < t_lo {
            continue;
        }
        let d = |t_first: usize| Operand {
            off: ym.off + (t_first * u + r - half),
            rs: ym.ld as isize,
            cs: u as isize,
        };
        // Term A: x[:, t] for t in [t_lo, min(t_hi, l-1)].
        let a_hi = t_hi.min(l - 1);
        if a_hi >= t_lo {
            gemm(
                threads,
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
                    off: xm.off + t_lo,
                    rs: xm.ld as isize,
                    cs: 1,
                },
                1.0,
            );
        }
        // Term B: x[:, t−1] for t in [max(t_lo, 1), t_hi].
        let b_lo = t_lo.max(1);
        if t_hi >= b_lo {
            gemm(
                threads,
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
                    off: xm.off + b_lo - 1,
                    rs: xm.ld as isize,
                    cs: 1,
                },
                1.0,
            );
        }
    }
}
