//! Winograd (Toom-Cook) 1-D convolutions on AVX2 + FMA (the decoder's
//! ResBlock convs and the text encoder's feed-forward convs; `cin` may
//! differ from `cout`, e.g. 192 → 768 → 192 in the encoder): F(m, k)
//! computes `m` outputs of a `k`-tap conv from `n = m + k − 1` inputs with
//! `n` products per channel pair instead of `m·k`.
//!
//! With dilation `d`, a block of `m·d` buffer columns starting at a multiple
//! of `m·d` holds `d` interleaved tiles: residue `j` has outputs
//! `t0 + j + i·d` (`i < m`) and inputs `t0 + j + (i − r)·d` (`i < n`,
//! `r = (k − 1)/2`). The input view is first copied (LeakyReLU applied where
//! asked) into a zero-margined, phase-major scratch: row `(ci, φ)` holds the
//! input columns `≡ φ (mod m·d)`, one per block, so that the same input of
//! eight consecutive blocks is one vector load.
//!
//! The tiles are lanes `τ = j·l + β` (residue `j`, block `β`, `l` blocks
//! and margins per scratch row), so that the same input of consecutive
//! lanes is one vector load for every dilation. Per column block of `B`
//! lanes (the work items, over rayon where `threads > 1`): the input transform `V[p] = Bᵀ x` for
//! every point `p`, then `n` products `M[p] = U[p] · V[p]` (`U[p]` the
//! transformed weights, `cout × cin`) on register tiles of 6 output rows ×
//! 16 columns (the last `cout mod 6` rows as one narrower panel), summed
//! over the input channels in order `0..cin` (one accumulator per output,
//! from zero), then the output transform `y = bias + Aᵀ M` and the output
//! mode. With dilation 1 the outputs of eight tiles go out as whole vectors
//! (an in-register transpose); with dilation `d` > 1 (outputs `d` columns
//! apart) they go to a lane-order buffer as whole vectors, and from there
//! to the output in one transposing pass (`unstage`).
//!
//! The `avx2` family, and `avx512` in f32, run the decoder's residual-block
//! convs and the text encoder's feed-forward convs here
//! (`CpuBackend::prepare_conv_tiled`) where `Wino::new` says the kernel
//! applies and pays; their other kernels run everything else. The decoder
//! aligns its windows to the tiles (`ConvTiling`); the encoder runs whole
//! sentences from column 0.
//!
//! Work items are column blocks of tiles; where a view is too short for
//! two blocks per thread, each block is also split by output rows (whole
//! register panels, at least `MIN_PART_ROWS` rows), which changes no bits.
//!
//! Every lane of every step is one tile's own arithmetic, in one fixed
//! order: a column's bits depend only on the weights, the bias, its tile's
//! inputs (zeros outside the view) and the tile's alignment, never on the
//! view's width, the column blocking or the thread count. Lanes past the
//! view compute on zeros and are not stored.
//!
//! The transforms come from the maths, in f64 (weights at [`Wino::new`]
//! time, the f32 `Bᵀ` and `Aᵀ` as compile-time constants): with
//! finite points `a_p` and the point at infinity, row `p` of `Bᵀ` holds the
//! coefficients of `Π_{q≠p}(z − a_q)` (exact in f32 for the points used:
//! 0, ±1, ±2, ±1/2, ±3/2), `Aᵀ[i][p] = a_p^i`, and the Lagrange
//! denominators `1/Π_{q≠p}(a_p − a_q)` are folded into the weights (`G`),
//! which are rounded to f32 once.

#![allow(unsafe_op_in_unsafe_fn)]

use super::par::SendPtr;
use crate::backend::{Mat, Out};

/// Output rows per register tile of the products (the last `cout mod 6`
/// rows form one narrower panel).
const RM: usize = 6;
/// Columns (tiles) per register tile of the products: two AVX2 vectors.
const RN: usize = 16;
/// Fewest output rows of a work item split by rows ([`conv1d`]).
const MIN_PART_ROWS: usize = 24;
/// Floats between consecutive points' slices of the transformed inputs and
/// of the products. Unskewed, a slice is `C·b` floats, which the column
/// blocking makes 4096 (16 KiB) for most shapes: the `n` points of one
/// column then fall into the same L1 set, and the input and output
/// transforms (which touch every point at one column) missed L1 on each
/// access — 1.29× → 1.64× the direct tiles for 32 channels at k 7 d 12,
/// 1.89× → 2.16× at 128 (one core of an AMD EPYC Zen 4).
const SKEW: usize = 16;

/// The finite interpolation points, in the order they are taken: the first
/// `n − 1` of them, plus the point at infinity. (For F(4, 7), ±3/2 gave a
/// relative RMS error of 4e-6 where ±3 gave 6e-6.)
const POINTS: [f64; 11] = [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 1.5, -1.5, 0.25, -0.25];

/// The output tile size `m` of every kernel size: F(4, 3), F(4, 5) and
/// F(4, 7) stay within a relative RMS error of 1e-5 (measured 0.7e-6,
/// 1.6e-6 and 6e-6 at 128 channels; `tests::accuracy` compares the others).
const TILE_OUTPUTS: usize = 4;

/// A conv weight `[cout, cin, k]` transformed for Winograd F(m, k)
/// (dilation `d`); the bias is not included.
pub(crate) struct Wino {
    /// `U[p]` in panels of [`RM`] output rows: `[n][cout / RM][cin][RM]`.
    u: Vec<f32>,
    cout: usize,
    cin: usize,
    k: usize,
    d: usize,
    m: usize,
    n: usize,
}

/// The `(m, n)` pairs that have compiled transform code.
fn supported(m: usize, n: usize) -> bool {
    matches!(
        (m, n),
        (2, 4) | (4, 6) | (6, 8) | (2, 6) | (3, 7) | (4, 8) | (2, 8) | (3, 9) | (4, 10)
    )
}

/// Coefficients (lowest power first) of `Π (z − r)` over `roots`.
fn poly_from_roots(roots: &[f64]) -> Vec<f64> {
    let mut c = vec![1.0f64];
    for &r in roots {
        let mut next = vec![0.0f64; c.len() + 1];
        for (i, &v) in c.iter().enumerate() {
            next[i + 1] += v;
            next[i] -= r * v;
        }
        c = next;
    }
    c
}

/// `(Bᵀ, G, Aᵀ)` of F(m, k) in f64: `n × n`, `n × k`, `m × n` row-major.
fn transforms(m: usize, k: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = m + k - 1;
    let pts = &POINTS[..n - 1];
    let mut bt = vec![0.0f64; n * n];
    let mut g = vec![0.0f64; n * k];
    let mut at = vec![0.0f64; m * n];
    for (p, &a) in pts.iter().enumerate() {
        let others: Vec<f64> = pts
            .iter()
            .enumerate()
            .filter(|&(q, _)| q != p)
            .map(|(_, &b)| b)
            .collect();
        let c = poly_from_roots(&others);
        bt[p * n..p * n + c.len()].copy_from_slice(&c);
        let s = 1.0 / others.iter().map(|&b| a - b).product::<f64>();
        for j in 0..k {
            g[p * k + j] = s * a.powi(j as i32);
        }
        for i in 0..m {
            at[i * n + p] = a.powi(i as i32);
        }
    }
    // The point at infinity: the leading coefficients.
    let p = n - 1;
    let c = poly_from_roots(pts);
    bt[p * n..p * n + n].copy_from_slice(&c);
    g[p * k + k - 1] = 1.0;
    at[(m - 1) * n + p] = 1.0;
    (bt, g, at)
}

/// The transforms of F(m = `M`, `N − M + 1`) as compile-time constants (the
/// same values as [`transforms`], rounded to f32), so that the transform
/// code skips zero coefficients at compile time.
struct Consts<const M: usize, const N: usize>;

impl<const M: usize, const N: usize> Consts<M, N> {
    /// `Bᵀ`: row `p` holds the coefficients of `Π_{q≠p}(z − a_q)` (the
    /// point at infinity last: all finite points).
    const BT: [[f32; N]; N] = {
        let mut bt = [[0.0f32; N]; N];
        let mut p = 0;
        while p < N {
            // Coefficients of the product, lowest power first.
            let mut c = [0.0f64; N];
            c[0] = 1.0;
            let mut deg = 0;
            let mut q = 0;
            while q < N - 1 {
                if q != p {
                    let r = POINTS[q];
                    let mut i = deg + 1;
                    while i > 0 {
                        c[i] = c[i - 1] - r * c[i];
                        i -= 1;
                    }
                    c[0] = -r * c[0];
                    deg += 1;
                }
                q += 1;
            }
            let mut i = 0;
            while i < N {
                bt[p][i] = c[i] as f32;
                i += 1;
            }
            p += 1;
        }
        bt
    };
    /// `Aᵀ[i][p] = a_p^i`; the point at infinity gives the last output only.
    const AT: [[f32; N]; M] = {
        let mut at = [[0.0f32; N]; M];
        let mut p = 0;
        while p < N - 1 {
            let mut v = 1.0f64;
            let mut i = 0;
            while i < M {
                at[i][p] = v as f32;
                v *= POINTS[p];
                i += 1;
            }
            p += 1;
        }
        at[M - 1][N - 1] = 1.0;
        at
    };
}

impl Wino {
    /// `None` where this kernel does not apply or does not pay: not x86-64
    /// with AVX2 + FMA, fewer than 32 input or output channels or a count
    /// not a multiple of 4, or `k` not one of 3, 5, 7.
    pub(crate) fn new(
        w: &[f32],
        cout: usize,
        cin: usize,
        k: usize,
        dilation: usize,
    ) -> Option<Wino> {
        // Every decoder shape pays since dilated tiles store their outputs
        // as whole vectors (`unstage`): at 32 channels, 4096 / 32768
        // columns, 1 and 2 threads, k3 d2 1.06–1.55× the direct tiles, k5
        // d6 1.08–1.59×, k7 d12 0.99–1.54× (they were 0.7–1.19× with one
        // scalar store per output, and left to the direct tiles).
        if !matches!(k, 3 | 5 | 7) {
            return None;
        }
        Wino::with_m(w, cout, cin, k, dilation, TILE_OUTPUTS)
    }

    /// [`Wino::new`] with the output tile size `m` chosen by the caller and
    /// without the rule of where it pays (any odd `k` from 3 that has
    /// transform code for `m`).
    pub(crate) fn with_m(
        w: &[f32],
        cout: usize,
        cin: usize,
        k: usize,
        dilation: usize,
        m: usize,
    ) -> Option<Wino> {
        let n = m + k - 1;
        if !cfg!(target_arch = "x86_64")
            || !super::portable::fma_tiles()
            || k < 3
            || k.is_multiple_of(2)
            || cout < 32
            || cin < 32
            || !cout.is_multiple_of(4)
            || !cin.is_multiple_of(4)
            || dilation == 0
            || !supported(m, n)
            || w.len() != cout * cin * k
        {
            return None;
        }
        let (_, g, _) = transforms(m, k);
        // Per point: full panels `[ci][RM]`, then the remainder rows
        // `[ci][cout mod RM]`.
        let full = cout / RM * RM;
        let mut u = vec![0.0f32; n * cout * cin];
        for p in 0..n {
            let up = &mut u[p * cout * cin..(p + 1) * cout * cin];
            for co in 0..cout {
                let (base, rows, r) = if co < full {
                    (co / RM * RM * cin, RM, co % RM)
                } else {
                    (full * cin, cout - full, co - full)
                };
                for ci in 0..cin {
                    let wv = &w[(co * cin + ci) * k..(co * cin + ci + 1) * k];
                    let v: f64 = (0..k).map(|j| g[p * k + j] * f64::from(wv[j])).sum();
                    up[base + ci * rows + r] = v as f32;
                }
            }
        }
        Some(Wino {
            u,
            cout,
            cin,
            k,
            d: dilation,
            m,
            n,
        })
    }

    /// Tile period in columns, `m·d`: tiles of outputs start at buffer
    /// columns that are multiples of it.
    pub(crate) fn period(&self) -> usize {
        self.m * self.d
    }

    /// `(m − 1)·d`: how much farther than the conv's own radius
    /// `d·(k − 1)/2` an output's bits may depend on inputs (its tile's
    /// other inputs).
    pub(crate) fn margin(&self) -> usize {
        (self.m - 1) * self.d
    }
}

/// Four vectors transposed as 4 × 4 blocks within each 128-bit half:
/// lane `j` of vector `i` goes to lane `i` of vector `j` (per half).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose4(c: [std::arch::x86_64::__m256; 4]) -> [std::arch::x86_64::__m256; 4] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(c[0], c[1]);
    let t1 = _mm256_unpacklo_ps(c[2], c[3]);
    let t2 = _mm256_unpackhi_ps(c[0], c[1]);
    let t3 = _mm256_unpackhi_ps(c[2], c[3]);
    [
        _mm256_shuffle_ps::<0x44>(t0, t1),
        _mm256_shuffle_ps::<0xEE>(t0, t1),
        _mm256_shuffle_ps::<0x44>(t2, t3),
        _mm256_shuffle_ps::<0xEE>(t2, t3),
    ]
}

/// Row `src` of the lane-order outputs ([`Geom::staged`]) into its row
/// `y` of the view, through the output mode: output `u` of residue `j`,
/// block `β` is view column `β·per + u·d + j − g0` (columns outside the
/// view are dropped). Eight blocks by four phases at a time through an
/// in-register transpose where the blocks lie inside the view.
#[target_feature(enable = "avx2,fma")]
unsafe fn unstage(src: *const f32, g: Geom, d: usize, y: *mut f32, out: Out) {
    use std::arch::x86_64::*;
    let (l, per, st) = (g.l, g.per, g.staged);
    // Phase `φ = u·d + j` of block `β` is at `src[rows[φ] + β]`.
    let rows: Vec<usize> = (0..per).map(|f| (f / d) * st + (f % d) * l).collect();
    let zero = _mm_setzero_ps();
    let mut beta = 0;
    while beta < l {
        let c0 = (beta * per) as isize - g.g0 as isize;
        // Eight whole blocks inside the view.
        if per.is_multiple_of(4) && beta + 8 <= l && c0 >= 0 && c0 as usize + 8 * per <= g.t {
            for f in (0..per).step_by(4) {
                let v: [__m256; 4] =
                    std::array::from_fn(|i| _mm256_loadu_ps(src.add(rows[f + i] + beta)));
                // Low half of `c[e]`: phases f..f + 4 of block e; high
                // half: of block e + 4.
                let c = transpose4(v);
                for (e, &ce) in c.iter().enumerate() {
                    for (h, part) in [_mm256_castps256_ps128(ce), _mm256_extractf128_ps::<1>(ce)]
                        .into_iter()
                        .enumerate()
                    {
                        let o = y.add(c0 as usize + (e + 4 * h) * per + f);
                        let r = match out {
                            Out::Set => part,
                            Out::SetRelu => _mm_max_ps(part, zero),
                            Out::Add => _mm_add_ps(_mm_loadu_ps(o), part),
                        };
                        _mm_storeu_ps(o, r);
                    }
                }
            }
            beta += 8;
            continue;
        }
        for (f, &r) in rows.iter().enumerate() {
            let c = c0 + f as isize;
            if c >= 0 && (c as usize) < g.t {
                put(y.add(c as usize), *src.add(r + beta), out);
            }
        }
        beta += 1;
    }
}

thread_local! {
    /// The phase-major input copy, reused call to call on each thread.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A work item's transformed inputs and products.
    static WORK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The outputs of a call in lane order ([`Geom::staged`]).
    static OUTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}


/// The geometry of one call.
#[derive(Clone, Copy)]
struct Geom {
    /// Lanes (tiles) per column block (a multiple of [`RN`]).
    b: usize,
    /// Scratch row length (blocks, with margins).
    l: usize,
    /// Zero blocks in front of the scratch rows.
    a0: usize,
    /// View column of the first block's start is `−g0`.
    g0: usize,
    /// View columns.
    t: usize,
    /// Period `m·d`.
    per: usize,
    /// Lanes of all column blocks (padding lanes included): where the
    /// outputs go through the lane-order buffer (tiles whose outputs are not
    /// consecutive columns: dilation past 1), output `u` of lane `τ` of row
    /// `co` is at `(co·m + u)·staged + τ` there; 0 when they are stored
    /// straight into `y`.
    staged: usize,
}

/// `y (op)= conv(x) + bias` with "same" padding (zeros outside the view),
/// as `portable::conv1d`: `act = Some(slope)` applies LeakyReLU to the
/// input as it is staged (`if v >= 0.0 { v } else { v * slope }`); `out`
/// sets, sets through max(0, ·) or adds. `col0` is the buffer column of the
/// views' first column: tiles start at view columns `c` with
/// `(col0 + c) % period == 0`. Only the columns of `ym` are written.
///
/// # Safety
/// `x` holds the view `xm` and `y` the view `ym`; `xm.rows() == w.cin`,
/// `ym.rows() == w.cout`, `bias.len() >= w.cout`,
/// `xm.cols() == ym.cols()`. `y` may alias `x` (all input is copied before
/// any output is written); no other thread touches `y` meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn conv1d(
    threads: usize,
    w: &Wino,
    bias: &[f32],
    x: *const f32,
    xm: Mat,
    col0: usize,
    act: Option<f32>,
    y: *mut f32,
    ym: Mat,
    out: Out,
) {
    let t = ym.cols();
    assert_eq!(xm.cols(), t, "winograd conv: view widths");
    assert_eq!(xm.rows(), w.cin, "winograd conv: input rows");
    assert_eq!(ym.rows(), w.cout, "winograd conv: output rows");
    assert!(bias.len() >= w.cout, "winograd conv: bias");
    if t == 0 {
        return;
    }
    let (cin, m, d) = (w.cin, w.m, w.d);
    let r = (w.k - 1) / 2;
    let per = m * d;
    let g0 = col0 % per;
    let nb = (g0 + t).div_ceil(per);
    let a0 = r.div_ceil(m);
    let amax = r.div_ceil(m);
    // Scratch row length: the blocks and their margins.
    let l = nb + a0 + amax;
    // The tiles as lanes `τ = j·l + β` (residue j, block β): the same input
    // of consecutive lanes is consecutive in the phase-major scratch, across
    // residues too. Lanes per column block: the item's transformed inputs
    // and products (2·n·C·B floats) around 200 KiB. (Lanes compute the same
    // bits whatever the blocking; lanes of margin blocks are not stored.)
    let lanes = d * l;
    let target = (32 * 128 / cin).max(RN);
    // At least two items per thread where there are lanes enough.
    let min_blocks = if threads > 1 {
        (2 * threads).min(lanes / RN)
    } else {
        1
    };
    let col_blocks = lanes.div_ceil(target).max(min_blocks).max(1);
    let b = lanes.div_ceil(col_blocks).div_ceil(RN) * RN;
    // No block of padding lanes only (rounding `b` up may cover the lanes
    // in fewer blocks).
    let col_blocks = lanes.div_ceil(b);
    // Outputs of dilated tiles are strided columns: they go to a
    // lane-order buffer as whole vectors, and from there to `y` in one
    // transposing pass (`unstage`) instead of one scalar store each.
    let staged = if m == 4 && per == 4 { 0 } else { col_blocks * b };
    let g = Geom {
        b,
        l,
        a0,
        g0,
        t,
        per,
        staged,
    };
    let mut os = Vec::new();
    if staged > 0 {
        os = OUTS.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let need = w.cout * m * staged;
        if os.len() < need {
            os.resize(need, 0.0);
        }
    }
    let op = SendPtr(os.as_mut_ptr());

    let zlen = cin * per * l;
    // Lanes past the last residue read up to this far past the rows.
    let zall = zlen + col_blocks * b - lanes + a0 + amax + 8;
    let mut zs = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if zs.len() < zall {
        zs.resize(zall, 0.0);
    }
    let xp = SendPtr(x.cast_mut());
    let fill = |(ci, rows): (usize, &mut [f32])| {
        // SAFETY: `x` holds the view (caller); nothing writes `y` (which may
        // alias it) before every row is copied.
        let src = std::slice::from_raw_parts(xp.get().add(xm.off() + ci * xm.ld()), t);
        let lrelu = |v: f32| match act {
            None => v,
            // Exactly the backend's leaky_relu.
            Some(slope) => {
                if v >= 0.0 {
                    v
                } else {
                    v * slope
                }
            }
        };
        // Blocks `q_lo..q_hi` lie inside the view: no checks there.
        let q_lo = a0 + usize::from(g0 > 0);
        let q_hi = (a0 + (t + g0) / per).max(q_lo);
        for q in (0..q_lo).chain(q_hi..l) {
            let base = (q as isize - a0 as isize) * per as isize - g0 as isize;
            for phi in 0..per {
                let v = base + phi as isize;
                rows[phi * l + q] = if v >= 0 && (v as usize) < t {
                    lrelu(src[v as usize])
                } else {
                    0.0
                };
            }
        }
        if q_hi == q_lo {
            return;
        }
        // Eight blocks at a time on vectors where the period allows.
        let mut q0 = q_lo;
        if per.is_multiple_of(4) {
            let n8 = (q_hi - q_lo) / 8 * 8;
            // SAFETY: blocks `q_lo..q_lo + n8` lie inside the source row
            // (`q_hi` bounds them) and inside `rows` (`q_hi <= l`).
            stage8(
                src.as_ptr().add((q_lo - a0) * per - g0),
                rows.as_mut_ptr().add(q_lo),
                n8 / 8,
                per,
                l,
                act,
            );
            q0 += n8;
        }
        let body = &src[(q0 - a0) * per - g0..(q_hi - a0) * per - g0];
        for (q, blk) in (q0..q_hi).zip(body.chunks_exact(per)) {
            for (phi, &v) in blk.iter().enumerate() {
                rows[phi * l + q] = lrelu(v);
            }
        }
    };
    if threads > 1 && zlen >= 1 << 16 {
        use rayon::prelude::*;
        zs[..zlen]
            .par_chunks_exact_mut(per * l)
            .enumerate()
            .for_each(fill);
    } else {
        zs[..zlen].chunks_exact_mut(per * l).enumerate().for_each(fill);
    }

    // Work items: column blocks of lanes, times parts of the output rows
    // where the blocks are too few to keep every thread busy (short views:
    // each part transforms the block's input again, so parts keep at least
    // `MIN_PART_ROWS` rows). Every output sums its products in the same
    // order whatever the split (parts start at whole register panels).
    let parts = if threads > 1 && col_blocks < 2 * threads {
        (2 * threads)
            .div_ceil(col_blocks)
            .min(w.cout / MIN_PART_ROWS)
            .max(1)
    } else {
        1
    };
    let part_rows = w.cout.div_ceil(parts).div_ceil(RM) * RM;
    let parts = w.cout.div_ceil(part_rows);
    let items = col_blocks * parts;
    let (yp, zp) = (SendPtr(y), SendPtr(zs.as_mut_ptr()));
    let item = |it: usize| {
        let (cb, part) = (it / parts, it % parts);
        let rows = (part * part_rows, ((part + 1) * part_rows).min(w.cout));
        let mut work = WORK.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let need = 2 * w.n * (w.cout.max(cin) * b + SKEW);
        if work.len() < need {
            work.resize(need, 0.0);
        }
        // SAFETY: the scratch is filled and only read from here on; each
        // item writes its own output rows of its own tiles' columns only.
        let dst = if staged > 0 { op.get() } else { yp.get() };
        dispatch(w, bias, zp.get(), &mut work, g, cb * b, rows, dst, ym, out);
        WORK.with(|s| *s.borrow_mut() = work);
    };
    if threads > 1 && items > 1 {
        use rayon::prelude::*;
        (0..items).into_par_iter().for_each(item);
    } else {
        (0..items).for_each(item);
    }
    SCRATCH.with(|s| *s.borrow_mut() = zs);
    if staged > 0 {
        let row = |co: usize| {
            // SAFETY: every item is done; row `co` of the lane-order buffer
            // is filled for every lane, and only this closure writes row
            // `co` of `y`.
            unstage(op.get().add(co * m * staged), g, d, yp.get().add(ym.off() + co * ym.ld()), out);
        };
        if threads > 1 && w.cout * t >= 1 << 15 {
            use rayon::prelude::*;
            (0..w.cout).into_par_iter().for_each(row);
        } else {
            (0..w.cout).for_each(row);
        }
        OUTS.with(|s| *s.borrow_mut() = os);
    }
}

/// Stage `groups` groups of eight whole blocks (`per` columns each, `per` a
/// multiple of 4) from `src` into phase rows of stride `l` from `dst`:
/// `dst[φ·l + e] = act(src[e·per + φ])`, four phases of eight blocks per
/// in-register transpose.
#[target_feature(enable = "avx2,fma")]
unsafe fn stage8(
    src: *const f32,
    dst: *mut f32,
    groups: usize,
    per: usize,
    l: usize,
    act: Option<f32>,
) {
    use std::arch::x86_64::*;
    let slope = _mm256_set1_ps(act.unwrap_or(1.0));
    let zero = _mm256_setzero_ps();
    for gi in 0..groups {
        let (s, d) = (src.add(gi * 8 * per), dst.add(gi * 8));
        for phi in (0..per).step_by(4) {
            // c[e] = phases phi..phi + 4 of blocks e (low) and e + 4 (high).
            let c: [__m256; 4] = std::array::from_fn(|e| {
                let lo = _mm_loadu_ps(s.add(e * per + phi));
                let hi = _mm_loadu_ps(s.add((e + 4) * per + phi));
                let v = _mm256_set_m128(hi, lo);
                if act.is_some() {
                    // v >= 0 ? v : v·slope, as the scalar form.
                    let keep = _mm256_cmp_ps::<_CMP_GE_OQ>(v, zero);
                    _mm256_blendv_ps(_mm256_mul_ps(v, slope), v, keep)
                } else {
                    v
                }
            });
            // Lane order: blocks 0..4 low, 4..8 high.
            let o = transpose4(c);
            for (i, &v) in o.iter().enumerate() {
                _mm256_storeu_ps(d.add((phi + i) * l), v);
            }
        }
    }
}

/// One column block (lanes `tau0..tau0 + g.b`) on the transform code
/// compiled for this `(m, n)`.
#[allow(clippy::too_many_arguments)]
unsafe fn dispatch(
    w: &Wino,
    bias: &[f32],
    z: *const f32,
    work: &mut [f32],
    g: Geom,
    tau0: usize,
    rows: (usize, usize),
    y: *mut f32,
    ym: Mat,
    out: Out,
) {
    macro_rules! go {
        ($($m:literal, $n:literal);*) => {
            match (w.m, w.n) {
                $(($m, $n) => block::<$m, $n>(w, bias, z, work, g, tau0, rows, y, ym, out),)*
                _ => unreachable!("unsupported Winograd tile"),
            }
        };
    }
    go!(2, 4; 4, 6; 6, 8; 2, 6; 3, 7; 4, 8; 2, 8; 3, 9; 4, 10);
}

/// See [`dispatch`].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const M: usize, const N: usize>(
    w: &Wino,
    bias: &[f32],
    z: *const f32,
    work: &mut [f32],
    g: Geom,
    tau0: usize,
    (co0, co1): (usize, usize),
    y: *mut f32,
    ym: Mat,
    out: Out,
) {
    use std::arch::x86_64::*;
    let (cin, cout, d, b) = (w.cin, w.cout, w.d, g.b);
    let r = (w.k - 1) / 2;
    // Point `p`'s transformed inputs start at `p·vs`, its products at
    // `p·ms` (skewed: see [`SKEW`]).
    let (vs, ms) = (cin * b + SKEW, cout * b + SKEW);
    let (v, mm) = work.split_at_mut(N * vs);
    let (vp, mp) = (v.as_mut_ptr(), mm.as_mut_ptr());
    let (bt, at) = (&Consts::<M, N>::BT, &Consts::<M, N>::AT);
    {
        // Where input i of lane τ lives: phase row `u·d + j`, block
        // `β + a`, i.e. `τ + u·d·l + a` (`i − r = a·m + u`).
        let src: [usize; N] = std::array::from_fn(|i| {
            let s = i as isize - r as isize;
            let (a, u) = (s.div_euclid(M as isize), s.rem_euclid(M as isize) as usize);
            u * d * g.l + (a + g.a0 as isize) as usize + tau0
        });
        // Input transform: V[p][ci][β] = Σ_i Bᵀ[p][i]·x_i.
        for ci in 0..cin {
            let zrow = z.add(ci * g.per * g.l);
            for lane in (0..b).step_by(8) {
                let xs: [__m256; N] =
                    std::array::from_fn(|i| _mm256_loadu_ps(zrow.add(src[i] + lane)));
                let tv: [__m256; N] =
                    std::array::from_fn(|p| dot::<N>(&bt[p], &xs, _mm256_setzero_ps()));
                for (p, &v) in tv.iter().enumerate() {
                    _mm256_storeu_ps(vp.add(p * vs + ci * b + lane), v);
                }
            }
        }
        // The products of output rows `co0..co1` (whole register panels
        // from `co0`), point by point.
        for p in 0..N {
            gemm(
                w.u.as_ptr().add(p * cout * cin + co0 * cin),
                vp.add(p * vs),
                mp.add(p * ms + co0 * b),
                co1 - co0,
                cin,
                b,
            );
        }
        // Output transform, bias and output mode.
        for (co, &bc) in bias.iter().enumerate().take(co1).skip(co0) {
            // (Not a pointer into `y` when the outputs are staged.)
            let yrow = y.wrapping_add(ym.off() + co * ym.ld());
            let bv = _mm256_set1_ps(bc);
            for lane in (0..b).step_by(8) {
                let mv: [__m256; N] =
                    std::array::from_fn(|p| _mm256_loadu_ps(mp.add(p * ms + co * b + lane)));
                let ys: [__m256; M] = std::array::from_fn(|u| dot::<N>(&at[u], &mv, bv));
                if g.staged > 0 {
                    // `y` is the lane-order buffer: the output mode comes
                    // at `unstage`.
                    let o = y.add(co * M * g.staged + tau0 + lane);
                    for (u, &v) in ys.iter().enumerate() {
                        _mm256_storeu_ps(o.add(u * g.staged), v);
                    }
                    continue;
                }
                // Not staged: dilation 1 and 4 outputs per tile (`conv1d`).
                // View column of lane 0's output 0.
                let (j, beta) = ((tau0 + lane) / g.l, (tau0 + lane) % g.l);
                let c0 = (beta * g.per + j) as isize - g.g0 as isize;
                if M == 4 && j < d && beta + 7 < g.l && c0 >= 0 && c0 as usize + 32 <= g.t {
                    // The 4 outputs of 8 tiles are 32 consecutive columns,
                    // through an in-register transpose.
                    let yc = yrow.add(c0 as usize);
                    // Tiles 0 | 4, 1 | 5, 2 | 6, 3 | 7.
                    let c = transpose4([ys[0], ys[1], ys[2], ys[3]]);
                    let wv = [
                        _mm256_permute2f128_ps::<0x20>(c[0], c[1]),
                        _mm256_permute2f128_ps::<0x20>(c[2], c[3]),
                        _mm256_permute2f128_ps::<0x31>(c[0], c[1]),
                        _mm256_permute2f128_ps::<0x31>(c[2], c[3]),
                    ];
                    for (h, &v) in wv.iter().enumerate() {
                        let o = yc.add(8 * h);
                        let v = match out {
                            Out::Set => v,
                            Out::SetRelu => _mm256_max_ps(v, _mm256_setzero_ps()),
                            Out::Add => _mm256_add_ps(_mm256_loadu_ps(o), v),
                        };
                        _mm256_storeu_ps(o, v);
                    }
                    continue;
                }
                // At the view's ends: lane by lane.
                for (u, &yv) in ys.iter().enumerate() {
                    let mut v = [0.0f32; 8];
                    _mm256_storeu_ps(v.as_mut_ptr(), yv);
                    for (e, &val) in v.iter().enumerate() {
                        let (j, beta) = ((tau0 + lane + e) / g.l, (tau0 + lane + e) % g.l);
                        let c = (beta * g.per + u * d + j) as isize - g.g0 as isize;
                        // Lanes past the last residue are padding.
                        if j < d && c >= 0 && (c as usize) < g.t {
                            put(yrow.add(c as usize), val, out);
                        }
                    }
                }
            }
        }
    }
}

/// `*o (op)= v` for output mode `out`, as the vector stores do it.
#[inline(always)]
unsafe fn put(o: *mut f32, v: f32, out: Out) {
    *o = match out {
        Out::Set => v,
        Out::SetRelu => relu(v),
        Out::Add => *o + v,
    };
}

/// `max(0, v)` as `_mm256_max_ps(v, 0)` computes it (zero for NaN and
/// −0), so that every store path gives the same bits.
#[inline(always)]
fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// `init + Σ_i row[i]·xs[i]` over the nonzero coefficients, in order `i`
/// ascending, one fused multiply-add each.
#[inline(always)]
unsafe fn dot<const N: usize>(
    row: &[f32; N],
    xs: &[std::arch::x86_64::__m256; N],
    init: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let mut acc = init;
    for (&c, &x) in row.iter().zip(xs) {
        if c != 0.0 {
            acc = _mm256_fmadd_ps(_mm256_set1_ps(c), x, acc);
        }
    }
    acc
}

/// `M = U · V` for one point: `U` packed `[cout / RM][cin][RM]` then
/// `[cin][cout mod RM]`, `V` `[cin][b]`, `M` `[cout][b]`; every output
/// summed from zero over the input channels in order.
#[inline(always)]
unsafe fn gemm(u: *const f32, v: *const f32, m: *mut f32, cout: usize, cin: usize, b: usize) {
    let full = cout / RM;
    for pi in 0..full {
        panel::<RM>(u.add(pi * cin * RM), v, m.add(pi * RM * b), cin, b);
    }
    let (ur, mr) = (u.add(full * RM * cin), m.add(full * RM * b));
    match cout - full * RM {
        0 => {}
        1 => panel::<1>(ur, v, mr, cin, b),
        2 => panel::<2>(ur, v, mr, cin, b),
        3 => panel::<3>(ur, v, mr, cin, b),
        4 => panel::<4>(ur, v, mr, cin, b),
        _ => panel::<5>(ur, v, mr, cin, b),
    }
}

/// `R` output rows of [`gemm()`] on register tiles of `R` × [`RN`].
#[inline(always)]
unsafe fn panel<const R: usize>(up: *const f32, v: *const f32, m: *mut f32, cin: usize, b: usize) {
    use std::arch::x86_64::*;
    for col in (0..b).step_by(RN) {
        let mut acc = [[_mm256_setzero_ps(); RN / 8]; R];
        let mut vrow = v.add(col);
        let mut wp = up;
        for _ in 0..cin {
            let xs: [__m256; RN / 8] = std::array::from_fn(|q| _mm256_loadu_ps(vrow.add(8 * q)));
            for (rr, row) in acc.iter_mut().enumerate() {
                let wv = _mm256_broadcast_ss(&*wp.add(rr));
                for (a, &x) in row.iter_mut().zip(&xs) {
                    *a = _mm256_fmadd_ps(wv, x, *a);
                }
            }
            vrow = vrow.add(b);
            wp = wp.add(R);
        }
        for (rr, row) in acc.iter().enumerate() {
            let mo = m.add(rr * b + col);
            for (q, &a) in row.iter().enumerate() {
                _mm256_storeu_ps(mo.add(8 * q), a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{conv1d, Wino};
    use crate::backend::{Mat, Out};

    fn rnd(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// The decoder's ResBlock conv shapes, the flow's WaveNet in-layer conv
    /// and the encoder's feed-forward convs: (cout, cin, k, dilation).
    fn shapes() -> Vec<(usize, usize, usize, usize)> {
        let mut v = Vec::new();
        for c in [128, 64, 32] {
            for (k, d) in [(3, 1), (3, 2), (5, 2), (5, 6), (7, 3), (7, 12)] {
                v.push((c, c, k, d));
            }
        }
        v.extend([(384, 192, 5, 1), (768, 192, 3, 1), (192, 768, 3, 1)]);
        v
    }

    /// `y (op)= conv(act(x)) + b` in f64, "same" padding, zeros outside.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        w: &[f32],
        b: &[f32],
        (co, ci): (usize, usize),
        k: usize,
        d: usize,
        x: &[f32],
        t: usize,
        act: Option<f32>,
        y0: &[f32],
        out: Out,
    ) -> Vec<f64> {
        let r = (k - 1) / 2;
        let xa: Vec<f64> = x
            .iter()
            .map(|&v| {
                let v = match act {
                    Some(s) if v < 0.0 => v * s,
                    _ => v,
                };
                f64::from(v)
            })
            .collect();
        let mut y = vec![0.0f64; co * t];
        for o in 0..co {
            for col in 0..t {
                let mut acc = f64::from(b[o]);
                for i in 0..ci {
                    for j in 0..k {
                        let s = col as isize + (j as isize - r as isize) * d as isize;
                        if s >= 0 && (s as usize) < t {
                            acc += f64::from(w[(o * ci + i) * k + j]) * xa[i * t + s as usize];
                        }
                    }
                }
                y[o * t + col] = match out {
                    Out::Set => acc,
                    Out::SetRelu => acc.max(0.0),
                    Out::Add => f64::from(y0[o * t + col]) + acc,
                };
            }
        }
        y
    }

    /// Max |error| and RMS error, both relative to the reference's RMS.
    fn rel_err(got: &[f32], want: &[f64]) -> (f64, f64) {
        let rms = (want.iter().map(|v| v * v).sum::<f64>() / want.len() as f64).sqrt();
        let (mut max, mut se) = (0.0f64, 0.0f64);
        for (&g, &w) in got.iter().zip(want) {
            let e = (f64::from(g) - w).abs();
            max = max.max(e);
            se += e * e;
        }
        (max / rms, (se / want.len() as f64).sqrt() / rms)
    }

    struct Case {
        w: Vec<f32>,
        b: Vec<f32>,
    }

    fn case(co: usize, ci: usize, k: usize, seed: &mut u64) -> Case {
        // Weights scaled like a trained conv's (unit gain overall).
        let s = 2.0 / ((ci * k) as f32).sqrt();
        Case {
            w: (0..co * ci * k).map(|_| rnd(seed) * s).collect(),
            b: (0..co).map(|_| rnd(seed) * 0.1).collect(),
        }
    }

    fn skip(name: &str) -> bool {
        if !super::super::portable::fma_tiles() {
            crate::test_skip(name, "this CPU has no AVX2 + FMA");
            return true;
        }
        false
    }

    /// Against the f64 reference: every decoder shape, several widths and
    /// alignments.
    #[test]
    fn matches_f64_reference() {
        if skip("matches_f64_reference") {
            return;
        }
        let mut seed = 3u64;
        let mut worst: Vec<(usize, f64, f64)> = Vec::new();
        for (c, ci, k, d) in shapes() {
            let cs = case(c, ci, k, &mut seed);
            let wn = Wino::with_m(&cs.w, c, ci, k, d, 4).expect("applies");
            let mut wmax = (0.0f64, 0.0f64);
            for t in [1, 7, 100, 1000] {
                let x: Vec<f32> = (0..ci * t).map(|_| rnd(&mut seed) * 2.0).collect();
                let want = reference(&cs.w, &cs.b, (c, ci), k, d, &x, t, None, &[], Out::Set);
                for col0 in [0, 5, 37] {
                    let mut y = vec![f32::NAN; c * t];
                    let (xm, m) = (Mat::new(ci, t), Mat::new(c, t));
                    // SAFETY: the views fit the buffers; shapes match.
                    unsafe {
                        conv1d(1, &wn, &cs.b, x.as_ptr(), xm, col0, None, y.as_mut_ptr(), m, Out::Set)
                    };
                    let (mx, rms) = rel_err(&y, &want);
                    assert!(
                        rms <= 1e-5 && mx <= 1.5e-4,
                        "c{c}/{ci} k{k} d{d} t{t} col0 {col0}: rel rms {rms:e} max {mx:e}"
                    );
                    wmax = (wmax.0.max(mx), wmax.1.max(rms));
                }
            }
            println!(
                "winograd F({}, {k}) c{c}/{ci} d{d}: rel max err {:.2e}, rel rms err {:.2e}",
                wn.m, wmax.0, wmax.1
            );
            worst.push((k, wmax.0, wmax.1));
        }
    }

    /// Columns far enough from a window's ends come out bit for bit as in
    /// the whole run; two threads equal one everywhere.
    #[test]
    fn bits_do_not_depend_on_split() {
        if skip("bits_do_not_depend_on_split") {
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        let mut seed = 11u64;
        let t = 3000;
        for (c, ci, k, d) in shapes() {
            let cs = case(c, ci, k, &mut seed);
            let wn = Wino::with_m(&cs.w, c, ci, k, d, 4).expect("applies");
            let x: Vec<f32> = (0..ci * t).map(|_| rnd(&mut seed)).collect();
            let y0: Vec<f32> = (0..c * t).map(|_| rnd(&mut seed)).collect();
            let run = |threads: usize, s: usize, e: usize, act: Option<f32>, out: Out| {
                let mut y = y0.clone();
                let xm = Mat::new(ci, t).sub_cols(s, e);
                let m = Mat::new(c, t).sub_cols(s, e);
                // SAFETY: the views fit the buffers; shapes match.
                pool.install(|| unsafe {
                    conv1d(threads, &wn, &cs.b, x.as_ptr(), xm, s, act, y.as_mut_ptr(), m, out)
                });
                y
            };
            let reach = d * (k - 1) / 2 + wn.margin();
            for (act, out) in [(None, Out::Set), (Some(0.1), Out::Add), (None, Out::SetRelu)] {
                let whole = run(1, 0, t, act, out);
                let two = run(2, 0, t, act, out);
                for (i, (a, b)) in whole.iter().zip(&two).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "c{c} k{k} d{d} 2 threads elem {i}");
                }
                for (s, e) in [(1, 2999), (37, 500), (101, 2000), (999, 1013), (5, 160)] {
                    for threads in [1, 2] {
                        let part = run(threads, s, e, act, out);
                        for o in 0..c {
                            for col in 0..t {
                                let i = o * t + col;
                                if col < s || col >= e {
                                    assert_eq!(
                                        part[i].to_bits(),
                                        y0[i].to_bits(),
                                        "c{c} k{k} d{d} wrote outside {s}..{e}: col {col}"
                                    );
                                } else if col >= s + reach && col + reach < e {
                                    assert_eq!(
                                        part[i].to_bits(),
                                        whole[i].to_bits(),
                                        "c{c} k{k} d{d} window {s}..{e} threads {threads}: \
                                         row {o} col {col}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every output mode, the fused LeakyReLU, and in place (`y == x`).
    #[test]
    fn modes_act_and_in_place() {
        if skip("modes_act_and_in_place") {
            return;
        }
        let mut seed = 29u64;
        for (c, ci, k, d) in [(32, 32, 3, 1), (64, 64, 5, 6), (32, 32, 7, 12), (128, 128, 7, 3), (384, 192, 5, 1)] {
            let cs = case(c, ci, k, &mut seed);
            let wn = Wino::with_m(&cs.w, c, ci, k, d, 4).expect("applies");
            let t = 333;
            let x: Vec<f32> = (0..ci * t).map(|_| rnd(&mut seed) * 2.0).collect();
            let y0: Vec<f32> = (0..c * t).map(|_| rnd(&mut seed)).collect();
            let (xm, m) = (Mat::new(ci, t), Mat::new(c, t));
            for act in [None, Some(0.1)] {
                for out in [Out::Set, Out::SetRelu, Out::Add] {
                    let want = reference(&cs.w, &cs.b, (c, ci), k, d, &x, t, act, &y0, out);
                    for threads in [1, 2] {
                        let mut y = y0.clone();
                        // SAFETY: the views fit the buffers; shapes match.
                        unsafe {
                            conv1d(threads, &wn, &cs.b, x.as_ptr(), xm, 3, act, y.as_mut_ptr(), m, out)
                        };
                        let (mx, rms) = rel_err(&y, &want);
                        assert!(rms <= 1e-5 && mx <= 1.5e-4, "c{c}/{ci} k{k} d{d} {act:?} {out:?}: {rms:e} {mx:e}");
                        // In place: the input is the output buffer's first
                        // `ci` rows.
                        let mut z = y0.clone();
                        z[..ci * t].copy_from_slice(&x);
                        let want = reference(&cs.w, &cs.b, (c, ci), k, d, &x, t, act, &z, out);
                        let zp = z.as_mut_ptr();
                        // SAFETY: as above; `y` may alias `x`.
                        unsafe { conv1d(threads, &wn, &cs.b, zp, xm, 3, act, zp, m, out) };
                        let (mx, rms) = rel_err(&z, &want);
                        assert!(rms <= 1e-5 && mx <= 1.5e-4, "in place c{c}/{ci} k{k} d{d} {act:?} {out:?}: {rms:e} {mx:e}");
                    }
                }
            }
        }
    }

    /// Strided views (row stride past the width, offset) read and write
    /// only their own elements.
    #[test]
    fn strided_views() {
        if skip("strided_views") {
            return;
        }
        let mut seed = 41u64;
        let (c, k, d, t) = (32, 5, 2, 90);
        let cs = case(c, c, k, &mut seed);
        let wn = Wino::with_m(&cs.w, c, c, k, d, 4).expect("applies");
        let ld = 130;
        let xb: Vec<f32> = (0..c * ld + 7).map(|_| rnd(&mut seed)).collect();
        let xm = Mat::strided(7, c, t, ld).expect("view");
        let x: Vec<f32> = (0..c).flat_map(|r| xb[7 + r * ld..7 + r * ld + t].to_vec()).collect();
        let want = reference(&cs.w, &cs.b, (c, c), k, d, &x, t, None, &[], Out::Set);
        let mut yb = vec![-7.0f32; c * ld + 3];
        let ym = Mat::strided(3, c, t, ld).expect("view");
        // SAFETY: the views fit the buffers; shapes match.
        unsafe { conv1d(2, &wn, &cs.b, xb.as_ptr(), xm, 0, None, yb.as_mut_ptr(), ym, Out::Set) };
        let mut got = Vec::new();
        for (i, &v) in yb.iter().enumerate() {
            let inside = i >= 3 && (i - 3) % ld < t && (i - 3) / ld < c;
            if inside {
                got.push(v);
            } else {
                assert_eq!(v, -7.0, "wrote outside the view at {i}");
            }
        }
        let (mx, rms) = rel_err(&got, &want);
        assert!(rms <= 1e-5 && mx <= 1.5e-4, "{rms:e} {mx:e}");
    }

    /// The compile-time transforms equal the f64 ones rounded to f32.
    #[test]
    fn const_transforms_match() {
        fn check<const M: usize, const N: usize>() {
            let (bt, _, at) = super::transforms(M, N - M + 1);
            for p in 0..N {
                for i in 0..N {
                    assert_eq!(super::Consts::<M, N>::BT[p][i], bt[p * N + i] as f32, "F({M}) Bt {p} {i}");
                }
                for u in 0..M {
                    assert_eq!(super::Consts::<M, N>::AT[u][p], at[u * N + p] as f32, "F({M}) At {u} {p}");
                }
            }
        }
        check::<2, 4>();
        check::<4, 6>();
        check::<6, 8>();
        check::<2, 6>();
        check::<3, 7>();
        check::<4, 8>();
        check::<2, 8>();
        check::<3, 9>();
        check::<4, 10>();
    }

    /// Where the kernel does not apply.
    #[test]
    fn new_refuses_other_shapes() {
        if skip("new_refuses_other_shapes") {
            return;
        }
        let w = |co: usize, ci: usize, k: usize| vec![0.1f32; co * ci * k];
        assert!(Wino::new(&w(32, 32, 3), 32, 32, 3, 1).is_some());
        assert!(Wino::new(&w(32, 32, 4), 32, 32, 4, 1).is_none());
        assert!(Wino::new(&w(32, 32, 1), 32, 32, 1, 1).is_none());
        assert!(Wino::new(&w(32, 32, 9), 32, 32, 9, 1).is_none());
        assert!(Wino::new(&w(384, 192, 5), 384, 192, 5, 1).is_some());
        assert!(Wino::new(&w(64, 16, 3), 64, 16, 3, 1).is_none());
        assert!(Wino::new(&w(64, 34, 3), 64, 34, 3, 1).is_none());
        assert!(Wino::new(&w(16, 16, 3), 16, 16, 3, 1).is_none());
        assert!(Wino::new(&w(36, 36, 3), 36, 36, 3, 1).is_some());
        assert!(Wino::new(&w(34, 34, 3), 34, 34, 3, 1).is_none());
        assert!(Wino::new(&w(32, 32, 3), 32, 32, 3, 0).is_none());
        assert!(Wino::new(&w(32, 32, 5), 32, 32, 5, 6).is_some());
        assert!(Wino::new(&w(32, 32, 7), 32, 32, 7, 3).is_some());
        assert!(Wino::new(&w(32, 32, 5), 32, 32, 5, 2).is_some());
        assert!(Wino::new(&w(32, 32, 3), 32, 32, 3, 2).is_some());
        assert!(Wino::new(&w(32, 32, 7), 32, 32, 7, 12).is_some());
        assert!(Wino::new(&w(64, 64, 3), 64, 64, 3, 2).is_some());
        assert!(Wino::new(&w(64, 64, 7), 64, 64, 7, 12).is_some());
        assert!(Wino::new(&w(32, 32, 3)[1..], 32, 32, 3, 1).is_none());
        let wn = Wino::new(&w(64, 64, 7), 64, 64, 7, 12).expect("applies");
        assert_eq!((wn.period(), wn.margin()), (wn.m * 12, (wn.m - 1) * 12));
    }

    /// See [`super::bench::speed`].
    #[test]
    #[ignore]
    fn speed() {
        super::bench::speed();
    }

    /// Accuracy of each F(m, k) this file can run, for choosing `m`:
    /// `cargo test --release --lib winograd::tests::accuracy -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn accuracy() {
        let mut seed = 5u64;
        for (k, ms) in [(3, vec![2, 4, 6]), (5, vec![2, 3, 4]), (7, vec![2, 3, 4])] {
            for c in [32, 128] {
                let cs = case(c, c, k, &mut seed);
                let t = 1000;
                let x: Vec<f32> = (0..c * t).map(|_| rnd(&mut seed) * 2.0).collect();
                let want = reference(&cs.w, &cs.b, (c, c), k, 2, &x, t, None, &[], Out::Set);
                for &m in &ms {
                    let wn = Wino::with_m(&cs.w, c, c, k, 2, m).expect("applies");
                    let mut y = vec![0.0; c * t];
                    let mm = Mat::new(c, t);
                    // SAFETY: the views fit the buffers; shapes match.
                    unsafe { conv1d(1, &wn, &cs.b, x.as_ptr(), mm, 0, None, y.as_mut_ptr(), mm, Out::Set) };
                    let (mx, rms) = rel_err(&y, &want);
                    println!("F({m}, {k}) c{c}: rel rms {rms:.2e} max {mx:.2e}");
                }
                // The direct f32 tiles, for scale.
                let p = super::super::portable::Panels::new(&cs.w, c, c, k, true);
                let mut y = vec![0.0; c * t];
                let mm = Mat::new(c, t);
                // SAFETY: the views fit the buffers; shapes match.
                unsafe {
                    super::super::portable::conv1d(1, &p, &cs.b, 2, &x, mm, None, y.as_mut_ptr(), mm, Out::Set)
                };
                let (mx, rms) = rel_err(&y, &want);
                println!("direct k{k} c{c}: rel rms {rms:.2e} max {mx:.2e}");
            }
        }
    }
}

/// Effective GFLOP/s (the direct conv's FLOPs, `2·cout·cin·k` per column) of
/// the portable AVX2 kernel and this one on the flow's WaveNet in-layer conv
/// (`c384/192 k5 d1`) and the decoder's shapes:
/// `cargo test --release --lib winograd::tests::speed -- --ignored --nocapture`
/// (`WINO_SHAPE="c32 k3 d1"` for one shape, `WINO_COLS=256,1024` for other
/// widths).
#[cfg(test)]
mod bench {
    use super::{conv1d, Wino};
    use crate::backend::cpu::portable;
    use crate::backend::{Mat, Out};
    use std::time::Instant;

    pub(super) fn speed() {
        if !portable::fma_tiles() {
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        let only: Option<String> = std::env::var("WINO_SHAPE").ok();
        println!("shape               cols  thr  portable GF/s  winograd GF/s  speed-up");
        let mut shapes = vec![(384, 192, 5, 1), (768, 192, 3, 1), (192, 768, 3, 1)];
        for c in [128, 64, 32] {
            for (k, d) in [(3, 1), (3, 2), (5, 2), (5, 6), (7, 3), (7, 12)] {
                shapes.push((c, c, k, d));
            }
        }
        for (c, ci, k, d) in shapes {
            {
                let name = if ci == c { format!("c{c} k{k} d{d}") } else { format!("c{c}/{ci} k{k} d{d}") };
                if only.as_ref().is_some_and(|o| *o != name) {
                    continue;
                }
                let w: Vec<f32> = (0..c * ci * k).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-4).collect();
                let b: Vec<f32> = (0..c).map(|i| i as f32 * 1e-3).collect();
                let pan = portable::Panels::new(&w, c, ci, k, true);
                let wn = Wino::with_m(&w, c, ci, k, d, 4).expect("applies");
                let cols: Vec<usize> = std::env::var("WINO_COLS").map_or(vec![4096, 32768], |v| {
                    v.split(',').filter_map(|c| c.trim().parse().ok()).collect()
                });
                for t in cols {
                    let x: Vec<f32> = (0..ci * t).map(|i| ((i % 97) as f32 - 48.0) * 0.01).collect();
                    let mut y = vec![0.0f32; c * t];
                    let (xm, m) = (Mat::new(ci, t), Mat::new(c, t));
                    let flops = 2.0 * (c * ci * k * t) as f64;
                    let reps = ((0.5e9 / flops) as usize).clamp(1, 100);
                    for threads in [1, 2] {
                        // Best of several short runs of each kernel, taken
                        // in turns (the machine's speed drifts).
                        let time = |f: &mut dyn FnMut()| {
                            let t0 = Instant::now();
                            for _ in 0..reps {
                                f();
                            }
                            t0.elapsed().as_secs_f64() / reps as f64
                        };
                        let yp = super::SendPtr(y.as_mut_ptr());
                        let (mut bp, mut bw) = (f64::MAX, f64::MAX);
                        pool.install(|| {
                            for round in 0..6 {
                                // SAFETY: the views fit the buffers; shapes match.
                                let p = time(&mut || unsafe {
                                    portable::conv1d(
                                        threads,
                                        &pan,
                                        &b,
                                        d,
                                        &x,
                                        xm,
                                        None,
                                        yp.get(),
                                        m,
                                        Out::Add,
                                    )
                                });
                                // SAFETY: the views fit the buffers; shapes match.
                                let w = time(&mut || unsafe {
                                    conv1d(threads, &wn, &b, x.as_ptr(), xm, 0, None, yp.get(), m, Out::Add)
                                });
                                if round > 0 {
                                    (bp, bw) = (bp.min(p), bw.min(w));
                                }
                            }
                        });
                        let (gp, gw) = (flops / bp / 1e9, flops / bw / 1e9);
                        println!(
                            "{name:16} {t:7} {threads:4} {gp:14.1} {gw:14.1} {:9.2}x",
                            gw / gp
                        );
                    }
                }
            }
        }
    }
}
