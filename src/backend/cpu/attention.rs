//! Relative-position multi-head attention (VITS text encoder): heads over
//! the threads, each head's two products on the `gemm` crate or (x86-64
//! with AMX) on the bf16x3 tile kernels.

use super::gemm::{gemm, Operand};
use super::math::fast_exp;
use super::par::SendPtr;
#[cfg(target_arch = "x86_64")]
use super::x86::{attention as x86_attention, direct, Arith};
#[cfg(target_arch = "x86_64")]
use crate::backend::shape;
use crate::backend::Mat;

/// Where each head's two products (logits, values) run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Products {
    /// The `gemm` crate in f32.
    Gemm,
    /// The bf16x3 AMX tile kernels (the backend checked the CPU has them).
    #[cfg(target_arch = "x86_64")]
    Amx,
}

/// `rel_k`/`rel_v` are `[2w+1, d]` tables shared by all heads; row `r + w` is
/// the offset `r = key − query`. Outside the window the relative term is 0.
/// The backend checked the views and tables ([`crate::backend::shape::attention`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rel_attention(
    threads: usize,
    products: Products,
    qkv: &[f32],
    q: Mat,
    k: Mat,
    v: Mat,
    rel_k: &[f32],
    rel_v: &[f32],
    heads: usize,
    y: &mut [f32],
    ym: Mat,
) {
    // The tile kernels are unsafe: no view reaches them unchecked, even from
    // a caller that skipped the backend's check (the gemm path checks its
    // operands itself).
    #[cfg(target_arch = "x86_64")]
    if products == Products::Amx {
        let views = [
            (qkv.len(), q),
            (qkv.len(), k),
            (qkv.len(), v),
            (y.len(), ym),
        ];
        let ok = shape::views_fit(&views)
            .and(shape::attention(heads, q, k, v, ym, rel_k.len()))
            .and(shape::attention(heads, q, k, v, ym, rel_v.len()));
        assert!(ok.is_ok(), "rel_attention: {ok:?}");
    }
    let t = q.cols();
    let d = q.rows() / heads;
    let rows = rel_k.len() / d;
    let w = rows / 2;
    let scale = 1.0 / (d as f32).sqrt();
    // One head: its own scratch, rows h·d..(h+1)·d of y.
    let run_head = |h: usize, threads: usize, y: &mut [f32]| {
        // This thread's scratch, taken out for the head (nothing below uses
        // it reentrantly) and put back after: per-sentence buffers reused,
        // not a fresh t×t block per head and sentence.
        let mut s = HEAD.with(|s| std::mem::take(&mut *s.borrow_mut()));
        s.fit(t * t, t * (2 * w + 1), t);
        let (qh, kh, vh, yh) = (
            q.sub_rows(h * d, (h + 1) * d),
            k.sub_rows(h * d, (h + 1) * d),
            v.sub_rows(h * d, (h + 1) * d),
            ym.sub_rows(h * d, (h + 1) * d),
        );
        match products {
            Products::Gemm => {}
            #[cfg(target_arch = "x86_64")]
            Products::Amx => {
                amx_head(threads, &mut s, qkv, [qh, kh, vh], rel_k, rel_v, y, yh);
                HEAD.with(|h| *h.borrow_mut() = s);
                return;
            }
        }
        let Scratch {
            logits, rel, band, ..
        } = &mut s;
        let (logits, rel) = (&mut logits[..t * t], &mut rel[..t * (2 * w + 1)]);
        // logits[i, j] = (q_i / √d) · k_j
        gemm(
            threads,
            t,
            t,
            d,
            logits,
            Operand {
                off: 0,
                rs: t as isize,
                cs: 1,
            },
            false,
            qkv,
            Operand {
                off: qh.off(),
                rs: 1,
                cs: qh.ld() as isize,
            },
            qkv,
            Operand {
                off: kh.off(),
                rs: kh.ld() as isize,
                cs: 1,
            },
            scale,
        );
        let nr = 2 * w + 1;
        rel_logits(qkv, qh, rel_k, nr, scale, rel);
        for i in 0..t {
            let row = &mut logits[i * t..(i + 1) * t];
            let lo = i.saturating_sub(w);
            let hi = (i + w).min(t - 1);
            let rr = &rel[i * nr..(i + 1) * nr];
            for (j, l) in row.iter_mut().enumerate().take(hi + 1).skip(lo) {
                *l += rr[j + w - i];
            }
            let mx = lanes(row, f32::NEG_INFINITY, f32::max);
            for l in row.iter_mut() {
                *l = fast_exp(*l - mx);
            }
            let inv = 1.0 / lanes(row, 0.0, |a, b| a + b);
            for l in row.iter_mut() {
                *l *= inv;
            }
        }
        // y_h[:, i] = Σ_j v[:, j] P[i, j]
        gemm(
            threads,
            d,
            t,
            t,
            y,
            Operand {
                off: yh.off(),
                rs: yh.ld() as isize,
                cs: 1,
            },
            false,
            qkv,
            Operand {
                off: vh.off(),
                rs: vh.ld() as isize,
                cs: 1,
            },
            logits,
            Operand {
                off: 0,
                rs: 1,
                cs: t as isize,
            },
            1.0,
        );
        // + Σ_r P[i, i+r] · rel_v[r + w] (P[i, j] at logits[i·t + j]).
        add_rel_values(y, yh, rel_v, t, d, band, |i, j| logits[i * t + j]);
        HEAD.with(|h| *h.borrow_mut() = s);
    };
    if threads > 1 && heads > 1 {
        // Heads in parallel, each on one thread (their GEMMs are small).
        use rayon::prelude::*;
        let yp = SendPtr(y.as_mut_ptr());
        let ylen = y.len();
        (0..heads).into_par_iter().for_each(|h| {
            // SAFETY: head h writes only rows h·d..(h+1)·d of the view ym,
            // which no other head touches; y outlives the parallel loop.
            let y = unsafe { std::slice::from_raw_parts_mut(yp.get(), ylen) };
            run_head(h, 1, y);
        });
    } else {
        for h in 0..heads {
            run_head(h, threads, y);
        }
    }
}

/// One head on the tile kernels: `Lᵀ = K̃ᵀQ` (keys as rows, queries as
/// columns), scaled plus the relative-key band, softmax down each column,
/// then `y_h = V·Pᵀ` and the relative-value band. `[qh, kh, vh]`: the
/// head's rows of q, k, v; `yh` its rows of y.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn amx_head(
    threads: usize,
    s: &mut Scratch,
    qkv: &[f32],
    [qh, kh, vh]: [Mat; 3],
    rel_k: &[f32],
    rel_v: &[f32],
    y: &mut [f32],
    yh: Mat,
) {
    let (t, d) = (qh.cols(), qh.rows());
    let nr = rel_k.len() / d;
    let scale = 1.0 / (d as f32).sqrt();
    if s.wt.len() < t * d {
        s.wt.resize(t * d, 0.0);
    }
    for c in s.cols.iter_mut() {
        c.resize(t, 0.0);
    }
    let Scratch {
        logits,
        rel,
        band,
        wt,
        cols: [mx, sum],
    } = s;
    let (logits, rel, wt) = (&mut logits[..t * t], &mut rel[..t * nr], &mut wt[..t * d]);
    // Kᵀ: row j = key j.
    // SAFETY: AVX-512 is present wherever the AMX kernels are.
    unsafe { x86_attention::transpose(&qkv[kh.off()..], kh.ld(), d, t, wt) };
    let lm = Mat::new(t, t);
    // SAFETY: the backend runs this path only where the AMX kernels exist;
    // views and lengths as the direct kernels require (kk = d rows of qh).
    unsafe { direct::matmul(threads, Arith::Bf16x3, wt, t, d, qkv, qh, logits, lm) };
    rel_logits(qkv, qh, rel_k, nr, scale, rel);
    // SAFETY: as above.
    unsafe {
        x86_attention::softmax_columns(logits, t, scale, rel, nr, &mut mx[..t], &mut sum[..t])
    };
    // V: [d, t] rows contiguous.
    for c in 0..d {
        wt[c * t..(c + 1) * t]
            .copy_from_slice(&qkv[vh.off() + c * vh.ld()..vh.off() + c * vh.ld() + t]);
    }
    // SAFETY: as above (kk = t rows of the probability matrix).
    unsafe { direct::matmul(threads, Arith::Bf16x3, wt, d, t, logits, lm, y, yh) };
    // + Σ_r P[i, i+r] · rel_v[r + w] (P[i, j] at row j, column i).
    add_rel_values(y, yh, rel_v, t, d, band, |i, j| logits[j * t + i]);
}

/// `rel[i, r] = scale · q_i · rel_k[r]` for every query `i` and offset row
/// `r` (`nr` rows): one small GEMM for all offsets.
fn rel_logits(qkv: &[f32], qh: Mat, rel_k: &[f32], nr: usize, scale: f32, rel: &mut [f32]) {
    let (t, d) = (qh.cols(), qh.rows());
    gemm(
        1,
        t,
        nr,
        d,
        rel,
        Operand {
            off: 0,
            rs: nr as isize,
            cs: 1,
        },
        false,
        qkv,
        Operand {
            off: qh.off(),
            rs: 1,
            cs: qh.ld() as isize,
        },
        rel_k,
        Operand {
            off: 0,
            rs: 1,
            cs: d as isize,
        },
        scale,
    );
}

/// `y_h[c, i] += Σ_r P[i, i + r] · rel_v[r + w, c]` with `p(i, j) = P[i, j]`:
/// per offset, the band `P[i, i + r]` gathered once into `band`, then each
/// output row takes it times `rel_v[r + w, c]` (contiguous along `i`).
fn add_rel_values(
    y: &mut [f32],
    yh: Mat,
    rel_v: &[f32],
    t: usize,
    d: usize,
    band: &mut Vec<f32>,
    p: impl Fn(usize, usize) -> f32,
) {
    let nr = rel_v.len() / d;
    let w = nr / 2;
    for r in 0..nr {
        let off = r as isize - w as isize;
        let i0 = (-off).max(0) as usize;
        let i1 = (t as isize - off).clamp(0, t as isize) as usize;
        if i1 <= i0 {
            continue;
        }
        band.clear();
        band.extend((i0..i1).map(|i| p(i, (i as isize + off) as usize)));
        let e = &rel_v[r * d..(r + 1) * d];
        for (c, &ev) in e.iter().enumerate() {
            let row = &mut y[yh.off() + c * yh.ld() + i0..yh.off() + c * yh.ld() + i1];
            for (o, &pv) in row.iter_mut().zip(band.iter()) {
                *o += pv * ev;
            }
        }
    }
}

/// Reduce `x` with `f` in 16 interleaved lanes (so it vectorizes: a single
/// running value is one long dependency chain), then the lanes in order.
#[inline(always)]
fn lanes(x: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = f(*a, v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a = f(*a, v);
    }
    acc.into_iter().fold(init, f)
}

/// One thread's attention scratch: logits `t×t`, relative logits, a band.
#[derive(Default)]
struct Scratch {
    logits: Vec<f32>,
    rel: Vec<f32>,
    band: Vec<f32>,
    /// Tile path: Kᵀ or V for packing, per-column max and sum.
    #[cfg(target_arch = "x86_64")]
    wt: Vec<f32>,
    #[cfg(target_arch = "x86_64")]
    cols: [Vec<f32>; 2],
}

impl Scratch {
    /// At least these lengths. Growth keeps a quarter of headroom, so a
    /// slowly rising sentence length does not reallocate every time.
    fn fit(&mut self, logits: usize, rel: usize, band: usize) {
        for (v, n) in [(&mut self.logits, logits), (&mut self.rel, rel)] {
            if v.len() < n {
                *v = vec![0.0; n + n / 4];
            }
        }
        if self.band.capacity() < band {
            self.band = Vec::with_capacity(band + band / 4);
        }
    }
}

thread_local! {
    static HEAD: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}
