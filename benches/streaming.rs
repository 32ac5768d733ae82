//! Streaming throughput, interleaved in one process (so a shared machine's
//! load falls on every mode alike): the same text, as IPA sentences, three ways
//! per round, in rotating order —
//!
//! - `stream`: one streamed request (on several threads, its sentences render
//!   side by side: `src/engine/ahead.rs`);
//! - `serial`: the same sentences streamed one request after another, with the
//!   chunk sizes and seeds the one-sentence-at-a-time stream uses (what a
//!   streamed request did before the lanes: the same samples, checked);
//! - `whole`: one `speak_with` of the whole text.
//!
//! Prints, per mode, the median and best xRT, the CPU time (all threads) per
//! second of audio, and for the streamed modes the time to the first chunk;
//! then the median per-round ratios of wall times.
//!
//! `cargo bench --bench streaming -- [--threads N] [--rounds N] [--text-file F]`

use std::ops::ControlFlow;
use std::time::Instant;
use voxide::{Engine, Input, SpeakOptions};

/// CPU seconds (user + system) this process has used so far, and its minor
/// page faults (`getrusage`, unix only).
#[cfg(unix)]
fn cpu_seconds() -> (f64, f64) {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed value it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an `rusage` the call may fill.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_minflt as f64)
}

/// Elsewhere not measured: NaN, which the report prints as such.
#[cfg(not(unix))]
fn cpu_seconds() -> (f64, f64) {
    (f64::NAN, f64::NAN)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let mut threads = 2;
    let mut rounds = 5;
    let mut text_file = String::from("bench/paragraph.txt");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--threads" => threads = val().parse().expect("--threads N"),
            "--rounds" => rounds = val().parse().expect("--rounds N"),
            "--text-file" => text_file = val(),
            // `cargo bench` passes --bench.
            _ => {}
        }
    }
    let text = std::fs::read_to_string(&text_file).expect("text file");
    let voice = std::env::var_os("VOXIDE_VOICE").map_or_else(
        || {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("voices/en_US-joe-medium.onnx")
        },
        std::path::PathBuf::from,
    );
    let eng = Engine::builder()
        .voice(voice)
        .threads(threads)
        .build()
        .expect("engine");
    let rate = f64::from(eng.sample_rate(None).expect("rate").hz());
    let sentences = voxide::text::phonemize(&text).expect("phonemize");
    let all = sentences.join("\n");
    let seed = 0u64;
    let opts = SpeakOptions::default().input(Input::Phonemes).seed(seed);

    // One streamed request: (samples, wall s, first chunk ms).
    let stream_one = |text: &str, o: &SpeakOptions, out: &mut Vec<f32>| -> (f64, f64) {
        let t0 = Instant::now();
        let mut first = None;
        eng.speak_stream(text, None, o, eng.acquire_permit().expect("permit"), |c| {
            first.get_or_insert_with(|| t0.elapsed().as_secs_f64() * 1e3);
            out.extend_from_slice(voxide::audio::as_f32(c));
            ControlFlow::Continue(())
        })
        .expect("stream");
        (t0.elapsed().as_secs_f64(), first.unwrap_or(0.0))
    };
    let stream = |out: &mut Vec<f32>| stream_one(&all, &opts, out);
    let serial = |out: &mut Vec<f32>| {
        let t0 = Instant::now();
        let mut first = 0.0;
        for (i, s) in sentences.iter().enumerate() {
            // Sentence i of a request: seed + i; full-size chunks after the first sentence.
            let mut o = opts.clone().seed(seed.wrapping_add(i as u64));
            if i > 0 {
                let full = o.chunk_frames;
                o = o.first_chunk_frames(full);
            }
            let (_, f) = stream_one(s, &o, out);
            if i == 0 {
                first = f;
            }
        }
        (t0.elapsed().as_secs_f64(), first)
    };
    let whole = |out: &mut Vec<f32>| {
        let t0 = Instant::now();
        let a = eng
            .speak_with(&all, None, &opts, eng.acquire_permit().expect("permit"))
            .expect("whole");
        out.extend_from_slice(voxide::audio::as_f32(a.samples()));
        (t0.elapsed().as_secs_f64(), 0.0)
    };

    // Warm-up, and the samples check: serial == stream, bit for bit.
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    stream(&mut a);
    serial(&mut b);
    whole(&mut c);
    assert!(
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "the streamed request's samples differ from the sentence-by-sentence stream's"
    );
    let audio_s = a.len() as f64 / rate;
    let names = ["stream", "serial", "whole"];
    let mut walls: [Vec<f64>; 3] = Default::default();
    let mut firsts: [Vec<f64>; 3] = Default::default();
    let mut cpus: [Vec<f64>; 3] = Default::default();
    let mut faults: [Vec<f64>; 3] = Default::default();
    let mut stages: [Vec<[f64; 4]>; 3] = Default::default();
    let mut ratios: [Vec<f64>; 2] = Default::default();
    for r in 0..rounds {
        let mut w = [0.0; 3];
        for k in 0..3 {
            let m = (r + k) % 3;
            let mut out = Vec::new();
            let c0 = cpu_seconds();
            let s0 = eng.stage_times();
            let (wall, first) = match m {
                0 => stream(&mut out),
                1 => serial(&mut out),
                _ => whole(&mut out),
            };
            let (c1, s1) = (cpu_seconds(), eng.stage_times());
            cpus[m].push(c1.0 - c0.0);
            faults[m].push(c1.1 - c0.1);
            stages[m].push([
                s1.encoder - s0.encoder,
                s1.duration - s0.duration,
                s1.flow - s0.flow,
                s1.decoder - s0.decoder,
            ]);
            w[m] = wall;
            walls[m].push(wall);
            firsts[m].push(first);
        }
        ratios[0].push(w[1] / w[0]);
        ratios[1].push(w[2] / w[0]);
        eprintln!(
            "round {r}: stream {:.2} s, serial {:.2} s, whole {:.2} s",
            w[0], w[1], w[2]
        );
    }
    println!(
        "threads {threads}, {} sentences, {audio_s:.1} s of audio, {rounds} rounds",
        sentences.len()
    );
    for m in 0..3 {
        let best = walls[m].iter().copied().fold(f64::INFINITY, f64::min);
        let med = median(&mut walls[m]);
        let ttfa = if m < 2 {
            let max = firsts[m].iter().copied().fold(0.0, f64::max);
            format!(
                ", first chunk median {:.1} ms, max {:.1} ms",
                median(&mut firsts[m]),
                max
            )
        } else {
            String::new()
        };
        println!(
            "{:<7} xRT median {:.2} (best {:.2}), CPU s per audio s {:.4}, page faults {:.0}{ttfa}",
            names[m],
            audio_s / med,
            audio_s / best,
            median(&mut cpus[m]) / audio_s,
            median(&mut faults[m])
        );
        let st: Vec<String> = (0..4)
            .map(|k| {
                let mut v: Vec<f64> = stages[m].iter().map(|s| s[k]).collect();
                format!("{:.2}", median(&mut v))
            })
            .collect();
        println!(
            "        stage s (summed over sentences): encoder {}, duration {}, flow {}, decoder {}",
            st[0], st[1], st[2], st[3]
        );
    }
    println!(
        "per round: serial/stream wall {:.3}, whole/stream wall {:.3} (median)",
        median(&mut ratios[0]),
        median(&mut ratios[1])
    );
}
