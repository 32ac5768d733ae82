//! voxide Rust example: speak a fixed sentence to a WAV file and stream it.
//!
//! ```sh
//! cargo run --release --example speak -- [VOICE_PATH [OUT_WAV]]   # defaults: $VOXIDE_VOICE, out.wav
//! ```
use std::ops::ControlFlow;
use voxide::{Engine, Input, SpeakOptions};

/// "Hello from voxide, a text to speech engine." as espeak IPA.
const SENTENCE_IPA: &str = "həlˈoʊ fɹʌm vˈɑːksaɪd, ɐ tˈɛkst tə spˈiːtʃ ˈɛndʒɪn.";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), voxide::Error> {
    let mut args = std::env::args().skip(1);
    let voice = args
        .next()
        .or_else(|| std::env::var("VOXIDE_VOICE").ok())
        .unwrap_or_else(|| {
            eprintln!("usage: speak VOICE_PATH [OUT_WAV]   (or set VOXIDE_VOICE)");
            std::process::exit(2)
        });
    let out = args.next().unwrap_or_else(|| "out.wav".to_string());

    let engine = Engine::builder().voice(&voice).max_concurrent(2).build()?;
    println!("voxide on {}", engine.device_name());
    let options = SpeakOptions::default().input(Input::Phonemes);

    // Threads share one engine (it is Clone + Send + Sync); permits bound the load.
    let lens: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = ["wˈʌn.", "tˈuː.", "θɹˈiː."]
            .into_iter()
            .map(|w| {
                let (engine, options) = (&engine, &options);
                s.spawn(move || -> Result<usize, voxide::Error> {
                    let permit = engine.acquire_permit()?;
                    Ok(engine.speak_with(w, None, options, permit)?.samples().len())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect::<Result<_, _>>()
    })?;
    println!("thread sample counts: {lens:?}");

    let permit = engine.acquire_permit()?;
    let audio = engine.speak_with(SENTENCE_IPA, None, &options, permit)?;
    audio.write_wav(&out)?;
    println!(
        "spoke {} samples ({:.2} s) to {out}",
        audio.samples().len(),
        audio.duration_secs()
    );

    let mut streamed = 0;
    let permit = engine.acquire_permit()?;
    engine.speak_stream(SENTENCE_IPA, None, &options, permit, |chunk| {
        streamed += chunk.len();
        ControlFlow::Continue(())
    })?;
    println!("streamed {streamed} samples");
    Ok(())
}
