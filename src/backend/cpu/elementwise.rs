//! Element-wise ops over views: host copies, embedding lookup, axpy, scale,
//! copies, activations, the WaveNet gate, the prior expansion and column
//! zeroing. The backend checked every view against its buffer and the op's
//! shape rule before calling in.

use super::math::{fast_sigmoid, fast_tanh};
use super::par::{rows, rows_mut};
use crate::backend::Mat;

/// Element-wise ops smaller than this run on one thread.
const PAR_MIN_ELEMS: usize = 1 << 15;

/// Run `f` on every item, split over the pool's threads when the op is big.
fn par_each<T: Send>(threads: usize, items: Vec<T>, work: usize, f: impl Fn(T) + Sync + Send) {
    if threads > 1 && work >= PAR_MIN_ELEMS && items.len() > 1 {
        use rayon::prelude::*;
        items.into_par_iter().for_each(f);
    } else {
        items.into_iter().for_each(f);
    }
}

/// `f(y_row, x_row)` for every row pair.
fn zip_rows(
    threads: usize,
    y: &mut [f32],
    ym: Mat,
    x: &[f32],
    xm: Mat,
    f: impl Fn(&mut [f32], &[f32]) + Sync + Send,
) {
    let items: Vec<(&mut [f32], &[f32])> = rows_mut(y, ym).zip(rows(x, xm)).collect();
    par_each(threads, items, ym.rows() * ym.cols(), |(a, b)| f(a, b));
}

/// Copy the dense host matrix `src` into the view `m` of `dst`.
pub(crate) fn write(dst: &mut [f32], m: Mat, src: &[f32]) {
    for (r, s) in rows_mut(dst, m).zip(src.chunks(m.cols().max(1))) {
        r.copy_from_slice(s);
    }
}

/// Copy the view `m` of `src` into the dense host matrix `dst`.
pub(crate) fn read(src: &[f32], m: Mat, dst: &mut [f32]) {
    for (r, d) in rows(src, m).zip(dst.chunks_mut(m.cols().max(1))) {
        d.copy_from_slice(r);
    }
}

/// `y[:, t] = table[ids[t], :] · scale` (ids checked against the table).
pub(crate) fn embed(table: &[f32], ids: &[i64], scale: f32, y: &mut [f32], ym: Mat) {
    let h = ym.rows();
    for (t, &id) in ids.iter().enumerate().take(ym.cols()) {
        let row = &table[id as usize * h..(id as usize + 1) * h];
        for (c, &v) in row.iter().enumerate() {
            y[ym.off() + c * ym.ld() + t] = v * scale;
        }
    }
}

/// `y += alpha · x`.
pub(crate) fn axpy(threads: usize, alpha: f32, x: &[f32], xm: Mat, y: &mut [f32], ym: Mat) {
    zip_rows(threads, y, ym, x, xm, |yr, xr| {
        for (a, b) in yr.iter_mut().zip(xr) {
            *a += alpha * b;
        }
    });
}

/// `x[r, :] += bias[r]`.
pub(crate) fn add_rows(threads: usize, bias: &[f32], x: &mut [f32], xm: Mat) {
    let work = xm.rows() * xm.cols();
    let items: Vec<(&mut [f32], f32)> = rows_mut(x, xm).zip(bias.iter().copied()).collect();
    par_each(threads, items, work, |(r, b)| {
        for v in r {
            *v += b;
        }
    });
}

/// `x *= alpha`.
pub(crate) fn scale(threads: usize, alpha: f32, x: &mut [f32], xm: Mat) {
    let work = xm.rows() * xm.cols();
    par_each(threads, rows_mut(x, xm).collect(), work, |r| {
        for v in r {
            *v *= alpha;
        }
    });
}

/// `y = x`.
pub(crate) fn copy(threads: usize, x: &[f32], xm: Mat, y: &mut [f32], ym: Mat) {
    zip_rows(threads, y, ym, x, xm, |yr, xr| yr.copy_from_slice(xr));
}

/// `y = x` with the row order reversed.
pub(crate) fn flip_rows(x: &[f32], xm: Mat, y: &mut [f32], ym: Mat) {
    let src: Vec<&[f32]> = rows(x, xm).collect();
    for (yr, xr) in rows_mut(y, ym).zip(src.into_iter().rev()) {
        yr.copy_from_slice(xr);
    }
}

/// `y = tanh(a[0:C]) ⊙ sigmoid(a[C:2C])` with `C = ym.rows()`.
pub(crate) fn gate_tanh_sigmoid(threads: usize, a: &[f32], am: Mat, y: &mut [f32], ym: Mat) {
    let c = ym.rows();
    let work = ym.rows() * ym.cols();
    let items: Vec<(&mut [f32], &[f32], &[f32])> = rows_mut(y, ym)
        .zip(rows(a, am.sub_rows(0, c)).zip(rows(a, am.sub_rows(c, 2 * c))))
        .map(|(yr, (ta, sa))| (yr, ta, sa))
        .collect();
    par_each(threads, items, work, |(yr, ta, sa)| {
        for ((o, &t), &s) in yr.iter_mut().zip(ta).zip(sa) {
            *o = fast_tanh(t) * fast_sigmoid(s);
        }
    });
}

/// `y = LeakyReLU_slope(x)`.
pub(crate) fn leaky_relu(threads: usize, slope: f32, x: &[f32], xm: Mat, y: &mut [f32], ym: Mat) {
    zip_rows(threads, y, ym, x, xm, |yr, xr| {
        for (o, &v) in yr.iter_mut().zip(xr) {
            *o = if v >= 0.0 { v } else { v * slope };
        }
    });
}

/// `x = tanh(x)`.
pub(crate) fn tanh(threads: usize, x: &mut [f32], xm: Mat) {
    let work = xm.rows() * xm.cols();
    par_each(threads, rows_mut(x, xm).collect(), work, |r| {
        for v in r {
            *v = fast_tanh(*v);
        }
    });
}

/// `y[:, f] = m[:, owner[f]] + noise[:, f] · exp(logs[:, owner[f]]) ·
/// noise_scale` (`ml` = `m` over `logs`), zero where the owner is `u32::MAX`.
pub(crate) fn expand_prior(
    ml: &[f32],
    mlm: Mat,
    owner: &[u32],
    noise: &[f32],
    noise_scale: f32,
    y: &mut [f32],
    ym: Mat,
) {
    let h = ym.rows();
    let f = ym.cols();
    for (c, yr) in rows_mut(y, ym).enumerate() {
        let m = &ml[mlm.off() + c * mlm.ld()..];
        let l = &ml[mlm.off() + (c + h) * mlm.ld()..];
        let nz = &noise[c * f..(c + 1) * f];
        for ((o, &own), &e) in yr.iter_mut().zip(owner).zip(nz) {
            *o = if own == u32::MAX {
                0.0
            } else {
                let t = own as usize;
                e * libm::expf(l[t]) * noise_scale + m[t]
            };
        }
    }
}

/// Zero the columns `c0..c1` (relative to the view, clipped to it) of every
/// row of `xm`.
pub(crate) fn zero_cols(x: &mut [f32], xm: Mat, ranges: &[(usize, usize)]) {
    for r in rows_mut(x, xm) {
        for &(c0, c1) in ranges {
            let (c0, c1) = (c0.min(r.len()), c1.min(r.len()));
            if c0 < c1 {
                r[c0..c1].fill(0.0);
            }
        }
    }
}
