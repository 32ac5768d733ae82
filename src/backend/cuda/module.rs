//! The kernels as the device runs them: the `kernels/*.cu` sources, their
//! NVRTC compilation to PTX per virtual architecture (once per process), the
//! loaded [`Kernels`] table, and the launch helpers (the C `View`, grid sizes,
//! the `launch!` macro).

use crate::backend::Mat;
use crate::error::BackendError;
use cudarc::driver::{CudaContext, CudaFunction, DeviceRepr, LaunchConfig};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

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

/// The CUDA libraries as this OS names them, for messages (cudarc loads them
/// at run time under each OS's names: `dlopen` on Linux, `LoadLibrary` on
/// Windows).
#[cfg(not(windows))]
pub(crate) const DRIVER_LIB: &str = "libcuda.so.1";
#[cfg(not(windows))]
pub(crate) const CUBLAS_LIB: &str = "libcublas.so.12 or libcublas.so";
#[cfg(not(windows))]
pub(crate) const NVRTC_LIB: &str = "libnvrtc.so.12";
#[cfg(windows)]
pub(crate) const DRIVER_LIB: &str = "nvcuda.dll";
#[cfg(windows)]
pub(crate) const CUBLAS_LIB: &str = "cublas64_12.dll";
#[cfg(windows)]
pub(crate) const NVRTC_LIB: &str = "nvrtc64_120_0.dll";

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
            format!(
                "NVRTC ({}) not found on the library path",
                NVRTC_LIB
            ),
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

/// `(file, PTX)` of every kernel file.
type Ptx = Vec<(&'static str, String)>;

/// PTX per virtual architecture, compiled once per process.
fn ptx_for(arch: &'static str) -> Result<Ptx, BackendError> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Ptx>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(p) = cache.lock().get(arch) {
        return Ok(p.clone());
    }
    let ptx = compile_all(arch)?;
    cache.lock().insert(arch, ptx.clone());
    Ok(ptx)
}

/// The virtual architecture to compile for: the device's, capped at what the
/// NVRTC of CUDA 12 knows (PTX JIT-compiles forward to newer GPUs).
pub fn arch_for(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (9, _) => "compute_90",
        (m, _) if m >= 10 => "compute_90",
        (8, 9) => "compute_89",
        (8, 6) | (8, 7) | (8, 8) => "compute_86",
        (8, _) => "compute_80",
        (7, 5) => "compute_75",
        _ => "compute_70",
    }
}

/// A device error naming the step that failed.
pub(super) fn dev_err(what: &str, e: impl std::fmt::Debug) -> BackendError {
    BackendError::Device(format!("{what}: {e:?}"))
}

/// Every kernel the backend launches, grouped by the file that defines it.
pub(super) struct Kernels {
    // elementwise.cu
    pub(super) leaky_relu: CudaFunction,
    pub(super) gate_tanh_sigmoid: CudaFunction,
    pub(super) tanh: CudaFunction,
    pub(super) axpy: CudaFunction,
    pub(super) scale: CudaFunction,
    pub(super) copy: CudaFunction,
    pub(super) flip_rows: CudaFunction,
    pub(super) embed: CudaFunction,
    pub(super) expand_prior: CudaFunction,
    // norm.cu
    pub(super) layer_norm: CudaFunction,
    // conv.cu
    pub(super) im2col: CudaFunction,
    pub(super) bias_act: CudaFunction,
    pub(super) depthwise: CudaFunction,
    pub(super) convt_interleave: CudaFunction,
    // attention.cu
    pub(super) rel_logits: CudaFunction,
    pub(super) softmax_rows: CudaFunction,
    pub(super) rel_values: CudaFunction,
    // spline.cu
    pub(super) rqs_inverse: CudaFunction,
    // elementwise.cu
    pub(super) zero_cols: CudaFunction,
}

impl Kernels {
    /// Compile (once per process) and load every kernel file for `arch`
    /// into `ctx`, and look up every kernel the backend launches.
    ///
    /// # Errors
    /// [`BackendError::Device`] naming the file or kernel that failed.
    pub(super) fn load(ctx: &Arc<CudaContext>, arch: &'static str) -> Result<Self, BackendError> {
        let mut funcs: HashMap<String, CudaFunction> = HashMap::new();
        for (file, ptx) in ptx_for(arch)? {
            let module = ctx
                .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                .map_err(|e| dev_err(&format!("loading {file} ({arch})"), e))?;
            for name in kernel_names(file) {
                let f = module
                    .load_function(&name)
                    .map_err(|e| dev_err(&format!("kernel {name}"), e))?;
                funcs.insert(name, f);
            }
        }
        let mut take = |n: &str| {
            funcs
                .remove(n)
                .ok_or_else(|| BackendError::Device(format!("kernel {n} missing from the PTX")))
        };
        Ok(Kernels {
            leaky_relu: take("vx_leaky_relu")?,
            gate_tanh_sigmoid: take("vx_gate_tanh_sigmoid")?,
            tanh: take("vx_tanh")?,
            axpy: take("vx_axpy")?,
            scale: take("vx_scale")?,
            copy: take("vx_copy")?,
            flip_rows: take("vx_flip_rows")?,
            embed: take("vx_embed")?,
            expand_prior: take("vx_expand_prior")?,
            layer_norm: take("vx_layer_norm")?,
            im2col: take("vx_im2col")?,
            bias_act: take("vx_bias_act")?,
            depthwise: take("vx_depthwise")?,
            convt_interleave: take("vx_convt_interleave")?,
            rel_logits: take("vx_rel_logits")?,
            softmax_rows: take("vx_softmax_rows")?,
            rel_values: take("vx_rel_values")?,
            rqs_inverse: take("vx_rqs_inverse")?,
            zero_cols: take("vx_zero_cols")?,
        })
    }
}

/// A view as the kernels see it (`struct View` in `common.cuh`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(super) struct View {
    off: i64,
    rows: i32,
    cols: i32,
    ld: i32,
}

// SAFETY: a plain `repr(C)` struct of integers, laid out as the C `View`.
unsafe impl DeviceRepr for View {}

/// The kernels' view of `m` (callers admitted its sizes with
/// `CudaBackend::admit`, which checks that they fit an `int`).
pub(super) fn view(m: Mat) -> View {
    View {
        off: m.off() as i64,
        rows: m.rows() as i32,
        cols: m.cols() as i32,
        ld: m.ld() as i32,
    }
}

/// Blocks for a grid-stride loop over `n` elements (256 threads each).
pub(super) fn grid(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).clamp(1, 1 << 20) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Threads per block for the per-column reductions: a power of two, 32..=256.
pub(super) fn reduce_block(rows: usize) -> u32 {
    rows.clamp(32, 256).next_power_of_two().min(256) as u32
}

/// Launch kernel `$f` of the backend's [`Kernels`] on its stream; a failure
/// is recorded under the kernel's name. Arguments must be places (locals,
/// fields), not temporaries: the launch reads them through pointers.
macro_rules! launch {
    ($self:ident, $f:ident, $cfg:expr, $($a:expr),+ $(,)?) => {{
        use ::cudarc::driver::PushKernelArg as _;
        let mut b = $self.stream.launch_builder(&$self.k.$f);
        $( b.arg(&$a); )+
        // SAFETY: the arguments match the kernel's parameter list in number,
        // order and type (`float`=f32, `int`=i32, `long long`=i64, pointers =
        // u64 device addresses, `View`=View); every view lies inside its buffer
        // (checked by `CudaBackend::admit` before the launch).
        let r = unsafe { b.launch($cfg) };
        $self.note(stringify!($f), r);
    }};
}
pub(super) use launch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_matches_the_c_layout() {
        // struct View { long long off; int rows; int cols; int ld; } : 8 + 3·4, padded to 24.
        assert_eq!(std::mem::size_of::<View>(), 24);
        assert_eq!(std::mem::align_of::<View>(), 8);
        let v = view(Mat::new(3, 5).sub_cols(1, 4));
        assert_eq!((v.off, v.rows, v.cols, v.ld), (1, 3, 3, 5));
    }

    #[test]
    fn arch_choice() {
        assert_eq!(arch_for(9, 0), "compute_90");
        assert_eq!(arch_for(8, 0), "compute_80");
        assert_eq!(arch_for(8, 6), "compute_86");
        assert_eq!(arch_for(12, 0), "compute_90");
        assert_eq!(arch_for(7, 0), "compute_70");
    }

    #[test]
    fn launch_geometry() {
        assert_eq!(grid(1).grid_dim.0, 1);
        assert_eq!(grid(256).grid_dim.0, 1);
        assert_eq!(grid(257).grid_dim.0, 2);
        assert_eq!(grid(usize::MAX / 2).grid_dim.0, 1 << 20);
        assert_eq!(reduce_block(192), 256);
        assert_eq!(reduce_block(8), 32);
        assert_eq!(reduce_block(100), 128);
    }
}
