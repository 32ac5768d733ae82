//! Relative-position multi-head attention (VITS text encoder).

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
    let mut logits = vec![0.0f32; t * t];
    let mut qs = vec![0.0f32; d];
    for h in 0..heads {
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
            &mut logits,
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
        for i in 0..t {
            for (c, qv) in qs.iter_mut().enumerate() {
                *qv = qkv[qh.off + c * qh.ld + i] * scale;
            }
            let row = &mut logits[i * t..(i + 1) * t];
            let lo = i.saturating_sub(w);
            let hi = (i + w).min(t - 1);
            for (j, l) in row.iter_mut().enumerate().take(hi + 1).skip(lo) {
                let e = &rel_k[(j + w - i) * d..(j + w - i + 1) * d];
                *l += qs.iter().zip(e).map(|(a, b)| a * b).sum::<f32>();
            }
            let mx = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0.0f32;
            for l in row.iter_mut() {
                *l = (*l - mx).exp();
                sum += *l;
            }
            let inv = 1.0 / sum;
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
            &logits,
            Operand {
                off: 0,
                rs: 1,
                cs: t as isize,
            },
            1.0,
        );
        // + Σ_r P[i, i+r] · rel_v[r + w]
        for i in 0..t {
            let lo = i.saturating_sub(w);
            let hi = (i + w).min(t - 1);
            for j in lo..=hi {
                let p = logits[i * t + j];
                let e = &rel_v[(j + w - i) * d..(j + w - i + 1) * d];
                for (c, &ev) in e.iter().enumerate() {
                    y[yh.off + c * yh.ld + i] += p * ev;
                }
            }
        }
    }
}
