//! The scheduler: bounded queue, slots, streams, cancellation, no leaks, and
//! the engine's scheduled path giving exactly the solo samples.

mod common;

use proptest::prelude::*;
use std::sync::{mpsc, Arc, Mutex};
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

fn wait_idle<J: Job>(s: &Scheduler<J>) {
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
        ..SchedulerOptions::default()
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
        ..SchedulerOptions::default()
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
    // The requests ran through batched steps, several at a time.
    assert!(s.largest_batch() > 1, "largest batch {}", s.largest_batch());
    assert!(s.largest_batch() <= 8);
    assert!(s.batches() < s.batched_steps());
}

/// Per batched step: its bucket and (job id, item index) per member.
type BatchLog = Arc<Mutex<Vec<(usize, Vec<(usize, usize)>)>>>;

/// Records every batch it is stepped in.
struct Rec {
    id: usize,
    i: usize,
    n: usize,
    log: BatchLog,
}

impl Job for Rec {
    type Item = usize;
    fn step(&mut self) -> voxide::Result<Option<usize>> {
        if self.i < self.n {
            self.i += 1;
            Ok(Some(self.i - 1))
        } else {
            Ok(None)
        }
    }
    fn step_batch(jobs: &mut [&mut Self], bucket: usize) -> Vec<voxide::Result<Option<usize>>> {
        if let Some(j) = jobs.first() {
            let members = jobs.iter().map(|j| (j.id, j.i)).collect();
            j.log.lock().unwrap().push((bucket, members));
        }
        jobs.iter_mut().map(|j| j.step()).collect()
    }
}

#[test]
fn batches_are_bucketed_and_new_requests_go_first() {
    let opts = SchedulerOptions {
        max_active: 16,
        max_batch: 6, // rounded down to the bucket 4
        stream_depth: 64,
        ..SchedulerOptions::default()
    };
    let s = Scheduler::start("t", opts).unwrap();
    assert_eq!(s.options().max_batch, 4);
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut streams = Vec::new();
    for id in 0..12 {
        streams.push(
            s.submit(Rec {
                id,
                i: 0,
                n: 20 + id,
                log: log.clone(),
            })
            .unwrap(),
        );
        if id % 4 == 3 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for (id, st) in streams.into_iter().enumerate() {
        let got: Vec<usize> = st.map(|r| r.unwrap()).collect();
        assert_eq!(got, (0..20 + id).collect::<Vec<_>>());
    }
    wait_idle(&s);
    let log = log.lock().unwrap();
    assert!(log.iter().any(|(_, m)| m.len() > 1), "never batched");
    for (bucket, members) in log.iter() {
        assert!(members.len() <= 4, "batch of {}", members.len());
        assert_eq!(*bucket, members.len().next_power_of_two());
        // A request's first step runs only with other first steps.
        if members.iter().any(|m| m.1 == 0) {
            assert!(members.iter().all(|m| m.1 == 0), "mixed batch {members:?}");
        }
    }
}

#[test]
fn cancellation_mid_stream_while_batched() {
    let opts = SchedulerOptions {
        max_active: 4,
        stream_depth: 1,
        ..SchedulerOptions::default()
    };
    let s = Scheduler::start("t", opts).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let rec = |id, n| Rec {
        id,
        i: 0,
        n,
        log: log.clone(),
    };
    let mut streams: Vec<_> = (0..4)
        .map(|id| s.submit(rec(id, 1_000_000)).unwrap())
        .collect();
    for st in &mut streams {
        assert_eq!(st.next().unwrap().unwrap(), 0);
        assert_eq!(st.next().unwrap().unwrap(), 1);
    }
    assert!(log.lock().unwrap().iter().any(|(_, m)| m.len() > 1));
    // Cancel one while the others keep streaming: its slot frees at once and
    // a new request takes it while the other three are still active.
    let dropped = streams.remove(1);
    drop(dropped);
    let got: Vec<usize> = s.submit(rec(9, 5)).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    for st in &mut streams {
        let k = st.next().unwrap().unwrap();
        assert!(k >= 2);
    }
    // The finished request's slot is released right after its stream ends.
    for _ in 0..5000 {
        if s.active() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(s.active(), 3);
    drop(streams);
    wait_idle(&s);
}

#[test]
fn max_wait_gathers_a_first_batch_and_zero_wait_does_not_hold_a_lone_request() {
    // Default: a lone request runs at once.
    let s = Scheduler::start("t", SchedulerOptions::default()).unwrap();
    let t0 = std::time::Instant::now();
    let got: Vec<usize> = s.submit(count(1)).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(got, vec![0]);
    assert!(t0.elapsed() < Duration::from_millis(500));
    // With a wait bound, requests submitted within it start in one batch.
    let opts = SchedulerOptions {
        max_wait: Duration::from_millis(300),
        ..SchedulerOptions::default()
    };
    let s = Scheduler::start("t", opts).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let streams: Vec<_> = (0..3)
        .map(|id| {
            std::thread::sleep(Duration::from_millis(5));
            s.submit(Rec {
                id,
                i: 0,
                n: 2,
                log: log.clone(),
            })
            .unwrap()
        })
        .collect();
    let t0 = std::time::Instant::now();
    for st in streams {
        assert_eq!(st.map(|r| r.unwrap()).collect::<Vec<_>>(), vec![0, 1]);
    }
    // Waited no longer than the bound (plus scheduling slack).
    assert!(t0.elapsed() < Duration::from_millis(2000));
    let log = log.lock().unwrap();
    assert_eq!(log[0].1.len(), 3, "first batch {:?}", log[0]);
    wait_idle(&s);
}

#[test]
fn full_queue_pushes_back() {
    let opts = SchedulerOptions {
        max_active: 1,
        queue_depth: 2,
        stream_depth: 1,
        ..SchedulerOptions::default()
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
        Err(Error::Busy(m)) => assert!(m.contains("queue is full"), "{m}"),
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

/// Run `f` on its own thread; fail (instead of blocking forever) when it has
/// not returned within `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, got) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    match got.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hung (no result in {limit:?})"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

#[test]
fn blocked_submit_timeout_is_woken_when_room_appears() {
    let opts = SchedulerOptions {
        max_active: 1,
        queue_depth: 1,
        stream_depth: 1,
        ..SchedulerOptions::default()
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
    while s.active() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let queued = s.try_submit(count(1)).unwrap();
    assert!(matches!(s.try_submit(count(1)), Err(Error::Busy(_))));
    // A timeout far beyond the guard below: only a wake-up when the actor
    // takes `queued` out of the queue lets it return in time.
    let (done, got) = mpsc::channel();
    let s2 = s.clone();
    std::thread::spawn(move || {
        let r = s2
            .submit_timeout(count(2), Duration::from_secs(3600))
            .map(|st| st.map(|r| r.unwrap()).collect::<Vec<_>>());
        let _ = done.send(r);
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        got.try_recv().is_err(),
        "submit_timeout returned while the queue was full"
    );
    go.send(()).unwrap();
    let r = got
        .recv_timeout(Duration::from_secs(60))
        .expect("a blocked submit_timeout was not woken when room appeared");
    assert_eq!(r.unwrap(), vec![0, 1]);
    for st in [first, queued] {
        assert_eq!(st.map(|r| r.unwrap()).collect::<Vec<_>>(), vec![0]);
    }
    wait_idle(&s);
}

#[test]
fn draining_full_streams_never_loses_a_wakeup() {
    within(Duration::from_secs(120), "draining full streams", || {
        for iter in 0..200usize {
            // Tiny streams and fewer slots than callers: the actor keeps
            // finding streams full and slots taken, and must be woken by the
            // callers' takes and cancellations every time.
            let opts = SchedulerOptions {
                max_active: 2,
                queue_depth: 1,
                stream_depth: 1,
                max_batch: 2,
                ..SchedulerOptions::default()
            };
            let s = Scheduler::start("t", opts).unwrap();
            std::thread::scope(|sc| {
                for t in 0..4usize {
                    let s = &s;
                    sc.spawn(move || {
                        let n = 10 + (iter * 3 + t) % 13;
                        let mut st = s.submit(count(n)).unwrap();
                        if t == 3 && iter % 2 == 0 {
                            // Cancel mid-stream and submit again at once: the
                            // freed slot must go to a queued request even when
                            // both events reach the actor as one wake-up.
                            assert_eq!(st.next().unwrap().unwrap(), 0);
                            drop(st);
                            let again = s.submit(count(3)).unwrap();
                            let got: Vec<usize> = again.map(|r| r.unwrap()).collect();
                            assert_eq!(got, vec![0, 1, 2], "iteration {iter}");
                            return;
                        }
                        let mut got = Vec::with_capacity(n);
                        for r in st {
                            let k = r.unwrap();
                            if (k + t) % 3 == 0 {
                                std::thread::yield_now();
                            }
                            got.push(k);
                        }
                        assert_eq!(got, (0..n).collect::<Vec<_>>(), "iteration {iter}");
                    });
                }
            });
            wait_idle(&s);
            assert_eq!(s.admitted(), if iter % 2 == 0 { 5 } else { 4 });
        }
    });
}

#[test]
fn cancel_then_submit_on_one_slot_never_hangs() {
    within(Duration::from_secs(120), "cancel then submit", || {
        let opts = SchedulerOptions {
            max_active: 1,
            queue_depth: 4,
            stream_depth: 1,
            ..SchedulerOptions::default()
        };
        let s = Scheduler::start("t", opts).unwrap();
        for iter in 0..200usize {
            let mut st = s.submit(count(1_000_000)).unwrap();
            assert_eq!(st.next().unwrap().unwrap(), 0);
            drop(st);
            let got: Vec<usize> = s.submit(count(2)).unwrap().map(|r| r.unwrap()).collect();
            assert_eq!(got, vec![0, 1], "iteration {iter}");
        }
        wait_idle(&s);
        assert_eq!(s.finished(), 400);
    });
}

#[test]
fn dropping_the_last_handle_lets_its_requests_finish() {
    let s = Scheduler::start(
        "t",
        SchedulerOptions {
            max_active: 1,
            stream_depth: 1,
            ..SchedulerOptions::default()
        },
    )
    .unwrap();
    let a = s.submit(count(50)).unwrap();
    // Queued behind `a`: admitted only after the last handle is gone.
    let b = s.submit(count(3)).unwrap();
    drop(s);
    let (got_a, got_b) = within(Duration::from_secs(60), "requests after the handle", || {
        let got_a: Vec<usize> = a.map(|r| r.unwrap()).collect();
        let got_b: Vec<usize> = b.map(|r| r.unwrap()).collect();
        (got_a, got_b)
    });
    assert_eq!(got_a, (0..50).collect::<Vec<_>>());
    assert_eq!(got_b, vec![0, 1, 2]);
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
    /// the scheduler give the solo samples, tails included (long ones start
    /// on durations of a prefix).
    #[test]
    fn scheduled_equals_solo(
        lens in prop::collection::vec(3usize..300, 2..5),
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
        let opts = SpeakOptions::default().input(Input::Ids).seed(9).max_frames(4000).first_chunk_frames(first).chunk_frames(chunk);
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
        prop_assert_eq!(got.len(), solo.len());
        for (g, w) in got.iter().zip(&solo) {
            common::assert_same_audio(w, g, "scheduled_equals_solo: scheduled vs solo");
        }
    }
}

#[test]
fn engine_stream_cancel_then_next_request_runs() {
    let eng = engine(true);
    let opts = SpeakOptions::default().input(Input::Phonemes);
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

/// Three concurrent streams through the batched scheduler; one cancels after
/// two chunks; the other two still get exactly their solo samples.
#[test]
fn engine_cancel_while_batched_others_unaffected() {
    let solo_eng = engine(false);
    let eng = engine(true);
    let opts = SpeakOptions::default()
        .input(Input::Ids)
        .seed(3)
        .first_chunk_frames(8)
        .chunk_frames(32);
    let texts = [
        "20,31,22,43,24,35,26,47",
        "30,21,32,23,34,25,36,27,38,29",
        "40,22,44,26,48,30,52,34",
    ];
    let solo: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| {
            let p = solo_eng.acquire_permit().unwrap();
            let a = solo_eng.speak_with(t, None, &opts, p).unwrap();
            a.samples().iter().map(|s| s.0).collect()
        })
        .collect();
    let got: Vec<voxide::Result<Vec<f32>>> = std::thread::scope(|s| {
        let hs: Vec<_> = texts
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let (eng, opts) = (&eng, &opts);
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut n = 0;
                    let p = eng.acquire_permit().unwrap();
                    eng.speak_stream(t, None, opts, p, |c| {
                        out.extend(c.iter().map(|s| s.0));
                        n += 1;
                        if k == 1 && n == 2 {
                            std::ops::ControlFlow::Break(())
                        } else {
                            std::ops::ControlFlow::Continue(())
                        }
                    })
                    .map(|()| out)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(matches!(got[1], Err(Error::Cancelled)));
    assert_eq!(got[0].as_ref().unwrap(), &solo[0]);
    assert_eq!(got[2].as_ref().unwrap(), &solo[2]);
}
