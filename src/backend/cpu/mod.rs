//! The CPU backend: the reference implementation of every op, on a private
//! rayon pool. Convs and the attention's products run on the direct AVX-512
//! / AMX kernels (`x86/`) on x86-64 CPUs that have them; elsewhere convs run
//! on the portable register-tile kernels (`portable.rs`: AVX2 + FMA
//! intrinsics where the CPU has them, else plain Rust) and the attention's
//! products on the `gemm` crate (runtime SIMD dispatch). The ops
//! live in files named like their CUDA twins; this file picks the kernels
//! ([`Isa`], [`Precision`]) and checks every op's views before it runs.

mod attention;
mod conv;
mod elementwise;
mod gemm;
mod math;
mod norm;
mod par;
mod phases;
mod portable;
mod spline;
#[cfg(target_arch = "x86_64")]
mod winograd;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use conv::{CpuConv, CpuConvT};

use super::{shape, Backend, Conv, ConvTiling, ConvTranspose, Executor, Mat, Out, Precision};
use crate::error::BackendError;
use attention::Products;
#[cfg(target_arch = "x86_64")]
use x86::Arith;

/// The instruction set of the CPU backend's convs and products.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Isa {
    /// The best family this CPU runs: [`Isa::Avx512`], else [`Isa::Avx2`],
    /// else [`Isa::Portable`].
    #[default]
    Auto,
    /// The direct AVX-512 kernels (x86-64 CPUs with AVX-512F and
    /// AVX-512BW; [`Precision::Bf16x3`] also needs AMX tiles,
    /// [`Precision::Bf16`] AVX-512 BF16). Every output column is summed in
    /// the same order whatever the view, so chunked and batched runs equal
    /// whole ones bit for bit.
    Avx512,
    /// The portable register-tile conv kernels on AVX2 + FMA intrinsics
    /// (x86-64 CPUs with AVX2 and FMA), f32 only. Every output column is
    /// summed in one fixed order, as on AVX-512.
    Avx2,
    /// The portable register-tile conv kernels in plain Rust (any CPU; on
    /// aarch64 the compiler's NEON code with fused multiply-adds), f32
    /// only; every output column summed in one fixed order.
    Portable,
}

impl Isa {
    /// Parse `auto` / `avx512` / `avx2` / `portable` (or `gemm`, the old
    /// name of the portable path).
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(s: &str) -> Result<Isa, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Isa::Auto),
            "avx512" | "avx-512" => Ok(Isa::Avx512),
            "avx2" => Ok(Isa::Avx2),
            "portable" | "gemm" => Ok(Isa::Portable),
            other => Err(format!(
                "unknown CPU kernels '{other}' (expected auto, avx512, avx2 or portable)"
            )),
        }
    }

    /// `auto` / `avx512` / `avx2` / `portable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isa::Auto => "auto",
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CPU backend with its own thread pool.
pub struct CpuBackend {
    threads: usize,
    pool: rayon::ThreadPool,
    /// `Some(a)`: the direct kernels in arithmetic `a`; `None`: the
    /// portable path.
    #[cfg(target_arch = "x86_64")]
    direct: Option<Arith>,
    /// The portable kernels' tiles: fused multiply-adds (AVX2 + FMA on
    /// x86-64, always on aarch64) or plain.
    fused: bool,
    /// Winograd kernels for the decoder's residual-block convs and the
    /// encoder's feed-forward convs in f32 (`avx2`, `avx512` in f32)
    /// ([`CpuBackend::winograd`]).
    winograd: bool,
}

impl std::fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuBackend")
            .field("threads", &self.threads)
            .field("isa", &self.isa())
            .field("precision", &self.precision())
            .finish()
    }
}

impl CpuBackend {
    /// A backend using `threads` threads (0: all cores), f32 arithmetic,
    /// the best kernels of this CPU.
    ///
    /// # Errors
    /// [`BackendError::Device`] if the thread pool cannot be started.
    pub fn new(threads: usize) -> Result<Self, BackendError> {
        Self::with_precision(threads, Precision::F32)
    }

    /// [`CpuBackend::with_options`] with [`Isa::Auto`].
    ///
    /// # Errors
    /// As [`CpuBackend::with_options`].
    pub fn with_precision(threads: usize, precision: Precision) -> Result<Self, BackendError> {
        Self::with_options(threads, precision, Isa::Auto)
    }

    /// A backend of `threads` threads (0: all cores) running `precision`
    /// ([`Precision::Auto`]: bf16x3 on CPUs with AMX tiles, else f32) on
    /// the kernels `isa`.
    ///
    /// # Errors
    /// [`BackendError::Device`], naming the cause, for [`Isa::Avx512`] on a
    /// CPU (or build) without AVX-512, [`Isa::Avx2`] without AVX2 + FMA,
    /// for [`Precision::Bf16`] without
    /// AVX-512 BF16 or [`Precision::Bf16x3`] without AMX (both need the
    /// AVX-512 kernels: the portable path runs f32 only), or if the
    /// thread pool cannot be started.
    pub fn with_options(
        threads: usize,
        precision: Precision,
        isa: Isa,
    ) -> Result<Self, BackendError> {
        #[cfg(target_arch = "x86_64")]
        let direct = direct_arith(precision, isa)?;
        #[cfg(not(target_arch = "x86_64"))]
        portable_only(precision, isa)?;
        let fused = fused_tiles(isa)?;
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
            #[cfg(target_arch = "x86_64")]
            direct,
            fused,
            winograd: true,
        })
    }

    /// This backend with the Winograd kernels for the decoder's
    /// residual-block convs and the encoder's feed-forward convs on (the
    /// default) or off: they run on the `avx2` family and on `avx512` in
    /// f32 arithmetic (other families and arithmetics, and these with them
    /// off, run those convs directly). See [`crate::backend::ConvTiling`].
    #[must_use]
    pub fn with_winograd(mut self, on: bool) -> Self {
        self.winograd = on;
        self
    }

    /// Whether the decoder's residual-block convs and the encoder's
    /// feed-forward convs run as Winograd transforms: on, and the family
    /// is `avx2`, or `avx512` in f32 arithmetic (the kernel is AVX2 + FMA
    /// code, which every AVX-512 CPU runs; AMX tiles and bf16 keep their
    /// direct kernels).
    pub fn winograd(&self) -> bool {
        if !self.winograd {
            return false;
        }
        match self.isa() {
            Isa::Avx2 => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => self.direct == Some(Arith::F32) && self.fused,
            _ => false,
        }
    }

    /// The kernels this backend runs ([`Isa::Auto`] resolved):
    /// [`Isa::Avx512`], [`Isa::Avx2`] or [`Isa::Portable`].
    pub fn isa(&self) -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if self.direct.is_some() {
                return Isa::Avx512;
            }
            if self.fused {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Whether convs run on the direct AVX-512 kernels rather than the
    /// portable ones (on both, output columns do not depend on the view:
    /// batched and chunked runs are bit-identical to whole ones).
    pub fn direct_kernels(&self) -> bool {
        self.isa() == Isa::Avx512
    }

    /// Where the attention's products run.
    fn products(&self) -> Products {
        #[cfg(target_arch = "x86_64")]
        if self.direct == Some(Arith::Bf16x3) {
            return Products::Amx;
        }
        Products::Gemm
    }
}

/// The direct kernels' arithmetic for `precision` on `isa` (`None`: the
/// portable path).
#[cfg(target_arch = "x86_64")]
fn direct_arith(precision: Precision, isa: Isa) -> Result<Option<Arith>, BackendError> {
    let has = x86::has_avx512();
    let why_not = match isa {
        Isa::Avx512 if !has => {
            return Err(BackendError::Device(
                "the avx512 CPU kernels need AVX-512F and AVX-512BW, which this CPU lacks; use auto, avx2 or portable".into(),
            ))
        }
        Isa::Avx2 => "the CPU kernels are set to avx2",
        Isa::Portable => "the CPU kernels are set to portable",
        _ if !has => "this CPU has no AVX-512 (F and BW)",
        _ => "",
    };
    if !why_not.is_empty() {
        return portable_precision(precision, why_not).map(|()| None);
    }
    let err = |what: &str| {
        Err(BackendError::Device(format!(
            "{precision} precision needs {what}, which this CPU lacks; use f32"
        )))
    };
    match precision {
        Precision::Auto if x86::has_amx() => Ok(Some(Arith::Bf16x3)),
        Precision::Auto | Precision::F32 => Ok(Some(Arith::F32)),
        Precision::Bf16 if x86::has_bf16() => Ok(Some(Arith::Bf16)),
        Precision::Bf16 => err("AVX-512 BF16"),
        Precision::Bf16x3 if x86::has_amx() => Ok(Some(Arith::Bf16x3)),
        Precision::Bf16x3 => err("AMX-BF16 tiles and an OS that enables them"),
    }
}

/// Whether the portable kernels run on their fused multiply-add tiles for
/// `isa`: AVX2 + FMA intrinsics on x86-64 for [`Isa::Avx2`] (an error
/// without them) and [`Isa::Auto`] (where the CPU has them, except under
/// Valgrind, which emulates every fused multiply-add in C: there the plain
/// tiles run about 3× faster); plain Rust for [`Isa::Portable`]; on aarch64
/// always (the compiler's NEON code).
fn fused_tiles(isa: Isa) -> Result<bool, BackendError> {
    let has = portable::fma_tiles();
    #[cfg(target_arch = "x86_64")]
    {
        match isa {
            Isa::Avx2 if !has => Err(BackendError::Device(
                "the avx2 CPU kernels need AVX2 and FMA, which this CPU lacks; use auto or portable"
                    .into(),
            )),
            Isa::Portable => Ok(false),
            Isa::Auto => Ok(has && !x86::under_valgrind()),
            _ => Ok(has),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        Ok(has)
    }
}

/// Builds for other architectures run the portable path only.
#[cfg(not(target_arch = "x86_64"))]
fn portable_only(precision: Precision, isa: Isa) -> Result<(), BackendError> {
    if matches!(isa, Isa::Avx512 | Isa::Avx2) {
        return Err(BackendError::Device(format!(
            "the {isa} CPU kernels exist only on x86-64, and this build is for {}; use auto or portable",
            std::env::consts::ARCH
        )));
    }
    portable_precision(precision, "this build has only the portable kernels")
}

/// The portable path runs f32: `Ok` for f32 (and auto, which resolves to
/// it there); else an error saying `why_not` the AVX-512 kernels run.
fn portable_precision(precision: Precision, why_not: &str) -> Result<(), BackendError> {
    match precision {
        Precision::Auto | Precision::F32 => Ok(()),
        p => Err(BackendError::Device(format!(
            "{p} precision needs the AVX-512 CPU kernels, and {why_not}; use f32"
        ))),
    }
}

impl Executor for CpuBackend {
    fn name(&self) -> String {
        "cpu".into()
    }

    fn columns_exact(&self) -> bool {
        // Every conv kernel family (direct and portable) sums each column
        // in one fixed order; the attention's products (the `gemm` crate
        // off AVX-512) run on whole sentences only.
        true
    }

    fn precision(&self) -> Precision {
        #[cfg(target_arch = "x86_64")]
        match self.direct {
            Some(Arith::Bf16) => return Precision::Bf16,
            Some(Arith::Bf16x3) => return Precision::Bf16x3,
            Some(Arith::F32) | None => {}
        }
        Precision::F32
    }

    fn threads(&self) -> usize {
        self.threads
    }

    fn cpu_isa(&self) -> Option<Isa> {
        Some(self.isa())
    }

    fn cpu_winograd(&self) -> bool {
        self.winograd()
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

    /// [`Backend::conv1d`]'s check (`depthwise` as [`CpuConv::depthwise_for`]).
    fn admit_conv(&self, op: &str, w: &CpuConv, x: (usize, Mat), y: (usize, Mat)) -> bool {
        let rule = shape::conv1d(w.cin, w.cout, w.depthwise_for(x.1), x.1, y.1);
        self.admit(op, &[x, y], rule)
    }
}

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

impl Backend for CpuBackend {
    type Buf = Vec<f32>;
    type Conv = CpuConv;
    type ConvT = CpuConvT;
    type Vector = Vec<f32>;

    fn alloc(&self, len: usize, what: &'static str) -> Result<Vec<f32>, BackendError> {
        try_zeroed(len, what)
    }

    fn write(&self, dst: &mut Vec<f32>, m: Mat, src: &[f32]) {
        if self.admit("write", &[(dst.len(), m)], shape::host(m, src.len())) {
            elementwise::write(dst, m, src);
        }
    }

    fn read(&self, src: &Vec<f32>, m: Mat, dst: &mut [f32]) {
        if self.admit("read", &[(src.len(), m)], shape::host(m, dst.len())) {
            elementwise::read(src, m, dst);
        }
    }

    fn prepare_conv(&self, c: &Conv) -> Result<CpuConv, BackendError> {
        conv::check_conv(c).map_err(BackendError::Shape)?;
        // Full precision (or f32-grade bf16x3) outside the stages that opted
        // in to bf16.
        #[cfg(target_arch = "x86_64")]
        if let Some(a) = self.direct {
            let a = if a == Arith::Bf16 { Arith::F32 } else { a };
            return Ok(CpuConv::packed(c, a));
        }
        Ok(CpuConv::portable(c, self.fused))
    }

    fn prepare_conv_lowp(&self, c: &Conv) -> Result<CpuConv, BackendError> {
        conv::check_conv(c).map_err(BackendError::Shape)?;
        #[cfg(target_arch = "x86_64")]
        if let Some(a) = self.direct {
            return Ok(CpuConv::packed(c, a));
        }
        Ok(CpuConv::portable(c, self.fused))
    }

    fn prepare_conv_tiled(&self, c: &Conv, lowp: bool) -> Result<CpuConv, BackendError> {
        // Winograd runs where the arithmetic is f32 (the `avx2` family, and
        // `avx512` in f32): the same arithmetic grade as the direct f32
        // kernels either way.
        #[cfg(target_arch = "x86_64")]
        if self.winograd() {
            conv::check_conv(c).map_err(BackendError::Shape)?;
            if let Some(w) = CpuConv::winograd(c) {
                return Ok(w);
            }
        }
        self.prepare_conv_untiled(c, lowp)
    }

    fn conv_tiling(&self, w: &CpuConv) -> ConvTiling {
        w.tiling()
    }

    fn prepare_conv_t(&self, c: &ConvTranspose) -> Result<CpuConvT, BackendError> {
        conv::check_conv_t(c).map_err(BackendError::Shape)?;
        // Transposed convs exist only in the decoder, which takes the
        // reduced precision when one was asked for.
        #[cfg(target_arch = "x86_64")]
        if let Some(a) = self.direct {
            return Ok(CpuConvT::packed(c, a));
        }
        Ok(CpuConvT::portable(c, self.fused))
    }

    fn prepare_vector(&self, v: &[f32]) -> Result<Vec<f32>, BackendError> {
        Ok(v.to_vec())
    }

    fn embed(&self, table: &Vec<f32>, ids: &[i64], scale: f32, y: &mut Vec<f32>, ym: Mat) {
        if self.admit(
            "embed",
            &[(y.len(), ym)],
            shape::embed(table.len(), ids, ym),
        ) {
            elementwise::embed(table, ids, scale, y, ym);
        }
    }

    fn conv1d(&self, w: &CpuConv, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat, out: Out) {
        if self.admit_conv("conv1d", w, (x.len(), xm), (y.len(), ym)) {
            conv::conv1d(self.threads, w, x, xm, y, ym, out);
        }
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
        // Fused where there are no gaps to zero between activation and
        // conv (and the weight is not used depthwise).
        if gaps.is_empty() && !w.depthwise_for(xm) {
            if self.admit_conv("conv1d_lrelu", w, (x.len(), xm), (y.len(), ym)) {
                conv::conv1d_lrelu(self.threads, w, slope, x, xm, y, ym, out);
            }
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
        if gaps.is_empty() && !w.depthwise_for(ym) {
            let v = (y.len(), ym);
            if self.admit_conv("conv1d_lrelu_add_inplace", w, v, v) {
                conv::conv1d_lrelu_add_inplace(self.threads, w, slope, y, ym);
            }
            return;
        }
        super::lrelu_add_conv(self, w, slope, y, ym, tmp, gaps);
    }

    fn conv_transpose(&self, w: &CpuConvT, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat) {
        if self.admit(
            "conv_transpose",
            &[(x.len(), xm), (y.len(), ym)],
            shape::conv_transpose(w.cin, w.cout, w.stride, xm, ym),
        ) {
            conv::conv_transpose(self.threads, w, x, xm, y, ym);
        }
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
        let views = [
            (qkv.len(), q),
            (qkv.len(), k),
            (qkv.len(), v),
            (y.len(), ym),
        ];
        let rule = shape::attention(heads, q, k, v, ym, rel_k.len()).and(shape::attention(
            heads,
            q,
            k,
            v,
            ym,
            rel_v.len(),
        ));
        if self.admit("rel_attention", &views, rule) {
            let p = self.products();
            attention::rel_attention(self.threads, p, qkv, q, k, v, rel_k, rel_v, heads, y, ym);
        }
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
        if self.admit(
            "add_layer_norm",
            &[(x.len(), xm), (r.len(), rm)],
            shape::layer_norm(xm, Some(rm), (gamma.len(), beta.len())),
        ) {
            norm::layer_norm_par(self.threads, x, xm, Some((r, rm)), gamma, beta, false);
        }
    }

    fn layer_norm_gelu(&self, x: &mut Vec<f32>, xm: Mat, gamma: &Vec<f32>, beta: &Vec<f32>) {
        if self.admit(
            "layer_norm_gelu",
            &[(x.len(), xm)],
            shape::layer_norm(xm, None, (gamma.len(), beta.len())),
        ) {
            norm::layer_norm_par(self.threads, x, xm, None, gamma, beta, true);
        }
    }

    fn axpy(&self, alpha: f32, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat) {
        if self.admit("axpy", &[(x.len(), xm), (y.len(), ym)], shape::same(xm, ym)) {
            elementwise::axpy(self.threads, alpha, x, xm, y, ym);
        }
    }

    fn add_rows(&self, v: &Vec<f32>, off: usize, x: &mut Vec<f32>, xm: Mat) {
        if self.admit(
            "add_rows",
            &[(x.len(), xm)],
            shape::add_rows(v.len(), off, xm),
        ) {
            elementwise::add_rows(self.threads, &v[off..off + xm.rows()], x, xm);
        }
    }

    fn scale(&self, alpha: f32, x: &mut Vec<f32>, xm: Mat) {
        if self.admit("scale", &[(x.len(), xm)], Ok(())) {
            elementwise::scale(self.threads, alpha, x, xm);
        }
    }

    fn copy(&self, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat) {
        if self.admit("copy", &[(x.len(), xm), (y.len(), ym)], shape::same(xm, ym)) {
            elementwise::copy(self.threads, x, xm, y, ym);
        }
    }

    fn flip_rows(&self, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat) {
        if self.admit(
            "flip_rows",
            &[(x.len(), xm), (y.len(), ym)],
            shape::same(xm, ym),
        ) {
            elementwise::flip_rows(x, xm, y, ym);
        }
    }

    fn gate_tanh_sigmoid(&self, a: &Vec<f32>, am: Mat, y: &mut Vec<f32>, ym: Mat) {
        if self.admit("gate", &[(a.len(), am), (y.len(), ym)], shape::gate(am, ym)) {
            elementwise::gate_tanh_sigmoid(self.threads, a, am, y, ym);
        }
    }

    fn leaky_relu(&self, slope: f32, x: &Vec<f32>, xm: Mat, y: &mut Vec<f32>, ym: Mat) {
        if self.admit(
            "leaky_relu",
            &[(x.len(), xm), (y.len(), ym)],
            shape::same(xm, ym),
        ) {
            elementwise::leaky_relu(self.threads, slope, x, xm, y, ym);
        }
    }

    fn tanh(&self, x: &mut Vec<f32>, xm: Mat) {
        if self.admit("tanh", &[(x.len(), xm)], Ok(())) {
            elementwise::tanh(self.threads, x, xm);
        }
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
        if self.admit(
            "spline_inverse",
            &[(z.len(), zm), (theta.len(), thm)],
            shape::spline(zm, thm, bins).and(spline::bins_fit(bins)),
        ) {
            spline::spline_inverse(z, zm, theta, thm, bins, wh_scale);
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
        if self.admit(
            "expand_prior",
            &[(ml.len(), mlm), (y.len(), ym)],
            shape::expand_prior(mlm, owner, noise.len(), ym),
        ) {
            elementwise::expand_prior(ml, mlm, owner, noise, noise_scale, y, ym);
        }
    }

    fn zero_cols(&self, x: &mut Vec<f32>, xm: Mat, ranges: &[(usize, usize)]) {
        if self.admit("zero_cols", &[(x.len(), xm)], Ok(())) {
            elementwise::zero_cols(x, xm, ranges);
        }
    }
}

#[cfg(test)]
mod tests;
