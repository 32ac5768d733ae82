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
//!   from the zero-margined f32 scratch of the direct kernels.
//!
//! Each output element sums, per k block in order, `hi·lo`, `hi·hi`,
//! `lo·hi`, then adds the bias: the same order whatever the tiling, the
//! view length or the threads, so chunks stay bit-identical to whole runs.

#![allow(unsafe_op_in_unsafe_fn)]

use crate::backend::Out;
use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Rows (and columns) of an output block.
pub(crate) const BLOCK: usize = 32;
/// bf16 K per tile.
pub(crate) const KB: usize = 32;
/// `u32` per tile (16 rows × 64 bytes).
const TILE: usize = 256;

/// Whether this CPU and OS run AMX-BF16 tiles (asks Linux for the tile
/// state once per process).
pub(crate) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if !super::direct::has_avx512() {
            return false;
        }
        // CPUID.(7,0):EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
        let l = __cpuid_count(7, 0);
        if l.edx & (1 << 22) == 0 || l.edx & (1 << 24) == 0 {
            return false;
        }
        request_tile_state()
    })
}

#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain syscall with integer arguments.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// Round-to-nearest-even bf16 of `x`, as the f32 bit pattern (low half 0).
fn split_bits(x: u32) -> u32 {
    x.wrapping_add(0x7fff + ((x >> 16) & 1)) & 0xffff_0000
}

/// `(hi, lo)` bf16 bits of `v` (`v ≈ hi + lo`).
fn split(v: f32) -> (u16, u16) {
    let hi = split_bits(v.to_bits());
    let lo = split_bits((v - f32::from_bits(hi)).to_bits());
    ((hi >> 16) as u16, (lo >> 16) as u16)
}

/// K blocks for `kk = cin·k`.
pub(crate) fn k_blocks(kk: usize) -> usize {
    kk.div_ceil(KB)
}

/// `u32` of the packed weights for `cout` rows and `kk` K.
pub(crate) fn packed_len(cout: usize, kk: usize) -> usize {
    cout.div_ceil(BLOCK) * k_blocks(kk) * 4 * TILE
}

/// Pack one row block (`dst`: `[k block][4 tiles]`) of `w` (`[cout, kk]`).
pub(crate) fn pack_block(w: &[f32], cout: usize, kk: usize, rb: usize, dst: &mut [u32]) {
    for r in 0..BLOCK {
        let o = rb * BLOCK + r;
        if o >= cout {
            break;
        }
        let row = &w[o * kk..(o + 1) * kk];
        let (half, m) = (r / 16, r % 16);
        for (q, &v) in row.iter().enumerate() {
            let (hi, lo) = split(v);
            let (kb, c, e) = (q / KB, (q % KB) / 2, q % 2);
            let base = kb * 4 * TILE + m * 16 + c;
            let sh = 16 * e;
            dst[base + half * TILE] |= u32::from(hi) << sh;
            dst[base + (2 + half) * TILE] |= u32::from(lo) << sh;
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

/// Build the `B` tiles of the 32 output columns from `t0` into `dst`
/// (`k_blocks(cin·k)·4·TILE` u32): pair row `c` of k block `kb` holds K
/// `2c, 2c + 1` of that block, lane `n` column `t0 + n` (+16 in tile 1).
///
/// # Safety
/// `xs` rows (`ldx` apart) readable at `t0 + j·dil .. + 32` for every channel
/// `< cin` and tap `j < k`.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn build_b(
    xs: *const f32,
    ldx: usize,
    cin: usize,
    k: usize,
    dil: usize,
    t0: usize,
    dst: &mut [u32],
) {
    let kk = cin * k;
    let nkb = k_blocks(kk);
    let at = |q: usize| xs.add((q / k) * ldx + t0 + (q % k) * dil);
    let d = dst.as_mut_ptr();
    for q2 in 0..nkb * KB / 2 {
        let q = 2 * q2;
        let (kb, c) = (q / KB, q2 % 16);
        let tile = d.add(kb * 4 * TILE + c * 16);
        for h in 0..2 {
            let load = |q: usize| {
                if q < kk {
                    _mm512_loadu_ps(at(q).add(16 * h))
                } else {
                    _mm512_setzero_ps()
                }
            };
            let (ah, al) = split16(load(q));
            let (bh, bl) = split16(load(q + 1));
            // Lane n: bf16 of K 2c in the low half, K 2c + 1 in the high half.
            let hi = _mm512_or_si512(_mm512_srli_epi32::<16>(ah), bh);
            let lo = _mm512_or_si512(_mm512_srli_epi32::<16>(al), bl);
            _mm512_storeu_si512(tile.add(h * TILE).cast(), hi);
            _mm512_storeu_si512(tile.add((2 + h) * TILE).cast(), lo);
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
/// [`available`] returned true.
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
/// [`available`] returned true.
pub(crate) unsafe fn release() {
    asm!("tilerelease", options(nostack, nomem));
}

/// One 32×32 output block: `c` (`[32][32]` f32) = A row block (`nkb` k
/// blocks at `a`) × B (`nkb` k blocks at `b`), summed per k block as
/// `hi·lo`, `hi·hi`, `lo·hi`.
///
/// # Safety
/// [`configure`] ran on this thread; `a`, `b` hold `nkb·4·TILE` u32.
pub(crate) unsafe fn block(a: *const u32, b: *const u32, nkb: usize, c: &mut [f32; BLOCK * BLOCK]) {
    if nkb == 0 {
        c.fill(0.0);
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
        c = in(reg) c.as_mut_ptr(),
        options(nostack),
    );
}

/// Write rows `0..rows`, columns `0..n` of a block plus the bias to `y`.
///
/// # Safety
/// `y` rows (`ldy` apart) writable for `rows` rows × `n` columns; `bias`
/// holds `rows` values; `rows, n ≤ 32`.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn store(
    c: &[f32; BLOCK * BLOCK],
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
            let r = _mm512_add_ps(_mm512_loadu_ps(c.as_ptr().add(m * BLOCK + 16 * v)), b);
            let r = match out {
                Out::Set => r,
                Out::SetRelu => _mm512_max_ps(r, zero),
                Out::Add => _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask, yp.add(16 * v))),
            };
            _mm512_mask_storeu_ps(yp.add(16 * v), mask, r);
        }
    }
}
