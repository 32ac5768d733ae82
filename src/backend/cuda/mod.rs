//! The CUDA backend: the model's ops on one NVIDIA GPU, through `cudarc` with
//! dynamic loading (no CUDA needed to build or to run on the CPU). GEMMs
//! (convs as im2col + GEMM, transposed convs as one stacked-phase GEMM,
//! attention) go to cuBLAS; everything else to the NVRTC-compiled kernels of
//! `kernels/*.cu`, each of which names its CPU twin.
//!
//! The files, each building only on those above it:
//!
//! | File | Job |
//! |---|---|
//! | `module.rs` | the kernel sources, NVRTC compilation per architecture (once per process), the loaded kernel table, launch geometry and `launch!` |
//! | `blas.rs` | the cuBLAS handle (on the stream, own workspace) and the row-major GEMM |
//! | `graph.rs` | recorded CUDA graphs: the cache per (shape, buffers) key, capture and replay |
//! | `context.rs` | [`CudaBackend`]: device discovery ([`probe`]), start, fault recording (device and shape errors), the `Executor` side |
//! | `memory.rs` | [`CudaBuf`] and its graveyard, allocation and weight uploads, scratch slots, host copies |
//! | `conv.rs` | conv weights, "same" and depthwise convs, transposed convs (`conv.cu`) |
//! | `attention.rs` | relative-position attention (`attention.cu`) |
//! | `norm.rs` | LayerNorm with a residual or GELU (`norm.cu`) |
//! | `elementwise.rs` | element-wise ops, gap zeroing, embedding, prior expansion (`elementwise.cu`) |
//! | `spline.rs` | the inverse rational-quadratic spline (`spline.cu`) |
//! | `selfcheck.rs` | the startup self-check of `Device::Auto`: a few ops against their CPU twins |
//! | `mod.rs` | this map, and the `Backend` impl: each op hands over to its file |
//!
//! Every op checks its views with the shape rules shared with the CPU
//! (`crate::backend::shape`, plus the kernels' `int` sizes) and does nothing
//! on a violation; `Executor::check` then returns `BackendError::Shape`, as
//! on the CPU. A failed CUDA call is a `BackendError::Device`.
//!
//! Tests: `tests/cuda.rs` compiles every kernel for sm_80 and sm_90 (in CI,
//! with the PyPI NVRTC wheel); `tests/cuda_ops.rs` checks every op against its
//! CPU twin, the model against the CPU, and graph replay against eager
//! launches on a GPU (skipped without one, required with `VOXIDE_REQUIRE_GPU=1`).

mod attention;
mod blas;
mod context;
mod conv;
mod elementwise;
pub mod graph;
mod memory;
mod module;
mod norm;
mod selfcheck;
mod spline;

pub use context::{probe, CudaBackend};
pub use selfcheck::{auto_choice, note_auto_choice};
pub use conv::{CudaConv, CudaConvT};
pub use memory::CudaBuf;
pub use module::{
    arch_for, compile_all, kernel_names, kernel_source, nvrtc_available, KERNEL_FILES,
};

use super::{Backend, Conv, ConvTranspose, Mat, Out};
use crate::error::BackendError;

impl Backend for CudaBackend {
    type Buf = CudaBuf;
    type Conv = CudaConv;
    type ConvT = CudaConvT;
    type Vector = CudaBuf;

    fn alloc(&self, len: usize, what: &'static str) -> Result<CudaBuf, BackendError> {
        self.alloc_buf(len, what)
    }

    fn write(&self, dst: &mut CudaBuf, m: Mat, src: &[f32]) {
        self.write_view(dst, m, src);
    }

    fn read(&self, src: &CudaBuf, m: Mat, dst: &mut [f32]) {
        self.read_view(src, m, dst);
    }

    fn prepare_conv(&self, c: &Conv) -> Result<CudaConv, BackendError> {
        self.conv_weight(c, false)
    }

    fn prepare_conv_lowp(&self, c: &Conv) -> Result<CudaConv, BackendError> {
        self.conv_weight(c, self.tf32)
    }

    fn prepare_conv_t(&self, c: &ConvTranspose) -> Result<CudaConvT, BackendError> {
        self.conv_t_weight(c)
    }

    fn prepare_vector(&self, v: &[f32]) -> Result<CudaBuf, BackendError> {
        self.upload_f32(v, "weight vector")
    }

    fn embed(&self, table: &CudaBuf, ids: &[i64], scale: f32, y: &mut CudaBuf, ym: Mat) {
        self.enqueue_embed(table, ids, scale, y, ym);
    }

    fn conv1d(&self, w: &CudaConv, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat, out: Out) {
        self.enqueue_conv1d(w, x, xm, y, ym, out);
    }

    fn conv_transpose(&self, w: &CudaConvT, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        self.enqueue_conv_transpose(w, x, xm, y, ym);
    }

    fn rel_attention(
        &self,
        qkv: &CudaBuf,
        q: Mat,
        k: Mat,
        v: Mat,
        rel_k: &CudaBuf,
        rel_v: &CudaBuf,
        heads: usize,
        y: &mut CudaBuf,
        ym: Mat,
    ) {
        self.enqueue_rel_attention(qkv, q, k, v, rel_k, rel_v, heads, y, ym);
    }

    fn add_layer_norm(
        &self,
        x: &mut CudaBuf,
        xm: Mat,
        r: &CudaBuf,
        rm: Mat,
        gamma: &CudaBuf,
        beta: &CudaBuf,
    ) {
        self.enqueue_add_layer_norm(x, xm, r, rm, gamma, beta);
    }

    fn layer_norm_gelu(&self, x: &mut CudaBuf, xm: Mat, gamma: &CudaBuf, beta: &CudaBuf) {
        self.enqueue_layer_norm_gelu(x, xm, gamma, beta);
    }

    fn axpy(&self, alpha: f32, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        self.enqueue_axpy(alpha, x, xm, y, ym);
    }

    fn scale(&self, alpha: f32, x: &mut CudaBuf, xm: Mat) {
        self.enqueue_scale(alpha, x, xm);
    }

    fn copy(&self, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        self.enqueue_copy(x, xm, y, ym);
    }

    fn flip_rows(&self, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        self.enqueue_flip_rows(x, xm, y, ym);
    }

    fn gate_tanh_sigmoid(&self, a: &CudaBuf, am: Mat, y: &mut CudaBuf, ym: Mat) {
        self.enqueue_gate(a, am, y, ym);
    }

    fn leaky_relu(&self, slope: f32, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        self.enqueue_leaky_relu(slope, x, xm, y, ym);
    }

    fn add_rows(&self, v: &CudaBuf, off: usize, x: &mut CudaBuf, xm: Mat) {
        self.enqueue_add_rows(v, off, x, xm);
    }

    fn tanh(&self, x: &mut CudaBuf, xm: Mat) {
        self.enqueue_tanh(x, xm);
    }

    fn spline_inverse(
        &self,
        z: &mut CudaBuf,
        zm: Mat,
        theta: &CudaBuf,
        thm: Mat,
        bins: usize,
        wh_scale: f32,
    ) {
        self.enqueue_spline_inverse(z, zm, theta, thm, bins, wh_scale);
    }

    fn expand_prior(
        &self,
        ml: &CudaBuf,
        mlm: Mat,
        owner: &[u32],
        noise: &[f32],
        noise_scale: f32,
        y: &mut CudaBuf,
        ym: Mat,
    ) {
        self.enqueue_expand_prior(ml, mlm, owner, noise, noise_scale, y, ym);
    }

    fn zero_cols(&self, x: &mut CudaBuf, xm: Mat, ranges: &[(usize, usize)]) {
        self.enqueue_zero_cols(x, xm, ranges);
    }

    fn buf_key(&self, b: &CudaBuf) -> u64 {
        b.key()
    }
}
