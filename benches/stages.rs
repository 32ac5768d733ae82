//! Per-stage wall time of the real voice on one sentence:
//! `cargo bench --bench stages` (after `scripts/fetch-voice.sh`).
//! Stages: encoder + duration predictor (`prepare`), flow, decoder, and the
//! first streamed chunk (time to first audio), for f32 and bf16, one and all
//! threads. Median of several runs.
//!
//! Then the first streamed chunk of every piece of `bench/paragraph.txt`
//! as a stream starts it (`Vits::prepare_first` for 8 frames, then
//! `render` of those 8), split into encoder, durations, flow and decoder:
//! the fastest of 7 runs, one and all threads, default arithmetic.

use std::path::Path;
use std::time::Instant;
use voxide::backend::cpu::CpuBackend;
use voxide::backend::{Executor, Precision};
use voxide::model::{StageTimes, SynthOptions, Vits};
use voxide::voice::Voice;

const TEXT: &str = "The old lighthouse stood at the edge of the cliff for more than a hundred years, and in all that time its lamp had never failed.";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The first chunk of each paragraph piece, stage by stage (see the top).
fn first_chunks(voice: &Voice, threads: usize) {
    let Ok(text) = std::fs::read_to_string("bench/paragraph.txt") else {
        println!("first chunks skipped: no bench/paragraph.txt here");
        return;
    };
    let pieces = voxide::text::phonemize(&text).expect("phonemize");
    let opts = SynthOptions::default();
    for th in [1, threads] {
        let be = CpuBackend::with_precision(th, Precision::Auto).expect("backend");
        let model = Vits::new(&be, &voice.weights).expect("model");
        println!("first chunk (8 frames) per piece, {th} thread(s), ms: total = encoder + durations + flow + decoder");
        for p in &pieces {
            let ids = voice.ids.sentence_ids(p).ids;
            let mut best = (f64::MAX, StageTimes::default());
            for _ in 0..7 {
                be.install(|| {
                    let t0 = Instant::now();
                    let mut u = model.prepare_first(&be, &ids, &opts, 8).expect("prepare");
                    let mut out = Vec::new();
                    model
                        .render(&be, &mut u, 0, 8, &mut out)
                        .expect("first chunk");
                    let total = t0.elapsed().as_secs_f64();
                    if total < best.0 {
                        best = (total, u.times);
                    }
                });
            }
            let (total, t) = best;
            println!(
                "{:4} ids  {:6.2} = {:6.2} + {:5.2} + {:5.2} + {:5.2}",
                ids.len(),
                total * 1e3,
                t.encoder * 1e3,
                t.duration * 1e3,
                t.flow * 1e3,
                t.decoder * 1e3
            );
        }
    }
}

fn main() {
    let path =
        std::env::var("VOXIDE_VOICE").unwrap_or_else(|_| "voices/en_US-joe-medium.onnx".into());
    let voice = match Voice::load(Path::new(&path), None) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("stages bench skipped: {e} (run scripts/fetch-voice.sh)");
            return;
        }
    };
    let phonemes = voxide::text::phonemize(TEXT).expect("phonemize");
    let ids = voice.ids.sentence_ids(&phonemes.join(" ")).ids;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = SynthOptions::default();
    println!("sentence: {} ids", ids.len());
    for precision in [Precision::F32, Precision::Bf16] {
        for th in [1, threads] {
            let be = match CpuBackend::with_precision(th, precision) {
                Ok(b) => b,
                Err(e) => {
                    println!("{}: skipped ({e})", precision.as_str());
                    continue;
                }
            };
            let model = Vits::new(&be, &voice.weights).expect("model");
            let (mut prep, mut flow, mut dec, mut first, mut audio) =
                (vec![], vec![], vec![], vec![], 0.0);
            for _ in 0..5 {
                be.install(|| {
                    let t0 = Instant::now();
                    let mut u = model.prepare(&be, &ids, &opts).expect("prepare");
                    let mut out = Vec::new();
                    model
                        .render(&be, &mut u, 0, 16, &mut out)
                        .expect("first chunk");
                    first.push(t0.elapsed().as_secs_f64());
                    let mut u = model.prepare(&be, &ids, &opts).expect("prepare");
                    prep.push(u.times.encoder + u.times.duration);
                    let f = u.frames();
                    let mut out = Vec::new();
                    model.render(&be, &mut u, 0, f, &mut out).expect("render");
                    flow.push(u.times.flow);
                    dec.push(u.times.decoder);
                    audio = out.len() as f64 / 22050.0;
                });
            }
            println!(
                "{:5} {}t  encoder+dp {:7.2} ms  flow {:7.2} ms  decoder {:7.2} ms  first chunk {:6.2} ms  ({:.2} s audio, xRT {:.1})",
                precision.as_str(),
                th,
                median(prep.clone()) * 1e3,
                median(flow.clone()) * 1e3,
                median(dec.clone()) * 1e3,
                median(first) * 1e3,
                audio,
                audio / (median(prep) + median(flow) + median(dec)),
            );
        }
    }
    first_chunks(&voice, threads);
}
