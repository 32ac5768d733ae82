//! The CUDA side of the backend: kernel sources, NVRTC compilation and device
//! discovery, all through `cudarc` with dynamic loading (no CUDA needed to
//! build or to run on the CPU).
//!
//! Status: the kernels of every non-GEMM op (element-wise, LayerNorm, im2col
//! and epilogues, depthwise and transposed-conv interleave, relative attention
//! pieces, the spline inverse) are written as `.cu` files under `kernels/`,
//! each with its CPU twin named in its header, and compile with NVRTC for
//! sm_80 and sm_90 (`tests/cuda.rs`, in CI with the PyPI NVRTC wheel). The
//! `Backend` implementation that launches them (cuBLAS GEMMs, preallocated
//! buffers, graph capture) is not written yet: `Device::Cuda` reports a clear
//! error naming what is missing, and `Device::Auto` uses the CPU.

use crate::error::BackendError;

/// Shared definitions, prepended to every kernel file.
const COMMON: &str = include_str!("kernels/common.cuh");

/// Every kernel file: `(name, source)`.
pub const KERNEL_FILES: &[(&str, &str)] = &[
    ("elementwise.cu", include_str!("kernels/elementwise.cu")),
    ("norm.cu", include_str!("kernels/norm.cu")),
    ("conv.cu", include_str!("kernels/conv.cu")),
    ("attention.cu", include_str!("kernels/attention.cu")),
    ("spline.cu", include_str!("kernels/spline.cu")),
];

/// The compilable text of a kernel file: the shared header inlined (NVRTC
/// sees no file system).
pub fn kernel_source(body: &str) -> String {
    let common = COMMON.replace("#pragma once", "");
    format!("{common}\n{}", body.replace("#include \"common.cuh\"", ""))
}

/// Whether the NVRTC library can be loaded (from the library path).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the library under its known names.
    std::panic::catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false)
}

/// Compile every kernel file to PTX for a virtual architecture such as
/// `compute_80` or `compute_90`.
///
/// # Errors
/// [`BackendError::Device`] when NVRTC cannot be loaded, or with the compiler
/// log of the first file that fails.
pub fn compile_all(arch: &'static str) -> Result<Vec<(&'static str, String)>, BackendError> {
    if !nvrtc_available() {
        return Err(BackendError::Device(
            "NVRTC (libnvrtc.so.12) not found on the library path".into(),
        ));
    }
    let mut out = Vec::new();
    for (name, body) in KERNEL_FILES {
        let opts = cudarc::nvrtc::CompileOptions {
            arch: Some(arch),
            name: Some((*name).to_string()),
            options: vec!["--std=c++14".into()],
            ..Default::default()
        };
        let src = kernel_source(body);
        let ptx = std::panic::catch_unwind(|| cudarc::nvrtc::compile_ptx_with_opts(src, opts))
            .map_err(|_| BackendError::Device(format!("NVRTC panicked compiling {name}")))?
            .map_err(|e| {
                BackendError::Device(format!("NVRTC failed on {name} for {arch}: {e:?}"))
            })?;
        out.push((*name, ptx.to_src()));
    }
    Ok(out)
}

/// Find CUDA device `ordinal`: its name, or why it is not usable (no driver
/// library, no device, driver error).
///
/// # Errors
/// [`BackendError::Device`] naming the cause.
pub fn probe(ordinal: usize) -> Result<String, BackendError> {
    // SAFETY: only tries to dlopen the driver library under its known names.
    let present = std::panic::catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() })
        .unwrap_or(false);
    if !present {
        return Err(BackendError::Device(
            "no CUDA driver (libcuda.so.1 not found)".into(),
        ));
    }
    let ctx = std::panic::catch_unwind(|| cudarc::driver::CudaContext::new(ordinal))
        .map_err(|_| BackendError::Device("the CUDA driver panicked at start".into()))?
        .map_err(|e| BackendError::Device(format!("cuda:{ordinal} is not usable: {e:?}")))?;
    ctx.name().map_err(|e| {
        BackendError::Device(format!(
            "cuda:{ordinal}: cannot read the device name: {e:?}"
        ))
    })
}
