//! Soak: many threads, many mixed requests on one engine — short and long
//! texts, whole and streamed, streams cancelled at random points, permits
//! timing out — checking that
//! - every completed request's audio equals its solo result (bit for bit),
//! - RSS stays flat after warm-up (measured at quiescent points between rounds),
//! - no thread or file descriptor leaks (counted in /proc/self).
//!
//! `soak_short` runs in every `cargo test`; `scripts/soak.sh` runs the full
//! soak (`soak_full`, ignored by default) in release mode. Configuration
//! (environment): VOXIDE_SOAK_REQUESTS (20000), VOXIDE_SOAK_THREADS (16),
//! VOXIDE_SOAK_PERMITS (4), VOXIDE_SOAK_ROUNDS (10, the first is warm-up),
//! VOXIDE_SOAK_RSS_PCT (5), VOXIDE_SOAK_LONG_PCT (2), VOXIDE_SOAK_SEED (1);
//! VOXIDE_SOAK_MALLOC_INFO=DIR writes glibc's `malloc_info` and
//! `/proc/self/smaps` after every round (diagnosis of RSS growth).
//! Warm-up: the first fifth of the rounds (at least one); RSS and the live
//! heap of every later round must stay within RSS_PCT of their largest value
//! in the warm-up.
//! Mix: LONG_PCT% long texts, 15% short texts (text frontend), the rest tiny
//! phoneme requests; 40% whole, 30% streamed, 30% streams cancelled after
//! 0-3 chunks; one request in five waits at most 0-19 ms for its permit.

mod common;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use voxide::{AudioSample, Engine, Error, Input, SpeakOptions};

/// Tiny requests (phoneme input, a word or two): most of the load.
const TINY: &[&str] = &["hˈaɪ.", "jˈɛs.", "nˈoʊ.", "ɐ.", "oʊ!", "wˈaɪ?"];
/// Short texts through the whole frontend.
const SHORT: &[&str] = &[
    "Hi.",
    "Yes.",
    "No way!",
    "Okay, thanks.",
    "Good morning.",
    "See you at 5.",
    "Why not?",
    "It costs $3.",
];
const LONG: &[&str] = &[
    "The quick brown fox jumps over the lazy dog. Then it runs into the forest, \
     where nobody can find it until the next morning, at 7:30 am.",
    "Dr. Smith paid $1,250 for 3 tickets on the 2nd of May. She said it was worth every cent!",
];

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map_or(0, |d| d.count())
}

/// RSS after handing freed heap pages back to the kernel (`malloc_trim`), so
/// that what is measured is memory still in use, not the allocator's cache
/// of freed pages (which varies by ±25% between quiescent points).
fn live_rss_kib() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    rss_kib()
}

/// Bytes the program holds in live heap allocations (glibc `mallinfo2`:
/// in-use chunks plus mmapped blocks), immune to allocator fragmentation;
/// 0 where unavailable. A leak grows this; fragmentation only grows RSS.
fn live_heap_kib() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    unsafe {
        let m = libc::mallinfo2();
        return ((m.uordblks + m.hblkhd) / 1024) as u64;
    }
    #[allow(unreachable_code)]
    0
}

/// glibc's view, for diagnosis: (arena: heap bytes obtained from the kernel
/// by sbrk/arenas, hblkhd: mmapped blocks, uordblks: in use, fordblks: free) in KiB.
fn malloc_stats_kib() -> [u64; 4] {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    unsafe {
        let m = libc::mallinfo2();
        return [m.arena, m.hblkhd, m.uordblks, m.fordblks].map(|b| (b / 1024) as u64);
    }
    #[allow(unreachable_code)]
    [0; 4]
}

/// glibc's per-arena statistics (`malloc_info`) into `path`, for diagnosis
/// (`VOXIDE_SOAK_MALLOC_INFO=DIR`).
fn malloc_info_to(path: &str) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let Ok(c) = std::ffi::CString::new(path) else {
            return;
        };
        // SAFETY: a valid path and mode; the stream is closed after use.
        unsafe {
            let f = libc::fopen(c.as_ptr(), c"w".as_ptr());
            if !f.is_null() {
                libc::malloc_info(0, f);
                libc::fclose(f);
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = path;
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[derive(Default)]
struct Counts {
    whole: AtomicU64,
    streamed: AtomicU64,
    cancelled: AtomicU64,
    timed_out: AtomicU64,
    long: AtomicU64,
    audio_samples: AtomicU64,
}

fn options(text: &str) -> SpeakOptions {
    SpeakOptions::default().input(if TINY.contains(&text) {
        Input::Phonemes
    } else {
        Input::Text
    })
}

/// One request: pick a text and a kind, run it, check it. Panics on a mismatch.
fn request(
    e: &Engine,
    refs: &BTreeMap<&'static str, Vec<f32>>,
    rng: &mut Rng,
    counts: &Counts,
    long_pct: u64,
) {
    let pick = rng.below(100);
    let text = if pick < long_pct {
        counts.long.fetch_add(1, Ordering::Relaxed);
        LONG[rng.below(LONG.len() as u64) as usize]
    } else if pick < long_pct + 15 {
        SHORT[rng.below(SHORT.len() as u64) as usize]
    } else {
        TINY[rng.below(TINY.len() as u64) as usize]
    };
    let want = &refs[text];
    // One request in five waits only briefly for a permit.
    let permit = if rng.below(5) == 0 {
        match e.acquire_permit_timeout(Duration::from_millis(rng.below(20))) {
            Ok(p) => p,
            Err(Error::Timeout) => {
                counts.timed_out.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(other) => panic!("acquire: {other}"),
        }
    } else {
        e.acquire_permit()
            .unwrap_or_else(|err| panic!("acquire: {err}"))
    };
    let o = options(text);
    match rng.below(10) {
        0..=3 => {
            let a = e
                .speak_with(text, None, &o, permit)
                .unwrap_or_else(|err| panic!("speak {text:?}: {err}"));
            let got = a.samples_f32();
            common::assert_same_audio(
                want,
                got,
                &format!("soak: speak {text:?} vs the solo result"),
            );
            counts.whole.fetch_add(1, Ordering::Relaxed);
            counts
                .audio_samples
                .fetch_add(got.len() as u64, Ordering::Relaxed);
        }
        4..=6 => {
            let mut got = Vec::with_capacity(want.len());
            e.speak_stream(text, None, &o, permit, |c: &[AudioSample]| {
                got.extend(c.iter().map(|s| s.0));
                ControlFlow::Continue(())
            })
            .unwrap_or_else(|err| panic!("stream {text:?}: {err}"));
            common::assert_same_audio(
                want,
                &got,
                &format!("soak: stream {text:?} vs the solo result"),
            );
            counts.streamed.fetch_add(1, Ordering::Relaxed);
            counts
                .audio_samples
                .fetch_add(got.len() as u64, Ordering::Relaxed);
        }
        _ => {
            // Cancel after a random number of chunks (0: at the first).
            let stop_after = rng.below(4);
            let mut chunks = 0;
            let mut got = Vec::new();
            let r = e.speak_stream(text, None, &o, permit, |c: &[AudioSample]| {
                got.extend(c.iter().map(|s| s.0));
                if chunks == stop_after {
                    return ControlFlow::Break(());
                }
                chunks += 1;
                ControlFlow::Continue(())
            });
            match r {
                Err(Error::Cancelled) => counts.cancelled.fetch_add(1, Ordering::Relaxed),
                Ok(()) => {
                    common::assert_same_audio(
                        want,
                        &got,
                        &format!("soak: stream {text:?} vs the solo result"),
                    );
                    counts.streamed.fetch_add(1, Ordering::Relaxed)
                }
                Err(other) => panic!("cancelled stream {text:?}: {other}"),
            };
            assert!(
                got.len() <= want.len(),
                "cancelled stream {text:?}: more samples than the solo result"
            );
            common::assert_same_audio(
                &want[..got.len()],
                &got,
                &format!("soak: cancelled stream {text:?}, a prefix of the solo result"),
            );
        }
    }
}

fn soak(requests: u64, threads: u64, permits: u64, rounds: u64, rss_pct: f64, long_pct: u64) {
    let seed = env_num("VOXIDE_SOAK_SEED", 1);
    let tasks0 = count_dir("/proc/self/task");
    let fds0 = count_dir("/proc/self/fd");
    let e = Engine::builder()
        .voice(common::voice_path())
        .max_concurrent(permits as usize)
        .threads(2)
        .build()
        .unwrap_or_else(|err| panic!("engine: {err}"));
    // Solo references, one per distinct text, on an otherwise idle engine.
    let mut refs = BTreeMap::new();
    for &t in TINY.iter().chain(SHORT).chain(LONG) {
        let p = e.acquire_permit().expect("permit");
        let a = e.speak_with(t, None, &options(t), p).expect("reference");
        refs.insert(t, a.samples().iter().map(|s| s.0).collect::<Vec<f32>>());
    }
    let refs = Arc::new(refs);
    let counts = Arc::new(Counts::default());
    let per_round = requests.div_ceil(rounds.max(1));
    let start = Instant::now();
    let mut rss = Vec::new();
    let mut raw_peak = 0;
    let mut heaps = Vec::new();
    let mut after_warmup = (0, 0);
    let mut done = 0;
    for round in 0..rounds.max(1) {
        let n = per_round.min(requests - done);
        let next = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (e, refs, counts, next) =
                    (e.clone(), refs.clone(), counts.clone(), next.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng((seed ^ (round << 32) ^ (t + 1))
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        | 1);
                    while next.fetch_add(1, Ordering::Relaxed) < n as usize {
                        request(&e, &refs, &mut rng, &counts, long_pct);
                    }
                })
            })
            .collect();
        for h in handles {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
        done += n;
        let raw = rss_kib();
        raw_peak = raw_peak.max(raw);
        let r = live_rss_kib();
        rss.push(r);
        let heap = live_heap_kib();
        heaps.push(heap);
        let [arena, mmapped, used, free] = malloc_stats_kib();
        if let Ok(dir) = std::env::var("VOXIDE_SOAK_MALLOC_INFO") {
            malloc_info_to(&format!("{dir}/round-{:02}.xml", round + 1));
            let _ = std::fs::copy("/proc/self/smaps", format!("{dir}/smaps-{:02}", round + 1));
        }
        eprintln!(
            "soak round {}/{}: {done} requests, {:.0} s, RSS {:.1} MiB (before trim {:.1}), live heap {:.2} MiB \
             (malloc: arena {arena} KiB, mmapped {mmapped} KiB, in use {used} KiB, free {free} KiB), threads {}, fds {}",
            round + 1,
            rounds,
            start.elapsed().as_secs_f64(),
            r as f64 / 1024.0,
            raw as f64 / 1024.0,
            heap as f64 / 1024.0,
            count_dir("/proc/self/task"),
            count_dir("/proc/self/fd")
        );
        if round + 1 == (rounds.max(1) / 5).max(1) {
            after_warmup = (count_dir("/proc/self/task"), count_dir("/proc/self/fd"));
        }
    }
    let wall = start.elapsed().as_secs_f64();
    // Warm-up: the first fifth of the rounds (at least one); the baseline is
    // the largest RSS seen in it, so allocator noise is not taken for growth.
    let warmup = (rss.len() / 5).max(1);
    let warm = rss[..warmup].iter().copied().max().unwrap_or(0) as f64;
    let peak = rss[warmup..].iter().copied().max().unwrap_or(rss[0]) as f64;
    let last = *rss.last().unwrap_or(&0) as f64;
    let drift_peak = 100.0 * (peak - warm) / warm;
    let drift_last = 100.0 * (last - warm) / warm;
    let heap_warm = heaps[..warmup].iter().copied().max().unwrap_or(0) as f64;
    let heap_peak = heaps[warmup..].iter().copied().max().unwrap_or(heaps[0]) as f64;
    let heap_drift = if heap_warm > 0.0 {
        100.0 * (heap_peak - heap_warm) / heap_warm
    } else {
        common::skip(
            "soak (live-heap leak check)",
            "no glibc mallinfo2 here: only RSS is checked",
        );
        0.0
    };
    let end_counts = (count_dir("/proc/self/task"), count_dir("/proc/self/fd"));
    // Every permit is back.
    let held: Vec<_> = (0..permits)
        .filter_map(|_| e.try_acquire_permit())
        .collect();
    assert_eq!(held.len() as u64, permits, "a permit leaked");
    drop(held);
    drop(refs);
    drop(e);
    // The engine's pool threads end shortly after it is dropped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while count_dir("/proc/self/task") > tasks0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (tasks1, fds1) = (count_dir("/proc/self/task"), count_dir("/proc/self/fd"));
    let c = &counts;
    eprintln!(
        "SOAK: requests {requests}, threads {threads}, permits {permits}, wall {wall:.1} s; \
         whole {} streamed {} cancelled {} permit-timeouts {} (long texts {}); audio {:.1} s; \
         RSS (trimmed, between rounds) after warm-up {:.1} MiB, peak after {:.1} MiB ({drift_peak:+.2}%), \
         end {:.1} MiB ({drift_last:+.2}%), untrimmed peak {:.1} MiB; \
         live heap after warm-up {:.2} MiB, peak after {:.2} MiB ({heap_drift:+.2}%); \
         threads {tasks0} -> {} -> {tasks1}, fds {fds0} -> {} -> {fds1}",
        c.whole.load(Ordering::Relaxed),
        c.streamed.load(Ordering::Relaxed),
        c.cancelled.load(Ordering::Relaxed),
        c.timed_out.load(Ordering::Relaxed),
        c.long.load(Ordering::Relaxed),
        c.audio_samples.load(Ordering::Relaxed) as f64 / 22050.0,
        warm / 1024.0,
        peak / 1024.0,
        last / 1024.0,
        raw_peak as f64 / 1024.0,
        heap_warm / 1024.0,
        heap_peak / 1024.0,
        end_counts.0,
        end_counts.1,
    );
    assert_eq!(
        end_counts, after_warmup,
        "threads or fds grew during the soak"
    );
    assert!(
        tasks1 <= tasks0,
        "threads leaked: {tasks0} before the engine, {tasks1} after"
    );
    assert!(
        fds1 <= fds0,
        "file descriptors leaked: {fds0} before the engine, {fds1} after"
    );
    if rss.len() > warmup {
        assert!(
            heap_drift <= rss_pct,
            "live heap grew {heap_drift:.2}% after warm-up (limit {rss_pct}%): a leak"
        );
        assert!(
            drift_peak <= rss_pct,
            "RSS grew {drift_peak:.2}% after warm-up (limit {rss_pct}%)"
        );
    } else {
        common::skip(
            "soak (heap and RSS growth checks)",
            "a single round: nothing after warm-up to compare",
        );
    }
}

/// A small soak for every `cargo test`.
#[test]
fn soak_short() {
    soak(
        env_num("VOXIDE_SOAK_SHORT_REQUESTS", 160),
        16,
        4,
        4,
        // Four small rounds: a smoke check of the leak checks, with room for
        // allocator noise; scripts/soak.sh holds the full soak to 5%.
        25.0,
        0,
    );
}

/// The full soak (`scripts/soak.sh`).
#[test]
#[ignore = "long: run with scripts/soak.sh"]
fn soak_full() {
    soak(
        env_num("VOXIDE_SOAK_REQUESTS", 20_000),
        env_num("VOXIDE_SOAK_THREADS", 16),
        env_num("VOXIDE_SOAK_PERMITS", 4),
        env_num("VOXIDE_SOAK_ROUNDS", 10),
        env_num("VOXIDE_SOAK_RSS_PCT", 5) as f64,
        env_num("VOXIDE_SOAK_LONG_PCT", 2),
    );
}
