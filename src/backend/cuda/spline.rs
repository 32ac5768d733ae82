//! The inverse rational-quadratic spline of the flow on the device, one
//! thread per column (kernel `vx_rqs_inverse` of `spline.cu`). The CPU twin
//! is `rqs_inverse` in `cpu/elementwise.rs`.

use super::context::CudaBackend;
use super::memory::CudaBuf;
use super::module::{launch, view};
use crate::backend::{shape, Mat};
use cudarc::driver::LaunchConfig;

/// The most bins the kernel holds (`VX_MAX_BINS` in `spline.cu`).
const MAX_BINS: usize = 64;

impl CudaBackend {
    /// [`crate::backend::Backend::spline_inverse`].
    pub(super) fn enqueue_spline_inverse(
        &self,
        z: &mut CudaBuf,
        zm: Mat,
        theta: &CudaBuf,
        thm: Mat,
        bins: usize,
        wh_scale: f32,
    ) {
        let kernel_bins = if bins <= MAX_BINS {
            Ok(())
        } else {
            Err(format!("{bins} bins (the kernel supports 1..={MAX_BINS})"))
        };
        if !self.admit(
            "spline_inverse",
            &[(z.len(), zm), (theta.len(), thm)],
            shape::spline(zm, thm, bins).and(kernel_bins),
        ) {
            return;
        }
        if zm.cols() == 0 {
            return;
        }
        let cfg = LaunchConfig {
            grid_dim: (zm.cols().div_ceil(128) as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let (zv, tv, k) = (view(zm), view(thm), bins as i32);
        launch!(
            self,
            rqs_inverse,
            cfg,
            z.ptr,
            zv,
            theta.ptr,
            tv,
            k,
            wh_scale
        );
    }
}
