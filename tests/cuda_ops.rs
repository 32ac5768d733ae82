//! Every CUDA op against its CPU twin, the whole model on the GPU against the
//! CPU, and graph replay against eager launches. Without a usable GPU each test
//! skips (a `SKIP` line, counted by `scripts/test.sh`); with
//! `VOXIDE_REQUIRE_GPU=1` it fails instead.

mod common;

use voxide::backend::cpu::CpuBackend;
use voxide::backend::cuda::CudaBackend;
use voxide::backend::{Backend, Executor, Mat, Out};
use voxide::backend::{Conv, ConvTranspose};
use voxide::model::{Noise, SynthOptions, Vits};
use voxide::voice::Voice;
use voxide::Precision;

/// The CUDA backend, or `None` after recording `test` as skipped.
fn gpu(test: &str, precision: Precision, graphs: bool) -> Option<CudaBackend> {
    match CudaBackend::with_options(0, precision, graphs) {
        Ok(b) => Some(b),
        Err(e) => {
            assert!(
                !common::required("VOXIDE_REQUIRE_GPU"),
                "VOXIDE_REQUIRE_GPU=1 but the CUDA backend does not start: {e}"
            );
            common::skip(test, &format!("no usable GPU ({e})"));
            None
        }
    }
}

/// Deterministic values in [-1, 1).
fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn up<B: Backend>(be: &B, data: &[f32]) -> B::Buf {
    let mut b = be.alloc(data.len(), "test").expect("alloc");
    be.write(&mut b, Mat::new(1, data.len()), data);
    b
}

fn down<B: Backend>(be: &B, b: &B::Buf, m: Mat) -> Vec<f32> {
    let mut out = vec![0.0; m.rows() * m.cols()];
    be.read(b, m, &mut out);
    out
}

fn conv(cout: usize, cin: usize, k: usize, dilation: usize, seed: u64) -> Conv {
    Conv {
        w: vals(cout * cin * k, seed).iter().map(|v| v * 0.2).collect(),
        b: Some(vals(cout, seed + 1)),
        cout,
        cin,
        k,
        dilation,
    }
}

/// Every op on deterministic inputs; `(name, output)` pairs.
fn run_ops<B: Backend>(be: &B) -> Vec<(&'static str, Vec<f32>)> {
    let mut out = Vec::new();
    let (c, t) = (48usize, 37usize);
    // A strided view: columns 3..3+t of a [c, t+9] buffer.
    let xm = Mat::new(c, t + 9).sub_cols(3, 3 + t);
    let x = up(be, &vals(c * (t + 9), 1));
    let dense = Mat::new(c, t);
    let mut y = up(be, &vals(c * t, 2));
    for (name, cv, mode) in [
        ("conv1d k1 set", conv(c, c, 1, 1, 10), Out::Set),
        ("conv1d k3 d2 relu", conv(c, c, 3, 2, 11), Out::SetRelu),
        ("conv1d k5 add", conv(c, c, 5, 1, 12), Out::Add),
        ("conv1d k11 d5 add", conv(c, c, 11, 5, 13), Out::Add),
        ("depthwise k3 d3", conv(c, 1, 3, 3, 14), Out::Set),
    ] {
        let w = be.prepare_conv(&cv).expect("conv");
        be.conv1d(&w, &x, xm, &mut y, dense, mode);
        out.push((name, down(be, &y, dense)));
    }
    for (u, cout) in [(8usize, 24usize), (2, 16), (5, 8)] {
        let ct = ConvTranspose {
            w: vals(c * cout * 2 * u, 20 + u as u64)
                .iter()
                .map(|v| v * 0.2)
                .collect(),
            b: vals(cout, 30),
            cin: c,
            cout,
            k: 2 * u,
            stride: u,
        };
        let w = be.prepare_conv_t(&ct).expect("convt");
        let ym = Mat::new(cout, u * t);
        let mut yt = be.alloc(cout * u * t, "t").expect("alloc");
        be.conv_transpose(&w, &x, xm, &mut yt, ym);
        out.push(("conv_transpose", down(be, &yt, ym)));
    }
    // Attention: 2 heads of 24 over qkv [3c, t], window 4.
    let qkv = up(be, &vals(3 * c * t, 40));
    let d = c / 2;
    let rel_k = be.prepare_vector(&vals(9 * d, 41)).expect("v");
    let rel_v = be.prepare_vector(&vals(9 * d, 42)).expect("v");
    let qm = Mat::new(3 * c, t);
    let mut att = be.alloc(c * t, "att").expect("alloc");
    be.rel_attention(
        &qkv,
        qm.sub_rows(0, c),
        qm.sub_rows(c, 2 * c),
        qm.sub_rows(2 * c, 3 * c),
        &rel_k,
        &rel_v,
        2,
        &mut att,
        dense,
    );
    out.push(("rel_attention", down(be, &att, dense)));
    let gamma = be.prepare_vector(&vals(c, 50)).expect("v");
    let beta = be.prepare_vector(&vals(c, 51)).expect("v");
    let r = up(be, &vals(c * t, 52));
    let mut z = up(be, &vals(c * t, 53));
    be.add_layer_norm(&mut z, dense, &r, dense, &gamma, &beta);
    out.push(("add_layer_norm", down(be, &z, dense)));
    be.layer_norm_gelu(&mut z, dense, &gamma, &beta);
    out.push(("layer_norm_gelu", down(be, &z, dense)));
    be.axpy(-0.5, &x, xm, &mut z, dense);
    out.push(("axpy", down(be, &z, dense)));
    be.scale(1.5, &mut z, dense);
    out.push(("scale", down(be, &z, dense)));
    // A speaker's conditioning: rows 2c.. of a [3, c] table, on a strided view.
    let table = be.prepare_vector(&vals(3 * c, 54)).expect("v");
    let mut w = up(be, &vals(c * (t + 9), 55));
    be.add_rows(&table, 2 * c, &mut w, xm);
    out.push(("add_rows", down(be, &w, Mat::new(c, t + 9))));
    be.copy(&x, xm, &mut z, dense);
    out.push(("copy", down(be, &z, dense)));
    be.flip_rows(&x, xm, &mut z, dense);
    out.push(("flip_rows", down(be, &z, dense)));
    let half = Mat::new(c / 2, t);
    be.gate_tanh_sigmoid(&x, xm, &mut z, half);
    out.push(("gate_tanh_sigmoid", down(be, &z, half)));
    be.leaky_relu(0.1, &x, xm, &mut z, dense);
    out.push(("leaky_relu", down(be, &z, dense)));
    be.tanh(&mut z, dense);
    out.push(("tanh", down(be, &z, dense)));
    // Spline: 10 bins, θ [3·10 − 1, t], z inside and outside the tails.
    let bins = 10;
    let thm = Mat::new(3 * bins - 1, t);
    let theta = up(be, &vals(thm.rows() * t, 60));
    let zs: Vec<f32> = vals(t, 61).iter().map(|v| v * 6.0).collect();
    let mut zb = up(be, &zs);
    be.spline_inverse(&mut zb, Mat::new(1, t), &theta, thm, bins, 13.856_406);
    out.push(("spline_inverse", down(be, &zb, Mat::new(1, t))));
    let table = be.prepare_vector(&vals(20 * c, 70)).expect("v");
    let ids: Vec<i64> = (0..t as i64).map(|i| (i * 7) % 20).collect();
    be.embed(&table, &ids, 13.8, &mut z, dense);
    out.push(("embed", down(be, &z, dense)));
    let ml = up(be, &vals(2 * c * 5, 80));
    let owner: Vec<u32> = (0..t as u32)
        .map(|f| if f == t as u32 - 1 { u32::MAX } else { f % 5 })
        .collect();
    be.expand_prior(
        &ml,
        Mat::new(2 * c, 5),
        &owner,
        &vals(c * t, 81),
        0.667,
        &mut z,
        dense,
    );
    out.push(("expand_prior", down(be, &z, dense)));
    be.zero_cols(&mut z, dense, &[(2, 5), (30, t + 4)]);
    out.push(("zero_cols", down(be, &z, dense)));
    be.check().expect("device errors");
    out
}

#[test]
fn every_op_matches_its_cpu_twin() {
    let Some(g) = gpu(
        "cuda_ops::every_op_matches_its_cpu_twin",
        Precision::F32,
        false,
    ) else {
        return;
    };
    let cpu = CpuBackend::new(1).expect("cpu");
    let want = run_ops(&cpu);
    let got = g.install(|| run_ops(&g));
    let mut bad = Vec::new();
    for ((name, a), (_, b)) in want.iter().zip(&got) {
        assert_eq!(a.len(), b.len(), "{name}: length");
        let scale = a.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let err = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale;
        eprintln!("{name:>20}: max relative error {err:.2e}");
        if err.is_nan() || err > 2e-4 {
            bad.push(format!("{name}: {err:.2e}"));
        }
    }
    assert!(bad.is_empty(), "ops off their CPU twins: {bad:?}");
}

fn synth<B: Backend>(be: &B, voice: &Voice, ids: &[i64]) -> Vec<f32> {
    be.install(|| {
        let m = Vits::new(be, &voice.weights).expect("upload");
        let opts = SynthOptions {
            noise: Noise::Seeded(7),
            ..SynthOptions::default()
        };
        // Twice: the second run replays whatever the first recorded.
        let a = m.synthesize(be, ids, &opts).expect("synthesize");
        let b = m.synthesize(be, ids, &opts).expect("synthesize again");
        assert_eq!(a, b, "the same request twice gives different samples");
        a
    })
}

#[test]
fn model_on_gpu_matches_cpu_and_graphs_match_eager() {
    let Some(eager) = gpu(
        "cuda_ops::model_on_gpu_matches_cpu_and_graphs_match_eager",
        Precision::F32,
        false,
    ) else {
        return;
    };
    let voice = Voice::load(&common::voice_path(), None).expect("voice");
    let engine = voxide::Engine::builder()
        .voice(common::voice_path())
        .device(voxide::Device::Cpu)
        .build()
        .expect("cpu engine");
    let ids = engine
        .sentence_ids(
            "The quick brown fox jumps over the lazy dog.",
            None,
            voxide::Input::Text,
        )
        .expect("ids")
        .remove(0);
    let cpu = CpuBackend::new(0).expect("cpu");
    let want = synth(&cpu, &voice, &ids);
    let got = synth(&eager, &voice, &ids);
    let snr = common::snr_db(&want, &got);
    eprintln!("GPU eager f32 vs CPU: SNR {snr:.1} dB");
    assert!(snr >= 50.0, "GPU f32 vs CPU SNR {snr:.1} dB");

    let graphs = CudaBackend::with_options(0, Precision::F32, true)
        .unwrap_or_else(|e| panic!("second context: {e}"));
    let replayed = synth(&graphs, &voice, &ids);
    let (rec, rep) = graphs.graph_counts();
    eprintln!("graphs: {rec} recorded, {rep} replayed");
    assert!(rec > 0 && rep > 0, "no graph was recorded or replayed");
    let snr = common::snr_db(&got, &replayed);
    eprintln!("graph replay vs eager: SNR {snr:.1} dB");
    assert_eq!(got, replayed, "graph replay differs from eager launches");

    let low = CudaBackend::with_options(0, Precision::Bf16, true)
        .unwrap_or_else(|e| panic!("third context: {e}"));
    let reduced = synth(&low, &voice, &ids);
    let snr = common::snr_db(&want, &reduced);
    eprintln!("GPU TF32 vs CPU f32: SNR {snr:.1} dB");
    assert!(snr >= 30.0, "reduced precision SNR {snr:.1} dB");
}
