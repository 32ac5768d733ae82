//! Compute backends: *how* an op runs. The model (`crate::model`) says *what*
//! runs, once, for every device, through two traits: [`Executor`] (where and
//! how work runs: threads or a stream, recording, error reporting) and
//! [`Backend`] (buffers, weights packed for the device, and the ops).
//!
//! Tensors are 2-D `[rows = channels, cols = time]` views ([`Mat`], checked)
//! into backend-owned buffers. Every op writes into a preallocated output. An
//! op given views that do not fit its buffers or its weights does nothing and
//! records a shape error, which [`Executor::check`] returns at the end of the
//! stage (the same on every backend; never a panic).
//!
//! `cpu/` is the reference; `cuda/` mirrors it file for file (conv,
//! attention, elementwise, norm, spline), and every CUDA op is tested against
//! its CPU twin.

pub mod cpu;
pub mod cuda;
mod mat;
mod precision;
pub(crate) mod shape;
mod weights;

pub use mat::Mat;
pub use precision::Precision;
pub use weights::{Conv, ConvTranspose};

use crate::error::BackendError;

/// What a conv does with its output view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    /// `y = conv(x) + b`.
    Set,
    /// `y = relu(conv(x) + b)`.
    SetRelu,
    /// `y += conv(x) + b`.
    Add,
}

/// How a conv's output columns are computed, for callers that need the same
/// bits for a column in any window that holds its context (streamed chunks
/// and batched windows equal to the whole sentence).
///
/// Outputs are computed in tiles that start at the columns of the views'
/// buffer rows (`off % ld`) that are multiples of `period`; an output's bits
/// may depend on inputs up to `margin` columns beyond the conv's own
/// receptive field (the other inputs of its tile, through rounding). So a
/// column gets the same bits in two windows when both place it at the same
/// column modulo `period` and both hold its receptive field widened by
/// `margin` on each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTiling {
    /// Tiles start at buffer columns that are multiples of this (≥ 1).
    pub period: usize,
    /// Extra context, in columns, each side of the receptive field.
    pub margin: usize,
}

impl ConvTiling {
    /// Every output column computed alone, from its receptive field only.
    pub const COLUMNS: ConvTiling = ConvTiling {
        period: 1,
        margin: 0,
    };
}

/// Where and how a backend runs work: its identity, its threads or stream,
/// recorded work, and the device errors of a stage.
pub trait Executor: Send + Sync + 'static {
    /// Human-readable device name (`cpu`, `cuda:0 (…)`).
    fn name(&self) -> String;

    /// Whether every op computes each output column alone, in an order that
    /// does not depend on the view's width or position, so a column gets the
    /// same bits in any window that holds its receptive field (the CPU's
    /// conv kernels; not libraries that pick their kernels and blocking by
    /// problem size, such as the `gemm` crate or cuBLAS).
    /// [`crate::model::Vits::prepare_first`] relies on it.
    fn columns_exact(&self) -> bool {
        false
    }

    /// The arithmetic the backend runs ([`Precision::Auto`] resolved).
    fn precision(&self) -> Precision;

    /// The CPU kernel family ([`cpu::Isa::Auto`] resolved); `None` off the CPU.
    fn cpu_isa(&self) -> Option<cpu::Isa> {
        None
    }

    /// Whether the CPU runs the decoder's residual-block convs and the
    /// encoder's feed-forward convs as Winograd transforms; `false` off the
    /// CPU.
    fn cpu_winograd(&self) -> bool {
        false
    }

    /// Host threads that run the ops (1 for a GPU's driving thread).
    fn threads(&self) -> usize {
        1
    }

    /// Device memory `(free, total)` in bytes; `None` on the CPU.
    fn memory(&self) -> Option<(usize, usize)> {
        None
    }

    /// Run `f`, a fixed sequence of ops whose buffers, shapes and constants are
    /// all determined by `key` (include [`Backend::buf_key`] of every buffer it
    /// touches). A backend may record it on first use and replay the recording
    /// afterwards instead of calling `f` (CUDA graphs); the CPU just calls `f`.
    /// `f` must not read or write host memory (no `write`, `read`, `embed`,
    /// `expand_prior`): such a sequence is run eagerly instead.
    fn recorded(&self, _key: &[u64], f: &mut dyn FnMut()) {
        f();
    }

    /// The first device error since the last call. Ops cannot fail in this
    /// trait (the CPU's never do); a device backend records its failures and the
    /// model calls this at the end of every stage.
    ///
    /// # Errors
    /// [`BackendError::Device`] with the device's message;
    /// [`BackendError::Shape`] when an op refused its views.
    fn check(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Run `f` on this backend's thread pool (CPU) or stream (GPU).
    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R;
}

/// A device that runs the VITS ops. The CPU implementation is the reference;
/// every other backend is tested against it.
pub trait Backend: Executor {
    /// A device buffer of `f32`.
    type Buf: Send + Sync;
    /// A conv weight prepared for this device.
    type Conv: Send + Sync;
    /// A transposed-conv weight prepared for this device.
    type ConvT: Send + Sync;
    /// A small weight vector (bias, LayerNorm, tables) on this device.
    type Vector: Send + Sync;

    /// A zeroed buffer of `len` floats.
    ///
    /// # Errors
    /// [`BackendError::OutOfMemory`] when it cannot be allocated.
    fn alloc(&self, len: usize, what: &'static str) -> Result<Self::Buf, BackendError>;
    /// Copy a dense host matrix (`m.rows() × m.cols()`, row-major) into the view.
    fn write(&self, dst: &mut Self::Buf, m: Mat, src: &[f32]);
    /// Copy the view into a dense host matrix.
    fn read(&self, src: &Self::Buf, m: Mat, dst: &mut [f32]);

    /// Upload a conv weight.
    ///
    /// # Errors
    /// Allocation or device failure.
    fn prepare_conv(&self, c: &Conv) -> Result<Self::Conv, BackendError>;
    /// Upload a conv weight of a stage that tolerates the backend's reduced
    /// precision, when one was asked for (flow and decoder; the encoder and the
    /// duration predictor stay f32 so durations match the reference). The
    /// default is [`Backend::prepare_conv`].
    ///
    /// # Errors
    /// Allocation or device failure.
    fn prepare_conv_lowp(&self, c: &Conv) -> Result<Self::Conv, BackendError> {
        self.prepare_conv(c)
    }
    /// Upload a conv weight that the backend may compute in tiles of
    /// columns (the CPU's Winograd kernels), as [`Backend::conv_tiling`]
    /// then says: the decoder's residual blocks (`lowp`: as
    /// [`Backend::prepare_conv_lowp`] where not tiled) and the encoder's
    /// feed-forward convs (as [`Backend::prepare_conv`]). The default is
    /// the untiled upload.
    ///
    /// # Errors
    /// Allocation or device failure.
    fn prepare_conv_tiled(&self, c: &Conv, lowp: bool) -> Result<Self::Conv, BackendError> {
        self.prepare_conv_untiled(c, lowp)
    }
    /// The untiled upload [`Backend::prepare_conv_tiled`] falls back to:
    /// [`Backend::prepare_conv_lowp`] (`lowp`) or [`Backend::prepare_conv`].
    ///
    /// # Errors
    /// Allocation or device failure.
    fn prepare_conv_untiled(&self, c: &Conv, lowp: bool) -> Result<Self::Conv, BackendError> {
        if lowp {
            self.prepare_conv_lowp(c)
        } else {
            self.prepare_conv(c)
        }
    }
    /// How the output columns of conv `w` are computed
    /// ([`ConvTiling::COLUMNS`], the default: each alone).
    fn conv_tiling(&self, _w: &Self::Conv) -> ConvTiling {
        ConvTiling::COLUMNS
    }
    /// Upload a transposed-conv weight.
    ///
    /// # Errors
    /// Allocation or device failure.
    fn prepare_conv_t(&self, c: &ConvTranspose) -> Result<Self::ConvT, BackendError>;
    /// Upload a vector.
    ///
    /// # Errors
    /// Allocation or device failure.
    fn prepare_vector(&self, v: &[f32]) -> Result<Self::Vector, BackendError>;

    /// `y[:, t] = table[ids[t], :] · scale` (`table` is `[symbols, y.rows()]`).
    fn embed(&self, table: &Self::Vector, ids: &[i64], scale: f32, y: &mut Self::Buf, ym: Mat);
    /// "Same"-padded 1-D conv (dilation from the weight); depthwise when the weight has one input channel.
    fn conv1d(&self, w: &Self::Conv, x: &Self::Buf, xm: Mat, y: &mut Self::Buf, ym: Mat, out: Out);
    /// `y (op)= conv(LeakyReLU_slope(x))`, the activation's `gaps` columns
    /// zeroed (batched windows); `tmp` (room for `xm`) may hold the
    /// activation. The default runs the separate ops; a backend may fuse them.
    #[allow(clippy::too_many_arguments)]
    fn conv1d_lrelu(
        &self,
        w: &Self::Conv,
        slope: f32,
        x: &Self::Buf,
        xm: Mat,
        tmp: &mut Self::Buf,
        gaps: &[(usize, usize)],
        y: &mut Self::Buf,
        ym: Mat,
        out: Out,
    ) {
        lrelu_conv(self, w, slope, x, xm, tmp, gaps, y, ym, out);
    }
    /// `y += conv(LeakyReLU_slope(y))` (a ResBlock step), gaps as in
    /// [`Backend::conv1d_lrelu`]; `tmp` (room for `ym`) may hold the
    /// activation. The default runs the separate ops.
    fn conv1d_lrelu_add_inplace(
        &self,
        w: &Self::Conv,
        slope: f32,
        y: &mut Self::Buf,
        ym: Mat,
        tmp: &mut Self::Buf,
        gaps: &[(usize, usize)],
    ) {
        lrelu_add_conv(self, w, slope, y, ym, tmp, gaps);
    }
    /// Transposed conv with kernel 2·stride and padding stride/2: `y.cols() = stride · x.cols()`.
    fn conv_transpose(&self, w: &Self::ConvT, x: &Self::Buf, xm: Mat, y: &mut Self::Buf, ym: Mat);
    /// Multi-head attention with relative positions (window from the tables),
    /// `q`, `k`, `v`, `y` all `[heads·d, T]` views of `qkv`/`y`.
    #[allow(clippy::too_many_arguments)]
    fn rel_attention(
        &self,
        qkv: &Self::Buf,
        q: Mat,
        k: Mat,
        v: Mat,
        rel_k: &Self::Vector,
        rel_v: &Self::Vector,
        heads: usize,
        y: &mut Self::Buf,
        ym: Mat,
    );
    /// `x = LayerNorm(x + r)` over channels (eps 1e-5).
    fn add_layer_norm(
        &self,
        x: &mut Self::Buf,
        xm: Mat,
        r: &Self::Buf,
        rm: Mat,
        gamma: &Self::Vector,
        beta: &Self::Vector,
    );
    /// `x = GELU(LayerNorm(x))` (exact erf GELU).
    fn layer_norm_gelu(
        &self,
        x: &mut Self::Buf,
        xm: Mat,
        gamma: &Self::Vector,
        beta: &Self::Vector,
    );
    /// `y += alpha · x`.
    fn axpy(&self, alpha: f32, x: &Self::Buf, xm: Mat, y: &mut Self::Buf, ym: Mat);
    /// `x[r, t] += v[off + r]` for every row `r` and column `t` of the view:
    /// a per-channel bias taken from row block `off` of a table (a speaker's
    /// conditioning).
    fn add_rows(&self, v: &Self::Vector, off: usize, x: &mut Self::Buf, xm: Mat);
    /// `x *= alpha`.
    fn scale(&self, alpha: f32, x: &mut Self::Buf, xm: Mat);
    /// `y = x`.
    fn copy(&self, x: &Self::Buf, xm: Mat, y: &mut Self::Buf, ym: Mat);
    /// `y = x` with the row order reversed.
    fn flip_rows(&self, x: &Self::Buf, xm: Mat, y: &mut Self::Buf, ym: Mat);
    /// `y = tanh(a[0:C]) ⊙ sigmoid(a[C:2C])`.
    fn gate_tanh_sigmoid(&self, a: &Self::Buf, am: Mat, y: &mut Self::Buf, ym: Mat);
    /// `y = LeakyReLU_slope(x)`.
    fn leaky_relu(&self, slope: f32, x: &Self::Buf, xm: Mat, y: &mut Self::Buf, ym: Mat);
    /// `x = tanh(x)`.
    fn tanh(&self, x: &mut Self::Buf, xm: Mat);
    /// Inverse rational-quadratic spline on one row: `z[t] ← RQS⁻¹(z[t]; θ[:, t])`,
    /// with widths/heights of θ divided by `wh_scale` (tail bound 5, linear tails).
    fn spline_inverse(
        &self,
        z: &mut Self::Buf,
        zm: Mat,
        theta: &Self::Buf,
        thm: Mat,
        bins: usize,
        wh_scale: f32,
    );
    /// Prior sample on expanded frames: for frame column `f` of `y`,
    /// `y[:, f] = m[:, owner[f]] + noise[:, f] · exp(logs[:, owner[f]]) · noise_scale`.
    /// `ml` holds `m` (first half of rows) and `logs` (second half); `noise` is a dense
    /// host `[y.rows(), y.cols()]` matrix; an owner of `u32::MAX` gives a zero column.
    #[allow(clippy::too_many_arguments)]
    fn expand_prior(
        &self,
        ml: &Self::Buf,
        mlm: Mat,
        owner: &[u32],
        noise: &[f32],
        noise_scale: f32,
        y: &mut Self::Buf,
        ym: Mat,
    );

    /// An identity of a buffer (its address and size) for keys of recorded
    /// work ([`Executor::recorded`]). Backends that record nothing return 0.
    fn buf_key(&self, _b: &Self::Buf) -> u64 {
        0
    }

    /// Zero the columns `c0..c1` (relative to the view) of every row of `xm`,
    /// for each `(c0, c1)` in `ranges` (ranges past the view's end are clipped).
    ///
    /// Batched rendering lays several utterances' windows side by side in one
    /// buffer with gap columns between them; the decoder and flow have no
    /// masks, so the gaps are zeroed before every conv to give each window
    /// exactly the zero padding it sees when run alone. The default writes
    /// zeros from the host through [`Backend::write`]; backends override it
    /// with a device-side fill.
    fn zero_cols(&self, x: &mut Self::Buf, xm: Mat, ranges: &[(usize, usize)]) {
        for &(c0, c1) in ranges {
            let (c0, c1) = (c0.min(xm.cols()), c1.min(xm.cols()));
            if c0 < c1 && xm.rows() > 0 {
                let zeros = vec![0.0; xm.rows() * (c1 - c0)];
                self.write(x, xm.sub_cols(c0, c1), &zeros);
            }
        }
    }
}

/// `tmp = LeakyReLU_slope(x)` with the `gaps` columns zeroed.
pub(crate) fn lrelu_into<B: Backend + ?Sized>(
    be: &B,
    slope: f32,
    x: &B::Buf,
    xm: Mat,
    tmp: &mut B::Buf,
    gaps: &[(usize, usize)],
) {
    be.leaky_relu(slope, x, xm, tmp, xm);
    if !gaps.is_empty() {
        be.zero_cols(tmp, xm, gaps);
    }
}

/// [`Backend::conv1d_lrelu`] as separate ops (the default, and a fused
/// backend's fallback).
#[allow(clippy::too_many_arguments)]
pub(crate) fn lrelu_conv<B: Backend + ?Sized>(
    be: &B,
    w: &B::Conv,
    slope: f32,
    x: &B::Buf,
    xm: Mat,
    tmp: &mut B::Buf,
    gaps: &[(usize, usize)],
    y: &mut B::Buf,
    ym: Mat,
    out: Out,
) {
    lrelu_into(be, slope, x, xm, tmp, gaps);
    be.conv1d(w, tmp, xm, y, ym, out);
}

/// [`Backend::conv1d_lrelu_add_inplace`] as separate ops (the default, and
/// a fused backend's fallback).
pub(crate) fn lrelu_add_conv<B: Backend + ?Sized>(
    be: &B,
    w: &B::Conv,
    slope: f32,
    y: &mut B::Buf,
    ym: Mat,
    tmp: &mut B::Buf,
    gaps: &[(usize, usize)],
) {
    lrelu_into(be, slope, y, ym, tmp, gaps);
    be.conv1d(w, tmp, ym, y, ym, Out::Add);
}
