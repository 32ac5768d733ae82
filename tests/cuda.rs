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
    // And says why.
    let why = voxide::backend::cuda::auto_choice().expect("the Auto choice is noted");
    assert!(why.starts_with("cpu: CUDA not used: "), "{why}");
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

/// The onnxruntime fixture cases (`tests/fixtures/cases.json`), or those
/// named in `VOXIDE_PARITY_CASES` (comma-separated).
fn fixture_cases() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(common::fixtures().join("cases.json")).expect("cases.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("cases.json parses");
    let all = v["cases"].as_array().expect("cases").clone();
    match std::env::var("VOXIDE_PARITY_CASES") {
        Err(_) => all,
        Ok(names) => {
            let names: Vec<&str> = names.split(',').map(str::trim).collect();
            let some: Vec<_> = all
                .into_iter()
                .filter(|c| names.contains(&c["name"].as_str().unwrap_or("")))
                .collect();
            assert_eq!(
                some.len(),
                names.len(),
                "VOXIDE_PARITY_CASES names a case cases.json lacks"
            );
            some
        }
    }
}

/// The GPU, or `None` after recording `test` as skipped (a failure with
/// `VOXIDE_REQUIRE_GPU=1`).
fn gpu_or_skip(test: &str) -> Option<String> {
    match probe(0) {
        Ok(name) => Some(name),
        Err(e) => {
            assert!(
                !required("VOXIDE_REQUIRE_GPU"),
                "VOXIDE_REQUIRE_GPU=1 but no usable GPU: {e}"
            );
            common::skip(test, &format!("no usable GPU ({e})"));
            None
        }
    }
}

/// The whole model on the GPU against onnxruntime's fixtures: equal
/// durations and sample counts, audio SNR >= 50 dB in f32 and >= 30 dB with
/// the decoder on TF32 tensor cores (`Precision::Bf16`); eager and recorded
/// graphs both (the second synthesis of each case replays what the first
/// recorded, and must give the same samples).
#[test]
fn gpu_matches_onnxruntime_fixtures() {
    use voxide::backend::cuda::CudaBackend;
    use voxide::backend::Executor;
    use voxide::model::{Noise, SynthOptions, Vits};
    use voxide::voice::{Scales, Voice};
    if gpu_or_skip("cuda::gpu_matches_onnxruntime_fixtures").is_none() {
        return;
    }
    let voice = Voice::load(&common::voice_path(), None).expect("voice loads");
    for (precision, min_db) in [
        (voxide::Precision::F32, 50.0),
        (voxide::Precision::Bf16, 30.0),
    ] {
        let be = CudaBackend::with_options(0, precision, true).expect("CUDA backend");
        let model = be
            .install(|| Vits::new(&be, &voice.weights))
            .expect("upload");
        for c in fixture_cases() {
            let name = c["name"].as_str().unwrap();
            let ids: Vec<i64> = c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            let s: Vec<f32> = c["scales"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let opts = SynthOptions {
                scales: Scales {
                    noise_scale: s[0],
                    length_scale: s[1],
                    noise_w: s[2],
                },
                noise: Noise::Seeded(c["seed"].as_u64().unwrap_or(0)),
                ..SynthOptions::default()
            };
            let u = be
                .install(|| model.prepare(&be, &ids, &opts))
                .expect("prepare");
            let want_d: Vec<u32> = c["durations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                u.durations, want_d,
                "{name} ({precision:?}): durations differ from onnxruntime"
            );
            let first = be
                .install(|| model.synthesize(&be, &ids, &opts))
                .expect("synthesize");
            let again = be
                .install(|| model.synthesize(&be, &ids, &opts))
                .expect("synthesize again");
            let want = common::read_f32(&format!("{name}.audio.f32"));
            assert_eq!(
                first.len(),
                want.len(),
                "{name} ({precision:?}): sample count"
            );
            let snr = common::snr_db(&want, &first);
            eprintln!("{name:14} {precision:?}: audio SNR vs onnxruntime {snr:6.1} dB");
            assert!(
                snr >= min_db,
                "{name} ({precision:?}): audio SNR {snr:.1} dB < {min_db}"
            );
            assert_eq!(
                first, again,
                "{name} ({precision:?}): the repeat (graph replay) differs"
            );
        }
        let (rec, rep) = be.graph_counts();
        eprintln!("{precision:?}: graphs {rec} recorded, {rep} replayed");
        assert!(rec > 0 && rep > 0, "no graph recorded or replayed");
    }
}

/// `voxide speak --device cuda --phonemes … --raw out.f32` gives onnxruntime's
/// audio (the zero-noise fixtures that have phonemes; SNR >= 50 dB, equal lengths).
#[test]
fn cli_speak_on_cuda_matches_onnxruntime() {
    let Some(name) = gpu_or_skip("cuda::cli_speak_on_cuda_matches_onnxruntime") else {
        return;
    };
    for c in fixture_cases() {
        let case = c["name"].as_str().unwrap();
        let Some(ph) = c["phonemes"].as_str() else {
            continue;
        };
        if c["noise"] != "zero" {
            continue;
        }
        let raw =
            std::env::temp_dir().join(format!("voxide-cuda-cli-{}-{case}.f32", std::process::id()));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxide"))
            .env("VOXIDE_VOICE", common::voice_path())
            .env_remove("VOXIDE_DEVICE")
            .args([
                "speak",
                "--device",
                "cuda",
                "--noise-scale",
                "0",
                "--noise-w",
                "0",
                "--length-scale",
                "1",
            ])
            .args(["--phonemes", ph, "--raw"])
            .arg(&raw)
            .output()
            .expect("voxide runs");
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&raw).expect("raw output");
        let _ = std::fs::remove_file(&raw);
        let got: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let want = common::read_f32(&format!("{case}.audio.f32"));
        assert_eq!(got.len(), want.len(), "{case}: sample count");
        let snr = common::snr_db(&want, &got);
        eprintln!("cli {case:10} on {name}: SNR vs onnxruntime {snr:6.1} dB");
        assert!(snr >= 50.0, "{case}: CLI on CUDA SNR {snr:.1} dB < 50");
    }
}

/// The emulator's call counts `[allocations, launches, GEMMs, graph
/// instantiations]` (`voxide_emu_counts`, an entry point of the emulated
/// libcuda only), or `None` on a real driver.
#[cfg(unix)]
fn emulator_counts() -> Option<[u64; 4]> {
    // SAFETY: dlopen of the already loaded driver library by its cudarc
    // name, and a lookup of the emulator's own entry point with its C type.
    unsafe {
        let h = libc::dlopen(c"libcuda.so".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if h.is_null() {
            return None;
        }
        let f = libc::dlsym(h, c"voxide_emu_counts".as_ptr());
        if f.is_null() {
            return None;
        }
        let f: unsafe extern "C" fn(*mut u64) = std::mem::transmute(f);
        let mut out = [0u64; 4];
        f(out.as_mut_ptr());
        Some(out)
    }
}

/// The emulator is a Linux `libcuda.so`: elsewhere always a real driver.
#[cfg(not(unix))]
fn emulator_counts() -> Option<[u64; 4]> {
    None
}

const FAULT_TEXT: &str = "ðɪs ɪz ɐ ʃˈɔːɹt sˈɛntəns, ɪn tʃˈʌŋks.";

fn phoneme_opts() -> voxide::SpeakOptions {
    voxide::SpeakOptions::default().input(voxide::Input::Phonemes)
}

fn speak_samples(e: &Engine) -> Result<Vec<f32>, Error> {
    let p = e.acquire_permit().expect("permit");
    e.speak_with(FAULT_TEXT, None, &phoneme_opts(), p)
        .map(|a| a.samples_f32().to_vec())
}

/// The child half of `injected_faults_end_in_clear_errors` and
/// `auto_falls_back_when_the_self_check_fails` (run by them in a process of
/// its own, with the emulator's fault variables set; ignored otherwise).
#[test]
#[ignore = "a child process of the CUDA fault tests"]
fn fault_child() {
    let mode = std::env::var("VOXIDE_FAULT_CHILD").expect("run by the fault tests");
    if mode == "auto" {
        let e = Engine::builder()
            .voice(common::voice_path())
            .device(Device::Auto)
            .build()
            .expect("auto engine");
        let why = voxide::backend::cuda::auto_choice().expect("auto choice noted");
        println!("AUTO {} | {why}", e.device_name());
        return;
    }
    let cuda = || {
        Engine::builder()
            .voice(common::voice_path())
            .device(Device::Cuda(0))
            .build()
    };
    let ok_kind = |e: &Error| {
        matches!(
            e.kind(),
            voxide::ErrorKind::Device | voxide::ErrorKind::OutOfMemory
        )
    };
    let e = match cuda() {
        Ok(e) => e,
        Err(err) => {
            assert!(ok_kind(&err), "engine start failed with {err:?}");
            println!("START error: {err}");
            cuda().expect("a second engine starts")
        }
    };
    let want = cpu_reference();
    // Three requests: the first runs eagerly (and allocates the arenas), the
    // second records graphs, the third replays them. At most one fails (the
    // one the fault hits); every other one gives the right audio.
    let mut counts = vec![emulator_counts().expect("the emulator")];
    let mut failed = 0;
    for i in 1..=3 {
        match speak_samples(&e) {
            Ok(s) => {
                let snr = common::snr_db(&want, &s);
                assert!(
                    snr >= 50.0,
                    "request {i} succeeded with wrong audio ({snr:.1} dB)"
                );
                println!("REQ{i} ok {snr:.1} dB");
            }
            Err(err) => {
                assert!(
                    ok_kind(&err),
                    "request {i} failed with {err:?}, not a device or memory error"
                );
                println!("REQ{i} error {:?}: {err}", err.kind());
                failed += 1;
            }
        }
        counts.push(emulator_counts().expect("the emulator"));
    }
    assert!(failed <= 1, "{failed} requests failed");
    println!("COUNTS {:?} {:?} {:?}", counts[0], counts[1], counts[2]);
}

/// The CPU's samples of the fault sentence: from the file the parent wrote
/// (`VOXIDE_FAULT_WANT`), else computed.
fn cpu_reference() -> Vec<f32> {
    if let Some(p) = std::env::var_os("VOXIDE_FAULT_WANT") {
        let b = std::fs::read(p).expect("reference samples");
        return b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
    }
    let cpu = Engine::builder()
        .voice(common::voice_path())
        .device(Device::Cpu)
        .build()
        .expect("cpu engine");
    speak_samples(&cpu).expect("cpu")
}

fn run_child(mode: &str, env: &[(String, String)]) -> (bool, String, String) {
    let mut c = std::process::Command::new(std::env::current_exe().expect("test binary"));
    c.args([
        "--ignored",
        "--exact",
        "fault_child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("VOXIDE_FAULT_CHILD", mode);
    for v in [
        "VOXIDE_EMU_FAIL_ALLOC",
        "VOXIDE_EMU_FAIL_LAUNCH",
        "VOXIDE_EMU_FAIL_GEMM",
        "VOXIDE_EMU_FAIL_GRAPH",
    ] {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("child runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The child's line that carries `tag` (the harness may print `test … `
/// before it on the same line), from the tag on.
fn tagged<'a>(stdout: &'a str, tag: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.find(tag).map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no {tag} line in the child's output:\n{stdout}"))
}

/// The emulator's counts before the first request and after the first and second.
fn counts_in(stdout: &str) -> [[u64; 4]; 3] {
    let line = &tagged(stdout, "COUNTS ")["COUNTS ".len()..];
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(n.len(), 12, "{line}");
    [0, 1, 2].map(|r| [n[4 * r], n[4 * r + 1], n[4 * r + 2], n[4 * r + 3]])
}

/// Under the emulator: an allocation, a launch, a GEMM and a graph
/// instantiation failing in the middle of a request (aimed with the
/// emulator's call counts) end that request in `Error::Device` or
/// `Error::OutOfMemory` (or, where the backend recovers, in correct audio),
/// never in an abort or a hang, and the next request on the same engine
/// gives the right audio.
#[test]
fn injected_faults_end_in_clear_errors() {
    if gpu_or_skip("cuda::injected_faults_end_in_clear_errors").is_none() {
        return;
    }
    if emulator_counts().is_none() {
        common::skip(
            "cuda::injected_faults_end_in_clear_errors",
            "a real GPU: faults are injected by the emulator (scripts/cuda-emu.sh)",
        );
        return;
    }
    let want = std::env::temp_dir().join(format!("voxide-fault-want-{}.f32", std::process::id()));
    let bytes: Vec<u8> = cpu_reference()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&want, bytes).expect("reference written");
    let want_env = ("VOXIDE_FAULT_WANT".to_string(), want.display().to_string());
    let (ok, out, err) = run_child("census", std::slice::from_ref(&want_env));
    assert!(ok, "census child failed:\n{out}\n{err}");
    let c = counts_in(&out);
    let vars = [
        "VOXIDE_EMU_FAIL_ALLOC",
        "VOXIDE_EMU_FAIL_LAUNCH",
        "VOXIDE_EMU_FAIL_GEMM",
        "VOXIDE_EMU_FAIL_GRAPH",
    ];
    let mut errors = 0;
    for (k, var) in vars.iter().enumerate() {
        // Aim at the middle of the first request that makes such calls
        // (graphs are only instantiated by the second).
        let Some(r) = (0..2).find(|&r| c[r + 1][k] > c[r][k]) else {
            panic!("{var}: neither request 1 nor 2 makes such a call ({c:?})");
        };
        let n = c[r][k] + (c[r + 1][k] - c[r][k]).div_ceil(2);
        let (ok, out, err) = run_child(
            "fault",
            &[(var.to_string(), n.to_string()), want_env.clone()],
        );
        assert!(ok, "{var}={n}: the child failed:\n{out}\n{err}");
        assert!(
            err.contains("injected failure"),
            "{var}={n}: no failure was injected:\n{err}"
        );
        let hit = tagged(&out, &format!("REQ{}", r + 1));
        eprintln!("{var}={n}: {hit}");
        errors += usize::from(hit.contains(" error "));
    }
    let _ = std::fs::remove_file(&want);
    assert!(
        errors >= 3,
        "fewer than 3 of the 4 faults surfaced as errors"
    );
}

/// `Device::Auto` takes the GPU only after its self-check passes: with the
/// emulator's first GEMM failing (the self-check's), the engine runs on the
/// CPU and says why.
#[test]
fn auto_falls_back_when_the_self_check_fails() {
    if gpu_or_skip("cuda::auto_falls_back_when_the_self_check_fails").is_none() {
        return;
    }
    if emulator_counts().is_none() {
        common::skip(
            "cuda::auto_falls_back_when_the_self_check_fails",
            "a real GPU: the failure is injected by the emulator",
        );
        return;
    }
    // Without a fault (here, in this process): the GPU, after its self-check.
    let e = Engine::builder()
        .voice(common::voice_path())
        .device(Device::Auto)
        .build()
        .expect("auto engine");
    assert!(e.device_name().starts_with("cuda:0"), "{}", e.device_name());
    let why = voxide::backend::cuda::auto_choice().expect("auto choice noted");
    assert!(why.contains("self-check passed"), "{why}");
    let (ok, out, err) = run_child("auto", &[("VOXIDE_EMU_FAIL_GEMM".into(), "1".into())]);
    assert!(ok, "{out}\n{err}");
    let line = tagged(&out, "AUTO");
    assert!(line.starts_with("AUTO cpu"), "{line}");
    assert!(
        line.contains("CUDA not used") && line.contains("GEMM"),
        "{line}"
    );
}

/// `got` is `want` up to GEMM rounding (cuBLAS chooses its kernels by shape,
/// so a chunk's columns need not be bit-identical): equal lengths, every
/// sample within 1e-4 of the peak.
fn assert_close_audio(want: &[f32], got: &[f32], what: &str) {
    assert_eq!(want.len(), got.len(), "{what}: sample counts differ");
    let peak = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    if let Some(i) = want
        .iter()
        .zip(got)
        .position(|(a, b)| (a - b).abs().is_nan() || (a - b).abs() > 1e-4 * peak)
    {
        panic!("{what}: sample {i} differs ({} vs {})", want[i], got[i]);
    }
}

fn cuda_engine(scheduler: bool) -> Engine {
    Engine::builder()
        .voice(common::voice_path())
        .device(Device::Cuda(0))
        .max_concurrent(4)
        .scheduler(scheduler)
        .build()
        .expect("CUDA engine")
}

/// On the GPU, streamed chunks (small first chunk, then fixed chunks, over
/// two sentences) concatenate to the whole request's samples.
#[test]
fn gpu_streamed_chunks_equal_the_whole() {
    if gpu_or_skip("cuda::gpu_streamed_chunks_equal_the_whole").is_none() {
        return;
    }
    let e = cuda_engine(false);
    let text = format!("{FAULT_TEXT} hˈaɪ ðˈɛɹ.");
    let opts = phoneme_opts().first_chunk_frames(12).chunk_frames(40);
    let whole = e
        .speak_with(&text, None, &phoneme_opts(), e.acquire_permit().unwrap())
        .expect("whole");
    let mut streamed = Vec::new();
    let mut chunks = 0;
    e.speak_stream(&text, None, &opts, e.acquire_permit().unwrap(), |c| {
        chunks += 1;
        streamed.extend(c.iter().map(|s| s.0));
        std::ops::ControlFlow::Continue(())
    })
    .expect("stream");
    assert!(chunks > 3, "only {chunks} chunks");
    assert_close_audio(whole.samples_f32(), &streamed, "GPU streamed vs whole");
}

/// On the GPU, concurrent requests batched by the scheduler give the samples
/// each gives alone.
#[test]
fn gpu_scheduler_batches_equal_solo() {
    if gpu_or_skip("cuda::gpu_scheduler_batches_equal_solo").is_none() {
        return;
    }
    let solo_eng = cuda_engine(false);
    let eng = cuda_engine(true);
    let texts: Vec<String> = [37usize, 90, 160]
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            (0..n)
                .map(|i| (20 + (i * 7 + k * 3) % 30).to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let opts = voxide::SpeakOptions::default()
        .input(voxide::Input::Ids)
        .seed(9)
        .first_chunk_frames(16)
        .chunk_frames(48);
    let solo: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| {
            let a = solo_eng
                .speak_with(t, None, &opts, solo_eng.acquire_permit().unwrap())
                .expect("solo");
            a.samples_f32().to_vec()
        })
        .collect();
    let got: Vec<Vec<f32>> = std::thread::scope(|s| {
        let hs: Vec<_> = texts
            .iter()
            .map(|t| {
                let (eng, opts) = (&eng, &opts);
                s.spawn(move || {
                    let mut out = Vec::new();
                    eng.speak_stream(t, None, opts, eng.acquire_permit().unwrap(), |c| {
                        out.extend(c.iter().map(|s| s.0));
                        std::ops::ControlFlow::Continue(())
                    })
                    .expect("scheduled");
                    out
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (g, w) in got.iter().zip(&solo) {
        assert_close_audio(w, g, "GPU scheduled vs solo");
    }
}
