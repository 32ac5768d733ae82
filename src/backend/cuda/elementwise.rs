//! Element-wise ops on the device, one grid-stride kernel each (all in
//! `elementwise.cu`): axpy, scale, copy, row flip, the WaveNet gate, leaky
//! ReLU, tanh, zeroing gap columns, and the two ops that take host data (the
//! embedding lookup by ids, the prior expansion with host noise and frame
//! owners). The CPU twins are in `cpu/mod.rs` and `cpu/elementwise.rs`.

use super::context::{CudaBackend, Slot};
use super::memory::CudaBuf;
use super::module::{grid, launch, view};
use crate::backend::{shape, Mat};

impl CudaBackend {
    /// [`crate::backend::Backend::axpy`].
    pub(super) fn enqueue_axpy(&self, alpha: f32, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        if !self.admit("axpy", &[(x.len(), xm), (y.len(), ym)], shape::same(xm, ym)) {
            return;
        }
        let (xv, yv) = (view(xm), view(ym));
        if ym.rows() * ym.cols() > 0 {
            launch!(
                self,
                axpy,
                grid(ym.rows() * ym.cols()),
                alpha,
                x.ptr,
                xv,
                y.ptr,
                yv
            );
        }
    }

    /// [`crate::backend::Backend::scale`].
    pub(super) fn enqueue_scale(&self, alpha: f32, x: &mut CudaBuf, xm: Mat) {
        if !self.admit("scale", &[(x.len(), xm)], Ok(())) {
            return;
        }
        let xv = view(xm);
        if xm.rows() * xm.cols() > 0 {
            launch!(self, scale, grid(xm.rows() * xm.cols()), alpha, x.ptr, xv);
        }
    }

    /// [`crate::backend::Backend::add_rows`]: the conv epilogue's bias kernel
    /// (`vx_bias_act` without ReLU) on rows `off..` of the vector.
    pub(super) fn enqueue_add_rows(&self, v: &CudaBuf, off: usize, x: &mut CudaBuf, xm: Mat) {
        if !self.admit(
            "add_rows",
            &[(x.len(), xm)],
            shape::add_rows(v.len(), off, xm),
        ) {
            return;
        }
        let (xv, relu) = (view(xm), 0i32);
        let bias = v.ptr + (off * std::mem::size_of::<f32>()) as u64;
        if xm.rows() * xm.cols() > 0 {
            launch!(self, bias_act, grid(xm.rows() * xm.cols()), x.ptr, xv, bias, relu);
        }
    }

    /// [`crate::backend::Backend::copy`].
    pub(super) fn enqueue_copy(&self, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        if !self.admit("copy", &[(x.len(), xm), (y.len(), ym)], shape::same(xm, ym)) {
            return;
        }
        let (xv, yv) = (view(xm), view(ym));
        if ym.rows() * ym.cols() > 0 {
            launch!(
                self,
                copy,
                grid(ym.rows() * ym.cols()),
                x.ptr,
                xv,
                y.ptr,
                yv
            );
        }
    }

    /// [`crate::backend::Backend::flip_rows`].
    pub(super) fn enqueue_flip_rows(&self, x: &CudaBuf, xm: Mat, y: &mut CudaBuf, ym: Mat) {
        if !self.admit(
            "flip_rows",
            &[(x.len(), xm), (y.len(), ym)],
            shape::same(xm, ym),
        ) {
            return;
        }
        let (xv, yv) = (view(xm), view(ym));
        if ym.rows() * ym.cols() > 0 {
            launch!(
                self,
                flip_rows,
                grid(ym.rows() * ym.cols()),
                x.ptr,
                xv,
                y.ptr,
                yv
            );
        }
    }

    /// [`crate::backend::Backend::gate_tanh_sigmoid`].
    pub(super) fn enqueue_gate(&self, a: &CudaBuf, am: Mat, y: &mut CudaBuf, ym: Mat) {
        if !self.admit("gate", &[(a.len(), am), (y.len(), ym)], shape::gate(am, ym)) {
            return;
        }
        let (av, yv) = (view(am), view(ym));
        if ym.rows() * ym.cols() > 0 {
            launch!(
                self,
                gate_tanh_sigmoid,
                grid(ym.rows() * ym.cols()),
                a.ptr,
                av,
                y.ptr,
                yv
            );
        }
    }

    /// [`crate::backend::Backend::leaky_relu`].
    pub(super) fn enqueue_leaky_relu(
        &self,
        slope: f32,
        x: &CudaBuf,
        xm: Mat,
        y: &mut CudaBuf,
        ym: Mat,
    ) {
        if !self.admit(
            "leaky_relu",
            &[(x.len(), xm), (y.len(), ym)],
            shape::same(xm, ym),
        ) {
            return;
        }
        let (xv, yv) = (view(xm), view(ym));
        if ym.rows() * ym.cols() > 0 {
            launch!(
                self,
                leaky_relu,
                grid(ym.rows() * ym.cols()),
                x.ptr,
                xv,
                y.ptr,
                yv,
                slope
            );
        }
    }

    /// [`crate::backend::Backend::tanh`].
    pub(super) fn enqueue_tanh(&self, x: &mut CudaBuf, xm: Mat) {
        if !self.admit("tanh", &[(x.len(), xm)], Ok(())) {
            return;
        }
        let xv = view(xm);
        if xm.rows() * xm.cols() > 0 {
            launch!(self, tanh, grid(xm.rows() * xm.cols()), x.ptr, xv);
        }
    }

    /// [`crate::backend::Backend::zero_cols`]: one launch per range.
    pub(super) fn enqueue_zero_cols(&self, x: &mut CudaBuf, xm: Mat, ranges: &[(usize, usize)]) {
        if !self.admit("zero_cols", &[(x.len(), xm)], Ok(())) {
            return;
        }
        if xm.rows() == 0 {
            return;
        }
        let xv = view(xm);
        for &(c0, c1) in ranges {
            let (c0, c1) = (c0.min(xm.cols()), c1.min(xm.cols()));
            if c0 < c1 {
                let (a, b) = (c0 as i32, c1 as i32);
                launch!(
                    self,
                    zero_cols,
                    grid(xm.rows() * (c1 - c0)),
                    x.ptr,
                    xv,
                    a,
                    b
                );
            }
        }
    }

    /// [`crate::backend::Backend::embed`]: the ids go up through a scratch slot.
    pub(super) fn enqueue_embed(
        &self,
        table: &CudaBuf,
        ids: &[i64],
        scale: f32,
        y: &mut CudaBuf,
        ym: Mat,
    ) {
        if !self.admit(
            "embed",
            &[(y.len(), ym)],
            shape::embed(table.len(), ids, ym),
        ) {
            return;
        }
        if ym.rows() == 0 || ym.cols() == 0 {
            return;
        }
        let mut s = self.scratch.lock();
        let Some(p) = self.upload(&mut s, Slot::Ids, &ids[..ym.cols()]) else {
            return;
        };
        let symbols = (table.len() / ym.rows()) as i64;
        let yv = view(ym);
        launch!(
            self,
            embed,
            grid(ym.rows() * ym.cols()),
            table.ptr,
            symbols,
            p,
            scale,
            y.ptr,
            yv
        );
    }

    /// [`crate::backend::Backend::expand_prior`]: owners and noise go up
    /// through scratch slots.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enqueue_expand_prior(
        &self,
        ml: &CudaBuf,
        mlm: Mat,
        owner: &[u32],
        noise: &[f32],
        noise_scale: f32,
        y: &mut CudaBuf,
        ym: Mat,
    ) {
        if !self.admit(
            "expand_prior",
            &[(ml.len(), mlm), (y.len(), ym)],
            shape::expand_prior(mlm, owner, noise.len(), ym),
        ) {
            return;
        }
        let n = ym.rows() * ym.cols();
        if n == 0 {
            return;
        }
        let mut s = self.scratch.lock();
        let Some(op) = self.upload(&mut s, Slot::Owner, &owner[..ym.cols()]) else {
            return;
        };
        let Some(np) = self.upload(&mut s, Slot::Noise, &noise[..n]) else {
            return;
        };
        let (mv, yv) = (view(mlm), view(ym));
        launch!(
            self,
            expand_prior,
            grid(n),
            ml.ptr,
            mv,
            op,
            np,
            noise_scale,
            y.ptr,
            yv
        );
    }
}
