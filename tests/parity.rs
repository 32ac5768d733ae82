//! Parity with onnxruntime: per-stage tensors and final audio of the fixtures
//! made by `scripts/gen-fixtures.py` (noise 0, and voxide's seeded noise fed to
//! onnxruntime). Tolerance: equal lengths and SNR >= 50 dB.

mod common;

use common::{read_f32, snr_db};
use serde_json::Value;
use voxide::backend::cpu::{CpuBackend, Isa};
use voxide::backend::{Executor, Precision};
use voxide::model::{Noise, SynthOptions, Vits};
use voxide::voice::{Scales, Voice};

const MIN_SNR_DB: f64 = 50.0;

/// The fixture cases, or only those named in `VOXIDE_PARITY_CASES`
/// (comma-separated; for slow emulated runs, `scripts/test-aarch64.sh`).
fn cases() -> (Vec<Value>, bool) {
    let text = std::fs::read_to_string(common::fixtures().join("cases.json")).expect("cases.json");
    let v: Value = serde_json::from_str(&text).expect("cases.json parses");
    let all = v["cases"].as_array().expect("cases").clone();
    let Ok(names) = std::env::var("VOXIDE_PARITY_CASES") else {
        return (all, false);
    };
    let names: Vec<&str> = names.split(',').map(str::trim).collect();
    let some: Vec<Value> = all
        .into_iter()
        .filter(|c| names.contains(&c["name"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        some.len(),
        names.len(),
        "VOXIDE_PARITY_CASES names a case cases.json lacks"
    );
    (some, true)
}

fn options(c: &Value) -> SynthOptions {
    let s: Vec<f32> = c["scales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    SynthOptions {
        scales: Scales {
            noise_scale: s[0],
            length_scale: s[1],
            noise_w: s[2],
        },
        noise: Noise::Seeded(c["seed"].as_u64().unwrap_or(0)),
        ..SynthOptions::default()
    }
}

/// f32 on the kernels `VOXIDE_CPU_ISA` names (default auto).
#[test]
fn matches_onnxruntime_stage_by_stage_and_end_to_end() {
    parity(CpuBackend::with_options(2, Precision::F32, common::cpu_isa()).unwrap());
}

/// Every CPU kernel family this machine runs keeps f32 parity (whatever
/// `VOXIDE_CPU_ISA` says); the others say SKIP.
fn family(isa: Isa) {
    match CpuBackend::with_options(2, Precision::F32, isa) {
        Ok(be) => {
            assert_eq!(be.isa(), isa);
            println!(
                "kernels {isa}{}",
                if be.winograd() { " + winograd" } else { "" }
            );
            parity(be)
        }
        Err(e) => common::skip(&format!("parity::family_{isa}"), &e.to_string()),
    }
}

#[test]
fn family_avx512() {
    family(Isa::Avx512);
}

/// `avx2` runs the decoder's residual-block convs and the encoder's
/// feed-forward convs as Winograd transforms (by default); this one as
/// direct convs.
#[test]
fn family_avx2() {
    family(Isa::Avx2);
}

#[test]
fn family_avx2_direct() {
    match CpuBackend::with_options(2, Precision::F32, Isa::Avx2) {
        Ok(be) => {
            let be = be.with_winograd(false);
            assert!(!be.winograd());
            println!("kernels avx2, direct convs");
            parity(be)
        }
        Err(e) => common::skip("parity::family_avx2_direct", &e.to_string()),
    }
}

#[test]
fn family_portable() {
    family(Isa::Portable);
}

/// The f32-grade AMX kernels (where the CPU has them) keep f32 parity too.
#[test]
fn bf16x3_matches_onnxruntime() {
    match CpuBackend::with_options(2, Precision::Bf16x3, common::cpu_isa()) {
        Ok(be) => parity(be),
        Err(e) => common::skip("parity::bf16x3_matches_onnxruntime", &e.to_string()),
    }
}

fn parity(be: CpuBackend) {
    let voice = Voice::load(&common::voice_path(), None).expect("voice loads");
    println!("precision {}", be.precision().as_str());
    let model = Vits::new(&be, &voice.weights).unwrap();
    let mut report = Vec::new();
    let mut ids_lens = Vec::new();
    let (cases, subset) = cases();
    for c in cases {
        let name = c["name"].as_str().unwrap().to_string();
        let ids: Vec<i64> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        ids_lens.push(ids.len());
        let opts = options(&c);
        let mut u = be
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
            "{name}: durations differ from onnxruntime"
        );
        assert_eq!(
            u.frames() as u64,
            c["frames"].as_u64().unwrap(),
            "{name}: frames"
        );
        let mut line = format!("{name:14} ids {:4} frames {:5}", ids.len(), u.frames());
        if c["stages"].as_bool().unwrap() {
            let logw = snr_db(&read_f32(&format!("{name}.logw.f32")), &u.logw);
            let ml = snr_db(&read_f32(&format!("{name}.ml.f32")), &u.encoded(&be));
            let z = snr_db(
                &read_f32(&format!("{name}.z.f32")),
                &be.install(|| model.latent(&be, &mut u)).unwrap(),
            );
            line += &format!("  m_p|logs_p {ml:6.1} dB  logw {logw:6.1} dB  z {z:6.1} dB");
            for (stage, v) in [("m_p/logs_p", ml), ("logw", logw), ("z", z)] {
                assert!(
                    v >= MIN_SNR_DB,
                    "{name}: {stage} SNR {v:.1} dB < {MIN_SNR_DB}"
                );
            }
        }
        let audio = be.install(|| model.synthesize(&be, &ids, &opts)).unwrap();
        let want = read_f32(&format!("{name}.audio.f32"));
        assert_eq!(audio.len(), want.len(), "{name}: sample count");
        let snr = snr_db(&want, &audio);
        line += &format!("  audio {snr:6.1} dB");
        report.push(line);
        assert!(
            snr >= MIN_SNR_DB,
            "{name}: audio SNR {snr:.1} dB < {MIN_SNR_DB}"
        );
    }
    for l in &report {
        println!("{l}");
    }
    assert!(
        subset
            || ids_lens.len() >= 6
                && ids_lens.iter().any(|&n| n <= 13)
                && ids_lens.iter().any(|&n| n >= 400)
    );
}
