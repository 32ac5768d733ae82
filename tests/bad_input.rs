//! Every bad input gives its error, names the cause, and never panics.

mod common;

use prost::Message;
use std::path::Path;
use std::time::Duration;
use voxide::voice::onnx::{ModelProto, TensorProto};
use voxide::voice::weights::Weights;
use voxide::voice::VoiceConfig;
use voxide::{Engine, Error, Input, SpeakOptions};

const HELLO: &str = "həlˈoʊ wˈɜːld.";

fn engine(max_concurrent: usize) -> Engine {
    Engine::builder()
        .voice(common::voice_path())
        .max_concurrent(max_concurrent)
        .threads(2)
        .build()
        .expect("engine")
}

fn phonemes() -> SpeakOptions {
    SpeakOptions::default().input(Input::Phonemes)
}

fn model_bytes() -> Vec<u8> {
    std::fs::read(common::voice_path()).unwrap()
}

fn parse_err(bytes: &[u8]) -> String {
    match Weights::parse(bytes, Path::new("test.onnx")) {
        Ok(_) => panic!("a broken model loaded"),
        Err(e) => e.to_string(),
    }
}

fn edit_model(f: impl FnOnce(&mut Vec<TensorProto>)) -> Vec<u8> {
    let mut m = ModelProto::decode(model_bytes().as_slice()).unwrap();
    f(&mut m.graph.as_mut().unwrap().initializer);
    m.encode_to_vec()
}

#[test]
fn missing_files_are_io_errors_naming_the_file() {
    let e = Engine::builder()
        .voice("/nonexistent/voice.onnx")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/voice.onnx"), "{e}");
    let e = Engine::builder().build().unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[test]
fn truncated_and_corrupt_models_are_model_errors() {
    let bytes = model_bytes();
    for cut in [10, 1000, bytes.len() / 2, bytes.len() - 3] {
        let msg = parse_err(&bytes[..cut]);
        assert!(msg.contains("test.onnx"), "{msg}");
    }
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    parse_err(&garbage);
    parse_err(&[]);
    // Through the engine: a truncated file on disk is Error::Model.
    let dir = std::env::temp_dir().join(format!("voxide-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("v.onnx");
    std::fs::write(&p, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::copy(
        common::voice_path().with_extension("onnx.json"),
        dir.join("v.onnx.json"),
    )
    .unwrap();
    let e = Engine::builder().voice(&p).build().unwrap_err();
    assert!(matches!(e, Error::Model(_)), "{e:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_extra_and_ill_shaped_tensors_are_named() {
    let msg = parse_err(&edit_model(|t| {
        t.retain(|t| t.name != "dec.conv_post.weight")
    }));
    assert!(msg.contains("missing tensor dec.conv_post.weight"), "{msg}");

    let msg = parse_err(&edit_model(|t| {
        let x = t.iter_mut().find(|t| t.name == "dec.ups.0.bias").unwrap();
        x.dims = vec![127];
        x.raw_data.truncate(127 * 4);
    }));
    assert!(
        msg.contains("dec.ups.0.bias") && msg.contains("shape"),
        "{msg}"
    );

    let msg = parse_err(&edit_model(|t| {
        let x = t.iter_mut().find(|t| t.name == "enc_p.proj.bias").unwrap();
        x.raw_data.truncate(100);
    }));
    assert!(msg.contains("enc_p.proj.bias"), "{msg}");

    let msg = parse_err(&edit_model(|t| {
        t.push(TensorProto {
            name: "mystery.weight".into(),
            dims: vec![4],
            data_type: 1,
            raw_data: vec![0u8; 16].into(),
            ..Default::default()
        })
    }));
    assert!(msg.contains("unexpected tensor mystery.weight"), "{msg}");

    let msg = parse_err(&edit_model(|t| {
        let x = t.iter_mut().find(|t| t.name == "dp.pre.bias").unwrap();
        let mut v = x.raw_data.to_vec();
        v[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
        x.raw_data = v.into();
    }));
    assert!(
        msg.contains("dp.pre.bias") && msg.contains("non-finite"),
        "{msg}"
    );
}

#[test]
fn bad_json_names_the_position_or_field() {
    let p = Path::new("voice.onnx.json");
    let e = VoiceConfig::parse(b"{\"audio\": {\"sample_rate\": 22050},\n  oops}", p).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("voice.onnx.json") && msg.contains("line 2"),
        "{msg}"
    );
    let e = VoiceConfig::parse(b"{\"audio\": {\"sample_rate\": 22050}}", p).unwrap_err();
    assert!(e.to_string().contains("phoneme_id_map"), "{e}");
    let e = VoiceConfig::parse(
        br#"{"audio":{"sample_rate":22050},"num_symbols":3,"phoneme_id_map":{"^":[1],"_":[0],"$":[7]}}"#,
        p,
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"$\""), "{e}");
    let e = VoiceConfig::parse(b"", p).unwrap_err();
    assert!(e.to_string().contains("voice.onnx.json"), "{e}");
}

#[test]
fn bad_requests_fail_cleanly_and_the_engine_keeps_working() {
    let eng = engine(2);
    let speak = |text: &str, o: &SpeakOptions| {
        let p = eng.acquire_permit().unwrap();
        eng.speak_with(text, None, o, p)
    };
    let ids = SpeakOptions::default().input(Input::Ids);
    for bad in ["1,0,256,0,2", "1,-1,2", "1,x,2", ","] {
        let e = speak(bad, &ids).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e:?}");
    }
    for (ns, ls, nw) in [
        (-1.0, 1.0, 0.8),
        (0.6, f32::NAN, 0.8),
        (0.6, 1.0, f32::INFINITY),
    ] {
        let o = phonemes().noise_scale(ns).length_scale(ls).noise_w(nw);
        assert!(matches!(speak(HELLO, &o), Err(Error::InvalidArgument(_))));
    }
    // Exploding durations hit the frame cap with a clear message.
    let o = phonemes().max_frames(20);
    let e = speak(HELLO, &o).unwrap_err();
    assert!(e.to_string().contains("cap"), "{e}");
    let o = phonemes().noise_w(60.0);
    let e = speak(HELLO, &o).unwrap_err();
    assert!(e.to_string().contains("cap"), "{e}");
    // Unknown voice.
    let p = eng.acquire_permit().unwrap();
    assert!(matches!(
        eng.speak_with(HELLO, Some("nope"), &phonemes(), p),
        Err(Error::UnknownVoice(_))
    ));
    // Unknown phonemes are dropped, not fatal; empty input is empty audio.
    let a = speak("həlˈoʊ ☃ wˈɜːld.", &phonemes()).unwrap();
    assert!(!a.samples().is_empty());
    for empty in ["", "   \n\t "] {
        assert!(speak(empty, &phonemes()).unwrap().samples().is_empty());
        let p = eng.acquire_permit().unwrap();
        assert!(eng.speak(empty, None, p).unwrap().samples().is_empty());
    }
    // Still healthy afterwards.
    assert!(speak(HELLO, &phonemes()).unwrap().samples().len() > 10_000);
}

#[test]
fn permits_time_out_and_come_back() {
    let eng = engine(1);
    let held = eng.acquire_permit().unwrap();
    assert!(eng.try_acquire_permit().is_none());
    assert!(matches!(
        eng.acquire_permit_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    drop(held);
    let p = eng
        .acquire_permit_timeout(Duration::from_millis(20))
        .unwrap();
    // A permit from another engine is refused (and still returned to its owner).
    let other = engine(1);
    let foreign = other.acquire_permit().unwrap();
    assert!(matches!(
        eng.speak_with(HELLO, None, &phonemes(), foreign),
        Err(Error::InvalidArgument(_))
    ));
    assert!(other.try_acquire_permit().is_some());
    drop(p);
    // A permit outlives its engine handle.
    let p = eng.acquire_permit().unwrap();
    let e2 = eng.clone();
    drop(eng);
    assert!(e2.speak_with(HELLO, None, &phonemes(), p).is_ok());
}

#[test]
fn streams_can_be_cancelled_and_equal_whole_audio() {
    let eng = engine(2);
    let two = "həlˈoʊ wˈɜːld.\nðɪs ɪz ɐ tˈɛst ʌv stɹˈiːmɪŋ.";
    let p = eng.acquire_permit().unwrap();
    let whole = eng.speak_with(two, None, &phonemes(), p).unwrap();
    let mut streamed = Vec::new();
    let mut chunks = 0;
    let p = eng.acquire_permit().unwrap();
    eng.speak_stream(two, None, &phonemes(), p, |c| {
        chunks += 1;
        streamed.extend_from_slice(c);
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert!(chunks > 2, "{chunks} chunks");
    common::assert_same_audio(
        voxide::audio::as_f32(whole.samples()),
        voxide::audio::as_f32(&streamed),
        "streams_can_be_cancelled_and_equal_whole_audio: streamed vs whole",
    );
    let mut calls = 0;
    let p = eng.acquire_permit().unwrap();
    let r = eng.speak_stream(two, None, &phonemes(), p, |_| {
        calls += 1;
        std::ops::ControlFlow::Break(())
    });
    assert!(matches!(r, Err(Error::Cancelled)));
    assert_eq!(calls, 1);
    // Both permits are free again.
    let _a = eng.try_acquire_permit().unwrap();
    let _b = eng.try_acquire_permit().unwrap();
}

/// A whole request on two threads runs its sentences longest first, side by
/// side; when several fail it still fails with the first failing sentence's
/// error, as on one thread.
#[test]
fn parallel_sentences_fail_with_the_first_failing_sentence() {
    let one = Engine::builder()
        .voice(common::voice_path())
        .threads(1)
        .build()
        .expect("engine");
    let two = engine(1);
    // A long sentence first, then short ones, all over the cap: on two
    // threads a short one fails before the long one does.
    let text = "ðə kwˈɪk bɹˈaʊn fˈɑːks dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑːɡ, ænd ðə dˈɑːɡ slˈiːps ɑːn.\nhəlˈoʊ.\nhˈaɪ.";
    let o = phonemes().max_frames(30);
    let err = |e: &Engine| {
        let p = e.acquire_permit().unwrap();
        e.speak_with(text, None, &o, p).unwrap_err().to_string()
    };
    let want = err(&one);
    assert!(want.contains("cap"), "{want}");
    for _ in 0..5 {
        assert_eq!(err(&two), want);
    }
    // The same text under the cap is fine on both, with the same samples.
    let ok = |e: &Engine| {
        let p = e.acquire_permit().unwrap();
        e.speak_with(text, None, &phonemes(), p)
            .unwrap()
            .samples()
            .to_vec()
    };
    assert_eq!(ok(&one), ok(&two));
}
