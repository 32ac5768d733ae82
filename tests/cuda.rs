//! CUDA: every kernel compiles with NVRTC for sm_80 and sm_90 (no GPU needed:
//! `scripts/fetch-nvrtc.sh` puts libnvrtc from the PyPI wheel on the library
//! path; `VOXIDE_REQUIRE_NVRTC=1` turns a missing NVRTC into a failure, as in
//! CI), and the device errors are clear. GPU tests skip without a GPU (a
//! `SKIP` line, counted by `scripts/test.sh`) and fail with `VOXIDE_REQUIRE_GPU=1`.

mod common;

use common::required;
use voxide::backend::cuda::{compile_all, nvrtc_available, probe, KERNEL_FILES};
use voxide::{Device, Engine, Error};

const NO_NVRTC: &str =
    "NVRTC (libnvrtc.so.12) not found: scripts/fetch-nvrtc.sh + LD_LIBRARY_PATH=target/nvrtc/lib";

#[test]
fn nvrtc_compiles_every_kernel_for_sm80_and_sm90() {
    if !nvrtc_available() {
        assert!(
            !required("VOXIDE_REQUIRE_NVRTC"),
            "VOXIDE_REQUIRE_NVRTC=1 but libnvrtc.so.12 is not on the library path (run scripts/fetch-nvrtc.sh)"
        );
        common::skip(
            "cuda::nvrtc_compiles_every_kernel_for_sm80_and_sm90",
            NO_NVRTC,
        );
        return;
    }
    for arch in ["compute_80", "compute_90"] {
        let ptx = compile_all(arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert_eq!(ptx.len(), KERNEL_FILES.len());
        for (name, text) in &ptx {
            let (_, src) = KERNEL_FILES.iter().find(|(n, _)| n == name).expect("file");
            // Every `extern "C" __global__` function of the file is an entry of its PTX.
            let kernels: Vec<&str> = src
                .lines()
                .filter_map(|l| l.strip_prefix("VX_EXTERN void "))
                .filter_map(|l| l.split('(').next())
                .collect();
            assert!(!kernels.is_empty(), "{name} declares no kernels");
            for k in kernels {
                assert!(
                    text.contains(&format!(".entry {k}(")),
                    "{arch}: {name}: kernel {k} missing from the PTX"
                );
            }
            let target = arch.replace("compute_", "sm_");
            assert!(
                text.contains(&format!(".target {target}")),
                "{name}: PTX not for {target}"
            );
        }
    }
}

#[test]
fn broken_kernel_source_is_a_clear_error() {
    if !nvrtc_available() {
        assert!(
            !required("VOXIDE_REQUIRE_NVRTC"),
            "VOXIDE_REQUIRE_NVRTC=1 but libnvrtc.so.12 is not on the library path (run scripts/fetch-nvrtc.sh)"
        );
        common::skip("cuda::broken_kernel_source_is_a_clear_error", NO_NVRTC);
        return;
    }
    let src = voxide::backend::cuda::kernel_source(
        "extern \"C\" __global__ void k() { undefined_name(); }",
    );
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some("compute_80"),
        ..Default::default()
    };
    assert!(cudarc::nvrtc::compile_ptx_with_opts(src, opts).is_err());
}

#[test]
fn cuda_without_a_gpu_is_a_clear_device_error() {
    let gpu = probe(0);
    if let Ok(name) = &gpu {
        common::skip(
            "cuda::cuda_without_a_gpu_is_a_clear_device_error",
            &format!("GPU present ({name}): the no-GPU error path is not reachable here"),
        );
        return;
    }
    let e = Engine::builder()
        .voice(common::voice_path())
        .device(Device::Cuda(0))
        .build()
        .expect_err("cuda without a GPU must fail");
    match e {
        Error::Device(m) => assert!(m.contains("cuda:0") && !m.is_empty(), "{m}"),
        other => panic!("expected Error::Device, got {other:?}"),
    }
    // Auto falls back to the CPU.
    let auto = Engine::builder()
        .voice(common::voice_path())
        .device(Device::Auto)
        .build()
        .expect("auto");
    assert_eq!(auto.device_name(), "cpu");
}

/// End-to-end GPU parity through the engine (f32 SNR >= 50 dB vs the CPU path);
/// per-op and graph checks are in `tests/cuda_ops.rs`.
#[test]
fn gpu_end_to_end_parity_with_cpu() {
    match probe(0) {
        Err(e) => {
            assert!(
                !required("VOXIDE_REQUIRE_GPU"),
                "VOXIDE_REQUIRE_GPU=1 but no usable GPU: {e}"
            );
            common::skip(
                "cuda::gpu_end_to_end_parity_with_cpu",
                &format!("no usable GPU ({e})"),
            );
        }
        Ok(name) => {
            let gpu = Engine::builder()
                .voice(common::voice_path())
                .device(Device::Cuda(0))
                .build()
                .unwrap_or_else(|e| panic!("{name}: the CUDA engine does not start: {e}"));
            let cpu = Engine::builder()
                .voice(common::voice_path())
                .device(Device::Cpu)
                .build()
                .expect("cpu engine");
            let text = "The quick brown fox jumps over the lazy dog.";
            let a = cpu
                .speak(text, None, cpu.acquire_permit().expect("permit"))
                .expect("cpu");
            let b = gpu
                .speak(text, None, gpu.acquire_permit().expect("permit"))
                .expect("gpu");
            let snr = common::snr_db(a.samples_f32(), b.samples_f32());
            assert!(snr >= 50.0, "GPU vs CPU SNR {snr:.1} dB");
        }
    }
}
