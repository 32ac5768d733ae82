//! The startup self-check that `Device::Auto` runs before it trusts a GPU: a
//! few ops on small data (a dilated conv through im2col + cuBLAS + the bias
//! epilogue, a transposed conv, relative attention with its block-reduced
//! softmax, LayerNorm + GELU with its barriers, an element-wise op) against
//! their CPU twins. A GPU whose driver, cuBLAS or kernels misbehave is then
//! left alone and the engine runs on the CPU, saying why.

use super::context::CudaBackend;
use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, Conv, ConvTranspose, Executor, Mat, Out};

/// Deterministic values in [-1, 1).
fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The ops of the check on backend `be`: `(op, output)` pairs.
fn run<B: Backend>(be: &B) -> Result<Vec<(&'static str, Vec<f32>)>, String> {
    let e = |e: crate::error::BackendError| e.to_string();
    let (c, t) = (16usize, 23usize);
    let m = Mat::new(c, t);
    let up = |data: &[f32]| -> Result<B::Buf, String> {
        let mut b = be.alloc(data.len(), "self-check").map_err(e)?;
        be.write(&mut b, Mat::new(1, data.len()), data);
        Ok(b)
    };
    let down = |b: &B::Buf, m: Mat| {
        let mut out = vec![0.0; m.len()];
        be.read(b, m, &mut out);
        out
    };
    let mut out = Vec::new();
    let x = up(&vals(c * t, 1))?;
    let mut y = up(&vals(c * t, 2))?;
    let conv = Conv {
        w: vals(c * c * 3, 3).iter().map(|v| v * 0.3).collect(),
        b: Some(vals(c, 4)),
        cout: c,
        cin: c,
        k: 3,
        dilation: 2,
    };
    let w = be.prepare_conv(&conv).map_err(e)?;
    be.conv1d(&w, &x, m, &mut y, m, Out::Add);
    out.push(("conv1d", down(&y, m)));
    let ct = ConvTranspose {
        w: vals(c * 8 * 4, 5).iter().map(|v| v * 0.3).collect(),
        b: vals(8, 6),
        cin: c,
        cout: 8,
        k: 4,
        stride: 2,
    };
    let wt = be.prepare_conv_t(&ct).map_err(e)?;
    let ym = Mat::new(8, 2 * t);
    let mut yt = be.alloc(ym.len(), "self-check").map_err(e)?;
    be.conv_transpose(&wt, &x, m, &mut yt, ym);
    out.push(("conv_transpose", down(&yt, ym)));
    let qkv = up(&vals(3 * c * t, 7))?;
    let d = c / 2;
    let rel_k = be.prepare_vector(&vals(5 * d, 8)).map_err(e)?;
    let rel_v = be.prepare_vector(&vals(5 * d, 9)).map_err(e)?;
    let qm = Mat::new(3 * c, t);
    let mut att = be.alloc(c * t, "self-check").map_err(e)?;
    be.rel_attention(
        &qkv,
        qm.sub_rows(0, c),
        qm.sub_rows(c, 2 * c),
        qm.sub_rows(2 * c, 3 * c),
        &rel_k,
        &rel_v,
        2,
        &mut att,
        m,
    );
    out.push(("rel_attention", down(&att, m)));
    let gamma = be.prepare_vector(&vals(c, 10)).map_err(e)?;
    let beta = be.prepare_vector(&vals(c, 11)).map_err(e)?;
    be.layer_norm_gelu(&mut att, m, &gamma, &beta);
    out.push(("layer_norm_gelu", down(&att, m)));
    be.leaky_relu(0.1, &att, m, &mut y, m);
    out.push(("leaky_relu", down(&y, m)));
    be.check().map_err(e)?;
    Ok(out)
}

impl CudaBackend {
    /// Run the self-check: `Ok` when every op matches its CPU twin (max error
    /// relative to the output's scale within 1e-3, no NaN), else what
    /// differed or failed. Takes a few milliseconds on a GPU.
    ///
    /// # Errors
    /// The first op off its twin, or the device error that stopped the check.
    pub fn self_check(&self) -> Result<(), String> {
        let cpu = CpuBackend::new(1).map_err(|e| e.to_string())?;
        let want = run(&cpu)?;
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.install(|| run(self))
        }))
        .map_err(|p| format!("panicked: {}", crate::error::panic_message(p.as_ref())))??;
        for ((op, a), (_, b)) in want.iter().zip(&got) {
            let scale = a.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let err = a
                .iter()
                .zip(b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
                / scale;
            if err.is_nan() || err > 1e-3 || a.len() != b.len() {
                return Err(format!(
                    "self-check: {op} differs from the CPU (relative error {err:.2e})"
                ));
            }
        }
        Ok(())
    }
}

/// Why the last `Device::Auto` choice in this process went the way it did.
static AUTO_CHOICE: parking_lot::Mutex<Option<String>> = parking_lot::Mutex::new(None);

/// Keep (and with `VOXIDE_LOG=1`, print to stderr) why `Device::Auto` chose
/// its device.
pub fn note_auto_choice(why: String) {
    if std::env::var("VOXIDE_LOG").is_ok_and(|v| v == "1") {
        eprintln!("voxide: device auto: {why}");
    }
    *AUTO_CHOICE.lock() = Some(why);
}

/// Why the last `Device::Auto` engine of this process runs where it does
/// (e.g. "CPU: no CUDA driver (libcuda.so.1 not found)"), if one was built.
pub fn auto_choice() -> Option<String> {
    AUTO_CHOICE.lock().clone()
}
