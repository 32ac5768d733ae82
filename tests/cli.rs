//! The `voxide` binary: outputs, exit codes, one-line errors.

mod common;

use std::process::Command;

fn voxide() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_voxide"));
    c.env("VOXIDE_VOICE", common::voice_path());
    c.env_remove("VOXIDE_DEVICE");
    c
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("voxide-cli-{}-{name}", std::process::id()))
}

#[test]
fn speak_writes_wav_and_raw() {
    let wav = tmp("a.wav");
    let raw = tmp("a.f32");
    let out = voxide()
        .args([
            "speak",
            "--phonemes",
            "həlˈoʊ wˈɜːld.",
            "--threads",
            "2",
            "--output",
        ])
        .arg(&wav)
        .arg("--raw")
        .arg(&raw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rate, pcm) = voxide::audio::read_wav(&std::fs::read(&wav).unwrap()).unwrap();
    assert_eq!(rate.hz(), 22050);
    let raw = std::fs::read(&raw).unwrap();
    assert_eq!(raw.len(), pcm.len() * 4);
    assert!(pcm.len() > 15_000);
    // Peak-normalised as Piper does: the loudest sample is at full scale.
    assert_eq!(pcm.iter().map(|v| v.unsigned_abs()).max(), Some(32767));
    // Same seed, same samples; --ids gives the same as the equivalent phonemes.
    let again = tmp("b.wav");
    let out = voxide()
        .args([
            "speak",
            "--ids",
            "1,0,20,0,59,0,24,0,120,0,27,0,100,0,3,0,35,0,120,0,62,0,122,0,24,0,17,0,10,0,2",
            "--output",
        ])
        .arg(&again)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&wav).unwrap());
    // Streaming WAV to stdout.
    let out = voxide()
        .args(["speak", "--phonemes", "həlˈoʊ.", "--output", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(&out.stdout[0..4], b"RIFF");
    assert!(out.stdout.len() > 44 + 10_000);
    for p in [wav, again, tmp("a.f32")] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn errors_are_one_line_and_nonzero() {
    for args in [
        vec!["speak", "--ids", "1,0,999,2"],
        vec!["speak", "--voice", "/nonexistent.onnx", "--ids", "1,2"],
        vec!["speak", "--phonemes", "hə", "--device", "quantum"],
        vec!["speak", "--phonemes", "hə", "--noise-w", "-3"],
        vec!["speak", "--bogus-flag"],
        vec!["bench", "--text-file", "/nonexistent.txt"],
    ] {
        let out = voxide().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn bench_json_and_voices() {
    let f = tmp("bench.txt");
    std::fs::write(&f, "həlˈoʊ wˈɜːld.\nðɪs ɪz ɐ tˈɛst.\n").unwrap();
    let out = voxide()
        .args([
            "bench",
            "--input",
            "phonemes",
            "--repeat",
            "1",
            "--threads",
            "2",
            "--json",
            "--text-file",
        ])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "audio_s",
        "wall_s",
        "xrt",
        "ttfa_ms",
        "load_ms",
        "peak_rss_mb",
        "device",
        "threads",
    ] {
        assert!(v.get(k).is_some(), "missing {k} in {v}");
    }
    assert!(v["audio_s"].as_f64().unwrap() > 1.0);
    let out = voxide()
        .args([
            "bench",
            "--input",
            "phonemes",
            "--repeat",
            "1",
            "--concurrency",
            "2",
            "--json",
            "--text-file",
        ])
        .arg(&f)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["concurrency"], 2);
    assert!(v["ttfa_p99_ms"].as_f64().unwrap() > 0.0);
    let _ = std::fs::remove_file(f);
    let dir = common::voice_path().parent().unwrap().to_path_buf();
    let out = voxide().arg("voices").arg(&dir).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("en_US-joe-medium.onnx") && s.contains("22050 Hz"),
        "{s}"
    );
}

#[test]
fn timestamps_subtitles_ssml_speed_and_speakers() {
    let (wav, json, srt, vtt) = (tmp("t.wav"), tmp("t.json"), tmp("t.srt"), tmp("t.vtt"));
    let text = "Hello, world. It costs $3.50 today.";
    let out = voxide()
        .args(["speak", "--text", text, "--speed", "1.25", "--output"])
        .arg(&wav)
        .arg("--timestamps")
        .arg(&json)
        .arg("--subtitles")
        .arg(&srt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["sample_rate"], 22050);
    let words = v["words"].as_array().unwrap();
    let got: Vec<&str> = words.iter().map(|w| w["text"].as_str().unwrap()).collect();
    assert_eq!(got, ["Hello", "world", "It", "costs", "$3.50", "today"]);
    let samples = v["samples"].as_u64().unwrap();
    // The WAV holds exactly `samples` samples.
    let wav_len = std::fs::metadata(&wav).unwrap().len();
    assert_eq!(wav_len, 44 + 2 * samples);
    for w in words {
        let (a, b) = (
            w["char_start"].as_u64().unwrap() as usize,
            w["char_end"].as_u64().unwrap() as usize,
        );
        assert_eq!(&text[a..b], w["text"].as_str().unwrap());
        assert!(w["start"].as_u64() <= w["end"].as_u64() && w["end"].as_u64().unwrap() <= samples);
    }
    let srt_text = std::fs::read_to_string(&srt).unwrap();
    assert!(srt_text.starts_with("1\n00:00:00,"), "{srt_text}");
    assert!(srt_text.contains("Hello, world."), "{srt_text}");
    // SSML from stdin, WebVTT, a mark.
    let mut child = voxide()
        .args(["speak", "--ssml", "--output"])
        .arg(&wav)
        .arg("--timestamps")
        .arg(&json)
        .arg("--subtitles")
        .arg(&vtt)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"<speak>One <mark name=\"x\"/>two.</speak>")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["marks"][0]["name"], "x");
    assert_eq!(v["marks"][0]["sample"], v["words"][1]["start"]);
    assert!(std::fs::read_to_string(&vtt)
        .unwrap()
        .starts_with("WEBVTT\n\n00:00:00."));
    // Errors: one line, non-zero.
    for args in [
        vec!["speak", "--ssml", "--text", "<speak>oops</spek>"],
        vec!["speak", "--text", "hi", "--speed", "9"],
        vec!["speak", "--text", "hi", "--speaker", "anna"],
        vec!["speak", "--text", "hi", "--subtitles", "x.txt"],
    ] {
        let out = voxide().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // Speakers by name on the 3-speaker test voice.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/voices");
    let out = voxide()
        .args(["speak", "--text", "Hi.", "--speaker", "cid", "--voice"])
        .arg(dir.join("test-3spk.onnx"))
        .arg("--output")
        .arg(&wav)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in [&wav, &json, &srt, &vtt] {
        let _ = std::fs::remove_file(p);
    }
}
