//! Batched rendering (`Vits::render_batch`): several utterances' flow and
//! decoder windows in one sequence of ops, with zero gaps between them, give
//! bit-for-bit the samples each utterance gets alone — tails of the shorter
//! items included — and the batch scratch stays bounded.

mod common;

use proptest::prelude::*;
use std::sync::OnceLock;
use voxide::backend::cpu::CpuBackend;
use voxide::backend::{Executor, Precision};
use voxide::model::{BatchItem, Noise, SynthOptions, Utterance, Vits};
use voxide::voice::Voice;

struct Fixture {
    be: CpuBackend,
    model: Vits<CpuBackend>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let voice = Voice::load(&common::voice_path(), None).unwrap();
        // The arithmetic engines get by default (bf16x3 on AMX CPUs), on
        // the kernels `VOXIDE_CPU_ISA` names (default auto).
        let be = CpuBackend::with_options(2, Precision::Auto, common::cpu_isa()).unwrap();
        let model = Vits::new(&be, &voice.weights).unwrap();
        Fixture { be, model }
    })
}

/// `None` when `got` matches `want`: bit for bit where the backend computes
/// each column alone (every CPU kernel family); else within
/// [`common::PORTABLE_REL_TOL`] of the peak. Else the first mismatch.
fn mismatch(f: &Fixture, got: &[f32], want: &[f32]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("length {} vs {}", got.len(), want.len()));
    }
    let peak = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let tol = if f.be.columns_exact() {
        0.0
    } else {
        common::PORTABLE_REL_TOL * peak.max(1e-3)
    };
    got.iter()
        .zip(want)
        .position(|(a, b)| {
            if tol == 0.0 {
                a.to_bits() != b.to_bits()
            } else {
                (a - b).abs() > tol
            }
        })
        .map(|i| format!("sample {i} of {}: {} vs {}", want.len(), got[i], want[i]))
}

fn ids(len: usize, k: usize) -> Vec<i64> {
    (0..len)
        .map(|i| (20 + (i * 7 + k * 5) % 30) as i64)
        .collect()
}

fn opts(seed: u64) -> SynthOptions {
    SynthOptions {
        noise: Noise::Seeded(seed),
        max_frames: 600,
        ..SynthOptions::default()
    }
}

fn prepare(f: &Fixture, len: usize, k: usize) -> Utterance<CpuBackend> {
    let be = &f.be;
    be.install(|| f.model.prepare(be, &ids(len, k), &opts(k as u64)))
        .unwrap()
}

/// One request's chunk schedule: frames of its first chunk, of later chunks,
/// and the batched step at which it joins.
#[derive(Clone, Debug)]
struct Plan {
    len: usize,
    first: usize,
    chunk: usize,
    join: usize,
}

fn solo(f: &Fixture, k: usize, p: &Plan) -> Vec<f32> {
    let be = &f.be;
    let mut u = prepare(f, p.len, k);
    let mut out = Vec::new();
    let (mut at, mut size) = (0, p.first);
    while at < u.frames() {
        let b = (at + size).min(u.frames());
        be.install(|| f.model.render(be, &mut u, at, b, &mut out))
            .unwrap();
        at = b;
        size = p.chunk;
    }
    out
}

/// Every step, each request that has joined and is not finished renders its
/// next chunk; all of them in one `render_batch`.
fn batched(f: &Fixture, plans: &[Plan]) -> (Vec<Vec<f32>>, usize) {
    let be = &f.be;
    let mut utts: Vec<Utterance<CpuBackend>> = plans
        .iter()
        .enumerate()
        .map(|(k, p)| prepare(f, p.len, k))
        .collect();
    let mut outs = vec![Vec::new(); plans.len()];
    let mut at = vec![0usize; plans.len()];
    let mut multi = 0;
    for step in 0.. {
        let mut items = Vec::new();
        for (k, ((u, out), p)) in utts.iter_mut().zip(&mut outs).zip(plans).enumerate() {
            if step < p.join || at[k] >= u.frames() {
                continue;
            }
            let size = if at[k] == 0 { p.first } else { p.chunk };
            let b = (at[k] + size).min(u.frames());
            items.push(BatchItem {
                utt: u,
                a: at[k],
                b,
                out,
            });
            at[k] = b;
        }
        if items.is_empty() && plans.iter().all(|p| step >= p.join) {
            break;
        }
        if items.len() > 1 {
            multi += 1;
        }
        be.install(|| f.model.render_batch(be, &mut items)).unwrap();
    }
    (outs, multi)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]
    /// Random mixes of lengths, chunk sizes and join times: batched == solo,
    /// bit for bit, for every sample of every item.
    #[test]
    fn batched_equals_solo(
        plans in prop::collection::vec(
            (3usize..22, 4usize..40, 16usize..120, 0usize..3)
                .prop_map(|(len, first, chunk, join)| Plan { len, first, chunk, join }),
            1..5,
        )
    ) {
        let f = fixture();
        // A long item with small chunks, so that the others overlap with it.
        let mut plans = plans;
        plans.insert(0, Plan { len: 25, first: 8, chunk: 24, join: 0 });
        let want: Vec<Vec<f32>> = plans.iter().enumerate().map(|(k, p)| solo(f, k, p)).collect();
        let (got, multi) = batched(f, &plans);
        prop_assert!(multi > 0, "no step ran more than one item");
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            if let Some(m) = mismatch(f, g, w) {
                prop_assert!(false, "item {k} differs: {m}");
            }
        }
    }
}

/// A short item batched with a long one: its whole audio, tail included,
/// equals its solo audio (the tail is what naive padding corrupts).
#[test]
fn short_item_tail_is_exact_next_to_a_long_one() {
    let f = fixture();
    let plans = [
        Plan {
            len: 30,
            first: 200,
            chunk: 200,
            join: 0,
        },
        Plan {
            len: 3,
            first: 200,
            chunk: 200,
            join: 0,
        },
        Plan {
            len: 12,
            first: 200,
            chunk: 200,
            join: 0,
        },
    ];
    let (got, _) = batched(f, &plans);
    for (k, p) in plans.iter().enumerate() {
        let want = solo(f, k, p);
        assert!(!want.is_empty());
        assert_eq!(mismatch(f, &got[k], &want), None, "item {k}");
    }
}

/// Work wider than one launch is split; the batch scratch stays within its bound.
#[test]
fn batch_scratch_is_bounded() {
    let f = fixture();
    let bound = f.model.batch_scratch_bytes();
    let plans: Vec<Plan> = (0..12)
        .map(|k| Plan {
            len: 20 + k,
            first: 256,
            chunk: 256,
            join: 0,
        })
        .collect();
    let (got, _) = batched(f, &plans);
    let held = f.model.batch_scratch_held_bytes();
    eprintln!("batch scratch: held {held} B, bound {bound} B");
    assert!(held > 0);
    assert!(
        held <= bound,
        "batch scratch {held} B over its bound {bound} B"
    );
    // Spot-check one item against its solo run.
    assert_eq!(mismatch(f, &got[7], &solo(f, 7, &plans[7])), None);
}
