//! voxide-cuda-emu: the CUDA driver, cuBLAS and NVRTC functions that voxide's
//! CUDA backend calls, emulated on the CPU, so the backend runs end to end
//! without a GPU. One shared library answers to `libcuda.so`, `libcublas.so`
//! and `libnvrtc.so` (symbolic links made by `scripts/cuda-emu.sh`); the
//! dynamic loader maps it once, so the three share one emulated device.
//!
//! - `driver`: contexts, streams (run in order, at once), stream capture into
//!   graphs and their replay, memory calls, module loading and launches.
//! - `mem`: device allocations between guard pages, NaN-filled when made,
//!   poisoned (unmapped for access) when freed; the SIGSEGV handler that names
//!   the kernel and argument of a stray access.
//! - `exec`: kernels run on host threads, blocks with barriers as fibers.
//! - `hostcc`: kernel sources compiled as C++ for the host (g++), with a
//!   trampoline per `__global__` function; cached by source hash.
//! - `nvrtc`: the real NVRTC (for real PTX and compile errors) plus `hostcc`.
//! - `blas`: `cublasGemmEx`: its checks, queued on a stream; `gemm` runs it
//!   with cuBLAS's column-major semantics.
//! - `fault`: failures injected by environment variable.
//!
//! Nothing here is a GPU: the device names itself "voxide emulated CUDA
//! device (CPU)", so no figure measured on it passes for a GPU's.
#![allow(non_snake_case, clippy::missing_safety_doc)]

pub(crate) use cudarc::cublas::sys as cb;
pub(crate) use cudarc::driver::sys as cu;
pub(crate) use cudarc::nvrtc::sys as nv;

mod blas;
mod driver;
mod exec;
mod fault;
mod gemm;
mod hostcc;
mod mem;
mod nvrtc;
mod report;
#[cfg(test)]
mod tests;

/// The emulated device's name, as `cuDeviceGetName` gives it.
pub const DEVICE_NAME: &str = "voxide emulated CUDA device (CPU)";
