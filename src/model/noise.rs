//! Addressable Gaussian noise: the value at (stream, row, column) depends only
//! on the seed and that address, so a chunk of frames draws exactly the values
//! the whole sentence would. The generator is also written out in
//! `scripts/gen-fixtures.py` so onnxruntime can be fed the same noise.

/// Noise stream of the duration predictor (`[2, T]`).
pub const STREAM_DP: u64 = 0;
/// Noise stream of the prior sample (`[channels, F]`).
pub const STREAM_Z: u64 = 1;

/// Where the two noise tensors come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Noise {
    /// Counter-based standard normals from a seed (the default, reproducible).
    Seeded(u64),
    /// Fixed tensors (tests and parity checks): `dp` is `[2, dp_cols]`, `z` is
    /// `[z_rows, z_cols]`, both row-major; the first T / F columns are used.
    Fixed {
        /// Duration-predictor noise.
        dp: Vec<f32>,
        /// Its columns.
        dp_cols: usize,
        /// Prior noise.
        z: Vec<f32>,
        /// Its columns.
        z_cols: usize,
    },
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The standard normal at an address (Box–Muller on two hashed uniforms, in f64).
pub fn normal_at(seed: u64, stream: u64, row: u64, col: u64) -> f32 {
    let counter = (stream << 56) ^ ((row & 0xFF_FFFF) << 32) ^ (col & 0xFFFF_FFFF);
    let a = splitmix64(splitmix64(seed) ^ counter);
    let b = splitmix64(a);
    let u1 = ((a >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64);
    let u2 = (b >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    // libm (pure Rust), not the platform C library: the same noise on every OS.
    ((-2.0 * libm::log(u1)).sqrt() * libm::cos(std::f64::consts::TAU * u2)) as f32
}

impl Noise {
    /// Fill `out` (`rows × (c1 − c0)`, row-major) with the noise of `stream` for
    /// columns `c0..c1`. Fixed noise shorter than needed is an error message.
    pub(crate) fn fill(
        &self,
        stream: u64,
        rows: usize,
        c0: usize,
        c1: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), String> {
        out.clear();
        let n = c1 - c0;
        match self {
            Noise::Seeded(seed) => {
                for r in 0..rows {
                    out.extend((c0..c1).map(|c| normal_at(*seed, stream, r as u64, c as u64)));
                }
            }
            Noise::Fixed {
                dp,
                dp_cols,
                z,
                z_cols,
            } => {
                let (src, cols) = if stream == STREAM_DP {
                    (dp, *dp_cols)
                } else {
                    (z, *z_cols)
                };
                if c1 > cols || src.len() < rows * cols {
                    return Err(format!(
                        "fixed noise has {cols} columns x {} rows, {c1} x {rows} needed",
                        src.len() / cols.max(1)
                    ));
                }
                for r in 0..rows {
                    out.extend_from_slice(&src[r * cols + c0..r * cols + c0 + n]);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_noise_is_standard_normal_and_addressable() {
        let n = 20000;
        let v: Vec<f32> = (0..n).map(|c| normal_at(7, STREAM_Z, 3, c)).collect();
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
        assert_eq!(normal_at(7, STREAM_Z, 3, 17), v[17]);
        assert_ne!(normal_at(8, STREAM_Z, 3, 17), v[17]);
        let mut chunk = Vec::new();
        Noise::Seeded(7)
            .fill(STREAM_Z, 4, 10, 20, &mut chunk)
            .unwrap();
        assert_eq!(chunk[3 * 10 + 7], v[17]);
    }
}
