//! The AVX-512 parts of the attention's AMX path: the key transpose and the
//! column softmax (plain Rust compiled for AVX-512, so the loops run 16
//! columns a vector; the same sums in the same order as scalar code).

use crate::backend::cpu::math::fast_exp;

/// `dst[j·rows + c] = src[c·ld + j]` for `c < rows`, `j < cols`, in
/// 16×16 blocks (both sides stay in cache).
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW ([`super::has_avx512`]).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn transpose(src: &[f32], ld: usize, rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 16;
    for c0 in (0..rows).step_by(B) {
        for j0 in (0..cols).step_by(B) {
            for c in c0..(c0 + B).min(rows) {
                let r = &src[c * ld..];
                for j in j0..(j0 + B).min(cols) {
                    dst[j * rows + c] = r[j];
                }
            }
        }
    }
}

/// Softmax down every column of `l` (`t × t`, keys as rows) of
/// `scale·l + rel-band`: the band adds `rel[i, j − i + w]` where
/// `|j − i| ≤ w`. Row passes, so the loops vectorize over the columns.
///
/// # Safety
/// As [`transpose`].
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn softmax_columns(
    l: &mut [f32],
    t: usize,
    scale: f32,
    rel: &[f32],
    nr: usize,
    mx: &mut [f32],
    sum: &mut [f32],
) {
    let w = nr / 2;
    mx.fill(f32::NEG_INFINITY);
    for (j, row) in l.chunks_exact_mut(t).enumerate() {
        for v in row.iter_mut() {
            *v *= scale;
        }
        for i in j.saturating_sub(w)..(j + w + 1).min(t) {
            row[i] += rel[i * nr + j + w - i];
        }
        for (m, &v) in mx.iter_mut().zip(row.iter()) {
            *m = if v > *m { v } else { *m };
        }
    }
    sum.fill(0.0);
    for row in l.chunks_exact_mut(t) {
        for ((v, &m), s) in row.iter_mut().zip(mx.iter()).zip(sum.iter_mut()) {
            *v = fast_exp(*v - m);
            *s += *v;
        }
    }
    for s in sum.iter_mut() {
        *s = 1.0 / *s;
    }
    for row in l.chunks_exact_mut(t) {
        for (v, &inv) in row.iter_mut().zip(sum.iter()) {
            *v *= inv;
        }
    }
}
