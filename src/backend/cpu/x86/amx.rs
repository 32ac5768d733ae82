//! AMX tile kernels for the direct convolutions, f32-grade ("bf16x3").
//!
//! Every f32 value `v` is split into two bf16 halves, `hi = bf16(v)` and
//! `lo = bf16(v − hi)` (so `v = hi + lo` to about 2⁻¹⁶ relative), and each
//! product is taken as `a_hi·b_lo + a_hi·b_hi + a_lo·b_hi` (the dropped
//! `a_lo·b_lo` is below 2⁻¹⁶ too). `TDPBF16PS` multiplies bf16 exactly and
//! accumulates in f32, so a conv costs three tile products per 32-deep K
//! step, still several times the f32 FMA throughput, with an error near
//! f32's own (see the README's precision figures).
//!
//! Layout. `K = cin·k` in (channel, tap) order, as the f32 kernels, padded
//! to a multiple of 32 (`KB`). A 16×16 tile of `u32` holds 16 rows of 16
//! bf16 pairs `(K = 2c, 2c + 1)`.
//! - Weights: `[row block of 32][k block][hi0, hi1, lo0, lo1]` tiles, `hi0`
//!   rows 0–15 of the block, `hi1` rows 16–31 (`A` operands).
//! - Inputs, per block of 32 output columns: `[k block][hi0, hi1, lo0, lo1]`
//!   tiles of 16 pair rows × 16 columns (`B` operands, "VNNI" pairs), built
//!   from the conv input split once into zero-margined bf16 hi/lo planes
//!   ([`fill_split`]); a batch of column blocks is built at a time, so each
//!   weight row block serves the whole batch while it is cached.
//!
//! Each output element sums, per k block in order, `hi·lo`, `hi·hi`,
//! `lo·hi`, then adds the bias: the same order whatever the tiling, the
//! view length or the threads, so chunks stay bit-identical to whole runs.

#![allow(unsafe_op_in_unsafe_fn)]

use crate::backend::Out;
use std::arch::asm;
use std::arch::x86_64::*;

/// Rows (and columns) of an output block.
pub(crate) const BLOCK: usize = 32;
/// bf16 K per tile.
pub(crate) const KB: usize = 32;
/// `u32` per tile (16 rows × 64 bytes).
const TILE: usize = 256;

/// One 64-byte tile row. Tile loads from 64-byte aligned rows are several
/// times faster than from rows straddling two cache lines, so every tile
/// buffer is made of these.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line([u32; 16]);

/// `n` zeroed lines (fresh allocator-zeroed pages for a large one).
pub(crate) fn zeroed_lines(n: usize) -> Vec<Line> {
    if n == 0 {
        return Vec::new();
    }
    let layout = std::alloc::Layout::array::<Line>(n).expect("tile buffer size");
    // SAFETY: a non-zero layout; the zeroed memory is a valid [Line] (plain
    // integers), allocated with the layout Vec<Line> frees it with.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<Line>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(p, n, n)
    }
}

/// The `u32` of a line buffer.
pub(crate) fn words_mut(v: &mut [Line]) -> &mut [u32] {
    // SAFETY: Line is 16 u32 with no padding.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len() * 16) }
}

/// K blocks for `kk = cin·k`.
pub(crate) fn k_blocks(kk: usize) -> usize {
    kk.div_ceil(KB)
}

/// Lines of the packed weights for `cout` rows and `kk` K.
pub(crate) fn packed_lines(cout: usize, kk: usize) -> usize {
    cout.div_ceil(BLOCK) * k_blocks(kk) * 4 * 16
}

/// Pack one row block of `w` (`[cout, kk]`) into `dst`: `[k block][4
/// tiles]`, every line written (rows past `cout` and K past `kk` as zeros),
/// so `dst` may start uninitialized.
///
/// # Safety
/// [`super::has_amx`] returned true; `dst` holds `packed_lines(32, kk)` lines.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn pack_block(w: &[f32], cout: usize, kk: usize, rb: usize, dst: *mut Line) {
    let rows = BLOCK.min(cout.saturating_sub(rb * BLOCK));
    for r in 0..BLOCK {
        let row = w
            .as_ptr()
            .add((rb * BLOCK + r.min(rows.saturating_sub(1))) * kk);
        let (half, m) = (r / 16, r % 16);
        for kb in 0..k_blocks(kk) {
            // 32 weights of K block kb (zeros past kk, and for padding rows)
            // -> one row of the hi tile and one of the lo tile, K in order
            // (pairs in u32).
            let load = |q: usize| {
                let left = if r < rows {
                    kk.saturating_sub(q).min(16)
                } else {
                    0
                };
                _mm512_maskz_loadu_ps(((1u32 << left) - 1) as __mmask16, row.add(q))
            };
            let (h0, l0) = split16(load(kb * KB));
            let (h1, l1) = split16(load(kb * KB + 16));
            let narrow = |a: __m512i, b: __m512i| {
                let a = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(a));
                let b = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(b));
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b)
            };
            let base = kb * 4 * 16 + m;
            _mm512_store_si512(dst.add(base + half * 16).cast(), narrow(h0, h1));
            _mm512_store_si512(dst.add(base + (2 + half) * 16).cast(), narrow(l0, l1));
        }
    }
}

/// `(hi, lo)` bf16 halves of 16 lanes, as f32 bit patterns (low halves 0).
#[inline(always)]
unsafe fn split16(v: __m512) -> (__m512i, __m512i) {
    let one = _mm512_set1_epi32(1);
    let half = _mm512_set1_epi32(0x7fff);
    let top = _mm512_set1_epi32(0xffff_0000u32 as i32);
    let rne = |b: __m512i| {
        let r = _mm512_add_epi32(
            b,
            _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32::<16>(b), one)),
        );
        _mm512_and_si512(r, top)
    };
    let hi = rne(_mm512_castps_si512(v));
    let lo = rne(_mm512_castps_si512(_mm512_sub_ps(
        v,
        _mm512_castsi512_ps(hi),
    )));
    (hi, lo)
}

/// Copy `x` rows (`xm`, the activation applied as the direct kernels do)
/// into split planes: row `i` of `dst` (`2·ldx` u16) is `ldx` bf16 `hi`
/// halves then `ldx` `lo` halves, `padl` zeros before the data, zeros after.
///
/// # Safety
/// `x` holds the view; `dst` holds `xm.rows()` rows of `2·ldx`;
/// `ldx ≥ padl + round_up(xm.cols(), 16)`.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn fill_split(
    dst: &mut [u16],
    ldx: usize,
    padl: usize,
    x: &[f32],
    xm: crate::backend::Mat,
    act: Option<f32>,
) {
    let t = xm.cols();
    for (i, row) in dst.chunks_exact_mut(2 * ldx).take(xm.rows()).enumerate() {
        let (hi, lo) = row.split_at_mut(ldx);
        hi[..padl].fill(0);
        lo[..padl].fill(0);
        let src = x.as_ptr().add(xm.off() + i * xm.ld());
        let mut c = 0;
        while c < t {
            let v = super::load_act16(src, c, t, act);
            let (h, l) = split16(v);
            let h = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(h));
            let l = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(l));
            // Masked-off lanes are zero, so the 16-wide stores past `t`
            // write the right margin's zeros.
            _mm256_storeu_si256(hi.as_mut_ptr().add(padl + c).cast(), h);
            _mm256_storeu_si256(lo.as_mut_ptr().add(padl + c).cast(), l);
            c += 16;
        }
        let used = padl + t.div_ceil(16) * 16;
        hi[used..].fill(0);
        lo[used..].fill(0);
    }
}

/// Build the `B` tiles of the 32 output columns from `t0` into `dst`
/// (`k_blocks(cin·k)·4·16` lines) from split planes (see [`fill_split`]):
/// pair row `c` of k block `kb` holds K `2c, 2c + 1` of that block, lane
/// `n` column `t0 + n` (+16 in the second tile).
///
/// # Safety
/// `xs` rows (`2·ldx` u16 apart) readable at `t0 + j·dil .. + 32` in both
/// planes for every channel `< cin` and tap `j < k`.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn build_b(
    xs: *const u16,
    ldx: usize,
    cin: usize,
    k: usize,
    dil: usize,
    t0: usize,
    dst: &mut [Line],
) {
    let dst = words_mut(dst);
    let kk = cin * k;
    let nkb = k_blocks(kk);
    let d = dst.as_mut_ptr();
    // (channel, tap) of K index q, walked without divisions.
    let (mut ci, mut tap) = (0usize, 0usize);
    let mut next = || {
        let at = if ci < cin {
            Some(xs.add(ci * 2 * ldx + t0 + tap * dil))
        } else {
            None
        };
        tap += 1;
        if tap == k {
            tap = 0;
            ci += 1;
        }
        at
    };
    let widen = |p: Option<*const u16>, off: usize| match p {
        Some(p) => _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.add(off).cast())),
        None => _mm512_setzero_si512(),
    };
    for q2 in 0..nkb * KB / 2 {
        let (kb, c) = (2 * q2 / KB, q2 % 16);
        let tile = d.add(kb * 4 * TILE + c * 16);
        let (a, b) = (next(), next());
        for h in 0..2 {
            for (plane, which) in [(0, h), (ldx, 2 + h)] {
                // Lane n: K 2c in the low half, K 2c + 1 in the high half.
                let lo_k = widen(a, plane + 16 * h);
                let hi_k = _mm512_slli_epi32::<16>(widen(b, plane + 16 * h));
                _mm512_storeu_si512(tile.add(which * TILE).cast(), _mm512_or_si512(lo_k, hi_k));
            }
        }
    }
}

/// The tile configuration: all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct Config {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// Load the tile configuration on this thread (before [`block`]).
///
/// # Safety
/// [`super::has_amx`] returned true.
pub(crate) unsafe fn configure() {
    let mut c = Config {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [0; 16],
        rows: [0; 16],
    };
    for i in 0..8 {
        c.colsb[i] = 64;
        c.rows[i] = 16;
    }
    asm!("ldtilecfg [{c}]", c = in(reg) &c as *const Config, options(nostack, readonly));
}

/// Release the tile state (after the last [`block`] of a work item).
///
/// # Safety
/// [`super::has_amx`] returned true.
pub(crate) unsafe fn release() {
    asm!("tilerelease", options(nostack, nomem));
}

/// One 32×32 output block: `c` (`[32][32]` f32) = A row block (`nkb` k
/// blocks at `a`) × B (`nkb` k blocks at `b`), summed per k block as
/// `hi·lo`, `hi·hi`, `lo·hi`.
///
/// # Safety
/// [`configure`] ran on this thread; `a`, `b` hold `nkb·4·16` lines.
pub(crate) unsafe fn block(a: *const Line, b: *const Line, nkb: usize, c: &mut Out32) {
    if nkb == 0 {
        c.0.fill(0.0);
        return;
    }
    asm!(
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        "2:",
        // A hi (rows 0–15, 16–31) × B lo (columns 0–15, 16–31)
        "tileloadd tmm4, [{a} + {s}*1]",
        "tileloadd tmm5, [{a} + {s}*1 + 1024]",
        "tileloadd tmm6, [{b} + {s}*1 + 2048]",
        "tileloadd tmm7, [{b} + {s}*1 + 3072]",
        "tdpbf16ps tmm0, tmm4, tmm6",
        "tdpbf16ps tmm1, tmm4, tmm7",
        "tdpbf16ps tmm2, tmm5, tmm6",
        "tdpbf16ps tmm3, tmm5, tmm7",
        // A hi × B hi
        "tileloadd tmm6, [{b} + {s}*1]",
        "tileloadd tmm7, [{b} + {s}*1 + 1024]",
        "tdpbf16ps tmm0, tmm4, tmm6",
        "tdpbf16ps tmm1, tmm4, tmm7",
        "tdpbf16ps tmm2, tmm5, tmm6",
        "tdpbf16ps tmm3, tmm5, tmm7",
        // A lo × B hi
        "tileloadd tmm4, [{a} + {s}*1 + 2048]",
        "tileloadd tmm5, [{a} + {s}*1 + 3072]",
        "tdpbf16ps tmm0, tmm4, tmm6",
        "tdpbf16ps tmm1, tmm4, tmm7",
        "tdpbf16ps tmm2, tmm5, tmm6",
        "tdpbf16ps tmm3, tmm5, tmm7",
        "add {a}, 4096",
        "add {b}, 4096",
        "dec {n}",
        "jnz 2b",
        "tilestored [{c} + {ls}*1], tmm0",
        "tilestored [{c} + {ls}*1 + 64], tmm1",
        "tilestored [{c} + {ls}*1 + 2048], tmm2",
        "tilestored [{c} + {ls}*1 + 2112], tmm3",
        a = inout(reg) a => _,
        b = inout(reg) b => _,
        n = inout(reg) nkb => _,
        s = in(reg) 64usize,
        ls = in(reg) 128usize,
        c = in(reg) c.0.as_mut_ptr(),
        options(nostack),
    );
}

/// A 32×32 f32 output block (64-byte aligned rows for the tile stores).
#[repr(C, align(64))]
pub(crate) struct Out32(pub [f32; BLOCK * BLOCK]);

/// Write rows `0..rows`, columns `0..n` of a block plus the bias to `y`.
///
/// # Safety
/// `y` rows (`ldy` apart) writable for `rows` rows × `n` columns; `bias`
/// holds `rows` values; `rows, n ≤ 32`.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn store(
    c: &Out32,
    bias: *const f32,
    rows: usize,
    n: usize,
    y: *mut f32,
    ldy: usize,
    out: Out,
) {
    let zero = _mm512_setzero_ps();
    let masks: [__mmask16; 2] = std::array::from_fn(|v| {
        let left = n.saturating_sub(16 * v).min(16);
        ((1u32 << left) - 1) as __mmask16
    });
    for m in 0..rows {
        let b = _mm512_set1_ps(*bias.add(m));
        let yp = y.add(m * ldy);
        for (v, &mask) in masks.iter().enumerate() {
            if mask == 0 {
                continue;
            }
            let r = _mm512_add_ps(_mm512_load_ps(c.0.as_ptr().add(m * BLOCK + 16 * v)), b);
            let r = match out {
                Out::Set => r,
                Out::SetRelu => _mm512_max_ps(r, zero),
                Out::Add => _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask, yp.add(16 * v))),
            };
            _mm512_mask_storeu_ps(yp.add(16 * v), mask, r);
        }
    }
}
