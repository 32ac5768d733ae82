//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/*`) through every
//! fuzz target, then runs a short structure-aware mutation run of each
//! target (the same target functions the AFL++ binaries in `fuzz/` drive).
//!
//! `VOXIDE_FUZZ_SECONDS` (default 3) sets the mutation time per target,
//! `VOXIDE_FUZZ_SEED` the seed: a number, default [`DEFAULT_SEED`] so that
//! every plain `cargo test` tries the same inputs in the same order and a
//! failure is reproducible; `VOXIDE_FUZZ_SEED=clock` picks one from the clock
//! for exploration. The seed is printed. A finding is written to
//! `target/fuzz-findings/` and fails the test with its path, the seed and the
//! mutation's number (the same seed reaches it again once the run is at least
//! that long); copy it into `fuzz/corpus/TARGET/` as a regression input once
//! fixed.

#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The mutation seed when `VOXIDE_FUZZ_SEED` is unset.
const DEFAULT_SEED: u64 = 0x5eed_f022;

/// `VOXIDE_FUZZ_SEED`: a number, `clock`, or unset ([`DEFAULT_SEED`]).
fn seed() -> u64 {
    match std::env::var("VOXIDE_FUZZ_SEED") {
        Err(_) => DEFAULT_SEED,
        Ok(s) if s.trim().is_empty() => DEFAULT_SEED,
        Ok(s) if s.trim() == "clock" => SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("VOXIDE_FUZZ_SEED={s:?}: expected a number or \"clock\"")),
    }
}

fn save_finding(target: &str, data: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-findings");
    let _ = std::fs::create_dir_all(&dir);
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{target}-{hash:016x}"));
    let _ = std::fs::write(&path, data);
    path
}

fn run_one(target: &str, data: &[u8], origin: &str) {
    if catch_unwind(AssertUnwindSafe(|| fuzz::run(target, data))).is_err() {
        let path = save_finding(target, data);
        panic!(
            "{target}: finding from {origin}, input saved to {}",
            path.display()
        );
    }
}

fn replay_and_mutate(target: &str) {
    let corpus = fuzz::corpus(target);
    assert!(!corpus.is_empty(), "fuzz/corpus/{target} is empty");
    for (name, data) in &corpus {
        run_one(target, data, &format!("corpus file {name}"));
    }
    let secs: f64 = std::env::var("VOXIDE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let seed = seed();
    eprintln!("{target}: mutating with VOXIDE_FUZZ_SEED={seed} for {secs} s");
    let mut rng = fuzz::Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut execs = 0u64;
    let mut pool: Vec<Vec<u8>> = corpus.into_iter().map(|(_, d)| d).collect();
    while Instant::now() < deadline {
        let base = &pool[rng.below(pool.len())];
        let input = fuzz::mutate(&mut rng, base, target);
        run_one(
            target,
            &input,
            &format!("mutation {} (VOXIDE_FUZZ_SEED={seed})", execs + 1),
        );
        execs += 1;
        // Keep some mutants as new bases so mutations stack up.
        if rng.below(16) == 0 && pool.len() < 256 && input.len() < 1 << 20 {
            pool.push(input);
        }
    }
    eprintln!("{target}: corpus replayed, {execs} mutated inputs in {secs} s (seed {seed})");
}

#[test]
fn fuzz_voice_onnx() {
    replay_and_mutate("voice_onnx");
}

#[test]
fn fuzz_voice_config() {
    replay_and_mutate("voice_config");
}

#[test]
fn fuzz_text() {
    replay_and_mutate("text");
}

#[test]
fn fuzz_phonemes() {
    replay_and_mutate("phonemes");
}

#[test]
fn fuzz_ssml() {
    replay_and_mutate("ssml");
}

#[test]
fn fuzz_server_request() {
    replay_and_mutate("server_request");
}

#[test]
fn fuzz_capi() {
    replay_and_mutate("capi");
}

#[test]
fn every_target_has_a_corpus_and_runs() {
    for t in fuzz::TARGETS {
        assert!(!fuzz::corpus(t).is_empty(), "no corpus for {t}");
    }
    assert!(!fuzz::run("no-such-target", b""));
}
