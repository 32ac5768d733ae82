//! Conv kernel throughput on the shapes of a Piper medium voice, per
//! arithmetic: `cargo bench --bench kernels` (GFLOP/s, one and all threads).
//! `VOXIDE_CPU_ISA=avx512|avx2|portable` picks the kernel family (default
//! `auto`, the best this CPU runs; `VOXIDE_CPU_KERNELS=gemm` is the older
//! spelling of `portable`).

use std::time::Instant;
use voxide::backend::cpu::{CpuBackend, Isa};
use voxide::backend::Conv;
use voxide::backend::{Backend, Executor, Mat, Out, Precision};

fn conv(cout: usize, cin: usize, k: usize, dilation: usize) -> Conv {
    let mut s = 0x9e37_79b9_u32;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s as f32 / u32::MAX as f32 - 0.5) * 0.2
    };
    Conv {
        w: (0..cout * cin * k).map(|_| rnd()).collect(),
        b: Some((0..cout).map(|_| rnd()).collect()),
        cout,
        cin,
        k,
        dilation,
    }
}

/// The kernels asked for in the environment (`auto` when unset).
fn isa() -> Result<Isa, String> {
    for var in ["VOXIDE_CPU_ISA", "VOXIDE_CPU_KERNELS"] {
        if let Ok(s) = std::env::var(var) {
            return Isa::parse(&s).map_err(|e| format!("{var}: {e}"));
        }
    }
    Ok(Isa::Auto)
}

/// This core's f32 FLOP peak in GFLOP/s, measured: 12 independent chains of
/// fused multiply-adds on the widest vectors the CPU runs (AVX-512, else
/// AVX2 + FMA), 2 FLOPs per lane each. `None` where neither exists.
fn peak_gflops() -> Option<(f64, &'static str)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        const CHAINS: usize = 12;
        const ITERS: usize = 20_000_000;
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2() -> f32 {
            let mut acc = [_mm256_set1_ps(1.0); CHAINS];
            let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
            for _ in 0..ITERS {
                for r in acc.iter_mut() {
                    *r = _mm256_fmadd_ps(*r, a, b);
                }
            }
            let mut out = [0.0f32; 8];
            let s = acc
                .iter()
                .fold(_mm256_setzero_ps(), |s, &r| _mm256_add_ps(s, r));
            _mm256_storeu_ps(out.as_mut_ptr(), s);
            out.iter().sum()
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512() -> f32 {
            let mut acc = [_mm512_set1_ps(1.0); CHAINS];
            let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
            for _ in 0..ITERS {
                for r in acc.iter_mut() {
                    *r = _mm512_fmadd_ps(*r, a, b);
                }
            }
            let s = acc
                .iter()
                .fold(_mm512_setzero_ps(), |s, &r| _mm512_add_ps(s, r));
            _mm512_reduce_add_ps(s)
        }
        let (lanes, name, run): (usize, _, unsafe fn() -> f32) =
            if is_x86_feature_detected!("avx512f") {
                (16, "avx512 fma", avx512)
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                (8, "avx2 fma", avx2)
            } else {
                return None;
            };
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t0 = Instant::now();
            // SAFETY: the CPU has the instructions (detected just above).
            std::hint::black_box(unsafe { run() });
            best = best.min(t0.elapsed().as_secs_f64());
        }
        Some(((CHAINS * ITERS * lanes * 2) as f64 / best / 1e9, name))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

fn main() {
    let isa = match isa() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // (name, cout, cin, k, dilation, time steps)
    let shapes = [
        ("encoder ffn k3", 768, 192, 3, 1, 200),
        ("encoder ffn k3 t485", 768, 192, 3, 1, 485),
        ("encoder ffn2 k3 t485", 192, 768, 3, 1, 485),
        ("flow wn in k5", 384, 192, 5, 1, 600),
        // A first streamed chunk's flow window (narrow: tail tiles matter).
        ("flow wn in k5 t45", 384, 192, 5, 1, 45),
        ("flow res k1 t45", 384, 192, 1, 1, 45),
        ("dec conv_pre k7", 256, 192, 7, 1, 300),
        ("dec mrf0 k7 d3", 128, 128, 7, 3, 2400),
        ("dec mrf1 k5 d2", 64, 64, 5, 2, 19200),
        ("dec mrf2 k3 d1", 32, 32, 3, 1, 76800),
        ("dec mrf2 k7 d12", 32, 32, 7, 12, 76800),
    ];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peak = peak_gflops();
    match peak {
        Some((g, how)) => println!("peak {g:.1} GFLOP/s per core (measured: {how} chains)"),
        None => println!("peak: not measured on this CPU"),
    }
    for precision in [Precision::F32, Precision::Bf16x3, Precision::Bf16] {
        for th in [1, threads] {
            let be = match CpuBackend::with_options(th, precision, isa) {
                Ok(b) => b,
                Err(e) => {
                    println!("{}: skipped ({e})", precision.as_str());
                    continue;
                }
            };
            for &(name, cout, cin, k, d, t) in &shapes {
                let c = conv(cout, cin, k, d);
                let w = be.prepare_conv_lowp(&c).expect("weights");
                let x: Vec<f32> = (0..cin * t)
                    .map(|i| ((i % 97) as f32 - 48.0) * 0.01)
                    .collect();
                let mut y = vec![0.0f32; cout * t];
                let (xm, ym) = (Mat::new(cin, t), Mat::new(cout, t));
                let flops = 2.0 * (cout * cin * k * t) as f64;
                let reps = ((2e9 / flops) as usize).clamp(3, 2000);
                be.install(|| be.conv1d(&w, &x, xm, &mut y, ym, Out::Add));
                let t0 = Instant::now();
                be.install(|| {
                    for _ in 0..reps {
                        be.conv1d(&w, &x, xm, &mut y, ym, Out::Add);
                    }
                });
                let s = t0.elapsed().as_secs_f64() / reps as f64;
                let g = flops / s / 1e9;
                let of_peak = peak.map_or(String::new(), |(p, _)| {
                    format!(" {:5.1} % of peak", 100.0 * g / (p * th as f64))
                });
                println!(
                    "{:8} {:5} {}t {:18} {:8.3} ms {:7.1} GFLOP/s{of_peak}",
                    be.isa().as_str(),
                    precision.as_str(),
                    th,
                    name,
                    s * 1e3,
                    g
                );
            }
        }
    }
}
