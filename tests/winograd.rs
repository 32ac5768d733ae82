//! The Winograd convs of the `avx2` family and of `avx512` in f32 (there
//! beside the direct AVX-512 kernels): streamed chunks of any size, batched
//! windows and thread counts give the whole sentence's samples bit for bit
//! (the tiles align to the sentence's columns, `ConvTiling`), and the audio
//! stays within f32 rounding of the direct convs'. SKIP where the CPU lacks
//! the family.

mod common;

use voxide::backend::cpu::{CpuBackend, Isa};
use voxide::backend::{Executor, Precision};
use voxide::model::{BatchItem, Noise, SynthOptions, Utterance, Vits};
use voxide::voice::Voice;

const TEXT: &str = "həlˈoʊ wˈɜːld, ðɪs ɪz ɐ lˈɑːŋɡɚ tˈɛst ʌv ðə stɹˈiːmɪŋ pˈæθ. ";

fn backend(isa: Isa, threads: usize, winograd: bool) -> Option<CpuBackend> {
    match CpuBackend::with_options(threads, Precision::F32, isa) {
        Ok(be) => Some(be.with_winograd(winograd)),
        Err(e) => {
            common::skip(&format!("winograd ({isa})"), &e.to_string());
            None
        }
    }
}

fn opts(seed: u64) -> SynthOptions {
    SynthOptions {
        noise: Noise::Seeded(seed),
        ..SynthOptions::default()
    }
}

/// The sentence rendered in chunks of `chunk` frames (all at once for 0).
fn chunked(
    be: &CpuBackend,
    model: &Vits<CpuBackend>,
    ids: &[i64],
    seed: u64,
    chunk: usize,
) -> Vec<f32> {
    be.install(|| {
        let mut u = model.prepare(be, ids, &opts(seed)).unwrap();
        let n = u.frames();
        let step = if chunk == 0 { n } else { chunk };
        let mut out = Vec::new();
        let mut a = 0;
        while a < n {
            let b = (a + step).min(n);
            model.render(be, &mut u, a, b, &mut out).unwrap();
            a = b;
        }
        out
    })
}

#[test]
fn chunks_batches_and_threads_equal_whole_bit_for_bit_avx2() {
    chunks_batches_and_threads_equal_whole(Isa::Avx2);
}

#[test]
fn chunks_batches_and_threads_equal_whole_bit_for_bit_avx512() {
    chunks_batches_and_threads_equal_whole(Isa::Avx512);
}

fn chunks_batches_and_threads_equal_whole(isa: Isa) {
    let Some(be) = backend(isa, 2, true) else {
        return;
    };
    assert!(
        be.winograd(),
        "{isa} in f32 runs the Winograd convs by default"
    );
    let voice = Voice::load(&common::voice_path(), None).unwrap();
    let model = Vits::new(&be, &voice.weights).unwrap();
    let ids = voice.ids.sentence_ids(&TEXT.repeat(3)).ids;
    let whole = chunked(&be, &model, &ids, 7, 0);
    assert!(whole.len() > 200 * model.hop(), "a long sentence");
    // Windows that start at every phase of the tiles.
    for chunk in [1, 5, 13, 37, 64, 150] {
        let got = chunked(&be, &model, &ids, 7, chunk);
        assert!(
            got == whole,
            "chunks of {chunk} frames differ from the whole sentence"
        );
    }
    let one = backend(isa, 1, true).unwrap();
    let model1 = Vits::new(&one, &voice.weights).unwrap();
    assert!(
        chunked(&one, &model1, &ids, 7, 29) == whole,
        "1 thread differs from 2"
    );

    // Two sentences batched in chunks of different sizes (their windows
    // side by side in one launch) equal each one alone.
    let short = voice.ids.sentence_ids(TEXT).ids;
    let want_short = chunked(&be, &model, &short, 3, 0);
    let (mut u, mut v): (Utterance<CpuBackend>, Utterance<CpuBackend>) = be.install(|| {
        (
            model.prepare(&be, &ids, &opts(7)).unwrap(),
            model.prepare(&be, &short, &opts(3)).unwrap(),
        )
    });
    let (mut out_u, mut out_v) = (Vec::new(), Vec::new());
    let (mut a, mut b) = (0, 0);
    while a < u.frames() || b < v.frames() {
        let (a2, b2) = ((a + 23).min(u.frames()), (b + 11).min(v.frames()));
        let mut items = Vec::new();
        if a < a2 {
            items.push(BatchItem {
                utt: &mut u,
                a,
                b: a2,
                out: &mut out_u,
            });
        }
        if b < b2 {
            items.push(BatchItem {
                utt: &mut v,
                a: b,
                b: b2,
                out: &mut out_v,
            });
        }
        be.install(|| model.render_batch(&be, &mut items)).unwrap();
        (a, b) = (a2, b2);
    }
    assert!(out_u == whole, "the long sentence batched differs");
    assert!(out_v == want_short, "the short sentence batched differs");
}

#[test]
fn winograd_audio_is_within_f32_rounding_of_the_direct_convs_avx2() {
    within_f32_rounding_of_the_direct_convs(Isa::Avx2);
}

#[test]
fn winograd_audio_is_within_f32_rounding_of_the_direct_convs_avx512() {
    within_f32_rounding_of_the_direct_convs(Isa::Avx512);
}

fn within_f32_rounding_of_the_direct_convs(isa: Isa) {
    let (Some(w), Some(d)) = (backend(isa, 2, true), backend(isa, 2, false)) else {
        return;
    };
    assert!(!d.winograd());
    let voice = Voice::load(&common::voice_path(), None).unwrap();
    let ids = voice.ids.sentence_ids(&TEXT.repeat(2)).ids;
    let mw = Vits::new(&w, &voice.weights).unwrap();
    let md = Vits::new(&d, &voice.weights).unwrap();
    // The tiles' margins widen the decoder's context: proof the tiled convs run.
    assert!(mw.halo() > md.halo(), "halo {} vs {}", mw.halo(), md.halo());
    println!(
        "halo: {} frames with Winograd, {} direct",
        mw.halo(),
        md.halo()
    );
    let a = chunked(&w, &mw, &ids, 11, 0);
    let b = chunked(&d, &md, &ids, 11, 0);
    assert_eq!(a.len(), b.len());
    let snr = common::snr_db(&b, &a);
    println!("{isa}: Winograd vs direct convs: audio SNR {snr:.1} dB");
    assert!(
        snr > 70.0,
        "Winograd audio SNR {snr:.1} dB against the direct convs"
    );
}

#[test]
fn reduced_precision_keeps_its_direct_kernels() {
    // bf16 (AVX-512 BF16) and bf16x3 (AMX) are faster arithmetics of their
    // own: the Winograd kernel is f32, so they keep their direct convs.
    for precision in [Precision::Bf16, Precision::Bf16x3] {
        match CpuBackend::with_options(1, precision, Isa::Avx512) {
            Ok(be) => assert!(!be.winograd(), "{precision} runs no Winograd convs"),
            Err(e) => common::skip(&format!("winograd ({precision})"), &e.to_string()),
        }
    }
    let be = CpuBackend::with_options(1, Precision::F32, Isa::Portable).unwrap();
    assert!(!be.winograd(), "the portable family runs no Winograd convs");
}
