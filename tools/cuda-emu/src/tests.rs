//! The emulator's own checks: cuBLAS semantics, capture rules, launches
//! (barriers, shared memory), and the stops for stray memory accesses and
//! partial barriers (in child processes, since they end the process).

use crate::blas::{cublasCreate_v2, cublasGemmEx, cublasSetStream_v2};
use crate::cb::cublasStatus_t;
use crate::cu::CUresult::{self, *};
use crate::driver::*;
use crate::exec::{Module, Op};
use crate::gemm::tf32;
use std::ffi::c_void;

/// The tests share one emulated device (a global-mode capture in one would
/// refuse another's synchronous copies): one at a time.
fn ctx() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(cuInit(0), CUDA_SUCCESS);
    let mut c = std::ptr::null_mut();
    // SAFETY: valid out-pointers.
    unsafe {
        assert_eq!(cuDevicePrimaryCtxRetain(&mut c, 0), CUDA_SUCCESS);
    }
    assert_eq!(cuCtxSetCurrent(c), CUDA_SUCCESS);
    guard
}

fn dalloc(v: &[f32]) -> u64 {
    let mut p = 0;
    // SAFETY: p is written; v is copied into the new allocation.
    unsafe {
        assert_eq!(cuMemAlloc_v2(&mut p, 4 * v.len()), CUDA_SUCCESS);
        assert_eq!(
            cuMemcpyHtoD_v2(p, v.as_ptr() as *const c_void, 4 * v.len()),
            CUDA_SUCCESS
        );
    }
    p
}

fn dread(p: u64, n: usize) -> Vec<f32> {
    let mut v = vec![0f32; n];
    // SAFETY: p holds n floats.
    unsafe {
        assert_eq!(
            cuMemcpyDtoH_v2(v.as_mut_ptr() as *mut c_void, p, 4 * n),
            CUDA_SUCCESS
        );
    }
    v
}

fn vals(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn gemm(
    h: *mut c_void,
    ta: bool,
    tb: bool,
    m: i32,
    n: i32,
    k: i32,
    a: u64,
    lda: i32,
    b: u64,
    ldb: i32,
    beta: f32,
    c: u64,
    ldc: i32,
    compute: i32,
) -> cublasStatus_t {
    let alpha = 1.5f32;
    // SAFETY: host scalars; device operands checked by the emulator.
    unsafe {
        cublasGemmEx(
            h,
            ta as i32,
            tb as i32,
            m,
            n,
            k,
            &alpha as *const f32 as *const c_void,
            a as *const c_void,
            0,
            lda,
            b as *const c_void,
            0,
            ldb,
            &beta as *const f32 as *const c_void,
            c as *mut c_void,
            0,
            ldc,
            compute,
            -1,
        )
    }
}

/// Column-major GEMM by the book, in f64.
#[allow(clippy::too_many_arguments)]
fn reference(
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    beta: f32,
    c: &[f32],
    ldc: usize,
    round: fn(f32) -> f32,
) -> Vec<f32> {
    let mut out = c.to_vec();
    for j in 0..n {
        for i in 0..m {
            let mut s = 0f64;
            for p in 0..k {
                let av = if ta { a[p + i * lda] } else { a[i + p * lda] };
                let bv = if tb { b[j + p * ldb] } else { b[p + j * ldb] };
                s += round(av) as f64 * round(bv) as f64;
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c[i + j * ldc] as f64
            };
            out[i + j * ldc] = (1.5 * s + old) as f32;
        }
    }
    out
}

#[test]
fn gemm_ex_is_column_major_cublas() {
    let _serial = ctx();
    let mut h = std::ptr::null_mut();
    // SAFETY: a fresh handle on the legacy stream.
    unsafe {
        assert_eq!(
            cublasCreate_v2(&mut h),
            cublasStatus_t::CUBLAS_STATUS_SUCCESS
        );
        assert_eq!(
            cublasSetStream_v2(h, std::ptr::null_mut()),
            cublasStatus_t::CUBLAS_STATUS_SUCCESS
        );
    }
    let (m, n, k) = (7usize, 5usize, 9usize);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for (compute, round) in [
            (68, (|x| x) as fn(f32) -> f32),
            (77, tf32 as fn(f32) -> f32),
        ] {
            let lda = if ta { k + 3 } else { m + 2 };
            let ldb = if tb { n + 1 } else { k + 4 };
            let ldc = m + 3;
            let a = vals(lda * if ta { m } else { k }, 1);
            let b = vals(ldb * if tb { k } else { n }, 2);
            for beta in [0.0f32, 0.5] {
                // beta = 0 must not read C: NaN there must not show.
                let c0: Vec<f32> = if beta == 0.0 {
                    vec![f32::NAN; ldc * n]
                } else {
                    vals(ldc * n, 3)
                };
                let (da, db, dc) = (dalloc(&a), dalloc(&b), dalloc(&c0));
                let st = gemm(
                    h, ta, tb, m as i32, n as i32, k as i32, da, lda as i32, db, ldb as i32, beta,
                    dc, ldc as i32, compute,
                );
                assert_eq!(st, cublasStatus_t::CUBLAS_STATUS_SUCCESS);
                let got = dread(dc, ldc * n);
                let want = reference(ta, tb, m, n, k, &a, lda, &b, ldb, beta, &c0, ldc, round);
                for j in 0..n {
                    for i in 0..ldc {
                        let (g, w) = (got[i + j * ldc], want[i + j * ldc]);
                        if i < m {
                            assert!(
                                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                                "{ta} {tb} {compute} beta {beta}: ({i},{j}) {g} vs {w}"
                            );
                        } else {
                            // Rows past m (inside ldc) are not touched.
                            assert!(
                                g.to_bits() == c0[i + j * ldc].to_bits(),
                                "row {i} past m was written"
                            );
                        }
                    }
                }
            }
        }
    }
    // Leading dimensions below the rows: refused as cuBLAS refuses them.
    let d = dalloc(&vals(64, 4));
    assert_eq!(
        gemm(h, false, false, 4, 4, 4, d, 3, d, 4, 0.0, d, 4, 68),
        cublasStatus_t::CUBLAS_STATUS_INVALID_VALUE
    );
    assert_eq!(
        gemm(h, false, true, 4, 4, 4, d, 4, d, 3, 0.0, d, 4, 68),
        cublasStatus_t::CUBLAS_STATUS_INVALID_VALUE
    );
    assert_eq!(
        gemm(h, false, false, 4, 4, 4, d, 4, d, 4, 0.0, d, 3, 68),
        cublasStatus_t::CUBLAS_STATUS_INVALID_VALUE
    );
    assert_eq!(
        gemm(h, false, false, -1, 4, 4, d, 4, d, 4, 0.0, d, 4, 68),
        cublasStatus_t::CUBLAS_STATUS_INVALID_VALUE
    );
}

fn stream(flags: u32) -> cudarc::driver::sys::CUstream {
    let mut s = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    unsafe { assert_eq!(cuStreamCreate(&mut s, flags), CUDA_SUCCESS) };
    s
}

fn end(s: cudarc::driver::sys::CUstream) -> (CUresult, cudarc::driver::sys::CUgraph) {
    let mut g = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    let r = unsafe { cuStreamEndCapture(s, &mut g) };
    (r, g)
}

#[test]
fn capture_records_and_refuses_what_the_driver_refuses() {
    let _serial = ctx();
    let s = stream(1);
    let d = dalloc(&[1.0; 8]);
    // Recorded, not run; replayed by the graph.
    assert_eq!(cuStreamBeginCapture_v2(s, 1), CUDA_SUCCESS);
    assert_eq!(cuMemsetD8Async(d, 0, 32, s), CUDA_SUCCESS);
    // (A synchronous copy now would be refused: read the memory directly.)
    // SAFETY: d holds 8 floats of host-addressable emulated memory.
    assert_eq!(
        unsafe { *(d as *const [f32; 8]) },
        [1.0; 8],
        "a captured memset ran"
    );
    let (r, g) = end(s);
    assert_eq!(r, CUDA_SUCCESS);
    let mut e = std::ptr::null_mut();
    // SAFETY: a graph from the capture.
    unsafe {
        assert_eq!(cuGraphInstantiateWithFlags(&mut e, g, 0), CUDA_SUCCESS);
        assert_eq!(cuGraphLaunch(e, s), CUDA_SUCCESS);
    }
    assert_eq!(dread(d, 8), [0.0; 8], "the replay did not run the memset");
    // Synchronising the capturing stream invalidates the capture.
    assert_eq!(cuStreamBeginCapture_v2(s, 1), CUDA_SUCCESS);
    assert_eq!(
        cuStreamSynchronize(s),
        CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
    );
    let mut st = 0;
    // SAFETY: valid out-pointer.
    unsafe { assert_eq!(cuStreamIsCapturing(s, &mut st), CUDA_SUCCESS) };
    assert_eq!(st, 2, "invalidated");
    let (r, g) = end(s);
    assert_eq!(
        (r, g.is_null()),
        (CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, true)
    );
    // A pageable host copy during capture.
    assert_eq!(cuStreamBeginCapture_v2(s, 1), CUDA_SUCCESS);
    let host = [0f32; 8];
    // SAFETY: host holds 8 floats.
    unsafe {
        assert_eq!(
            cuMemcpyHtoDAsync_v2(d, host.as_ptr() as *const c_void, 32, s),
            CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
        );
    }
    assert_eq!(end(s).0, CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    // Legacy-stream work while a blocking stream captures (global mode).
    let blocking = stream(0);
    assert_eq!(cuStreamBeginCapture_v2(blocking, 0), CUDA_SUCCESS);
    assert_eq!(
        cuMemsetD8Async(d, 0, 4, std::ptr::null_mut()),
        CUDA_ERROR_STREAM_CAPTURE_IMPLICIT
    );
    assert_eq!(end(blocking).0, CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    // cuMemFree from the capturing thread: a potentially unsafe call.
    assert_eq!(cuStreamBeginCapture_v2(s, 1), CUDA_SUCCESS);
    assert_eq!(cuMemFree_v2(d), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
    assert_eq!(end(s).0, CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    // Capturing the legacy stream, or twice.
    assert_eq!(
        cuStreamBeginCapture_v2(std::ptr::null_mut(), 1),
        CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
    );
    assert_eq!(cuStreamBeginCapture_v2(s, 1), CUDA_SUCCESS);
    assert_eq!(cuStreamBeginCapture_v2(s, 1), CUDA_ERROR_ILLEGAL_STATE);
    assert_eq!(end(s).0, CUDA_SUCCESS);
}

const KERNELS: &str = r#"
extern "C" __global__ void block_sum(const float *x, float *out, int n) {
    extern __shared__ float sh[];
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[blockIdx.x * n + i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = sh[0];
}
extern "C" __global__ void partial_barrier(float *x) {
    if (threadIdx.x == 3) return;
    __syncthreads();
    x[threadIdx.x] = 1.0f;
}
extern "C" __global__ void write_at(float *y, long long i) { if (threadIdx.x == 0) y[i] = 1.0f; }
"#;

fn module() -> &'static Module {
    static M: std::sync::OnceLock<Module> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("voxide-emu-tests-{}", std::process::id()));
        std::env::set_var("VOXIDE_EMU_CACHE", &dir);
        let so = crate::hostcc::compile(KERNELS, "tests.cu").unwrap();
        Module::load(so.to_str().unwrap()).unwrap()
    })
}

fn launch(name: &str, grid: u32, block: u32, shared: u32, args: &[&[u8]]) {
    let f = &module().functions[name];
    let args: Vec<Vec<u64>> = args
        .iter()
        .map(|a| {
            let mut v = vec![0u64; a.len().div_ceil(8).max(1)];
            // SAFETY: v has room for a.
            unsafe {
                std::ptr::copy_nonoverlapping(a.as_ptr(), v.as_mut_ptr() as *mut u8, a.len())
            };
            v
        })
        .collect();
    Op::Kernel {
        f: &**f,
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        shared,
        args,
    }
    .run();
}

#[test]
fn barriers_and_shared_memory_work() {
    let _serial = ctx();
    let (blocks, n) = (37usize, 1000usize);
    let x = vals(blocks * n, 5);
    let dx = dalloc(&x);
    let dout = dalloc(&vec![0.0; blocks]);
    assert!(module().functions["block_sum"].barrier);
    assert!(!module().functions["write_at"].barrier);
    launch(
        "block_sum",
        blocks as u32,
        128,
        128 * 4,
        &[
            &dx.to_ne_bytes(),
            &dout.to_ne_bytes(),
            &(n as i32).to_ne_bytes(),
        ],
    );
    let got = dread(dout, blocks);
    for b in 0..blocks {
        let want: f64 = x[b * n..(b + 1) * n].iter().map(|&v| v as f64).sum();
        assert!(
            (got[b] as f64 - want).abs() < 1e-3,
            "block {b}: {} vs {want}",
            got[b]
        );
    }
}

/// Run the ignored test `name` in a child process; its exit status and stderr.
fn child(name: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            &format!("tests::{name}"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VOXIDE_EMU_CHILD", "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "a child of stray_accesses_stop_with_the_kernel_and_argument"]
fn child_out_of_bounds() {
    let _serial = ctx();
    let y = dalloc(&[0.0; 10]);
    launch(
        "write_at",
        1,
        32,
        0,
        &[&y.to_ne_bytes(), &1030i64.to_ne_bytes()],
    );
}

#[test]
#[ignore = "a child of stray_accesses_stop_with_the_kernel_and_argument"]
fn child_use_after_free() {
    let _serial = ctx();
    let y = dalloc(&[0.0; 10]);
    let z = dalloc(&[0.0; 10]);
    assert_eq!(cuMemFree_v2(y), CUDA_SUCCESS);
    // A pointer into z passed, but the kernel reaches into freed y's pages.
    launch(
        "write_at",
        1,
        32,
        0,
        &[
            &z.to_ne_bytes(),
            &(((y as i64) - (z as i64)) / 4).to_ne_bytes(),
        ],
    );
}

#[test]
#[ignore = "a child of stray_accesses_stop_with_the_kernel_and_argument"]
fn child_host_pointer() {
    let _serial = ctx();
    let host = [0f32; 4];
    launch(
        "write_at",
        1,
        32,
        0,
        &[&(host.as_ptr() as u64).to_ne_bytes(), &0i64.to_ne_bytes()],
    );
}

#[test]
#[ignore = "a child of stray_accesses_stop_with_the_kernel_and_argument"]
fn child_partial_barrier() {
    let _serial = ctx();
    let y = dalloc(&[0.0; 32]);
    launch("partial_barrier", 1, 32, 0, &[&y.to_ne_bytes()]);
}

#[test]
fn stray_accesses_stop_with_the_kernel_and_argument() {
    let (code, err) = child("child_out_of_bounds");
    assert_eq!(code, Some(86), "{err}");
    assert!(
        err.contains("kernel write_at: illegal write")
            && err.contains("past the end of allocation")
            && err.contains("argument `y`"),
        "{err}"
    );
    let (code, err) = child("child_use_after_free");
    assert_eq!(code, Some(86), "{err}");
    assert!(
        err.contains("kernel write_at") && err.contains("use after free"),
        "{err}"
    );
    let (code, err) = child("child_host_pointer");
    assert_eq!(code, Some(86), "{err}");
    assert!(
        err.contains("kernel write_at: argument `y`") && err.contains("not device memory"),
        "{err}"
    );
    let (code, err) = child("child_partial_barrier");
    assert_eq!(code, Some(86), "{err}");
    assert!(
        err.contains("partial_barrier") && err.contains("reached by 31 of 32 threads"),
        "{err}"
    );
}
