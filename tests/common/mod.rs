//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Where [`skip`] appends: `$VOXIDE_SKIP_LOG`, else `target/test-skips.log`
/// in the crate. `scripts/test.sh` empties it before `cargo test` and prints
/// its lines at the end.
pub fn skip_log() -> PathBuf {
    std::env::var_os("VOXIDE_SKIP_LOG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-skips.log"))
}

/// A test (or a part of one, `test` then says which) did not run here:
/// prints `SKIP <test>: <why>` to stderr and appends that line to
/// [`skip_log`], so that a skip is never mistaken for a pass. Call it where
/// the test returns early; tests whose condition CI must meet
/// (`VOXIDE_REQUIRE_GPU=1`, `VOXIDE_REQUIRE_NVRTC=1`, `VOXIDE_REQUIRE_ESPEAK=1`)
/// fail instead (see [`required`]).
pub fn skip(test: &str, why: &str) {
    // One line per skip, whatever the reason's text.
    let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = format!("SKIP {test}: {why}");
    eprintln!("{line}");
    let path = skip_log();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // Append mode and one write per line: tests running in parallel (and
    // several test binaries) add lines without clobbering each other.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        eprintln!("(skip log {} not written: {e})", path.display());
    }
}

/// Whether the environment variable `var` is `1`: the test must run here,
/// and a missing prerequisite is a failure rather than a skip.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// The default voice; tests need it (`scripts/fetch-voice.sh` puts it there).
pub fn voice_path() -> PathBuf {
    let p = std::env::var_os("VOXIDE_VOICE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("voices/en_US-joe-medium.onnx")
        });
    assert!(
        p.exists(),
        "voice {} not found: run scripts/fetch-voice.sh first",
        p.display()
    );
    p
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Signal-to-noise ratio of `got` against `want`, in dB.
pub fn snr_db(want: &[f32], got: &[f32]) -> f64 {
    assert_eq!(want.len(), got.len(), "length differs");
    let sig: f64 = want.iter().map(|&v| (v as f64).powi(2)).sum();
    let err: f64 = want
        .iter()
        .zip(got)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    if err == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (sig / err).log10()
}

/// The CPU kernels the model tests run: `VOXIDE_CPU_ISA` (`auto`, `avx512`,
/// `portable`), else the older `VOXIDE_CPU_KERNELS` (`gemm`: portable),
/// else `auto`. The library reads no such variable; tests pass it on.
pub fn cpu_isa() -> voxide::backend::cpu::Isa {
    for var in ["VOXIDE_CPU_ISA", "VOXIDE_CPU_KERNELS"] {
        if let Ok(s) = std::env::var(var) {
            return voxide::backend::cpu::Isa::parse(&s).unwrap_or_else(|e| panic!("{var}: {e}"));
        }
    }
    voxide::backend::cpu::Isa::Auto
}

/// Whether the CPU kernels the engine picks here ([`cpu_isa`], the default
/// precision) compute every output column alone, in one order whatever the
/// view, the chunk or the thread count (the AVX-512/AMX direct kernels):
/// then chunked, streamed, batched and multi-threaded audio equal the whole
/// audio bit for bit. The portable path's GEMMs (the `gemm` crate) choose
/// their blocking from the product's shape, so there the same audio agrees
/// to rounding only (see [`assert_same_audio`]).
pub fn columns_exact() -> bool {
    use voxide::backend::Executor;
    static EXACT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *EXACT.get_or_init(|| {
        voxide::backend::cpu::CpuBackend::with_options(1, voxide::Precision::Auto, cpu_isa())
            .map(|b| b.columns_exact())
            .unwrap_or(false)
    })
}

/// Largest difference allowed between two renderings of the same request on
/// kernels without exact columns, relative to the peak: -80 dB (the
/// observed differences are ~1e-7 of the peak, a few ulps).
pub const PORTABLE_REL_TOL: f32 = 1e-4;

/// `got` is the same audio as `want`: bit for bit on kernels with exact
/// columns; else the same length and every sample within
/// [`PORTABLE_REL_TOL`] of the peak (the test then logs that only this
/// weaker check ran, under the part of `what` before a `:`, so once per
/// test). Panics naming `what` and the first sample off.
pub fn assert_same_audio(want: &[f32], got: &[f32], what: &str) {
    assert_eq!(want.len(), got.len(), "{what}: sample counts differ");
    if columns_exact() {
        if let Some(i) = want
            .iter()
            .zip(got)
            .position(|(a, b)| a.to_bits() != b.to_bits())
        {
            panic!("{what}: sample {i} differs ({} vs {})", want[i], got[i]);
        }
        return;
    }
    let peak = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let tol = PORTABLE_REL_TOL * peak;
    if let Some(i) = want.iter().zip(got).position(|(a, b)| (a - b).abs() > tol) {
        panic!(
            "{what}: sample {i} differs by {} > {tol} ({} vs {}); portable kernels",
            (want[i] - got[i]).abs(),
            want[i],
            got[i]
        );
    }
    skip(
        what.split(':').next().unwrap_or(what),
        "bit-exact part: the portable kernels agree to rounding only (checked to -80 dB of the peak)",
    );
}
