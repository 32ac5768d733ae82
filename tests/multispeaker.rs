//! Multi-speaker voices, on the small random-weight test voices of
//! `tests/fixtures/voices/` (`scripts/make-test-voices.py`, piper-tts's own
//! model and exporter): per-speaker parity with onnxruntime
//! (`scripts/gen-speaker-fixtures.py`, seeded and zero noise), speakers
//! differ, speaker checks and names, streamed == whole and batched == solo
//! with mixed speakers, the German test voice, and the CUDA backend (skips
//! without a GPU; runs under `scripts/cuda-emu.sh`).

mod common;

use common::snr_db;
use serde_json::Value;
use std::ops::ControlFlow;
use std::path::PathBuf;
use voxide::audio::as_f32;
use voxide::backend::cpu::CpuBackend;
use voxide::backend::{Backend, Executor, Precision};
use voxide::model::{BatchItem, Noise, SynthOptions, Vits};
use voxide::voice::{Scales, Voice, VoiceConfig};
use voxide::{Engine, ErrorKind, Input, SpeakOptions};

const MIN_SNR_DB: f64 = 50.0;

fn dir() -> PathBuf {
    common::fixtures().join("voices")
}

fn voice_path(name: &str) -> PathBuf {
    dir().join(format!("{name}.onnx"))
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    let v: Value = serde_json::from_str(&text).expect("cases.json parses");
    v["cases"].as_array().expect("cases").clone()
}

fn case(name: &str) -> Value {
    cases()
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

fn audio(name: &str) -> Vec<f32> {
    common::read_f32(&format!("voices/{name}.audio.f32"))
}

fn ids(c: &Value) -> Vec<i64> {
    c["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
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
        speaker: c["speaker"].as_u64().unwrap() as usize,
        ..SynthOptions::default()
    }
}

fn durations(c: &Value) -> Vec<u32> {
    c["durations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// Every fixture case on backend `be`: equal durations and lengths, audio
/// SNR >= `min_db`; a second run (a replay where the backend records) gives
/// the same samples. Returns one report line per case.
fn parity<B: Backend>(be: &B, min_db: f64) -> Vec<String> {
    let mut models: Vec<(String, Vits<B>)> = Vec::new();
    let mut report = Vec::new();
    for c in cases() {
        let (voice, name) = (c["voice"].as_str().unwrap(), c["name"].as_str().unwrap());
        if !models.iter().any(|(v, _)| v == voice) {
            let w = Voice::load(&voice_path(voice), None).expect("test voice loads");
            let m = be.install(|| Vits::new(be, &w.weights)).expect("upload");
            models.push((voice.to_string(), m));
        }
        let model = &models.iter().find(|(v, _)| v == voice).unwrap().1;
        let (ids, opts) = (ids(&c), options(&c));
        let u = be
            .install(|| model.prepare(be, &ids, &opts))
            .expect("prepare");
        assert_eq!(u.durations, durations(&c), "{name}: durations");
        let got = be
            .install(|| model.synthesize(be, &ids, &opts))
            .expect("synthesize");
        let again = be
            .install(|| model.synthesize(be, &ids, &opts))
            .expect("synthesize again");
        let want = audio(name);
        assert_eq!(got.len(), want.len(), "{name}: sample count");
        let snr = snr_db(&want, &got);
        report.push(format!(
            "{name:12} speaker {} {:6} frames  audio {snr:6.1} dB",
            opts.speaker,
            u.frames()
        ));
        assert!(snr >= min_db, "{name}: audio SNR {snr:.1} dB < {min_db}");
        assert_eq!(got, again, "{name}: the same request twice differs");
    }
    report
}

#[test]
fn every_speaker_matches_onnxruntime() {
    let be = CpuBackend::with_options(2, Precision::F32, common::cpu_isa()).unwrap();
    let report = parity(&be, MIN_SNR_DB);
    for l in &report {
        println!("{l}");
    }
    // Three speakers, zero and seeded noise, and the German voice.
    for s in 0..3 {
        for kind in ["hi", "hello"] {
            assert!(report
                .iter()
                .any(|l| l.starts_with(&format!("spk{s}-{kind}"))));
        }
    }
    assert!(report.iter().any(|l| l.starts_with("de-noise")));
    // The conditioning matters: speaker 1's fixture is far from speaker 0's
    // render of the same request.
    let c = case("spk1-hello");
    let w = Voice::load(&voice_path("test-3spk"), None).unwrap();
    let model = Vits::new(&be, &w.weights).unwrap();
    let opts = SynthOptions {
        speaker: 0,
        ..options(&c)
    };
    let got = be
        .install(|| model.synthesize(&be, &ids(&c), &opts))
        .unwrap();
    let want = audio("spk1-hello");
    let n = got.len().min(want.len());
    assert!(
        got.len() != want.len() || snr_db(&want[..n], &got[..n]) < 20.0,
        "speaker 0 renders speaker 1's fixture"
    );
}

#[test]
fn the_voice_loads_its_speakers() {
    let v = Voice::load(&voice_path("test-3spk"), None).unwrap();
    let sp = v.weights.speakers.as_ref().expect("speaker conditioning");
    assert_eq!((sp.count, sp.gin), (3, 16));
    assert_eq!(sp.flow.len(), v.weights.flow.len());
    assert_eq!(sp.dp.cout, v.weights.dp.pre.cout);
    assert_eq!(sp.dec.cout, v.weights.dec.conv_pre.cout);
    assert_eq!(v.config.num_speakers, 3);
    let de = Voice::load(&voice_path("test-de"), None).unwrap();
    assert!(de.weights.speakers.is_none());
    assert_eq!(de.config.espeak_voice.as_deref(), Some("de"));
    // A config whose speaker count disagrees with the model is refused.
    let tmp = std::env::temp_dir().join(format!("voxide-spk-{}.json", std::process::id()));
    let cfg = std::fs::read_to_string(voice_path("test-3spk").with_extension("onnx.json")).unwrap();
    std::fs::write(
        &tmp,
        cfg.replace("\"num_speakers\": 3", "\"num_speakers\": 2"),
    )
    .unwrap();
    let e = Voice::load(&voice_path("test-3spk"), Some(&tmp)).unwrap_err();
    let _ = std::fs::remove_file(&tmp);
    assert!(e.to_string().contains("num_speakers 2"), "{e}");
}

#[test]
fn resolve_speaker_takes_ids_and_names() {
    let cfg = VoiceConfig::load(&voice_path("test-3spk").with_extension("onnx.json")).unwrap();
    assert_eq!(cfg.resolve_speaker("bob").unwrap(), 1);
    assert_eq!(cfg.resolve_speaker("CID").unwrap(), 2);
    assert_eq!(cfg.resolve_speaker(" 0 ").unwrap(), 0);
    assert_eq!(cfg.speaker_name(2), Some("cid"));
    assert_eq!(cfg.speaker_name(3), None);
    for bad in ["dan", "3", "-1"] {
        let e = cfg.resolve_speaker(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let msg = e.to_string();
        assert!(
            msg.contains(bad) && msg.contains("0 ann, 1 bob, 2 cid"),
            "{msg}"
        );
    }
    let de = VoiceConfig::load(&voice_path("test-de").with_extension("onnx.json")).unwrap();
    assert_eq!(de.resolve_speaker("0").unwrap(), 0);
    assert!(de.resolve_speaker("1").is_err());
}

fn engine(voice: &str, scheduler: bool) -> Engine {
    Engine::builder()
        .voice(voice_path(voice))
        .threads(2)
        .scheduler(scheduler)
        .build()
        .unwrap()
}

fn speak(eng: &Engine, text: &str, o: &SpeakOptions) -> voxide::Result<Vec<f32>> {
    let a = eng.speak_with(text, None, o, eng.acquire_permit().unwrap())?;
    Ok(as_f32(a.samples()).to_vec())
}

const TEXT: &str = "The ship sailed at dawn. Nobody on the quay waved, and the gulls were \
                    quiet. Where was it going?";

#[test]
fn speakers_give_different_audio() {
    let eng = engine("test-3spk", false);
    let o = SpeakOptions::default().seed(3);
    let a: Vec<Vec<f32>> = (0..3)
        .map(|s| speak(&eng, TEXT, &o.clone().speaker(s)).unwrap())
        .collect();
    // No speaker given: speaker 0, Piper's default.
    assert_eq!(speak(&eng, TEXT, &o).unwrap(), a[0]);
    for i in 0..3 {
        for j in i + 1..3 {
            let n = a[i].len().min(a[j].len());
            let close = a[i].len() == a[j].len() && snr_db(&a[i][..n], &a[j][..n]) > 10.0;
            assert!(!close, "speakers {i} and {j} sound the same");
        }
    }
}

#[test]
fn an_unknown_speaker_is_an_invalid_argument_and_the_engine_goes_on() {
    for scheduler in [false, true] {
        let eng = engine("test-3spk", scheduler);
        for bad in [3, -1, 1000] {
            let e = speak(&eng, "Hello.", &SpeakOptions::default().speaker(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            assert!(e.to_string().contains("0..3"), "{e}");
        }
        let ok = speak(&eng, "Hello.", &SpeakOptions::default().speaker(2)).unwrap();
        assert!(!ok.is_empty());
    }
    // A single-speaker voice takes no speaker or speaker 0 only.
    let de = engine("test-de", false);
    let o = SpeakOptions::default().input(Input::Phonemes);
    assert!(speak(&de, "ˈaɪns", &o.clone().speaker(0)).is_ok());
    let e = speak(&de, "ˈaɪns", &o.speaker(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn the_engine_gives_onnxruntimes_audio_per_speaker() {
    let eng = engine("test-3spk", false);
    for name in ["spk1-hello", "spk2-hello", "spk0-hi"] {
        let c = case(name);
        let s = &c["scales"];
        let o = SpeakOptions::default()
            .input(Input::Phonemes)
            .speaker(c["speaker"].as_i64().unwrap())
            .seed(c["seed"].as_u64().unwrap_or(0))
            .noise_scale(s[0].as_f64().unwrap() as f32)
            .length_scale(s[1].as_f64().unwrap() as f32)
            .noise_w(s[2].as_f64().unwrap() as f32);
        let got = speak(&eng, c["phonemes"].as_str().unwrap(), &o).unwrap();
        let want = audio(name);
        assert_eq!(got.len(), want.len(), "{name}: sample count");
        let snr = snr_db(&want, &got);
        println!("{name}: engine audio {snr:.1} dB");
        assert!(snr >= MIN_SNR_DB, "{name}: {snr:.1} dB");
    }
}

#[test]
fn the_german_voice_speaks_phonemes_like_onnxruntime() {
    let eng = engine("test-de", false);
    for name in ["de-noise", "de-zero"] {
        let c = case(name);
        let s = &c["scales"];
        let o = SpeakOptions::default()
            .input(Input::Phonemes)
            .seed(c["seed"].as_u64().unwrap_or(0))
            .noise_scale(s[0].as_f64().unwrap() as f32)
            .length_scale(s[1].as_f64().unwrap() as f32)
            .noise_w(s[2].as_f64().unwrap() as f32);
        let got = speak(&eng, c["phonemes"].as_str().unwrap(), &o).unwrap();
        let want = audio(name);
        assert_eq!(got.len(), want.len(), "{name}: sample count");
        let snr = snr_db(&want, &got);
        println!("{name}: engine audio {snr:.1} dB");
        assert!(snr >= MIN_SNR_DB, "{name}: {snr:.1} dB");
    }
}

#[test]
fn a_stream_of_speaker_2_equals_its_whole_audio() {
    for scheduler in [false, true] {
        let eng = engine("test-3spk", scheduler);
        let o = SpeakOptions::default().speaker(2).seed(11).chunk_frames(32);
        // A long first sentence: where the kernels' columns are exact, its
        // durations are first predicted on a prefix of the ids.
        let text = format!(
            "The ship sailed at dawn from the old harbour, past the lighthouse, the \
             fishing boats and the long grey wall where the children of the town used to \
             sit and count the sails on summer evenings. {TEXT}"
        );
        let whole = speak(&eng, &text, &o).unwrap();
        let mut chunks = Vec::new();
        eng.speak_stream(&text, None, &o, eng.acquire_permit().unwrap(), |c| {
            chunks.push(as_f32(c).to_vec());
            ControlFlow::Continue(())
        })
        .unwrap();
        assert!(chunks.len() > 3, "only {} chunks", chunks.len());
        common::assert_same_audio(
            &whole,
            &chunks.concat(),
            "multispeaker::a_stream_of_speaker_2_equals_its_whole_audio: streamed vs whole",
        );
    }
}

/// Renders of several utterances of mixed speakers, chunk by chunk: each
/// alone (`render`) and all together (`render_batch`).
fn solo_and_batched<B: Backend>(be: &B, model: &Vits<B>) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let plan: [(usize, usize); 5] = [(0, 24), (1, 8), (2, 16), (1, 40), (2, 12)];
    let texts = [ids(&case("spk0-hello")), ids(&case("spk1-slow"))];
    let opts = |k: usize, spk: usize| SynthOptions {
        noise: Noise::Seeded(k as u64),
        speaker: spk,
        ..SynthOptions::default()
    };
    let prepare = |k: usize, spk: usize| {
        be.install(|| model.prepare(be, &texts[k % 2], &opts(k, spk)))
            .unwrap()
    };
    let mut solo = Vec::new();
    for (k, &(spk, chunk)) in plan.iter().enumerate() {
        let mut u = prepare(k, spk);
        let mut out = Vec::new();
        let mut at = 0;
        while at < u.frames() {
            let b = (at + chunk).min(u.frames());
            be.install(|| model.render(be, &mut u, at, b, &mut out))
                .unwrap();
            at = b;
        }
        solo.push(out);
    }
    let mut utts: Vec<_> = plan
        .iter()
        .enumerate()
        .map(|(k, &(spk, _))| prepare(k, spk))
        .collect();
    let mut outs = vec![Vec::new(); plan.len()];
    let mut at = vec![0usize; plan.len()];
    loop {
        let mut items = Vec::new();
        for (k, (u, out)) in utts.iter_mut().zip(&mut outs).enumerate() {
            if at[k] < u.frames() {
                let b = (at[k] + plan[k].1).min(u.frames());
                items.push(BatchItem {
                    utt: u,
                    a: at[k],
                    b,
                    out,
                });
                at[k] = b;
            }
        }
        if items.is_empty() {
            break;
        }
        be.install(|| model.render_batch(be, &mut items)).unwrap();
    }
    (solo, outs)
}

#[test]
fn batched_renders_of_mixed_speakers_equal_solo_renders() {
    let v = Voice::load(&voice_path("test-3spk"), None).unwrap();
    let be = CpuBackend::with_options(2, Precision::Auto, common::cpu_isa()).unwrap();
    let model = Vits::new(&be, &v.weights).unwrap();
    let (solo, batched) = solo_and_batched(&be, &model);
    for (k, (s, b)) in solo.iter().zip(&batched).enumerate() {
        common::assert_same_audio(
            s,
            b,
            &format!(
                "multispeaker::batched_renders_of_mixed_speakers_equal_solo_renders: item {k}"
            ),
        );
    }
    // Same ids and seed, other speakers: other audio (the conditioning
    // reached every item of the batch).
    assert_ne!(solo[1], solo[3]);
}

#[test]
fn the_scheduler_batches_mixed_speakers_like_solo_requests() {
    let solo = engine("test-3spk", false);
    let sched = Engine::builder()
        .voice(voice_path("test-3spk"))
        .threads(2)
        .scheduler(true)
        .max_batch(4)
        .batch_max_wait(std::time::Duration::from_millis(20))
        .build()
        .unwrap();
    let reqs: Vec<SpeakOptions> = (0..6)
        .map(|k| SpeakOptions::default().speaker(k % 3).seed(k as u64))
        .collect();
    let want: Vec<Vec<f32>> = reqs
        .iter()
        .map(|o| speak(&solo, TEXT, o).unwrap())
        .collect();
    let got: Vec<Vec<f32>> = std::thread::scope(|s| {
        let hs: Vec<_> = reqs
            .iter()
            .map(|o| s.spawn(|| speak(&sched, TEXT, o).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (k, (w, g)) in want.iter().zip(&got).enumerate() {
        common::assert_same_audio(
            w,
            g,
            &format!("multispeaker::the_scheduler_batches_mixed_speakers_like_solo_requests: request {k}"),
        );
    }
}

/// The CUDA backend (a GPU, or `scripts/cuda-emu.sh`): every fixture case
/// at >= 50 dB in f32 (recorded graphs replayed on the second run), and
/// batched renders of mixed speakers equal solo ones to rounding.
#[test]
fn cuda_speakers_match_onnxruntime() {
    use voxide::backend::cuda::{probe, CudaBackend};
    if let Err(e) = probe(0) {
        assert!(
            !common::required("VOXIDE_REQUIRE_GPU"),
            "VOXIDE_REQUIRE_GPU=1 but no usable GPU: {e}"
        );
        common::skip(
            "multispeaker::cuda_speakers_match_onnxruntime",
            &format!("no usable GPU ({e})"),
        );
        return;
    }
    let be = CudaBackend::with_options(0, Precision::F32, true).expect("CUDA backend");
    for l in parity(&be, MIN_SNR_DB) {
        println!("cuda {l}");
    }
    let v = Voice::load(&voice_path("test-3spk"), None).unwrap();
    let model = be.install(|| Vits::new(&be, &v.weights)).unwrap();
    let (solo, batched) = solo_and_batched(&be, &model);
    for (k, (s, b)) in solo.iter().zip(&batched).enumerate() {
        assert_eq!(s.len(), b.len(), "item {k}: sample count");
        let snr = snr_db(s, b);
        println!("cuda batched item {k}: {snr:.1} dB against solo");
        assert!(snr >= 80.0, "item {k}: batched vs solo {snr:.1} dB");
    }
}

/// A conditioning tensor of the wrong shape, or one without the speaker
/// table, is an error naming it.
#[test]
fn bad_conditioning_tensors_are_named() {
    use prost::Message;
    use voxide::voice::onnx::ModelProto;
    use voxide::voice::weights::Weights;
    let bytes = std::fs::read(voice_path("test-3spk")).unwrap();
    let edit = |f: &dyn Fn(&mut ModelProto)| {
        let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
        f(&mut m);
        let e = Weights::parse(&m.encode_to_vec(), &voice_path("test-3spk")).unwrap_err();
        e.to_string()
    };
    let inits = |m: &mut ModelProto| std::mem::take(&mut m.graph.as_mut().unwrap().initializer);
    let e = edit(&|m| {
        let mut t = inits(m);
        let w = t.iter_mut().find(|t| t.name == "dp.cond.weight").unwrap();
        w.dims = vec![32, 8, 1];
        m.graph.as_mut().unwrap().initializer = t;
    });
    assert!(
        e.contains("dp.cond.weight") && e.contains("[32, 8, 1]"),
        "{e}"
    );
    let e = edit(&|m| {
        let mut t = inits(m);
        let b = t.iter_mut().find(|t| t.name == "dec.cond.bias").unwrap();
        b.dims = vec![63];
        m.graph.as_mut().unwrap().initializer = t;
    });
    assert!(e.contains("dec.cond.bias"), "{e}");
    let e = edit(&|m| {
        let mut t = inits(m);
        t.retain(|t| t.name != "emb_g.weight");
        m.graph.as_mut().unwrap().initializer = t;
    });
    assert!(e.contains("unexpected tensor") && e.contains("cond"), "{e}");
    let e = edit(&|m| {
        let mut t = inits(m);
        t.retain(|t| t.name != "flow.flows.4.enc.cond_layer.bias");
        m.graph.as_mut().unwrap().initializer = t;
    });
    assert!(e.contains("flow.flows.4.enc.cond_layer.bias"), "{e}");
}
