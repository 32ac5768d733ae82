//! The scheduler on the real voice: interleaved requests give the same audio
//! as each request alone; dropped streams free their slots; the queue pushes
//! back; errors reach the stream; no slot leaks over 10,000 mixed requests.

mod common;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};
use voxide::scheduler::{Scheduler, SchedulerOptions, State};
use voxide::{AudioSample, Engine, Error, SpeakOptions};

fn engine() -> Engine {
    Engine::builder()
        .voice(common::voice_path())
        .threads(2)
        .build()
        .expect("engine")
}

fn alone(e: &Engine, text: &str, o: &SpeakOptions) -> Vec<AudioSample> {
    let mut out = Vec::new();
    let permit = e.acquire_permit().expect("permit");
    e.speak_stream(text, None, o, permit, |c| {
        out.extend_from_slice(c);
        ControlFlow::Continue(())
    })
    .expect("speak");
    out
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn interleaved_requests_equal_solo_runs() {
    let e = engine();
    let texts = [
        "Hi.",
        "The quick brown fox jumps over the lazy dog.",
        "Short one. And a second sentence, with a comma, follows it.",
        "Numbers like 42 and dates like March 3rd are read aloud.",
        "Ok.",
    ];
    let opts: Vec<SpeakOptions> = (0..texts.len())
        .map(|i| SpeakOptions {
            seed: i as u64 * 7,
            first_chunk_frames: 4 + i,
            chunk_frames: 16 + 8 * i,
            ..SpeakOptions::default()
        })
        .collect();
    let sched = Scheduler::new(
        e.clone(),
        SchedulerOptions {
            max_active: 3,
            stream_depth: 2,
            ..SchedulerOptions::default()
        },
    )
    .expect("scheduler");
    // All submitted before any is read: the actor interleaves their chunks.
    let streams: Vec<_> = texts
        .iter()
        .zip(&opts)
        .map(|(t, o)| sched.submit(t, None, o).expect("submit"))
        .collect();
    let got: Vec<Vec<AudioSample>> = std::thread::scope(|s| {
        let hs: Vec<_> = streams
            .into_iter()
            .map(|st| {
                s.spawn(move || {
                    let mut v = Vec::new();
                    for c in st {
                        v.extend_from_slice(&c.expect("chunk"));
                    }
                    v
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("reader")).collect()
    });
    for ((t, o), g) in texts.iter().zip(&opts).zip(&got) {
        let want = alone(&e, t, o);
        assert!(!want.is_empty());
        assert_eq!(
            &want, g,
            "scheduled audio differs from the solo run for {t:?}"
        );
    }
    wait_until("slots to empty", || sched.active() == 0);
    assert_eq!(sched.finished(), (texts.len(), 0));
}

#[test]
fn dropped_stream_frees_its_slot_and_others_go_on() {
    let e = engine();
    let sched = Scheduler::new(
        e.clone(),
        SchedulerOptions {
            max_active: 1,
            stream_depth: 1,
            ..SchedulerOptions::default()
        },
    )
    .expect("scheduler");
    let long = "This sentence is long enough to need many chunks of audio before it ends, so we can stop it early.";
    let mut s = sched
        .submit(long, None, &SpeakOptions::default())
        .expect("submit");
    let first = s.next().expect("a chunk").expect("audio");
    assert!(!first.is_empty());
    drop(s);
    wait_until("the slot to be freed", || sched.active() == 0);
    assert_eq!(sched.finished(), (0, 1));
    // The single slot serves the next request.
    let o = SpeakOptions::default();
    let got: Vec<AudioSample> = sched
        .submit("Hi.", None, &o)
        .expect("submit")
        .flat_map(|c| c.expect("chunk"))
        .collect();
    assert_eq!(got, alone(&e, "Hi.", &o));
}

#[test]
fn full_queue_pushes_back_and_errors_reach_the_stream() {
    let e = engine();
    let sched = Scheduler::new(
        e,
        SchedulerOptions {
            queue_depth: 1,
            max_active: 1,
            stream_depth: 1,
        },
    )
    .expect("scheduler");
    let o = SpeakOptions::default();
    // Occupies the only slot (nobody reads it), then one waits in the queue.
    let busy = sched
        .submit("A sentence nobody reads for a while.", None, &o)
        .expect("submit");
    wait_until("admission", || sched.active() == 1 && sched.queued() == 0);
    let queued = sched
        .try_submit("Hi.", None, &o)
        .expect("room for one in the queue");
    match sched.try_submit("Hi.", None, &o) {
        Err(Error::Timeout) => {}
        other => panic!("expected backpressure (Timeout), got {other:?}"),
    }
    drop(busy);
    assert!(queued.map(|c| c.expect("chunk").len()).sum::<usize>() > 0);
    // A synthesis error (frame cap) arrives on the stream, then it ends.
    let capped = SpeakOptions {
        max_frames: 3,
        ..SpeakOptions::default()
    };
    let mut s = sched
        .submit("This will not fit in three frames.", None, &capped)
        .expect("submit");
    match s.next() {
        Some(Err(Error::InvalidArgument(m))) => assert!(m.contains("cap"), "{m}"),
        other => panic!("expected the frame-cap error, got {other:?}"),
    }
    assert!(s.next().is_none());
    // Text errors are returned at submit.
    assert!(matches!(
        sched.submit("x", Some("no-such-voice"), &o),
        Err(Error::UnknownVoice(_))
    ));
    assert!(State::EMPTY.is_empty() && !State(0).is_empty());
}

#[test]
fn no_slot_leak_over_10000_mixed_requests() {
    let e = engine();
    let sched = Scheduler::new(
        e,
        SchedulerOptions {
            queue_depth: 32,
            max_active: 4,
            stream_depth: 2,
        },
    )
    .expect("scheduler");
    let o = SpeakOptions::default();
    let ids = SpeakOptions {
        input: voxide::Input::Ids,
        ..SpeakOptions::default()
    };
    let n = 10_000;
    let mut read = 0;
    std::thread::scope(|s| {
        let mut readers = Vec::new();
        for i in 0..n {
            if i % 50 == 0 {
                // Read to the end, from another thread.
                let st = sched.submit("Hi.", None, &o).expect("submit");
                readers.push(
                    s.spawn(move || st.map(|c| c.map(|v| v.len()).unwrap_or(0)).sum::<usize>()),
                );
            } else if i % 50 == 1 {
                // Read one chunk, then cancel.
                let mut st = sched.submit("1,8,0,2", None, &ids).expect("submit");
                let _ = st.next();
            } else {
                // Dropped at once: cancelled before or right after admission.
                drop(sched.submit("Ok.", None, &o).expect("submit"));
            }
        }
        for r in readers {
            read += usize::from(r.join().expect("reader") > 0);
        }
    });
    assert_eq!(read, n / 50);
    wait_until("every slot to be freed", || {
        sched.active() == 0 && sched.queued() == 0
    });
    let (done, cancelled) = sched.finished();
    assert_eq!(done + cancelled, n, "every request finished exactly once");
    assert!(done >= n / 50);
    sched.shutdown();
}
