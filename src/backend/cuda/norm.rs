//! LayerNorm over channels on the device, one block per column (kernel
//! `vx_layer_norm` of `norm.cu`): with a residual added first, or followed by
//! GELU. The CPU twin is `layer_norm_par` in `cpu/elementwise.rs`.

use super::context::CudaBackend;
use super::memory::CudaBuf;
use super::module::{launch, reduce_block, view};
use crate::backend::{shape, Mat};
use cudarc::driver::LaunchConfig;

/// One block per column, `reduce_block(rows)` threads, a float of shared
/// memory per thread.
fn per_column(xm: Mat) -> LaunchConfig {
    let block = reduce_block(xm.rows());
    LaunchConfig {
        grid_dim: (xm.cols().max(1) as u32, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: block * 4,
    }
}

impl CudaBackend {
    /// [`crate::backend::Backend::add_layer_norm`].
    pub(super) fn enqueue_add_layer_norm(
        &self,
        x: &mut CudaBuf,
        xm: Mat,
        r: &CudaBuf,
        rm: Mat,
        gamma: &CudaBuf,
        beta: &CudaBuf,
    ) {
        if !self.admit(
            "add_layer_norm",
            &[(x.len(), xm), (r.len(), rm)],
            shape::layer_norm(xm, Some(rm), (gamma.len(), beta.len())),
        ) {
            return;
        }
        let cfg = per_column(xm);
        let (xv, rv, has_r, gelu) = (view(xm), view(rm), 1i32, 0i32);
        if xm.cols() > 0 {
            launch!(self, layer_norm, cfg, x.ptr, xv, r.ptr, rv, has_r, gamma.ptr, beta.ptr, gelu);
        }
    }

    /// [`crate::backend::Backend::layer_norm_gelu`].
    pub(super) fn enqueue_layer_norm_gelu(
        &self,
        x: &mut CudaBuf,
        xm: Mat,
        gamma: &CudaBuf,
        beta: &CudaBuf,
    ) {
        if !self.admit(
            "layer_norm_gelu",
            &[(x.len(), xm)],
            shape::layer_norm(xm, None, (gamma.len(), beta.len())),
        ) {
            return;
        }
        let cfg = per_column(xm);
        let (xv, has_r, gelu) = (view(xm), 0i32, 1i32);
        if xm.cols() > 0 {
            launch!(self, layer_norm, cfg, x.ptr, xv, x.ptr, xv, has_r, gamma.ptr, beta.ptr, gelu);
        }
    }
}
