//! Relative-position multi-head attention (VITS text encoder).

use super::conv::SendPtr;
use super::elementwise::fast_exp;
use super::gemm::{gemm, Operand};
use crate::backend::Mat;

/// `rel_k`/`rel_v` are `[2w+1, d]` tables shared by all heads; row `r + w` is
/// the offset `r = key − query`. Outside the window the relative term is 0.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rel_attention(
    threads: usize,
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
    let t = q.cols;
    let d = q.rows / heads;
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
        let Scratch { logits, rel, band } = &mut s;
        let (logits, rel) = (&mut logits[..t * t], &mut rel[..t * (2 * w + 1)]);
        let (qh, kh, vh, yh) = (
            q.rows(h * d, (h + 1) * d),
            k.rows(h * d, (h + 1) * d),
            v.rows(h * d, (h + 1) * d),
            ym.rows(h * d, (h + 1) * d),
        );
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
                off: qh.off,
                rs: 1,
                cs: qh.ld as isize,
            },
            qkv,
            Operand {
                off: kh.off,
                rs: kh.ld as isize,
                cs: 1,
            },
            scale,
        );
        // rel[i, r] = (q_i / √d) · rel_k[r]: one small GEMM for all offsets.
        let nr = 2 * w + 1;
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
                off: qh.off,
                rs: 1,
                cs: qh.ld as isize,
            },
            rel_k,
            Operand {
                off: 0,
                rs: 1,
                cs: d as isize,
            },
            scale,
        );
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
                off: yh.off,
                rs: yh.ld as isize,
                cs: 1,
            },
            false,
            qkv,
            Operand {
                off: vh.off,
                rs: vh.ld as isize,
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
        // + Σ_r P[i, i+r] · rel_v[r + w]: per offset r, the band P[i, i + r]
        // gathered once, then each output row takes it times rel_v[r + w, c]
        // (contiguous along i).
        for r in 0..=2 * w {
            let off = r as isize - w as isize;
            let i0 = (-off).max(0) as usize;
            let i1 = (t as isize - off).clamp(0, t as isize) as usize;
            if i1 <= i0 {
                continue;
            }
            band.clear();
            band.extend((i0..i1).map(|i| logits[i * t + (i as isize + off) as usize]));
            let e = &rel_v[r * d..(r + 1) * d];
            for (c, &ev) in e.iter().enumerate() {
                let row = &mut y[yh.off + c * yh.ld + i0..yh.off + c * yh.ld + i1];
                for (o, &p) in row.iter_mut().zip(band.iter()) {
                    *o += p * ev;
                }
            }
        }
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
