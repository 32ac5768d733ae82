//! Direct AVX-512 convolutions: no im2col matrix, no separate bias pass.
//!
//! The input view is copied once into a zero-margined scratch (rows = input
//! channels, `pad` zeros left, `pad + NR` zeros right), so every kernel tap is a
//! plain shifted load. The weights are packed once into panels of [`MR`]
//! output channels, `[K][MR]` with `K = cin·k` ordered channel-major, so each
//! step broadcasts `MR` weights against `NV` vectors of 16 time steps.
//!
//! Every output column accumulates in the same order (bias, then channel by
//! channel, tap by tap) whatever the tiling, the view length or the thread
//! count: a chunk computes bit-for-bit the same samples as the whole sentence.
//!
//! [`Arith::Bf16`] packs weights and the scratch as bf16 pairs (two input
//! channels per 32-bit lane) and uses `vdpbf16ps`: two multiply-adds per lane
//! and instruction, f32 accumulation. [`Arith::Bf16x3`] packs AMX tiles
//! and runs on them (`amx.rs`, `run_amx`) from the same scratch layout
//! split into bf16 hi/lo planes.

#![allow(unsafe_op_in_unsafe_fn)]

use super::amx;
use super::pack::{amx_lines, Packed, PackedT, MR};
use super::{load_act16, Arith};
use crate::backend::cpu::par::SendPtr;
use crate::backend::{Mat, Out};
use std::arch::x86_64::*;

/// 16-lane vectors per register tile (`NR = 16·NV` time steps).
const NV: usize = 3;
/// Time steps per register tile.
const NR: usize = 16 * NV;
/// How far ahead (in 4-byte weights or bf16 pairs) the kernels prefetch
/// their packed weights.
const PREFETCH_AHEAD: usize = 2048;

/// Zero-margined copies of conv inputs, reused call to call on each thread.
#[derive(Default)]
struct Scratch {
    f: Vec<f32>,
    p: Vec<u32>,
    /// Bf16x3: split planes (`amx::fill_split`).
    h: Vec<u16>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Write a register tile (`acc`: `M × NV` vectors) to `y` (`n` valid columns).
/// A macro, not a function: passing the accumulators by reference would keep
/// them in memory inside the hot loop.
macro_rules! store_tile {
    ($acc:expr, $y:expr, $ldy:expr, $n:expr, $out:expr, $v:expr) => {{
        let zero = _mm512_setzero_ps();
        // Per-vector masks (an all-zero mask stores nothing): no data-dependent
        // trip count, so the accumulators stay in registers.
        let masks: [__mmask16; $v] = std::array::from_fn(|v| {
            let left = $n.saturating_sub(16 * v).min(16);
            ((1u32 << left) - 1) as __mmask16
        });
        for (m, row) in $acc.iter().enumerate() {
            let yp = $y.add(m * $ldy);
            for (v, &r) in row.iter().enumerate() {
                let c0 = 16 * v;
                let mask = masks[v];
                let r = match $out {
                    Out::Set => r,
                    Out::SetRelu => _mm512_max_ps(r, zero),
                    Out::Add => _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask, yp.add(c0))),
                };
                _mm512_mask_storeu_ps(yp.add(c0), mask, r);
            }
        }
    }};
}

/// Run `f(rows_chunk, r0, r1)` over row ranges of `dst` (`rows × ldx`),
/// split over the pool when the copy is large (it is memory-bound work that
/// would otherwise run on one core before every conv).
fn par_rows<T: Send>(
    threads: usize,
    dst: &mut [T],
    ldx: usize,
    rows: usize,
    f: impl Fn(&mut [T], usize, usize) + Sync,
) {
    let per = if threads > 1 && rows * ldx >= 1 << 16 {
        rows.div_ceil(2 * threads).max(1)
    } else {
        rows.max(1)
    };
    if per >= rows {
        f(dst, 0, rows);
        return;
    }
    use rayon::prelude::*;
    dst.par_chunks_mut(per * ldx)
        .enumerate()
        .for_each(|(i, d)| {
            let r0 = i * per;
            f(d, r0, (r0 + per).min(rows));
        });
}

/// One register tile of f32: `M` output rows × `NR` columns starting at `t0`.
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_f32<const M: usize, const V: usize>(
    a: *const f32,
    cin: usize,
    k: usize,
    dil: usize,
    xs: *const f32,
    ldx: usize,
    t0: usize,
    bias: *const f32,
    y: *mut f32,
    ldy: usize,
    n: usize,
    out: Out,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; M];
    for (m, row) in acc.iter_mut().enumerate() {
        let b = _mm512_set1_ps(*bias.add(m));
        for v in row.iter_mut() {
            *v = b;
        }
    }
    let mut ap = a;
    for i in 0..cin {
        let xrow = xs.add(i * ldx + t0);
        for j in 0..k {
            let bp = xrow.add(j * dil);
            // Weights come cold from memory when a narrow window uses each
            // once: ask for them well ahead (prefetch never faults).
            _mm_prefetch::<_MM_HINT_T0>(ap.wrapping_add(PREFETCH_AHEAD).cast());
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, b) in bv.iter_mut().enumerate() {
                *b = _mm512_loadu_ps(bp.add(16 * v));
            }
            for (m, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(m));
                for (v, r) in row.iter_mut().enumerate() {
                    *r = _mm512_fmadd_ps(av, bv[v], *r);
                }
            }
            ap = ap.add(M);
        }
    }
    store_tile!(acc, y, ldy, n, out, V);
}

/// One register tile in bf16 pairs.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_bf16<const M: usize, const V: usize>(
    a: *const u32,
    cin2: usize,
    k: usize,
    dil: usize,
    xs: *const u32,
    ldx: usize,
    t0: usize,
    bias: *const f32,
    y: *mut f32,
    ldy: usize,
    n: usize,
    out: Out,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; M];
    for (m, row) in acc.iter_mut().enumerate() {
        let b = _mm512_set1_ps(*bias.add(m));
        for v in row.iter_mut() {
            *v = b;
        }
    }
    let mut ap = a;
    for i in 0..cin2 {
        let xrow = xs.add(i * ldx + t0);
        for j in 0..k {
            let bp = xrow.add(j * dil);
            _mm_prefetch::<_MM_HINT_T0>(ap.wrapping_add(PREFETCH_AHEAD).cast());
            let mut bv: [__m512bh; V] =
                [std::mem::transmute::<__m512i, __m512bh>(_mm512_setzero_si512()); V];
            for (v, b) in bv.iter_mut().enumerate() {
                *b = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    bp.add(16 * v).cast(),
                ));
            }
            for (m, row) in acc.iter_mut().enumerate() {
                let av =
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*ap.add(m) as i32));
                for (v, r) in row.iter_mut().enumerate() {
                    *r = _mm512_dpbf16_ps(*r, av, bv[v]);
                }
            }
            ap = ap.add(M);
        }
    }
    store_tile!(acc, y, ldy, n, out, V);
}

/// Copy `x` rows into `dst` with `padl` zeros before and zeros after, as f32.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn fill_f32(dst: &mut [f32], ldx: usize, padl: usize, x: &[f32], xm: Mat, act: Option<f32>) {
    let t = xm.cols();
    for (i, row) in dst.chunks_exact_mut(ldx).take(xm.rows()).enumerate() {
        row[..padl].fill(0.0);
        let src = &x[xm.off() + i * xm.ld()..xm.off() + i * xm.ld() + t];
        let body = &mut row[padl..padl + t];
        match act {
            None => body.copy_from_slice(src),
            // Exactly the backend's leaky_relu.
            Some(slope) => {
                for (d, &v) in body.iter_mut().zip(src) {
                    *d = if v >= 0.0 { v } else { v * slope };
                }
            }
        }
        row[padl + t..].fill(0.0);
    }
}

/// Copy `x` rows into bf16 channel pairs: lane `t` of pair row `p` holds
/// channels `2p` (low half) and `2p + 1` (high half) at time `t − padl`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn fill_bf16(
    dst: &mut [u32],
    ldx: usize,
    padl: usize,
    x: &[f32],
    xm: Mat,
    act: Option<f32>,
) {
    let t = xm.cols();
    let idx: [u16; 32] = std::array::from_fn(|q| {
        if q % 2 == 0 {
            (q / 2) as u16
        } else {
            (16 + q / 2) as u16
        }
    });
    let idx = _mm512_loadu_si512(idx.as_ptr().cast());
    for (p, row) in dst
        .chunks_exact_mut(ldx)
        .take(xm.rows().div_ceil(2))
        .enumerate()
    {
        row[..padl].fill(0);
        let lo = x.as_ptr().add(xm.off() + 2 * p * xm.ld());
        let hi = if 2 * p + 1 < xm.rows() {
            Some(x.as_ptr().add(xm.off() + (2 * p + 1) * xm.ld()))
        } else {
            None
        };
        let out = row.as_mut_ptr().add(padl);
        let mut c = 0;
        while c < t {
            let a = load_act16(lo, c, t, act);
            let b = match hi {
                Some(h) => load_act16(h, c, t, act),
                None => _mm512_setzero_ps(),
            };
            // Elements 0..16 from a, 16..32 from b; then interleave a_i, b_i.
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(b, a));
            let v = _mm512_permutexvar_epi16(idx, v);
            // Safe past t: the right margin is at least NR ≥ 16 lanes wide.
            _mm512_storeu_si512(out.add(c).cast(), v);
            c += 16;
        }
        let used = (padl + t.div_ceil(16) * 16).min(ldx);
        row[used..].fill(0);
    }
}

/// `y (op)= conv(x) + b` with the direct kernels ("same" padding, dilation);
/// with `act = Some(slope)`, `conv(LeakyReLU_slope(x))` (applied while the
/// input is copied into the scratch: the same values as a separate pass).
///
/// # Safety
/// The caller has checked [`super::has_avx512`] (and [`super::has_bf16`] for bf16 packs),
/// the views' bounds against the slices, `xm.rows() == w.cin`, `ym.rows() == w.cout`
/// and `xm.cols() == ym.cols()`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn conv1d(
    threads: usize,
    w: &Packed,
    bias: &[f32],
    dilation: usize,
    x: &[f32],
    xm: Mat,
    act: Option<f32>,
    y: &mut [f32],
    ym: Mat,
    out: Out,
) {
    let pad = dilation * (w.k - 1) / 2;
    run(
        threads,
        w,
        bias,
        dilation,
        pad,
        x,
        xm,
        act,
        y.as_mut_ptr(),
        ym,
        out,
    );
}

/// `y += conv(LeakyReLU_slope(y)) + b` in place: the input is copied (and
/// activated) into the scratch before any output is written.
///
/// # Safety
/// As [`conv1d`] with `x = y`, `xm = ym` (so `cin == cout`).
pub(crate) unsafe fn conv1d_lrelu_add_inplace(
    threads: usize,
    w: &Packed,
    bias: &[f32],
    dilation: usize,
    slope: f32,
    y: &mut [f32],
    ym: Mat,
) {
    let pad = dilation * (w.k - 1) / 2;
    let (yp, len) = (y.as_mut_ptr(), y.len());
    // Read only by the fill, which ends before the first write through yp.
    let x = std::slice::from_raw_parts(yp.cast_const(), len);
    run(
        threads,
        w,
        bias,
        dilation,
        pad,
        x,
        ym,
        Some(slope),
        yp,
        ym,
        Out::Add,
    );
}

/// Output column `t` of `ym` (any length) reads input columns
/// `t − padl + j·dilation` for each tap `j`; columns outside `xm` are zero.
///
/// # Safety
/// As [`conv1d`], without the equal-length condition.
#[allow(clippy::too_many_arguments)]
unsafe fn run(
    threads: usize,
    w: &Packed,
    bias: &[f32],
    dilation: usize,
    padl: usize,
    x: &[f32],
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
    let ldx = (padl + xm.cols().max(t) + (w.k - 1) * dilation + NR).div_ceil(16) * 16;
    let rows = match w.precision {
        Arith::F32 | Arith::Bf16x3 => w.cin,
        Arith::Bf16 => w.cin.div_ceil(2),
    };
    // Taken out of the thread-local for the call: a rayon worker waiting on
    // this call's items may run another request's conv meanwhile.
    let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    {
        let s = &mut scratch;
        match w.precision {
            Arith::Bf16x3 => {
                let ld2 = 2 * ldx;
                if s.h.len() < rows * ld2 {
                    s.h.resize(rows * ld2, 0);
                }
                let dst = &mut s.h[..rows * ld2];
                par_rows(threads, dst, ld2, rows, |d, r0, r1| {
                    amx::fill_split(d, ldx, padl, x, xm.sub_rows(r0, r1), act)
                });
            }
            Arith::F32 => {
                if s.f.len() < rows * ldx {
                    s.f.resize(rows * ldx, 0.0);
                }
                let dst = &mut s.f[..rows * ldx];
                par_rows(threads, dst, ldx, rows, |d, r0, r1| {
                    fill_f32(d, ldx, padl, x, xm.sub_rows(r0, r1), act)
                });
            }
            Arith::Bf16 => {
                if s.p.len() < rows * ldx {
                    s.p.resize(rows * ldx, 0);
                }
                let dst = &mut s.p[..rows * ldx];
                par_rows(threads, dst, ldx, rows, |d, r0, r1| {
                    // Pair rows r0..r1 hold input rows 2·r0 .. 2·r1.
                    fill_bf16(
                        d,
                        ldx,
                        padl,
                        x,
                        xm.sub_rows(2 * r0, (2 * r1).min(xm.rows())),
                        act,
                    )
                });
            }
        }
        if w.precision == Arith::Bf16x3 {
            let xs = SendPtr(s.h.as_mut_ptr());
            run_amx(threads, w, bias, dilation, xs, ldx, y, ym, out);
        } else {
            let xs = (SendPtr(s.f.as_mut_ptr()), SendPtr(s.p.as_mut_ptr()));
            run_tiles(threads, w, bias, dilation, xs, ldx, rows, y, ym, out);
        }
    }
    SCRATCH.with(|s| *s.borrow_mut() = scratch);
}

/// The register-tile path of [`run`] (f32 or bf16 packs): column blocks ×
/// groups of [`MR`]-row panels over the threads. `xs`: the filled f32 and
/// bf16-pair scratch (the one of the pack's precision is used), `rows` of
/// `ldx`.
///
/// # Safety
/// As [`run`], with `w.precision` F32 or Bf16.
#[allow(clippy::too_many_arguments)]
unsafe fn run_tiles(
    threads: usize,
    w: &Packed,
    bias: &[f32],
    dilation: usize,
    (xs_f, xs_p): (SendPtr<f32>, SendPtr<u32>),
    ldx: usize,
    rows: usize,
    y: *mut f32,
    ym: Mat,
    out: Out,
) {
    let t = ym.cols();
    let bf16 = w.precision == Arith::Bf16;
    let panels = w.cout / MR;
    let rem = w.cout - panels * MR;
    let kdim = rows * w.k;
    let tiles = t.div_ceil(NR);
    // Column blocks of at most 8 tiles, as equal as they can be (a short
    // last block would leave a thread idle).
    let col_blocks = tiles.div_ceil(8);
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
    let yp = SendPtr(y);
    let item = |it: usize| {
        let (cb, g) = (it / groups, it % groups);
        let tile0 = cb * block_tiles;
        let tile1 = (tile0 + block_tiles).min(tiles);
        let p0 = g * per_group;
        let p1 = ((g + 1) * per_group).min(panels);
        let run = |o0: usize, a_off: usize, m: usize| {
            for ti in tile0..tile1 {
                let t0 = ti * NR;
                let n = (t - t0).min(NR);
                let yt = yp.get().add(ym.off() + o0 * ym.ld() + t0);
                // The arguments every kernel takes after its weights,
                // input rows and input scratch.
                macro_rules! tile {
                    ($kernel:expr, $a:expr, $rows:expr, $xs:expr) => {
                        $kernel(
                            $a.as_ptr().add(a_off),
                            $rows,
                            w.k,
                            dilation,
                            $xs.get(),
                            ldx,
                            t0,
                            bias.as_ptr().add(o0),
                            yt,
                            ym.ld(),
                            n,
                            out,
                        )
                    };
                }
                // A short last tile runs as one or two vectors wide
                // (same sums per column, less wasted work).
                match (bf16, m, n.div_ceil(16)) {
                    (false, MR, 1) => tile!(tile_f32::<MR, 1>, w.f, w.cin, xs_f),
                    (false, MR, 2) => tile!(tile_f32::<MR, 2>, w.f, w.cin, xs_f),
                    (false, MR, _) => tile!(tile_f32::<MR, NV>, w.f, w.cin, xs_f),
                    (false, _, 1) => tile!(tile_f32::<1, 1>, w.f, w.cin, xs_f),
                    (false, _, 2) => tile!(tile_f32::<1, 2>, w.f, w.cin, xs_f),
                    (false, _, _) => tile!(tile_f32::<1, NV>, w.f, w.cin, xs_f),
                    (true, MR, 1) => tile!(tile_bf16::<MR, 1>, w.p, rows, xs_p),
                    (true, MR, 2) => tile!(tile_bf16::<MR, 2>, w.p, rows, xs_p),
                    (true, MR, _) => tile!(tile_bf16::<MR, NV>, w.p, rows, xs_p),
                    (true, _, 1) => tile!(tile_bf16::<1, 1>, w.p, rows, xs_p),
                    (true, _, 2) => tile!(tile_bf16::<1, 2>, w.p, rows, xs_p),
                    (true, _, _) => tile!(tile_bf16::<1, NV>, w.p, rows, xs_p),
                }
            }
        };
        for pi in p0..p1 {
            run(pi * MR, pi * MR * kdim, MR);
        }
        if g + 1 == groups {
            for r in 0..rem {
                let o = panels * MR + r;
                run(o, panels * MR * kdim + r * kdim, 1);
            }
        }
    };
    let items = col_blocks * groups;
    if threads > 1 && items > 1 && w.cout * kdim * t >= 1 << 16 {
        use rayon::prelude::*;
        (0..items).into_par_iter().for_each(item);
    } else {
        (0..items).for_each(item);
    }
}

/// `y = W · x` (overwritten, no bias) for `W` `[m, kk]` row-major, packed
/// for this call as a one-tap conv: the attention's products on the conv
/// kernels.
///
/// # Safety
/// As [`conv1d`] for a conv of `m` outputs, `kk` inputs, one tap.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul(
    threads: usize,
    precision: Arith,
    w: &[f32],
    m: usize,
    kk: usize,
    x: &[f32],
    xm: Mat,
    y: &mut [f32],
    ym: Mat,
) {
    // Per-thread packing buffer and zero bias, reused call to call.
    let (lines, mut zeros) = MATMUL.with(|m| std::mem::take(&mut *m.borrow_mut()));
    zeros.resize(m, 0.0);
    let packed = if precision == Arith::Bf16x3 && m >= 32 {
        Packed {
            precision,
            f: Vec::new(),
            p: Vec::new(),
            a: amx_lines(w, m, kk, lines),
            cout: m,
            cin: kk,
            k: 1,
        }
    } else {
        Packed::new(precision, w, m, kk, 1)
    };
    run(
        threads,
        &packed,
        &zeros,
        1,
        0,
        x,
        xm,
        None,
        y.as_mut_ptr(),
        ym,
        Out::Set,
    );
    MATMUL.with(|m| *m.borrow_mut() = (packed.a, zeros));
}

thread_local! {
    static MATMUL: std::cell::RefCell<(Vec<amx::Line>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

thread_local! {
    /// One thread's AMX input tiles for a block of columns.
    static AMX_B: std::cell::RefCell<Vec<amx::Line>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The AMX tile path of [`run`]: blocks of 32 output columns (their input
/// tiles built once per block) × groups of 32-row weight blocks over the
/// threads. `xs` is the filled split scratch (`2·ldx` u16 per row).
///
/// # Safety
/// As [`run`], with `w.precision == Bf16x3` (so [`super::has_amx`]).
#[allow(clippy::too_many_arguments)]
unsafe fn run_amx(
    threads: usize,
    w: &Packed,
    bias: &[f32],
    dilation: usize,
    xs: SendPtr<u16>,
    ldx: usize,
    y: *mut f32,
    ym: Mat,
    out: Out,
) {
    use amx::BLOCK;
    let t = ym.cols();
    let nkb = amx::k_blocks(w.cin * w.k);
    let per_block = amx::packed_lines(BLOCK, w.cin * w.k);
    let row_blocks = w.cout.div_ceil(BLOCK);
    let col_blocks = t.div_ceil(BLOCK);
    let want = if threads > 1 { 2 * threads } else { 1 };
    let groups = if col_blocks >= want {
        1
    } else {
        want.div_ceil(col_blocks).min(row_blocks)
    };
    let per_group = row_blocks.div_ceil(groups);
    let groups = row_blocks.div_ceil(per_group);
    // Runs of column blocks per work item: one per thread. The tile
    // configuration, the task and the weight streaming are paid per item;
    // four items per thread (smaller spans, each streaming every weight row
    // block again) made the encoder ~15 % slower on 2 threads than one each.
    let spans = col_blocks.min(threads.max(1));
    let per_span = col_blocks.div_ceil(spans);
    let spans = col_blocks.div_ceil(per_span);
    let yp = SendPtr(y);
    // Column blocks whose input tiles are built together (at most ~768 KB,
    // in L2): each weight row block then serves all of them while it is
    // cached, instead of streaming every row block once per column block.
    let lines = nkb * 4 * 16;
    let batch = (192 / nkb.max(1)).clamp(1, per_span);
    let item = |it: usize| {
        let (sp, g) = (it / groups, it % groups);
        AMX_B.with(|b| {
            let mut b = b.borrow_mut();
            if b.len() < batch * lines {
                *b = amx::zeroed_lines(batch * lines);
            }
            amx::configure();
            let mut c = amx::Out32([0.0; BLOCK * BLOCK]);
            let (cb0, cb1) = (sp * per_span, ((sp + 1) * per_span).min(col_blocks));
            for first in (cb0..cb1).step_by(batch) {
                let last = (first + batch).min(cb1);
                for cb in first..last {
                    let dst = &mut b[(cb - first) * lines..(cb - first + 1) * lines];
                    amx::build_b(xs.get(), ldx, w.cin, w.k, dilation, cb * BLOCK, dst);
                }
                for rb in g * per_group..((g + 1) * per_group).min(row_blocks) {
                    let o0 = rb * BLOCK;
                    for cb in first..last {
                        let t0 = cb * BLOCK;
                        let bp = b.as_ptr().add((cb - first) * lines);
                        amx::block(w.a.as_ptr().add(rb * per_block), bp, nkb, &mut c);
                        amx::store(
                            &c,
                            bias.as_ptr().add(o0),
                            (w.cout - o0).min(BLOCK),
                            (t - t0).min(BLOCK),
                            yp.get().add(ym.off() + o0 * ym.ld() + t0),
                            ym.ld(),
                            out,
                        );
                    }
                }
            }
            amx::release();
        });
    };
    let items = spans * groups;
    // Under ~4M multiply-adds (a few tens of µs on the tiles) a second
    // thread costs more than it saves.
    if threads > 1 && items > 1 && w.cout * w.cin * w.k * t >= 1 << 22 {
        use rayon::prelude::*;
        (0..items).into_par_iter().for_each(item);
    } else {
        (0..items).for_each(item);
    }
}

/// Transposed conv with the direct kernels: all phases in one stacked conv
/// over `L + 1` columns, then interleaved into `y` (`ym.cols() = u·L`).
///
/// # Safety
/// As [`conv1d`]; `ym.cols() == stride · xm.cols()`, `ym.rows() == cout`.
pub(crate) unsafe fn conv_transpose(
    threads: usize,
    w: &PackedT,
    x: &[f32],
    xm: Mat,
    y: &mut [f32],
    ym: Mat,
) {
    let (u, l, c) = (w.stride, xm.cols(), w.cout);
    crate::backend::cpu::phases::transpose(threads, u, c, l, y.as_mut_ptr(), ym, |ph, pm| {
        run(threads, &w.stacked, &w.bias, 1, 1, x, xm, None, ph, pm, Out::Set);
    });
}
