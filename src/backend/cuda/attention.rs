//! Multi-head attention with relative positions on the device: per head two
//! cuBLAS GEMMs around the kernels of `attention.cu` (relative logits,
//! softmax, relative values). The CPU twin is `cpu/attention.rs`.

use super::context::{CudaBackend, Slot};
use super::memory::CudaBuf;
use super::module::{grid, launch, view};
use crate::backend::{shape, Mat};
use cudarc::driver::LaunchConfig;

impl CudaBackend {
    /// [`crate::backend::Backend::rel_attention`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enqueue_rel_attention(
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
        // Admitted: heads > 0 divides the rows, d > 0.
        let t = q.cols();
        let d = q.rows() / heads;
        if t == 0 {
            return;
        }
        let w = (rel_k.len() / d / 2) as i32;
        let scale = 1.0 / (d as f32).sqrt();
        let mut s = self.scratch.lock();
        let Some(logits) = self.scratch(&mut s, Slot::Logits, 4 * t * t) else {
            return;
        };
        let ti = t as i32;
        for h in 0..heads {
            let (qh, kh, vh, yh) = (
                q.sub_rows(h * d, (h + 1) * d),
                k.sub_rows(h * d, (h + 1) * d),
                v.sub_rows(h * d, (h + 1) * d),
                ym.sub_rows(h * d, (h + 1) * d),
            );
            // logits = (q / √d)ᵀ k
            self.gemm(
                (t, t, d),
                (qkv.at(qh.off()), qh.ld(), true),
                (qkv.at(kh.off()), kh.ld(), false),
                (logits, t),
                scale,
                0.0,
                false,
            );
            let qv = view(qh);
            launch!(
                self,
                rel_logits,
                grid(t * (2 * w as usize + 1)),
                qkv.ptr,
                qv,
                rel_k.ptr,
                w,
                scale,
                logits,
                ti
            );
            let cfg = LaunchConfig {
                grid_dim: (t as u32, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 256 * 4,
            };
            launch!(self, softmax_rows, cfg, logits, ti);
            // y_h = v Pᵀ (+ the relative values)
            self.gemm(
                (d, t, t),
                (qkv.at(vh.off()), vh.ld(), false),
                (logits, t, true),
                (y.at(yh.off()), yh.ld()),
                1.0,
                0.0,
                false,
            );
            let yv = view(yh);
            launch!(
                self,
                rel_values,
                grid(d * t),
                logits,
                rel_v.ptr,
                w,
                ti,
                y.ptr,
                yv
            );
        }
    }
}
