//! The CPU backend: the reference implementation of every op. Convs run on
//! the direct AVX-512 kernels or the portable ones (both sum every output
//! column in one fixed order); the attention's GEMMs off AVX-512 go to the
//! `gemm` crate (runtime SIMD dispatch); threads come from a private rayon
//! pool.

mod amx;
mod attention;
mod conv;
mod direct;
mod elementwise;
mod gemm;
mod portable;

pub use conv::{CpuConv, CpuConvT};
pub(crate) use elementwise::rqs_inverse;

use super::{shape, Backend, Conv, ConvTranspose, Executor, Mat, Out, Precision};
use crate::error::BackendError;
use direct::Arith;
use elementwise::{rows, rows_mut};

/// A family of CPU kernels.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Isa {
    /// The best family this CPU runs.
    #[default]
    Auto,
    /// The direct AVX-512 kernels (and AMX tiles for bf16x3).
    Avx512,
    /// The portable kernels (every CPU; f32 only).
    Portable,
}

impl Isa {
    /// Parse `auto`, `avx512` or `portable` (`gemm` is an old name of `portable`).
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(s: &str) -> Result<Isa, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Isa::Auto),
            "avx512" => Ok(Isa::Avx512),
            "portable" | "gemm" => Ok(Isa::Portable),
            other => Err(format!(
                "unknown CPU kernel family '{other}' (expected auto, avx512 or portable)"
            )),
        }
    }

    /// `auto` / `avx512` / `portable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isa::Auto => "auto",
            Isa::Avx512 => "avx512",
            Isa::Portable => "portable",
        }
    }
}

/// CPU backend with its own thread pool.
pub struct CpuBackend {
    threads: usize,
    pool: rayon::ThreadPool,
    /// Conv kernels: `Some(a)` direct AVX-512 kernels in arithmetic `a`, `None` the portable ones.
    kernels: Option<Arith>,
}

impl std::fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuBackend")
            .field("threads", &self.threads)
            .field("kernels", &self.kernels)
            .finish()
    }
}

impl CpuBackend {
    /// A backend using `threads` threads (0: all cores), f32 arithmetic.
    ///
    /// # Errors
    /// [`BackendError::Device`] if the thread pool cannot be started.
    pub fn new(threads: usize) -> Result<Self, BackendError> {
        Self::with_precision(threads, Precision::F32)
    }

    /// A backend with the given conv arithmetic and the best kernels the CPU
    /// runs ([`Isa::Auto`]).
    ///
    /// # Errors
    /// As [`CpuBackend::with_options`].
    pub fn with_precision(threads: usize, precision: Precision) -> Result<Self, BackendError> {
        Self::with_options(threads, precision, Isa::Auto)
    }

    /// A backend with the given conv arithmetic and kernel family. Convs use
    /// the direct AVX-512 kernels when the CPU has them and `isa` allows;
    /// [`Isa::Portable`] forces the portable kernels (f32 only).
    ///
    /// # Errors
    /// [`BackendError::Device`] if the thread pool cannot be started, for
    /// [`Isa::Avx512`] on a CPU without it, or for a precision the chosen
    /// kernels cannot run ([`Precision::Bf16`] without AVX-512 BF16,
    /// [`Precision::Bf16x3`] without AMX).
    pub fn with_options(
        threads: usize,
        precision: Precision,
        isa: Isa,
    ) -> Result<Self, BackendError> {
        let portable = match isa {
            Isa::Portable => true,
            Isa::Auto => false,
            Isa::Avx512 if direct::has_avx512() => false,
            Isa::Avx512 => {
                return Err(BackendError::Device(
                    "the avx512 kernels need a CPU with AVX-512 F and BW; use auto or portable"
                        .into(),
                ))
            }
        };
        let kernels = match precision {
            Precision::Auto if !portable && amx::available() => Some(Arith::Bf16x3),
            Precision::F32 | Precision::Auto if !portable && direct::has_avx512() => {
                Some(Arith::F32)
            }
            Precision::F32 | Precision::Auto => None,
            Precision::Bf16 if !portable && direct::has_bf16() => Some(Arith::Bf16),
            Precision::Bf16 => {
                return Err(BackendError::Device(
                    "bf16 precision needs a CPU with AVX-512 BF16 (and the portable kernels not forced); use f32".into(),
                ))
            }
            Precision::Bf16x3 if !portable && amx::available() => Some(Arith::Bf16x3),
            Precision::Bf16x3 => {
                return Err(BackendError::Device(
                    "bf16x3 precision needs a CPU with AMX-BF16 tiles and an OS that enables them (and the portable kernels not forced); use f32".into(),
                ))
            }
        };
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("voxide-cpu-{i}"))
            .build()
            .map_err(|e| BackendError::Device(format!("cannot start CPU threads: {e}")))?;
        Ok(CpuBackend {
            threads,
            pool,
            kernels,
        })
    }

    /// Whether convs run on the direct AVX-512 kernels rather than the
    /// portable ones (on both, output columns do not depend on the view:
    /// batched and chunked runs are bit-identical to whole ones).
    pub fn direct_kernels(&self) -> bool {
        self.kernels.is_some()
    }

    /// Run `f` on every item, split over the pool's threads when the op is big.
    fn par_each<T: Send>(&self, items: Vec<T>, work: usize, f: impl Fn(T) + Sync + Send) {
        if self.threads > 1 && work >= PAR_MIN_ELEMS && items.len() > 1 {
            use rayon::prelude::*;
            items.into_par_iter().for_each(f);
        } else {
            items.into_iter().for_each(f);
        }
    }

    /// `f(y_row, x_row)` for every row pair.
    fn zip_rows(
        &self,
        y: &mut [f32],
        ym: Mat,
        x: &[f32],
        xm: Mat,
        f: impl Fn(&mut [f32], &[f32]) + Sync + Send,
    ) {
        let items: Vec<(&mut [f32], &[f32])> = rows_mut(y, ym).zip(rows(x, xm)).collect();
        self.par_each(items, ym.rows() * ym.cols(), |(a, b)| f(a, b));
    }
}

/// Element-wise ops smaller than this run on one thread.
const PAR_MIN_ELEMS: usize = 1 << 15;

fn try_zeroed(len: usize, what: &'static str) -> Result<Vec<f32>, BackendError> {
    let mut v: Vec<f32> = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| BackendError::OutOfMemory {
            bytes: len.saturating_mul(4),
            what,
        })?;
    v.resize(len, 0.0);
    Ok(v)
}

impl Executor for CpuBackend {
    fn name(&self) -> String {
        "cpu".into()
    }

    fn columns_exact(&self) -> bool {
        // Direct and portable conv kernels alike; the attention's GEMMs
        // run on whole sentences only.
        true
    }

    fn precision(&self) -> Precision {
        match self.kernels {
            None | Some(Arith::F32) => Precision::F32,
            Some(Arith::Bf16) => Precision::Bf16,
            Some(Arith::Bf16x3) => Precision::Bf16x3,
        }
    }

    fn threads(&self) -> usize {
        self.threads
    }

    fn check(&self) -> Result<(), BackendError> {
        match FAULT.with(|f| f.borrow_mut().take()) {
            Some(msg) => Err(BackendError::Shape(msg)),
            None => Ok(()),
        }
    }

    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }
}

thread_local! {
    /// The first shape error of an op called on this thread since the last
    /// [`Executor::check`] on it (ops are called, and checked, by the thread
    /// that runs the stage; the pool's threads only do an op's parts).
    static FAULT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

impl CpuBackend {
    /// Whether every view fits its buffer and `shape` holds (the op's own
    /// rules, [`crate::backend::shape`]); otherwise the op must do nothing:
    /// its fault is kept for [`Executor::check`].
    fn admit(&self, op: &str, views: &[(usize, Mat)], shape: Result<(), String>) -> bool {
        match shape::views_fit(views).and(shape) {
            Ok(()) => true,
            Err(e) => {
                FAULT.with(|f| {
                    f.borrow_mut().get_or_insert_with(|| format!("{op}: {e}"));
                });
                false
            }
        }
    }
}

impl Backend for CpuBackend {
    type Buf = Vec<f32>;
    type Conv = CpuConv;
    type ConvT = CpuConvT;
    type Vector = Vec<f32>;

    fn alloc(&self, len: usize, what: &'static str) -> Result<Vec<f32>, BackendError> {
        try_zeroed(len, what)
    }

    fn write(&self, dst: &mut Vec<f32>, m: Mat, src: &[f32]) {
        if !self.admit("write", &[(dst.len(), m)], shape::host(m, src.len())) {
            return;
        }
        for (r, s) in rows_mut(dst, m).zip(src.chunks(m.cols().max(1))) {
            r.copy_from_slice(s);
        }
    }

    fn read(&self, src: &Vec<f32>, m: Mat, dst: &mut [f32]) {
        if !self.admit("read", &[(src.len(), m)], shape::host(m, dst.len())) {
            return;
        }
        for (r, d) in rows(src, m).zip(dst.chunks_mut(m.cols().max(1))) {
            d.copy_from_slice(r);
        }
    }

    fn prepare_conv(&self, c: &Conv) -> Result<CpuConv, BackendError> {
        // Full precision (or f32-grade bf16x3) outside the stages that opted
        // in to bf16.
        let p = self.kernels.map(|p| match p {
            Arith::Bf16 => Arith::F32,
            p => p,
        });
        Ok(CpuConv::new(c, p))
    }

    fn prepare_conv_lowp(&self, c: &Conv) -> Result<CpuConv, BackendError> {
        Ok(CpuConv::new(c, self.kernels))
    }

    fn prepare_conv_t(&self, c: &ConvTranspose) -> Result<CpuConvT, BackendError> {
        // Transposed convs exist only in the decoder, which takes the
        // reduced precision when one was asked for.
        Ok(CpuConvT::new(c, self.kernels))
    }

    fn prepare_vector(&self, v: &[f32]) -> Result<Vec<f32>, BackendError> {
        Ok(v.to_vec())
    }

    fn embed(&self, table: &Vec<f32>, ids: &[i64], scale: f32, y: &mut Vec<f32>, ym: Mat) {
        if !self.admit(
            "embed",
            &[(y.len(), ym)],
            shape::embed(table.len(), ids, ym),
        ) {
            return;
        }
        let h = ym.rows();
        for (t, &id) in ids.iter().enumerate().take(ym.cols()) {
            let row = &table[id as usize * h..(id as usize + 1) * h];
            for (c, &v) in row.iter().enumerate() {
                y[ym.off() + c * ym.ld() + t] = v * scale;
            }
        }
    }

    fn conv1d(&self, w: &CpuConv, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat, out: Out) {
        let dw = w.cin == 1 && w.cout > 1 && xm.rows() == w.cout;
        if !self.admit(
            "conv1d",
            &[(x.len(), xm), (y.len(), ym)],
            shape::conv1d(w.cin, w.cout, dw, xm, ym),
        ) {
            return;
        }
        conv::conv1d(self.threads, w, x, xm, y, ym, out);
    }

    fn conv1d_lrelu(
        &self,
        w: &CpuConv,
        slope: f32,
        x: &Vec<f32>,
        xm: Mat,
        tmp: &mut Vec<f32>,
        gaps: &[(usize, usize)],
        y: &mut Vec<f32>,
        ym: Mat,
        out: Out,
    ) {
        // Fused where there are no gaps to zero between activation and conv.
        if gaps.is_empty() && conv::conv1d_lrelu(self.threads, w, slope, x, xm, y, ym, out) {
            return;
        }
        super::lrelu_conv(self, w, slope, x, xm, tmp, gaps, y, ym, out);
    }

    fn conv1d_lrelu_add_inplace(
        &self,
        w: &CpuConv,
        slope: f32,
        y: &mut Vec<f32>,
        ym: Mat,
        tmp: &mut Vec<f32>,
        gaps: &[(usize, usize)],
    ) {
        if gaps.is_empty() && conv::conv1d_lrelu_add_inplace(self.threads, w, slope, y, ym) {
            return;
        }
        super::lrelu_add_conv(self, w, slope, y, ym, tmp, gaps);
    }

    fn conv_transpose(&self, w: &CpuConvT, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat) {
        if !self.admit(
            "conv_transpose",
            &[(x.len(), xm), (y.len(), ym)],
            shape::conv_transpose(w.cin, w.cout, w.stride, xm, ym),
        ) {
            return;
        }
        conv::conv_transpose(self.threads, w, x, xm, y, ym);
    }

    fn rel_attention(
        &self,
        qkv: &Vec<f32>,
        q: Mat,
        k: Mat,
        v: Mat,
        rel_k: &Vec<f32>,
        rel_v: &Vec<f32>,
        heads: usize,
        y: &mut Vec<f32>,
        ym: Mat,
    ) {
        if !self.admit(
            "rel_attention",
            &[
                (qkv.len(), q),
                (qkv.len(), k),
                (qkv.len(), v),
                (y.len(), ym),
            ],
            shape::attention(heads, q, k, v, ym, rel_k.len()).and(shape::attention(
                heads,
                q,
                k,
                v,
                ym,
                rel_v.len(),
            )),
        ) {
            return;
        }
        let amx = self.kernels == Some(Arith::Bf16x3);
        attention::rel_attention(self.threads, amx, qkv, q, k, v, rel_k, rel_v, heads, y, ym);
    }

    fn add_layer_norm(
        &self,
        x: &mut Vec<f32>,
        xm: Mat,
        r: &Vec<f32>,
        rm: Mat,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
    ) {
        if !self.admit(
            "add_layer_norm",
            &[(x.len(), xm), (r.len(), rm)],
            shape::layer_norm(xm, Some(rm), (gamma.len(), beta.len())),
        ) {
            return;
        }
        elementwise::layer_norm_par(self.threads, x, xm, Some((r, rm)), gamma, beta, false);
    }

    fn layer_norm_gelu(&self, x: &mut Vec<f32>, xm: Mat, gamma: &Vec<f32>, beta: &Vec<f32>) {
        if !self.admit(
            "layer_norm_gelu",
            &[(x.len(), xm)],
            shape::layer_norm(xm, None, (gamma.len(), beta.len())),
        ) {
            return;
        }
        elementwise::layer_norm_par(self.threads, x, xm, None, gamma, beta, true);
    }

    fn axpy(&self, alpha: f32, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat) {
        if !self.admit("axpy", &[(x.len(), xm), (y.len(), ym)], shape::same(xm, ym)) {
            return;
        }
        self.zip_rows(y, ym, x, xm, |yr, xr| {
            for (a, b) in yr.iter_mut().zip(xr) {
                *a += alpha * b;
            }
        });
    }

    fn scale(&self, alpha: f32, x: &mut Vec<f32>, xm: Mat) {
        if !self.admit("scale", &[(x.len(), xm)], Ok(())) {
            return;
        }
        let work = xm.rows() * xm.cols();
        self.par_each(rows_mut(x, xm).collect(), work, |r| {
            for v in r {
                *v *= alpha;
            }
        });
    }

    fn copy(&self, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat) {
        if !self.admit("copy", &[(x.len(), xm), (y.len(), ym)], shape::same(xm, ym)) {
            return;
        }
        self.zip_rows(y, ym, x, xm, |yr, xr| yr.copy_from_slice(xr));
    }

    fn flip_rows(&self, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat) {
        if !self.admit(
            "flip_rows",
            &[(x.len(), xm), (y.len(), ym)],
            shape::same(xm, ym),
        ) {
            return;
        }
        let src: Vec<&[f32]> = rows(x, xm).collect();
        for (yr, xr) in rows_mut(y, ym).zip(src.into_iter().rev()) {
            yr.copy_from_slice(xr);
        }
    }

    fn gate_tanh_sigmoid(&self, a: &Vec<f32>, am: Mat, y: &mut Vec<f32>, ym: Mat) {
        if !self.admit("gate", &[(a.len(), am), (y.len(), ym)], shape::gate(am, ym)) {
            return;
        }
        let c = ym.rows();
        let work = ym.rows() * ym.cols();
        let items: Vec<(&mut [f32], &[f32], &[f32])> = rows_mut(y, ym)
            .zip(rows(a, am.sub_rows(0, c)).zip(rows(a, am.sub_rows(c, 2 * c))))
            .map(|(yr, (ta, sa))| (yr, ta, sa))
            .collect();
        self.par_each(items, work, |(yr, ta, sa)| {
            for ((o, &t), &s) in yr.iter_mut().zip(ta).zip(sa) {
                *o = elementwise::fast_tanh(t) * elementwise::fast_sigmoid(s);
            }
        });
    }

    fn leaky_relu(&self, slope: f32, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat) {
        if !self.admit(
            "leaky_relu",
            &[(x.len(), xm), (y.len(), ym)],
            shape::same(xm, ym),
        ) {
            return;
        }
        self.zip_rows(y, ym, x, xm, |yr, xr| {
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = if v >= 0.0 { v } else { v * slope };
            }
        });
    }

    fn tanh(&self, x: &mut Vec<f32>, xm: Mat) {
        if !self.admit("tanh", &[(x.len(), xm)], Ok(())) {
            return;
        }
        let work = xm.rows() * xm.cols();
        self.par_each(rows_mut(x, xm).collect(), work, |r| {
            for v in r {
                *v = elementwise::fast_tanh(*v);
            }
        });
    }

    fn spline_inverse(
        &self,
        z: &mut Vec<f32>,
        zm: Mat,
        theta: &Vec<f32>,
        thm: Mat,
        bins: usize,
        wh_scale: f32,
    ) {
        if !self.admit(
            "spline_inverse",
            &[(z.len(), zm), (theta.len(), thm)],
            shape::spline(zm, thm, bins),
        ) {
            return;
        }
        let mut col = vec![0.0f32; thm.rows()];
        for t in 0..zm.cols() {
            for (r, c) in col.iter_mut().enumerate() {
                *c = theta[thm.off() + r * thm.ld() + t];
            }
            let v = &mut z[zm.off() + t];
            *v = rqs_inverse(*v, &col, bins, wh_scale);
        }
    }

    fn expand_prior(
        &self,
        ml: &Vec<f32>,
        mlm: Mat,
        owner: &[u32],
        noise: &[f32],
        noise_scale: f32,
        y: &mut Vec<f32>,
        ym: Mat,
    ) {
        if !self.admit(
            "expand_prior",
            &[(ml.len(), mlm), (y.len(), ym)],
            shape::expand_prior(mlm, owner, noise.len(), ym),
        ) {
            return;
        }
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
                    e * l[t].exp() * noise_scale + m[t]
                };
            }
        }
    }

    fn zero_cols(&self, x: &mut Vec<f32>, xm: Mat, ranges: &[(usize, usize)]) {
        if !self.admit("zero_cols", &[(x.len(), xm)], Ok(())) {
            return;
        }
        for r in rows_mut(x, xm) {
            for &(c0, c1) in ranges {
                let (c0, c1) = (c0.min(r.len()), c1.min(r.len()));
                if c0 < c1 {
                    r[c0..c1].fill(0.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_cols_zeroes_only_the_ranges_of_the_view() {
        let be = CpuBackend::new(1).unwrap();
        // A 3 × 10 buffer; the view is rows 1..3, columns 2..9.
        let mut x: Vec<f32> = (1..=30).map(|v| v as f32).collect();
        let view = Mat::new(3, 10).sub_rows(1, 3).sub_cols(2, 9);
        be.zero_cols(&mut x, view, &[(0, 2), (5, 20)]);
        for r in 0..3 {
            for c in 0..10 {
                let v = x[r * 10 + c];
                let zeroed = r >= 1 && ((2..4).contains(&c) || (7..9).contains(&c));
                if zeroed {
                    assert_eq!(v, 0.0, "row {r} col {c}");
                } else {
                    assert_eq!(v, (r * 10 + c + 1) as f32, "row {r} col {c}");
                }
            }
        }
    }
}
