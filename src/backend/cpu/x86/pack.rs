//! Conv weights packed for the direct kernels: f32 and bf16-pair register
//! panels of [`MR`] output channels, AMX tiles (bf16x3), and transposed
//! convs stacked as one conv of their output phases.

use super::amx;
use super::Arith;

/// Output channels per register panel.
pub(crate) const MR: usize = 8;

/// Round an f32 to bf16 (nearest even), as the hardware conversion does.
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// A conv weight packed for the direct kernels.
pub(crate) struct Packed {
    pub(super) precision: Arith,
    /// F32: full panels `[panel][cin·k][MR]`, then remainder rows `[row][cin·k]`.
    pub(super) f: Vec<f32>,
    /// Bf16: the same with `ceil(cin/2)·k` pairs per row (channel pair, tap).
    pub(super) p: Vec<u32>,
    /// Bf16x3: AMX tiles (`amx.rs`).
    pub(super) a: Vec<amx::Line>,
    pub(super) cout: usize,
    pub(super) cin: usize,
    pub(super) k: usize,
}

/// `panel((index, chunk))` for every `len`-element chunk of `full`, in
/// parallel when there are enough weights (the voice loads on all threads).
fn each_panel<T: Send>(
    full: &mut [T],
    len: usize,
    panel: impl Fn((usize, &mut [T])) + Sync + Send,
) {
    const PAR_PACK_BYTES: usize = 1 << 18;
    if std::mem::size_of_val(full) >= PAR_PACK_BYTES {
        use rayon::prelude::*;
        full.par_chunks_exact_mut(len).enumerate().for_each(panel);
    } else {
        full.chunks_exact_mut(len).enumerate().for_each(panel);
    }
}

impl Packed {
    /// Pack `w` (`[cout, cin, k]`, row-major).
    pub(crate) fn new(precision: Arith, w: &[f32], cout: usize, cin: usize, k: usize) -> Packed {
        // Few output rows × taps reuse each input tile too little to pay
        // for building it (a 32-channel k3 conv runs faster on the f32
        // kernels, a 32-channel k7 one on AMX: kernels bench).
        let precision = match precision {
            Arith::Bf16x3 if cout < 32 || (cout < 64 && k < 5) => Arith::F32,
            p => p,
        };
        let panels = cout / MR;
        let kk = cin * k;
        // Row o of the weight is `[cin·k]` in (channel, tap) order, the K order
        // of the kernels: a panel interleaves MR rows element by element.
        let row = |o: usize| &w[o * kk..(o + 1) * kk];
        let mut f = Vec::new();
        let mut p = Vec::new();
        let mut a: Vec<amx::Line> = Vec::new();
        match precision {
            Arith::F32 => {
                // Zeroed by the allocator: fresh pages, faulted in by the
                // packing writes on all threads.
                f = vec![0.0; cout * kk];
                let (full, rest) = f.split_at_mut(panels * MR * kk);
                let panel = |(pi, dst): (usize, &mut [f32])| {
                    let rows: [&[f32]; MR] = std::array::from_fn(|m| row(pi * MR + m));
                    // Sequential writes, MR read streams.
                    for (q, d) in dst.chunks_exact_mut(MR).enumerate() {
                        for (m, v) in d.iter_mut().enumerate() {
                            *v = rows[m][q];
                        }
                    }
                };
                each_panel(full, MR * kk, panel);
                for (r, dst) in rest.chunks_exact_mut(kk).enumerate() {
                    dst.copy_from_slice(row(panels * MR + r));
                }
            }
            Arith::Bf16 => {
                let cin2 = cin.div_ceil(2);
                let k2 = cin2 * k;
                // Pair (i2, j): channels 2·i2 (low half) and 2·i2 + 1 (high half), tap j.
                let pair = |r: &[f32], i2: usize, j: usize| -> u32 {
                    let lo = bf16_bits(r[2 * i2 * k + j]);
                    let hi = if 2 * i2 + 1 < cin {
                        bf16_bits(r[(2 * i2 + 1) * k + j])
                    } else {
                        0
                    };
                    u32::from(lo) | (u32::from(hi) << 16)
                };
                p = vec![0; cout * k2];
                let (full, rest) = p.split_at_mut(panels * MR * k2);
                let panel = |(pi, dst): (usize, &mut [u32])| {
                    for m in 0..MR {
                        let r = row(pi * MR + m);
                        for i2 in 0..cin2 {
                            for j in 0..k {
                                dst[(i2 * k + j) * MR + m] = pair(r, i2, j);
                            }
                        }
                    }
                };
                each_panel(full, MR * k2, panel);
                for (ri, dst) in rest.chunks_exact_mut(k2).enumerate() {
                    let r = row(panels * MR + ri);
                    for i2 in 0..cin2 {
                        for j in 0..k {
                            dst[i2 * k + j] = pair(r, i2, j);
                        }
                    }
                }
            }
            Arith::Bf16x3 => a = amx_lines(w, cout, kk, Vec::new()),
        }
        Packed {
            precision,
            f,
            p,
            a,
            cout,
            cin,
            k,
        }
    }
}

/// `w` (`[cout, kk]`) packed as AMX tiles into `reuse` (grown if short;
/// uninitialized memory is fine: the packing writes every line).
pub(super) fn amx_lines(
    w: &[f32],
    cout: usize,
    kk: usize,
    mut reuse: Vec<amx::Line>,
) -> Vec<amx::Line> {
    let n = amx::packed_lines(cout, kk);
    reuse.clear();
    if reuse.capacity() < n {
        // Fresh pages, no zeroing pass.
        reuse = Vec::with_capacity(n);
    }
    let per_block = amx::packed_lines(amx::BLOCK, kk);
    // SAFETY: Bf16x3 packs only where super::has_amx(); each block gets its
    // own `per_block` lines.
    each_panel(
        &mut reuse.spare_capacity_mut()[..n],
        per_block,
        |(rb, dst)| unsafe { amx::pack_block(w, cout, kk, rb, dst.as_mut_ptr().cast()) },
    );
    // SAFETY: all n lines were written above.
    unsafe { reuse.set_len(n) };
    reuse
}

/// A transposed conv (kernel `2u`, stride `u`, padding `u/2`) packed for the
/// direct kernels: the `u` output phases stacked as one `[u·cout, cin, 2]`
/// conv whose taps read `x[t − 1]` and `x[t]`.
pub(crate) struct PackedT {
    pub(super) stacked: Packed,
    pub(super) bias: Vec<f32>,
    pub(super) cout: usize,
    pub(super) stride: usize,
}

impl PackedT {
    /// Pack `w` (`[cin, cout, 2u]`, row-major) and its bias.
    pub(crate) fn new(
        precision: Arith,
        w: &[f32],
        bias: &[f32],
        cin: usize,
        cout: usize,
        stride: usize,
    ) -> PackedT {
        let (st, bias) = crate::backend::cpu::phases::stack(w, bias, cin, cout, stride);
        PackedT {
            stacked: Packed::new(precision, &st, stride * cout, cin, 2),
            bias,
            cout,
            stride,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_is_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(bf16_bits(-2.5), 0xc020);
        assert!(f32::from_bits(u32::from(bf16_bits(f32::NAN)) << 16).is_nan());
    }
}
