//! Convs on the device (kernels of `conv.cu`): weights as the GEMMs want
//! them; "same" 1-D convs as im2col + cuBLAS GEMM + the bias/ReLU epilogue
//! (`k = 1` convs read the input in place, depthwise convs one kernel);
//! transposed convs as one GEMM over the stacked phases plus an interleave.
//! The CPU twin is `cpu/conv.rs`.

use super::context::{CudaBackend, Slot};
use super::memory::CudaBuf;
use super::module::{grid, launch, view};
use crate::backend::{shape, Conv, ConvTranspose, Mat, Out};
use crate::error::BackendError;

/// A conv weight on the device: `[cout, cin·k]` (the im2col GEMM's left side).
pub struct CudaConv {
    w: CudaBuf,
    bias: CudaBuf,
    cout: usize,
    cin: usize,
    k: usize,
    dilation: usize,
    depthwise: bool,
    tf32: bool,
}

/// A transposed conv on the device: the stacked phases `[u·cout, 2·cin]`.
pub struct CudaConvT {
    w: CudaBuf,
    bias: CudaBuf,
    cin: usize,
    cout: usize,
    stride: usize,
    tf32: bool,
}

/// The GEMMs and kernels read exactly `want` floats of a weight (`None`: more
/// than memory holds): a weight of any other size is refused before upload,
/// never read out of bounds on the device.
fn sized(what: &str, have: usize, want: Option<usize>) -> Result<(), BackendError> {
    match want {
        Some(n) if n == have => Ok(()),
        Some(n) => Err(BackendError::Shape(format!(
            "{what} of {have} floats where the layer's shape needs {n}"
        ))),
        None => Err(BackendError::Shape(format!(
            "{what}: the layer's shape overflows memory"
        ))),
    }
}

impl CudaBackend {
    /// Upload a conv weight; its GEMMs on TF32 tensor cores when `tf32`.
    ///
    /// # Errors
    /// [`BackendError::Shape`] for a kernel size of 0 or a weight or bias
    /// whose length is not the shape's; allocation or device failure.
    pub(super) fn conv_weight(&self, c: &Conv, tf32: bool) -> Result<CudaConv, BackendError> {
        if c.k == 0 {
            return Err(BackendError::Shape("conv weight with kernel size 0".into()));
        }
        sized(
            "conv weight",
            c.w.len(),
            c.cout.checked_mul(c.cin).and_then(|n| n.checked_mul(c.k)),
        )?;
        if let Some(b) = &c.b {
            sized("conv bias", b.len(), Some(c.cout))?;
        }
        let depthwise = c.cin == 1 && c.cout > 1;
        Ok(CudaConv {
            w: self.upload_f32(&c.w, "conv weight")?,
            bias: self.upload_f32(
                &c.b.clone().unwrap_or_else(|| vec![0.0; c.cout]),
                "conv bias",
            )?,
            cout: c.cout,
            cin: c.cin,
            k: c.k,
            dilation: c.dilation,
            depthwise,
            tf32,
        })
    }

    /// Upload a transposed-conv weight as its stacked phases (kernel
    /// 2·stride only); TF32 in reduced precision.
    ///
    /// # Errors
    /// [`BackendError::Device`] for a kernel other than 2·stride;
    /// [`BackendError::Shape`] for a weight or bias whose length is not the
    /// shape's; allocation or device failure.
    pub(super) fn conv_t_weight(&self, c: &ConvTranspose) -> Result<CudaConvT, BackendError> {
        let u = c.stride;
        if u == 0 || Some(c.k) != u.checked_mul(2) {
            return Err(BackendError::Device(format!(
                "transposed conv with kernel {} and stride {u}: only kernel = 2·stride is supported",
                c.k
            )));
        }
        sized(
            "transposed conv weight",
            c.w.len(),
            c.cin.checked_mul(c.cout).and_then(|n| n.checked_mul(c.k)),
        )?;
        sized("transposed conv bias", c.b.len(), Some(c.cout))?;
        // Row r·cout + o: [W_{r+u}[o, :] for x[t−1] | W_r[o, :] for x[t]],
        // interleaved per input channel as im2col's rows (i·2 + j).
        let (cin, cout) = (c.cin, c.cout);
        let mut w = vec![0.0f32; u * cout * 2 * cin];
        for r in 0..u {
            for o in 0..cout {
                for i in 0..cin {
                    let row = (r * cout + o) * 2 * cin;
                    w[row + 2 * i] = c.w[(i * cout + o) * c.k + r + u];
                    w[row + 2 * i + 1] = c.w[(i * cout + o) * c.k + r];
                }
            }
        }
        Ok(CudaConvT {
            w: self.upload_f32(&w, "transposed conv weight")?,
            bias: self.upload_f32(&c.b, "transposed conv bias")?,
            cin,
            cout,
            stride: u,
            tf32: self.tf32,
        })
    }

    /// `y = op(bias + y)`: the conv epilogue after the GEMM.
    fn bias_act(&self, y: &CudaBuf, ym: Mat, bias: &CudaBuf, relu: bool) {
        let (yv, r) = (view(ym), i32::from(relu));
        launch!(
            self,
            bias_act,
            grid(ym.rows() * ym.cols()),
            y.ptr,
            yv,
            bias.ptr,
            r
        );
    }

    /// [`crate::backend::Backend::conv1d`].
    pub(super) fn enqueue_conv1d(
        &self,
        w: &CudaConv,
        x: &CudaBuf,
        xm: Mat,
        y: &mut CudaBuf,
        ym: Mat,
        out: Out,
    ) {
        let t = xm.cols();
        let depthwise = w.depthwise && xm.rows() == w.cout;
        if !self.admit(
            "conv1d",
            &[(x.len(), xm), (y.len(), ym)],
            shape::conv1d(w.cin, w.cout, depthwise, xm, ym),
        ) {
            return;
        }
        if t == 0 || ym.rows() == 0 {
            return;
        }
        let mode = match out {
            Out::Set => 0i32,
            Out::SetRelu => 1,
            Out::Add => 2,
        };
        let (k, dil) = (w.k as i32, w.dilation as i32);
        if depthwise {
            let (xv, yv) = (view(xm), view(ym));
            launch!(
                self,
                depthwise,
                grid(ym.rows() * t),
                w.w.ptr,
                w.bias.ptr,
                x.ptr,
                xv,
                y.ptr,
                yv,
                k,
                dil,
                mode
            );
            return;
        }
        let beta = if out == Out::Add { 1.0 } else { 0.0 };
        let kk = w.cin * w.k;
        let mut s = self.scratch.lock();
        let (b, ldb) = if w.k == 1 {
            (x.at(xm.off()), xm.ld())
        } else {
            let Some(cols) = self.scratch(&mut s, Slot::Cols, 4 * kk * t) else {
                return;
            };
            let xv = view(xm);
            let (padl, n) = ((w.dilation * (w.k - 1) / 2) as i32, t as i32);
            launch!(self, im2col, grid(kk * t), x.ptr, xv, cols, k, dil, padl, n);
            (cols, t)
        };
        self.gemm(
            (w.cout, t, kk),
            (w.w.ptr, kk, false),
            (b, ldb, false),
            (y.at(ym.off()), ym.ld()),
            1.0,
            beta,
            w.tf32,
        );
        drop(s);
        self.bias_act(y, ym, &w.bias, out == Out::SetRelu);
    }

    /// [`crate::backend::Backend::conv_transpose`].
    pub(super) fn enqueue_conv_transpose(
        &self,
        w: &CudaConvT,
        x: &CudaBuf,
        xm: Mat,
        y: &mut CudaBuf,
        ym: Mat,
    ) {
        let (u, l) = (w.stride, xm.cols());
        if !self.admit(
            "conv_transpose",
            &[(x.len(), xm), (y.len(), ym)],
            shape::conv_transpose(w.cin, w.cout, u, xm, ym),
        ) {
            return;
        }
        if l == 0 {
            return;
        }
        let n = l + 1;
        let mut s = self.scratch.lock();
        let Some(cols) = self.scratch(&mut s, Slot::Cols, 4 * 2 * w.cin * n) else {
            return;
        };
        let Some(ph) = self.scratch(&mut s, Slot::Phases, 4 * u * w.cout * n) else {
            return;
        };
        let xv = view(xm);
        let (two, one, padl, ni) = (2i32, 1i32, 1i32, n as i32);
        launch!(
            self,
            im2col,
            grid(2 * w.cin * n),
            x.ptr,
            xv,
            cols,
            two,
            one,
            padl,
            ni
        );
        self.gemm(
            (u * w.cout, n, 2 * w.cin),
            (w.w.ptr, 2 * w.cin, false),
            (cols, n, false),
            (ph, n),
            1.0,
            0.0,
            w.tf32,
        );
        let (yv, ui, co, li) = (view(ym), u as i32, w.cout as i32, l as i32);
        launch!(
            self,
            convt_interleave,
            grid(ym.rows() * ym.cols()),
            ph,
            w.bias.ptr,
            y.ptr,
            yv,
            ui,
            co,
            li
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_the_wrong_size_are_refused() {
        assert!(sized("w", 24, Some(24)).is_ok());
        let e = sized("conv weight", 23, Some(24)).unwrap_err();
        assert!(
            matches!(&e, BackendError::Shape(m) if m.contains("23 floats") && m.contains("24"))
        );
        assert!(sized("w", 0, 4usize.checked_mul(usize::MAX)).is_err());
    }
}
