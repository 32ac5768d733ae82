//! Streaming on two CPU threads: a request's sentences render side by side
//! (`src/engine/ahead.rs`) and reach the caller in order, with the samples of
//! whole synthesis and of the one-thread stream; a cancelled stream stops its
//! threads before the call returns; errors come in sentence order.

mod common;

use std::ops::ControlFlow;
use voxide::audio::as_f32;
use voxide::{Engine, Error, SpeakOptions};

/// Six sentences, the first one long (its first chunks are small, then the
/// other lane starts), the others of mixed lengths.
const TEXT: &str = "The old lighthouse stood at the edge of the cliff for more than a hundred \
                    years, and in all that time its lamp had never failed. Every evening the \
                    keeper climbed the stairs. Sailors told stories about the light! Did it \
                    follow them? When the coast guard finally replaced the lamp with an automatic \
                    beacon, the last keeper refused to leave. Perhaps that is enough.";

/// The tests of this file one at a time: one of them looks at the process's
/// threads.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn engine(threads: usize) -> Engine {
    Engine::builder()
        .voice(common::voice_path())
        .threads(threads)
        .build()
        .unwrap()
}

/// The chunks of a streamed request (or its error after them).
fn stream(eng: &Engine, text: &str, opts: &SpeakOptions) -> (Vec<Vec<f32>>, Result<(), Error>) {
    let mut chunks = Vec::new();
    let r = eng.speak_stream(text, None, opts, eng.acquire_permit().unwrap(), |c| {
        chunks.push(as_f32(c).to_vec());
        ControlFlow::Continue(())
    });
    (chunks, r)
}

/// Threads of this process whose name starts with `prefix` (Linux).
fn threads_named(prefix: &str) -> Option<usize> {
    let dir = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        dir.filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
            .filter(|name| name.starts_with(prefix))
            .count(),
    )
}

#[test]
fn two_thread_stream_equals_whole_and_the_one_thread_stream() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (one, two) = (engine(1), engine(2));
    let opts = SpeakOptions::default().seed(7);
    assert!(
        two.sentence_ids(TEXT, None, voxide::Input::Text)
            .unwrap()
            .len()
            >= 6
    );

    let whole = two
        .speak_with(TEXT, None, &opts, two.acquire_permit().unwrap())
        .unwrap();
    let whole = as_f32(whole.samples());

    // Default chunks (small first ones): the whole audio (bit for bit on
    // kernels with exact columns, to rounding on the portable ones, whose
    // GEMMs block by shape and the first chunks have other shapes).
    let (chunks, r) = stream(&two, TEXT, &opts);
    r.unwrap();
    let streamed: Vec<f32> = chunks.concat();
    common::assert_same_audio(
        whole,
        &streamed,
        "two_thread_stream_equals_whole_and_the_one_thread_stream: 2-thread stream vs whole",
    );

    // The one-thread engine streams sentence after sentence: the same chunks,
    // in the same order (sentence ends included: each sentence's chunks start
    // afresh), the same samples.
    let (seq, r) = stream(&one, TEXT, &opts);
    r.unwrap();
    let lens = |c: &[Vec<f32>]| c.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(lens(&chunks), lens(&seq), "chunk sizes differ");
    common::assert_same_audio(
        &seq.concat(),
        &streamed,
        "two_thread_stream_equals_whole_and_the_one_thread_stream: 2-thread vs 1-thread stream",
    );

    // The chunk sizes of whole synthesis on two threads: the very ops of
    // `speak_with`, so bit for bit on any kernels.
    let same = opts.clone().first_chunk_frames(128).chunk_frames(128);
    let (chunks, r) = stream(&two, TEXT, &same);
    r.unwrap();
    let streamed = chunks.concat();
    assert_eq!(streamed.len(), whole.len());
    if let Some(i) = whole
        .iter()
        .zip(&streamed)
        .position(|(a, b)| a.to_bits() != b.to_bits())
    {
        panic!(
            "sample {i} differs: {} streamed vs {} whole",
            streamed[i], whole[i]
        );
    }

    // Run again: the same chunks (nothing left over from the first runs).
    let (again, r) = stream(&two, TEXT, &opts);
    r.unwrap();
    assert_eq!(lens(&again), lens(&seq));
    assert!(again.concat() == stream(&two, TEXT, &opts).0.concat());
}

#[test]
fn dropping_a_two_thread_stream_stops_its_lanes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let eng = engine(2);
    let opts = SpeakOptions::default().seed(3);
    let text = [TEXT, TEXT].join(" ");
    let work = |eng: &Engine| {
        let t = eng.stage_times();
        t.encoder + t.duration + t.flow + t.decoder
    };
    // The work of the whole request (sentences count when they end).
    let w0 = work(&eng);
    let (all, r) = stream(&eng, &text, &opts);
    r.unwrap();
    let full = work(&eng) - w0;
    assert!(full > 0.0 && all.len() > 12);

    // Stop after the third chunk: the other lane is at work by then (the
    // first sentence's chunks have reached full size).
    let mut calls = 0;
    let w1 = work(&eng);
    let r = eng.speak_stream(&text, None, &opts, eng.acquire_permit().unwrap(), |_| {
        calls += 1;
        if calls == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert_eq!(calls, 3, "chunks delivered after the stream was stopped");
    // No lane outlives the call (its helper thread was joined; the OS may
    // take a moment to remove an exited thread from /proc) ...
    let mut alive = threads_named("voxide-lane");
    for _ in 0..100 {
        if alive.is_none_or(|n| n == 0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        alive = threads_named("voxide-lane");
    }
    if let Some(n) = alive {
        assert_eq!(n, 0, "{n} streaming threads still alive after the call");
    }
    // ... and the lanes stopped within their chunk in flight: far from the
    // whole request's work (12 sentences; at most the two in flight end).
    let spent = work(&eng) - w1;
    assert!(
        spent < full / 2.0,
        "a cancelled stream did {spent} s of stage work, the whole request {full} s"
    );
    // The engine goes on: the same chunks as before.
    let (again, r) = stream(&eng, &text, &opts);
    r.unwrap();
    assert!(again == all);
}

#[test]
fn a_failing_later_sentence_fails_in_order() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (one, two) = (engine(1), engine(2));
    // "Perhaps that is enough." ends the text; a long sentence before it and
    // a cap between the short ones' frames and the long ones'.
    let text = "Sailors told stories. Did it follow them? When the coast guard finally \
                replaced the lamp with an automatic beacon, the last keeper refused to leave \
                and stayed in the cottage for three more winters. Perhaps that is enough.";
    let opts = SpeakOptions::default().seed(1).max_frames(200);
    let (seq, r1) = stream(&one, text, &opts);
    let (par, r2) = stream(&two, text, &opts);
    let (e1, e2) = (r1.unwrap_err(), r2.unwrap_err());
    assert!(e2.to_string().contains("cap"), "{e2}");
    assert_eq!(e1.to_string(), e2.to_string());
    // The sentences before the failing one were all delivered, as on one thread.
    assert!(!seq.is_empty());
    let lens = |c: &[Vec<f32>]| c.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(lens(&par), lens(&seq));
    common::assert_same_audio(
        &seq.concat(),
        &par.concat(),
        "a_failing_later_sentence_fails_in_order: 2-thread vs 1-thread samples before the error",
    );
}
