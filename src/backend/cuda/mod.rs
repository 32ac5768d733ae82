//! The CUDA side of the backend: kernel sources, NVRTC compilation and device
//! discovery, all through `cudarc` with dynamic loading (no CUDA needed to
//! build or to run on the CPU).
//!
//! - `kernels/*.cu`: every non-GEMM op (element-wise, LayerNorm, im2col and
//!   the conv epilogue, depthwise and transposed-conv interleave, relative
//!   attention pieces, the spline inverse, index-based prior expansion), each
//!   with its CPU twin named in its header; compiled with NVRTC at engine start
//!   for the device's architecture, once per process.
//! - [`CudaBackend`] (`device.rs`): the `Backend` trait on one stream; convs as
//!   im2col + cuBLAS GEMM (TF32 tensor cores for the decoder in reduced
//!   precision), attention as two GEMMs per head around the kernels.
//! - `graph.rs`: recorded CUDA graphs of the flow and decoder per (shape,
//!   arena) key, replayed afterwards; `CudaBackend::with_options(.., false)`
//!   turns them off (`graph::graphs_enabled` parses `VOXIDE_CUDA_GRAPHS` for
//!   the engine's settings; the backend reads no environment).
//!
//! Tests: `tests/cuda.rs` compiles every kernel for sm_80 and sm_90 (in CI,
//! with the PyPI NVRTC wheel); `tests/cuda_ops.rs` checks every op against its
//! CPU twin, the model against the CPU, and graph replay against eager
//! launches on a GPU (skipped without one, required with `VOXIDE_REQUIRE_GPU=1`).

mod device;
pub mod graph;

pub use device::{arch_for, CudaBackend, CudaBuf, CudaConv, CudaConvT};

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

/// Names of the kernels (`VX_EXTERN` functions) a kernel file defines.
pub fn kernel_names(file: &str) -> Vec<String> {
    let Some((_, body)) = KERNEL_FILES.iter().find(|(n, _)| *n == file) else {
        return Vec::new();
    };
    body.split("VX_EXTERN")
        .skip(1)
        .filter_map(|rest| {
            let head = rest.split('(').next()?;
            let name = head.split_whitespace().last()?;
            name.starts_with("vx_").then(|| name.to_string())
        })
        .collect()
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
