//! Portable convolutions (every CPU) whose output columns are each summed in
//! one fixed order: bias, then input channel by channel, tap by tap.
//!
//! The `gemm` crate, which these replace for convs, picks its kernel (dot
//! products for tiny products, matrix-vector for one row or column) and its
//! depth blocking from the product's shape, so the same column of a conv
//! came out in the last bits differently in a narrower view, another column
//! tile or on another thread count: a streamed chunk differed from the whole
//! sentence. Here every column is one lane of a register tile of [`PN`]
//! columns × [`PM`] (or 4) output rows, whose sums do not depend on where the tile
//! starts, how wide the view is or which thread runs it.
//!
//! The input view is first copied into a zero-margined scratch (as the direct
//! AVX-512 kernels do), so every tap is a plain shifted load and a tile past
//! the view's end reads zeros. On x86-64 with AVX2 and FMA (detected at run
//! time) a tile is 6 × 2 AVX2 registers updated by fused multiply-adds; on
//! aarch64 6 × 4 NEON registers, fused too; elsewhere (and for
//! `VOXIDE_CPU_ISA=portable` on x86-64, and under Valgrind, which emulates
//! each fused multiply-add in C) plain Rust tiles, a multiply then an add,
//! 8 columns wide on x86-64. On one machine a family always gives the same
//! bits.

#![allow(unsafe_op_in_unsafe_fn)]

use super::par::SendPtr;
use crate::backend::{Mat, Out};

/// Output rows per register panel.
const PM: usize = 6;

/// The panel height for `cout` output rows: [`PM`], except 4 for narrow
/// convs whose last `cout mod 6` rows would be a large, slow share (the
/// decoder's 32-channel convs: 5 panels + 2 rows of 2 FMA chains each).
fn panel_rows(cout: usize) -> usize {
    if cout < 64 && cout.is_multiple_of(4) && !cout.is_multiple_of(PM) {
        4
    } else {
        PM
    }
}
/// Columns per register tile.
const PN: usize = 16;

/// A conv weight (`[cout, cin, k]`) packed in panels of `pm` output rows
/// ([`panel_rows`]), `[cin·k][pm]` each (the K order of the tiles), then
/// the remainder rows (`cout mod pm`) as one narrower panel
/// `[cin·k][cout mod pm]`.
pub(crate) struct Panels {
    w: Vec<f32>,
    cout: usize,
    cin: usize,
    k: usize,
    /// Run on the fused multiply-add tiles ([`fma_tiles`]).
    fused: bool,
    /// Rows per full panel ([`panel_rows`]).
    pm: usize,
}

impl Panels {
    /// Pack `w` (`[cout, cin, k]`, row-major) for the fused multiply-add
    /// tiles (`fused`: the caller checked [`fma_tiles`]) or the plain ones.
    pub(crate) fn new(w: &[f32], cout: usize, cin: usize, k: usize, fused: bool) -> Panels {
        let kk = cin * k;
        assert_eq!(w.len(), cout * kk, "conv weight size");
        let pm = panel_rows(cout);
        let full = cout / pm * pm;
        let mut p = vec![0.0; cout * kk];
        let (panels, rest) = p.split_at_mut(full * kk);
        for (pi, dst) in panels.chunks_exact_mut(pm * kk).enumerate() {
            for (q, d) in dst.chunks_exact_mut(pm).enumerate() {
                for (m, v) in d.iter_mut().enumerate() {
                    *v = w[(pi * pm + m) * kk + q];
                }
            }
        }
        // The remainder rows as one narrower panel, `[cin·k][cout − full]`.
        let r = cout - full;
        for (q, d) in rest.chunks_exact_mut(r.max(1)).enumerate().take(kk) {
            for (m, v) in d.iter_mut().enumerate() {
                *v = w[(full + m) * kk + q];
            }
        }
        Panels {
            w: p,
            cout,
            cin,
            k,
            fused: fused && fma_tiles(),
            pm,
        }
    }
}

/// Whether this CPU runs the fused multiply-add tiles: AVX2 + FMA on
/// x86-64 (detected at run time), always on aarch64.
pub(crate) fn fma_tiles() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static FMA: OnceLock<bool> = OnceLock::new();
        *FMA.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    // Every aarch64 CPU has fused multiply-adds.
    #[cfg(not(target_arch = "x86_64"))]
    {
        cfg!(target_arch = "aarch64")
    }
}

thread_local! {
    /// Zero-margined copies of conv inputs, reused call to call on each thread.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}


/// The tile's arguments after its weights and rows.
#[derive(Clone, Copy)]
struct Tile {
    cin: usize,
    k: usize,
    dil: usize,
    xs: *const f32,
    ldx: usize,
    ldy: usize,
    out: Out,
}

/// `M` output rows × `N` columns from scratch column `t0` (`n` stored):
/// bias, then `a·x` channel by channel, tap by tap, in every lane.
#[inline(always)]
unsafe fn tile<const FUSED: bool, const M: usize, const N: usize>(
    a: *const f32,
    bias: *const f32,
    s: Tile,
    t0: usize,
    y: *mut f32,
    n: usize,
) {
    let mut acc = [[0.0f32; N]; M];
    for (m, row) in acc.iter_mut().enumerate() {
        *row = [*bias.add(m); N];
    }
    let mut ap = a;
    for i in 0..s.cin {
        let xrow = s.xs.add(i * s.ldx + t0);
        for j in 0..s.k {
            let xv: [f32; N] = xrow.add(j * s.dil).cast::<[f32; N]>().read_unaligned();
            for (m, row) in acc.iter_mut().enumerate() {
                let w = *ap.add(m);
                for (r, &x) in row.iter_mut().zip(&xv) {
                    *r = if FUSED { w.mul_add(x, *r) } else { *r + w * x };
                }
            }
            ap = ap.add(M);
        }
    }
    // The first `n` lanes.
    for (m, row) in acc.iter().enumerate() {
        let yr = y.add(m * s.ldy);
        for (c, &v) in row.iter().enumerate() {
            if n == N || c < n {
                let o = yr.add(c);
                *o = match s.out {
                    Out::Set => v,
                    Out::SetRelu => v.max(0.0),
                    Out::Add => *o + v,
                };
            }
        }
    }
}

/// The loops of one work item: `panels` panels of `M` rows (`y` at the
/// first) × tiles `tile0..tile1`, panel by panel (its weights stay cached
/// over the column block); `tile(weights, bias, t0, y at t0, n)` computes
/// one [`PN`]-column tile of which `n` columns are stored. Inlined into each
/// family's item function (so into its `target_feature` code).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_loops<const M: usize>(
    a: *const f32,
    bias: *const f32,
    panels: usize,
    s: Tile,
    (tile0, tile1): (usize, usize),
    t: usize,
    y: *mut f32,
    tile: impl Fn(*const f32, *const f32, usize, *mut f32, usize),
) {
    let kk = s.cin * s.k;
    for p in 0..panels {
        let (ap, bp, yp) = (a.add(p * M * kk), bias.add(p * M), y.add(p * M * s.ldy));
        for ti in tile0..tile1 {
            let t0 = ti * PN;
            tile(ap, bp, t0, yp.add(t0), (t - t0).min(PN));
        }
    }
}

/// One work item on the plain (or `mul_add`) tiles: each [`PN`]-column tile
/// as `PN / N` register tiles of `N` columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn item_body<const FUSED: bool, const M: usize, const N: usize>(
    a: *const f32,
    bias: *const f32,
    panels: usize,
    s: Tile,
    tiles: (usize, usize),
    t: usize,
    y: *mut f32,
) {
    panel_loops::<M>(a, bias, panels, s, tiles, t, y, |ap, bp, t0, yp, n| {
        for h in (0..n).step_by(N) {
            tile::<FUSED, M, N>(ap, bp, s, t0 + h, yp.add(h), (n - h).min(N));
        }
    });
}

/// [`tile`] on AVX2 registers with fused multiply-adds (intrinsics: the
/// compiler kept plain arrays of accumulators in memory).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile_avx2<const M: usize>(
    a: *const f32,
    bias: *const f32,
    s: Tile,
    t0: usize,
    y: *mut f32,
    n: usize,
) {
    use std::arch::x86_64::*;
    const V: usize = PN / 8;
    let mut acc = [[_mm256_setzero_ps(); V]; M];
    for (m, row) in acc.iter_mut().enumerate() {
        *row = [_mm256_broadcast_ss(&*bias.add(m)); V];
    }
    let mut ap = a;
    for i in 0..s.cin {
        let xrow = s.xs.add(i * s.ldx + t0);
        for j in 0..s.k {
            let bp = xrow.add(j * s.dil);
            let mut xv = [_mm256_setzero_ps(); V];
            for (v, x) in xv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(bp.add(8 * v));
            }
            for (m, row) in acc.iter_mut().enumerate() {
                let w = _mm256_broadcast_ss(&*ap.add(m));
                for (r, &x) in row.iter_mut().zip(&xv) {
                    *r = _mm256_fmadd_ps(w, x, *r);
                }
            }
            ap = ap.add(M);
        }
    }
    if n == PN {
        // A full tile: plain loads and stores (masked ones are slow on
        // some CPUs, e.g. AMD Zen).
        for (m, row) in acc.iter().enumerate() {
            let yr = y.add(m * s.ldy);
            for (v, &r) in row.iter().enumerate() {
                let p = yr.add(8 * v);
                let r = match s.out {
                    Out::Set => r,
                    Out::SetRelu => _mm256_max_ps(r, _mm256_setzero_ps()),
                    Out::Add => _mm256_add_ps(r, _mm256_loadu_ps(p)),
                };
                _mm256_storeu_ps(p, r);
            }
        }
        return;
    }
    // Per-vector lane masks of the last, partial tile.
    let masks: [__m256i; V] = std::array::from_fn(|v| {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let left = _mm256_set1_epi32(n.saturating_sub(8 * v).min(8) as i32);
        _mm256_cmpgt_epi32(left, lane)
    });
    for (m, row) in acc.iter().enumerate() {
        let yr = y.add(m * s.ldy);
        for (v, &r) in row.iter().enumerate() {
            let (p, mask) = (yr.add(8 * v), masks[v]);
            let r = match s.out {
                Out::Set => r,
                Out::SetRelu => _mm256_max_ps(r, _mm256_setzero_ps()),
                Out::Add => _mm256_add_ps(r, _mm256_maskload_ps(p, mask)),
            };
            _mm256_maskstore_ps(p, mask, r);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn item_fma<const M: usize>(
    a: *const f32,
    bias: *const f32,
    panels: usize,
    s: Tile,
    tiles: (usize, usize),
    t: usize,
    y: *mut f32,
) {
    panel_loops::<M>(a, bias, panels, s, tiles, t, y, |ap, bp, t0, yp, n| {
        tile_avx2::<M>(ap, bp, s, t0, yp, n)
    });
}

/// [`tile`] on NEON registers with fused multiply-adds: the same sums in
/// the same order as the `mul_add` form, bit for bit (intrinsics: the
/// compiler stored the `mul_add` form's accumulator arrays to the stack
/// after every tap).
#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn tile_neon<const M: usize>(
    a: *const f32,
    bias: *const f32,
    s: Tile,
    t0: usize,
    y: *mut f32,
    n: usize,
) {
    use std::arch::aarch64::*;
    const V: usize = PN / 4;
    let mut acc = [[vdupq_n_f32(0.0); V]; M];
    for (m, row) in acc.iter_mut().enumerate() {
        *row = [vdupq_n_f32(*bias.add(m)); V];
    }
    let mut ap = a;
    for i in 0..s.cin {
        let xrow = s.xs.add(i * s.ldx + t0);
        for j in 0..s.k {
            let bp = xrow.add(j * s.dil);
            let xv: [float32x4_t; V] = std::array::from_fn(|v| vld1q_f32(bp.add(4 * v)));
            for (m, row) in acc.iter_mut().enumerate() {
                let w = *ap.add(m);
                for (r, &x) in row.iter_mut().zip(&xv) {
                    *r = vfmaq_n_f32(*r, x, w);
                }
            }
            ap = ap.add(M);
        }
    }
    if n == PN {
        for (m, row) in acc.iter().enumerate() {
            let yr = y.add(m * s.ldy);
            for (v, &r) in row.iter().enumerate() {
                let p = yr.add(4 * v);
                let r = match s.out {
                    Out::Set => r,
                    Out::SetRelu => vmaxq_f32(r, vdupq_n_f32(0.0)),
                    Out::Add => vaddq_f32(r, vld1q_f32(p)),
                };
                vst1q_f32(p, r);
            }
        }
        return;
    }
    // The last, partial tile: the first `n` lanes through a buffer.
    for (m, row) in acc.iter().enumerate() {
        let mut lanes = [0.0f32; PN];
        for (v, &r) in row.iter().enumerate() {
            vst1q_f32(lanes.as_mut_ptr().add(4 * v), r);
        }
        let yr = y.add(m * s.ldy);
        for (c, &v) in lanes.iter().enumerate().take(n) {
            let o = yr.add(c);
            *o = match s.out {
                Out::Set => v,
                Out::SetRelu => v.max(0.0),
                Out::Add => *o + v,
            };
        }
    }
}

#[cfg(target_arch = "aarch64")]
#[allow(clippy::too_many_arguments)]
unsafe fn item_neon<const M: usize>(
    a: *const f32,
    bias: *const f32,
    panels: usize,
    s: Tile,
    tiles: (usize, usize),
    t: usize,
    y: *mut f32,
) {
    panel_loops::<M>(a, bias, panels, s, tiles, t, y, |ap, bp, t0, yp, n| {
        tile_neon::<M>(ap, bp, s, t0, yp, n)
    });
}

#[allow(clippy::too_many_arguments)]
unsafe fn item_plain<const M: usize>(
    a: *const f32,
    bias: *const f32,
    panels: usize,
    s: Tile,
    tiles: (usize, usize),
    t: usize,
    y: *mut f32,
) {
    // Narrower register tiles where vectors are 128-bit (x86-64 without
    // the FMA tiles: 16 SSE registers hold 6 × 8 accumulators, not 6 × 16).
    const N: usize = if cfg!(target_arch = "x86_64") { 8 } else { PN };
    item_body::<false, M, N>(a, bias, panels, s, tiles, t, y);
}

/// [`item_body`] with fused multiply-adds where the CPU has them.
#[allow(clippy::too_many_arguments)]
unsafe fn item<const M: usize>(
    fused: bool,
    a: *const f32,
    bias: *const f32,
    panels: usize,
    s: Tile,
    tiles: (usize, usize),
    t: usize,
    y: *mut f32,
) {
    if fused {
        #[cfg(target_arch = "x86_64")]
        item_fma::<M>(a, bias, panels, s, tiles, t, y);
        #[cfg(target_arch = "aarch64")]
        item_neon::<M>(a, bias, panels, s, tiles, t, y);
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        item_body::<true, M, PN>(a, bias, panels, s, tiles, t, y);
    } else {
        item_plain::<M>(a, bias, panels, s, tiles, t, y);
    }
}

/// `y (op)= conv(x) + b` ("same" padding); with `act = Some(slope)`,
/// `conv(LeakyReLU_slope(x))` (applied as the input is copied, the same
/// values as the backend's separate pass).
///
/// # Safety
/// The views' bounds checked against the slices, `xm.rows() == w.cin`,
/// `ym.rows() == w.cout`, `bias.len() >= w.cout`, `xm.cols() == ym.cols()`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn conv1d(
    threads: usize,
    w: &Panels,
    bias: &[f32],
    dilation: usize,
    x: &[f32],
    xm: Mat,
    act: Option<f32>,
    y: *mut f32,
    ym: Mat,
    out: Out,
) {
    let pad = dilation * (w.k - 1) / 2;
    run(threads, w, bias, dilation, pad, x.as_ptr(), xm, act, y, ym, out);
}

/// `y += conv(LeakyReLU_slope(y)) + b` in place (`cin == cout`; the input
/// is copied before any output is written).
///
/// # Safety
/// As [`conv1d`] with `ym` as both views.
pub(crate) unsafe fn conv1d_lrelu_add_inplace(
    threads: usize,
    w: &Panels,
    bias: &[f32],
    dilation: usize,
    slope: f32,
    y: &mut [f32],
    ym: Mat,
) {
    let pad = dilation * (w.k - 1) / 2;
    let yp = y.as_mut_ptr();
    run(threads, w, bias, dilation, pad, yp, ym, Some(slope), yp, ym, Out::Add);
}

/// Output column `t` of `ym` (any length) reads input columns
/// `t − padl + j·dilation` of `xm` for each tap `j`, zeros outside it. The
/// input is copied into the scratch before any output is written (so `y`
/// may alias `x`).
///
/// # Safety
/// As [`conv1d`], without the equal-length condition; `x` holds `xm`.
#[allow(clippy::too_many_arguments)]
unsafe fn run(
    threads: usize,
    w: &Panels,
    bias: &[f32],
    dilation: usize,
    padl: usize,
    x: *const f32,
    xm: Mat,
    act: Option<f32>,
    y: *mut f32,
    ym: Mat,
    out: Out,
) {
    let t = ym.cols();
    if t == 0 {
        return;
    }
    let (cin, k, fused) = (w.cin, w.k, w.fused);
    let tiles = t.div_ceil(PN);
    // Every tap of every tile (full width past the view's end) in the row.
    let ldx = (padl + xm.cols())
        .max(tiles * PN + (k - 1) * dilation)
        .div_ceil(16)
        * 16;
    // Taken out of the thread-local for the call: a rayon worker waiting on
    // this call's items may run another conv meanwhile.
    let mut xs = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if xs.len() < cin * ldx {
        xs.resize(cin * ldx, 0.0);
    }
    let xp = SendPtr(x.cast_mut());
    let fill = |(i, row): (usize, &mut [f32])| {
        // SAFETY: `x` holds the view (caller); nothing writes `y` (which
        // may alias it) before every row is copied.
        let src = std::slice::from_raw_parts(xp.get().add(xm.off() + i * xm.ld()), xm.cols());
        row[..padl].fill(0.0);
        let body = &mut row[padl..padl + xm.cols()];
        match act {
            None => body.copy_from_slice(src),
            // Exactly the backend's leaky_relu.
            Some(slope) => {
                for (d, &v) in body.iter_mut().zip(src) {
                    *d = if v >= 0.0 { v } else { v * slope };
                }
            }
        }
        row[padl + xm.cols()..].fill(0.0);
    };
    let rows = xs[..cin * ldx].chunks_exact_mut(ldx).enumerate();
    if threads > 1 && cin * ldx >= 1 << 16 {
        use rayon::prelude::*;
        xs[..cin * ldx]
            .par_chunks_exact_mut(ldx)
            .enumerate()
            .for_each(fill);
    } else {
        rows.for_each(fill);
    }

    let kk = cin * k;
    let pm = w.pm;
    let panels = w.cout / pm;
    let rem = w.cout - panels * pm;
    // Column blocks whose input (`cin` rows) stays around 256 KiB, as equal
    // as they can be; groups of panels where there are fewer blocks than
    // work items wanted.
    let max_tiles = (16 * 1024 / cin.max(1) / PN).clamp(2, 32);
    let col_blocks = tiles.div_ceil(max_tiles);
    let block_tiles = tiles.div_ceil(col_blocks);
    let want = if threads > 1 { 4 * threads } else { 1 };
    let groups = if col_blocks >= want || panels == 0 {
        1
    } else {
        want.div_ceil(col_blocks).min(panels)
    };
    let per_group = panels.div_ceil(groups).max(1);
    let groups = if panels == 0 {
        1
    } else {
        panels.div_ceil(per_group)
    };
    let s = Tile {
        cin,
        k,
        dil: dilation,
        xs: xs.as_ptr(),
        ldx,
        ldy: ym.ld(),
        out,
    };
    let (yp, sp) = (SendPtr(y), SendPtr(s.xs.cast_mut()));
    let item_at = |it: usize| {
        let s = Tile {
            xs: sp.get().cast_const(),
            ..s
        };
        let (cb, g) = (it / groups, it % groups);
        let tile0 = cb * block_tiles;
        let tiles = (tile0, (tile0 + block_tiles).min(tiles));
        let p0 = (g * per_group).min(panels);
        let p1 = ((g + 1) * per_group).min(panels);
        let yb = yp.get().add(ym.off());
        let o0 = p0 * pm;
        let item_pm = if pm == PM { item::<PM> } else { item::<4> };
        item_pm(
            fused,
            w.w.as_ptr().add(o0 * kk),
            bias.as_ptr().add(o0),
            p1 - p0,
            s,
            tiles,
            t,
            yb.add(o0 * ym.ld()),
        );
        if g + 1 == groups && rem > 0 {
            let o0 = panels * pm;
            let (a, b, y) = (
                w.w.as_ptr().add(o0 * kk),
                bias.as_ptr().add(o0),
                yb.add(o0 * ym.ld()),
            );
            match rem {
                1 => item::<1>(fused, a, b, 1, s, tiles, t, y),
                2 => item::<2>(fused, a, b, 1, s, tiles, t, y),
                3 => item::<3>(fused, a, b, 1, s, tiles, t, y),
                4 => item::<4>(fused, a, b, 1, s, tiles, t, y),
                _ => item::<5>(fused, a, b, 1, s, tiles, t, y),
            }
        }
    };
    let items = col_blocks * groups;
    if threads > 1 && items > 1 && w.cout * kk * t >= 1 << 16 {
        use rayon::prelude::*;
        (0..items).into_par_iter().for_each(item_at);
    } else {
        (0..items).for_each(item_at);
    }
    SCRATCH.with(|c| *c.borrow_mut() = xs);
}

/// A transposed conv (kernel `2u`, stride `u`, padding `u/2`) packed as its
/// `u` output phases stacked into one `[u·cout, cin, 2]` conv whose taps
/// read `x[t − 1]` and `x[t]`.
pub(crate) struct PanelsT {
    stacked: Panels,
    bias: Vec<f32>,
    cout: usize,
    stride: usize,
}

impl PanelsT {
    /// Pack `w` (`[cin, cout, 2u]`, row-major) and its bias (`fused` as
    /// [`Panels::new`]).
    pub(crate) fn new(
        w: &[f32],
        bias: &[f32],
        cin: usize,
        cout: usize,
        stride: usize,
        fused: bool,
    ) -> Self {
        let (st, bias) = super::phases::stack(w, bias, cin, cout, stride);
        PanelsT {
            stacked: Panels::new(&st, stride * cout, cin, 2, fused),
            bias,
            cout,
            stride,
        }
    }
}

/// Transposed conv: all phases in one stacked conv over `L + 1` columns,
/// then interleaved into `y` (`ym.cols() = u·L`).
///
/// # Safety
/// The views' bounds checked against the slices, `xm.rows() == cin`,
/// `ym.rows() == cout`, `ym.cols() == stride · xm.cols()`.
pub(crate) unsafe fn conv_transpose(
    threads: usize,
    w: &PanelsT,
    x: &[f32],
    xm: Mat,
    y: &mut [f32],
    ym: Mat,
) {
    let (u, l, c) = (w.stride, xm.cols(), w.cout);
    super::phases::transpose(threads, u, c, l, y.as_mut_ptr(), ym, |ph, pm| {
        run(threads, &w.stacked, &w.bias, 1, 1, x.as_ptr(), xm, None, ph, pm, Out::Set);
    });
}

#[cfg(test)]
mod tests {
    use crate::backend::cpu::conv::{
        conv1d, conv1d_lrelu, conv1d_lrelu_add_inplace, conv_transpose, CpuConv, CpuConvT,
    };
    use crate::backend::{Conv, ConvTranspose, Mat, Out};


    fn rnd(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// The plain tiles (CPUs without the FMA ones) and the FMA tiles
    /// compute the same conv (to rounding), every output mode, with
    /// remainder rows and a short last tile.
    #[test]
    fn plain_tiles_match_fma_tiles() {
        if !super::fma_tiles() {
            crate::test_skip("plain_tiles_match_fma_tiles", "this CPU has no FMA tiles (AVX2 + FMA)");
            return;
        }
        let mut seed = 5u64;
        let (cout, cin, k, d, t) = (11, 7, 5, 2, 37);
        let w: Vec<f32> = (0..cout * cin * k).map(|_| rnd(&mut seed)).collect();
        let b: Vec<f32> = (0..cout).map(|_| rnd(&mut seed)).collect();
        let packs = [false, true].map(|fused| super::Panels::new(&w, cout, cin, k, fused));
        let x: Vec<f32> = (0..cin * t).map(|_| rnd(&mut seed)).collect();
        let y0: Vec<f32> = (0..cout * t).map(|_| rnd(&mut seed)).collect();
        let (xm, ym) = (Mat::new(cin, t), Mat::new(cout, t));
        for out in [Out::Set, Out::SetRelu, Out::Add] {
            let mut got = [y0.clone(), y0.clone()];
            for (p, y) in packs.iter().zip(&mut got) {
                // SAFETY: the views fit the buffers; shapes match the pack.
                unsafe {
                    super::run(1, p, &b, d, 4, x.as_ptr(), xm, None, y.as_mut_ptr(), ym, out)
                };
            }
            for (i, (a, c)) in got[0].iter().zip(&got[1]).enumerate() {
                assert!((a - c).abs() <= 1e-5, "{out:?} element {i}: {a} vs {c}");
            }
            assert_ne!(got[0], y0);
        }
    }

    /// Each tile family sums exactly as its definition says, bit for bit:
    /// bias, then every input channel, tap by tap, with fused multiply-adds
    /// (the AVX2 / NEON tiles) or a multiply then an add (the plain tiles),
    /// full and partial tiles, remainder rows, every output mode.
    #[test]
    fn tiles_sum_in_the_defined_order_bit_for_bit() {
        let mut seed = 9u64;
        let (cout, cin, k, d, t, padl) = (9, 5, 3, 2, 37, 2);
        let w: Vec<f32> = (0..cout * cin * k).map(|_| rnd(&mut seed)).collect();
        let b: Vec<f32> = (0..cout).map(|_| rnd(&mut seed)).collect();
        let x: Vec<f32> = (0..cin * t).map(|_| rnd(&mut seed)).collect();
        let y0: Vec<f32> = (0..cout * t).map(|_| rnd(&mut seed)).collect();
        let (xm, ym) = (Mat::new(cin, t), Mat::new(cout, t));
        let families: Vec<bool> = if super::fma_tiles() {
            vec![false, true]
        } else {
            crate::test_skip(
                "tiles_sum_in_the_defined_order_bit_for_bit",
                "this CPU has no FMA tiles: the plain tiles only",
            );
            vec![false]
        };
        for fused in families {
            let p = super::Panels::new(&w, cout, cin, k, fused);
            for out in [Out::Set, Out::SetRelu, Out::Add] {
                let mut got = y0.clone();
                // SAFETY: the views fit the buffers; shapes match the pack.
                unsafe {
                    super::run(1, &p, &b, d, padl, x.as_ptr(), xm, None, got.as_mut_ptr(), ym, out)
                };
                for o in 0..cout {
                    for c in 0..t {
                        let mut acc = b[o];
                        for i in 0..cin {
                            for j in 0..k {
                                let src = (c + j * d).checked_sub(padl).filter(|&s| s < t);
                                let xv = src.map_or(0.0, |s| x[i * t + s]);
                                let wv = w[(o * cin + i) * k + j];
                                acc = if fused { wv.mul_add(xv, acc) } else { acc + wv * xv };
                            }
                        }
                        let want = match out {
                            Out::Set => acc,
                            Out::SetRelu => acc.max(0.0),
                            Out::Add => y0[o * t + c] + acc,
                        };
                        assert_eq!(
                            got[o * t + c].to_bits(),
                            want.to_bits(),
                            "fused {fused} {out:?} row {o} col {c}"
                        );
                    }
                }
            }
        }
    }

    /// Windows `s..e` of `0..t`: the whole, narrow ones (one column, less
    /// than a tile), at either true end, and inside.
    fn windows(t: usize) -> Vec<(usize, usize)> {
        let mut w = vec![(0, t), (0, 1), (t - 1, t), (0, 7), (t - 9, t), (3, t)];
        for s in [1, 5, 17, 30] {
            for e in [s + 1, s + 2, s + 13, s + 16, s + 17, s + 33, t] {
                if s < e && e <= t {
                    w.push((s, e));
                }
            }
        }
        w
    }

    /// Bit-for-bit equality of each column a window computes with all the
    /// input it reads (or the sentence's zero padding at a true end) and
    /// the same column of the whole run, whatever the window's width and
    /// position and the thread count: the portable convs (and transposed
    /// convs) of a Piper medium voice's flow and decoder shapes, with the
    /// fused LeakyReLU forms. (The im2col + `gemm` crate path they replace
    /// summed a column differently in a narrower view: dot products for
    /// tiny products, matrix-vector kernels for one output row or column,
    /// depth blocking by shape.)
    #[test]
    fn plain_tiles_columns_do_not_depend_on_window_or_threads() {
        if cfg!(target_arch = "aarch64") {
            // aarch64 always runs the NEON tiles; under qemu this test
            // takes minutes.
            crate::test_skip(
                "plain_tiles_columns_do_not_depend_on_window_or_threads",
                "aarch64 runs the NEON tiles only (the plain tiles are checked on x86-64)",
            );
            return;
        }
        columns_do_not_depend_on_window_or_threads(false);
    }

    #[test]
    fn fma_tiles_columns_do_not_depend_on_window_or_threads() {
        if !super::fma_tiles() {
            crate::test_skip(
                "fma_tiles_columns_do_not_depend_on_window_or_threads",
                "this CPU has no FMA tiles (AVX2 + FMA)",
            );
            return;
        }
        columns_do_not_depend_on_window_or_threads(true);
    }

    fn columns_do_not_depend_on_window_or_threads(fused: bool) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        let mut seed = 17u64;
        let t = 70;
        // (cout, cin, k, dilation): conv_post, ResBlock convs, conv_pre, the
        // flow's WN in-layer, res/skip, pre and post convs.
        for &(cout, cin, k, d) in &[
            (1, 32, 7, 1),
            (32, 32, 3, 5),
            (64, 64, 11, 3),
            (128, 128, 7, 1),
            (512, 192, 7, 1),
            (384, 192, 5, 1),
            (192, 192, 1, 1),
            (192, 96, 1, 1),
            (96, 192, 1, 1),
            (13, 5, 3, 2),
        ] {
            let c = Conv {
                w: (0..cout * cin * k).map(|_| rnd(&mut seed)).collect(),
                b: Some((0..cout).map(|_| rnd(&mut seed)).collect()),
                cout,
                cin,
                k,
                dilation: d,
            };
            let w = CpuConv::portable(&c, fused);
            let pad = d * (k - 1) / 2;
            let x: Vec<f32> = (0..cin * t).map(|_| rnd(&mut seed) * 3.0).collect();
            let y0: Vec<f32> = (0..cout * t).map(|_| rnd(&mut seed)).collect();
            let xm = Mat::new(cin, t);
            for out in [Out::Set, Out::SetRelu, Out::Add] {
                for act in [None, Some(0.1)] {
                    let run = |threads: usize, s: usize, e: usize| {
                        let mut y = y0.clone();
                        let ym = Mat::new(cout, t).sub_cols(s, e);
                        pool.install(|| match act {
                            None => conv1d(threads, &w, &x, xm.sub_cols(s, e), &mut y, ym, out),
                            Some(a) => assert!(conv1d_lrelu(
                                threads,
                                &w,
                                a,
                                &x,
                                xm.sub_cols(s, e),
                                &mut y,
                                ym,
                                out
                            )),
                        });
                        y
                    };
                    let whole = run(1, 0, t);
                    for threads in [1, 2] {
                        for (s, e) in windows(t) {
                            let part = run(threads, s, e);
                            let lo = if s == 0 { 0 } else { s + pad };
                            let hi = if e == t { t } else { e.saturating_sub(pad) };
                            for o in 0..cout {
                                for col in lo..hi.max(lo) {
                                    let i = o * t + col;
                                    assert_eq!(
                                        whole[i].to_bits(),
                                        part[i].to_bits(),
                                        "conv {cout}x{cin} k{k} d{d} {out:?} act {act:?} \
                                         threads {threads} window {s}..{e}: row {o} col {col}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
            // In place (square convs): the same as the two-pass form.
            if cin == cout {
                let lrelu: Vec<f32> = y0
                    .iter()
                    .map(|&v| if v >= 0.0 { v } else { v * 0.1 })
                    .collect();
                for threads in [1, 2] {
                    let m = Mat::new(cout, t);
                    let mut want = y0.clone();
                    pool.install(|| conv1d(threads, &w, &lrelu, m, &mut want, m, Out::Add));
                    let mut got = y0.clone();
                    pool.install(|| {
                        assert!(conv1d_lrelu_add_inplace(threads, &w, 0.1, &mut got, m))
                    });
                    assert!(want
                        .iter()
                        .zip(&got)
                        .all(|(a, b)| a.to_bits() == b.to_bits()));
                }
            }
        }
        // The decoder's transposed convs (cin, cout, stride).
        for &(cin, cout, u) in &[(512, 256, 8), (128, 64, 2), (9, 13, 4)] {
            let c = ConvTranspose {
                w: (0..cin * cout * 2 * u).map(|_| rnd(&mut seed)).collect(),
                b: (0..cout).map(|_| rnd(&mut seed)).collect(),
                cin,
                cout,
                k: 2 * u,
                stride: u,
            };
            let w = CpuConvT::portable(&c, fused);
            let x: Vec<f32> = (0..cin * t).map(|_| rnd(&mut seed)).collect();
            let n = u * t;
            let run = |threads: usize, s: usize, e: usize| {
                let mut y = vec![0.0f32; cout * n];
                let ym = Mat::new(cout, n).sub_cols(s * u, e * u);
                pool.install(|| {
                    conv_transpose(threads, &w, &x, Mat::new(cin, t).sub_cols(s, e), &mut y, ym)
                });
                y
            };
            let whole = run(1, 0, t);
            for threads in [1, 2] {
                for (s, e) in windows(t) {
                    let part = run(threads, s, e);
                    // Output q reads inputs (q + u/2)/u and the one before.
                    let lo = if s == 0 { 0 } else { (s + 1) * u - u / 2 };
                    let hi = if e == t { n } else { e * u - u / 2 };
                    for o in 0..cout {
                        for q in lo..hi.max(lo) {
                            let i = o * n + q;
                            assert_eq!(
                                whole[i].to_bits(),
                                part[i].to_bits(),
                                "conv_transpose {cin}->{cout} u{u} threads {threads} \
                                 window {s}..{e}: row {o} col {q}"
                            );
                        }
                    }
                }
            }
        }
    }
}
