//! cuBLAS: the backend's handle (on its stream, with a workspace of its own)
//! and the row-major GEMM every conv, transposed conv and attention head
//! runs on.

use super::module::dev_err;
use crate::error::BackendError;
use cudarc::cublas::{result as blas, sys as bsys};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use std::sync::Arc;

/// Whether the cuBLAS library can be loaded (from the library path).
pub(super) fn available() -> bool {
    // SAFETY: only tries to dlopen the library under its known names.
    std::panic::catch_unwind(|| unsafe { bsys::is_culib_present() }).unwrap_or(false)
}

/// A cuBLAS handle of our own (cudarc's wrapper panics if destroying it fails).
struct Handle(bsys::cublasHandle_t);

// SAFETY: the handle is used under the backend's mutex only.
unsafe impl Send for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle was created by cublasCreate and is destroyed once.
        let _ = unsafe { blas::destroy_handle(self.0) };
    }
}

/// The backend's cuBLAS: a handle bound to its stream, and the handle's
/// workspace (freed after the handle is destroyed: fields drop in order).
pub(super) struct Blas {
    handle: Handle,
    _workspace: CudaSlice<u8>,
}

impl Blas {
    /// A handle on `stream` with a workspace of its own, so cuBLAS never
    /// allocates while a graph records.
    ///
    /// # Errors
    /// [`BackendError::Device`] naming the step that failed.
    pub(super) fn new(stream: &Arc<CudaStream>) -> Result<Self, BackendError> {
        let handle = Handle(blas::create_handle().map_err(|e| dev_err("cuBLAS", e))?);
        // SAFETY: a live handle and our stream.
        unsafe { blas::set_stream(handle.0, stream.cu_stream() as _) }
            .map_err(|e| dev_err("cuBLAS stream", e))?;
        const WORKSPACE: usize = 32 << 20;
        let workspace = stream
            .alloc_zeros::<u8>(WORKSPACE)
            .map_err(|e| dev_err("cuBLAS workspace", e))?;
        let (wp, _) = workspace.device_ptr(stream);
        // SAFETY: the handle is live; the workspace outlives it (same struct, dropped after).
        unsafe {
            bsys::cublasSetWorkspace_v2(handle.0, wp as *mut _, WORKSPACE)
                .result()
                .map_err(|e| dev_err("cuBLAS workspace", e))?;
        }
        Ok(Blas {
            handle,
            _workspace: workspace,
        })
    }

    /// Row-major `C[m, n] = alpha · op(A) · op(B) + beta · C` on the stream,
    /// where `op(X)` is `X` stored row-major with row stride `ldx`, or its
    /// transpose; TF32 tensor cores when `tf32`. Nothing to do when a
    /// dimension is 0.
    ///
    /// # Errors
    /// cuBLAS's status.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gemm(
        &self,
        (m, n, k): (usize, usize, usize),
        (a, lda, ta): (u64, usize, bool),
        (b, ldb, tb): (u64, usize, bool),
        (c, ldc): (u64, usize),
        alpha: f32,
        beta: f32,
        tf32: bool,
    ) -> Result<(), blas::CublasError> {
        if m == 0 || n == 0 || k == 0 {
            return Ok(());
        }
        let op = |t: bool| {
            if t {
                bsys::cublasOperation_t::CUBLAS_OP_T
            } else {
                bsys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let compute = if tf32 {
            bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
        } else {
            bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F
        };
        let f32t = bsys::cudaDataType::CUDA_R_32F;
        // Column-major view of row-major storage: C^T = op(B)^T · op(A)^T.
        // SAFETY: the addresses are live device buffers holding the operands
        // with the given strides (callers pass views inside their buffers).
        unsafe {
            blas::gemm_ex(
                self.handle.0,
                op(tb),
                op(ta),
                n as i32,
                m as i32,
                k as i32,
                (&alpha as *const f32).cast(),
                b as usize as *const std::ffi::c_void,
                f32t,
                ldb as i32,
                a as usize as *const std::ffi::c_void,
                f32t,
                lda as i32,
                (&beta as *const f32).cast(),
                c as usize as *mut std::ffi::c_void,
                f32t,
                ldc as i32,
                compute,
                bsys::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        }
    }
}
