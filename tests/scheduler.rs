//! The scheduler: bounded queue, slots, streams, cancellation, no leaks, and
//! the engine's scheduled path giving exactly the solo samples.

mod common;

use proptest::prelude::*;
use std::sync::mpsc;
use std::time::Duration;
use voxide::scheduler::{Job, Scheduler, SchedulerOptions};
use voxide::{Engine, Error, Input, SpeakOptions};

/// Yields `0..n`, then ends; optionally waits for a go signal before the first item.
struct Count {
    i: usize,
    n: usize,
    gate: Option<mpsc::Receiver<()>>,
}

impl Job for Count {
    type Item = usize;
    fn step(&mut self) -> voxide::Result<Option<usize>> {
        if let Some(g) = self.gate.take() {
            let _ = g.recv();
        }
        if self.i < self.n {
            self.i += 1;
            Ok(Some(self.i - 1))
        } else {
            Ok(None)
        }
    }
}

fn count(n: usize) -> Count {
    Count {
        i: 0,
        n,
        gate: None,
    }
}

fn wait_idle(s: &Scheduler<Count>) {
    for _ in 0..5000 {
        if s.active() == 0 && s.admitted() == s.finished() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!(
        "scheduler not idle: active {}, admitted {}, finished {}",
        s.active(),
        s.admitted(),
        s.finished()
    );
}

#[test]
fn streams_deliver_in_order() {
    let s = Scheduler::start("t", SchedulerOptions::default()).unwrap();
    let streams: Vec<_> = (0..10).map(|k| s.submit(count(k * 3)).unwrap()).collect();
    for (k, st) in streams.into_iter().enumerate() {
        let got: Vec<usize> = st.map(|r| r.unwrap()).collect();
        assert_eq!(got, (0..k * 3).collect::<Vec<_>>());
    }
    wait_idle(&s);
}

#[test]
fn cancellation_mid_stream_frees_the_slot() {
    let opts = SchedulerOptions {
        max_active: 1,
        queue_depth: 4,
        stream_depth: 1,
    };
    let s = Scheduler::start("t", opts).unwrap();
    let mut st = s.submit(count(1_000_000)).unwrap();
    assert_eq!(st.next().unwrap().unwrap(), 0);
    assert_eq!(s.active(), 1);
    drop(st);
    // The only slot is free again: a new request runs to the end.
    let got: Vec<usize> = s.submit(count(5)).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    wait_idle(&s);
}

#[test]
fn no_slot_leak_after_10000_mixed_requests() {
    let opts = SchedulerOptions {
        max_active: 8,
        queue_depth: 16,
        stream_depth: 2,
    };
    let s = Scheduler::start("t", opts).unwrap();
    std::thread::scope(|sc| {
        for t in 0..4usize {
            let s = &s;
            sc.spawn(move || {
                for k in 0..2500usize {
                    let n = (k * 7 + t) % 9;
                    let mut st = s.submit(count(n)).unwrap();
                    if k % 3 == 0 {
                        // cancel after at most one item
                        let _ = st.next();
                        drop(st);
                    } else {
                        let got: Vec<usize> = st.map(|r| r.unwrap()).collect();
                        assert_eq!(got.len(), n);
                    }
                }
            });
        }
    });
    wait_idle(&s);
    assert_eq!(s.admitted(), 10_000);
    assert_eq!(s.finished(), 10_000);
}

#[test]
fn full_queue_pushes_back() {
    let opts = SchedulerOptions {
        max_active: 1,
        queue_depth: 2,
        stream_depth: 1,
    };
    let s = Scheduler::start("t", opts).unwrap();
    let (go, gate) = mpsc::channel();
    let first = s
        .submit(Count {
            i: 0,
            n: 1,
            gate: Some(gate),
        })
        .unwrap();
    // Wait until the actor holds the gated request.
    while s.active() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let q1 = s.try_submit(count(1)).unwrap();
    let q2 = s.try_submit(count(1)).unwrap();
    match s.try_submit(count(1)) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("queue is full"), "{m}"),
        other => panic!("expected a full queue, got {:?}", other.map(|_| ())),
    }
    assert!(matches!(
        s.submit_timeout(count(1), Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    go.send(()).unwrap();
    for st in [first, q1, q2] {
        assert_eq!(st.map(|r| r.unwrap()).collect::<Vec<_>>(), vec![0]);
    }
    wait_idle(&s);
}

fn engine(scheduler: bool) -> Engine {
    Engine::builder()
        .voice(common::voice_path())
        .max_concurrent(4)
        .threads(2)
        .scheduler(scheduler)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]
    /// Several concurrent requests of random lengths and chunk sizes through
    /// the scheduler give the solo samples, tails included.
    #[test]
    fn scheduled_equals_solo(
        lens in prop::collection::vec(3usize..25, 2..5),
        first in 4usize..24,
        chunk in 24usize..80,
    ) {
        let solo_eng = engine(false);
        let eng = engine(true);
        let texts: Vec<String> = lens
            .iter()
            .enumerate()
            .map(|(k, &n)| {
                (0..n)
                    .map(|i| (20 + (i * 7 + k * 3) % 30).to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let opts = SpeakOptions {
            input: Input::Ids,
            seed: 9,
            max_frames: 400,
            first_chunk_frames: first,
            chunk_frames: chunk,
            ..SpeakOptions::default()
        };
        let solo: Vec<Vec<f32>> = texts
            .iter()
            .map(|t| {
                let p = solo_eng.acquire_permit().unwrap();
                let a = solo_eng.speak_with(t, None, &opts, p).unwrap();
                a.samples().iter().map(|s| s.0).collect()
            })
            .collect();
        let got: Vec<Vec<f32>> = std::thread::scope(|s| {
            let hs: Vec<_> = texts
                .iter()
                .map(|t| {
                    let (eng, opts) = (&eng, &opts);
                    s.spawn(move || {
                        let mut out = Vec::new();
                        let p = eng.acquire_permit().unwrap();
                        eng.speak_stream(t, None, opts, p, |c| {
                            out.extend(c.iter().map(|s| s.0));
                            std::ops::ControlFlow::Continue(())
                        })
                        .unwrap();
                        out
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        prop_assert_eq!(got, solo);
    }
}

#[test]
fn engine_stream_cancel_then_next_request_runs() {
    let eng = engine(true);
    let opts = SpeakOptions {
        input: Input::Phonemes,
        ..SpeakOptions::default()
    };
    let text = "ðə kwˈɪk bɹˈaʊn fˈɑːks. ðə kwˈɪk bɹˈaʊn fˈɑːks.";
    let mut chunks = 0;
    let r = eng.speak_stream(text, None, &opts, eng.acquire_permit().unwrap(), |_| {
        chunks += 1;
        std::ops::ControlFlow::Break(())
    });
    assert!(matches!(r, Err(Error::Cancelled)));
    assert_eq!(chunks, 1);
    let a = eng
        .speak_with(text, None, &opts, eng.acquire_permit().unwrap())
        .unwrap();
    assert!(a.samples().len() > 10_000);
}
