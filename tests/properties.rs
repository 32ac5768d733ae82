//! Property tests: id mapping, WAV round trip, chunked == whole rendering,
//! durations from a prefix == the whole sentence's.

mod common;

use proptest::prelude::*;
use std::sync::OnceLock;
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::UnicodeNormalization;
use voxide::audio::{read_wav, write_wav_to};
use voxide::backend::cpu::CpuBackend;
use voxide::backend::{Executor, Precision};
use voxide::model::{Noise, SynthOptions, Vits};
use voxide::voice::{PhonemeIdMap, Voice};
use voxide::SampleRate;

struct Fixture {
    voice: Voice,
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
        Fixture { voice, be, model }
    })
}

fn symbols(map: &voxide::voice::VoiceConfig) -> Vec<char> {
    let mut v: Vec<char> = map
        .phoneme_id_map
        .keys()
        .filter_map(|k| {
            let mut it = k.chars();
            match (it.next(), it.next()) {
                // Piper decomposes input to NFD (which also reorders combining
                // marks), so only NFD-stable starter symbols map one to one.
                (Some(c), None)
                    if !"^_$".contains(c)
                        && k.nfd().eq(k.chars())
                        && canonical_combining_class(c) == 0 =>
                {
                    Some(c)
                }
                _ => None,
            }
        })
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ids_map_round_trips(picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..60),
                           noise in proptest::collection::vec("[A-Z☃]", 0..5)) {
        let cfg = &fixture().voice.config;
        let map = PhonemeIdMap::new(cfg);
        let syms = symbols(cfg);
        let chosen: Vec<char> = picks.iter().map(|i| syms[i.index(syms.len())]).collect();
        // Unknown symbols sprinkled in are dropped and reported.
        let mut text: String = chosen.iter().collect();
        for n in &noise { text.push_str(n); }
        let m = map.sentence_ids(&text);
        prop_assert_eq!(m.ids.len(), 3 + 2 * chosen.len());
        prop_assert_eq!(m.ids[0], cfg.phoneme_id_map["^"][0]);
        prop_assert_eq!(*m.ids.last().unwrap(), cfg.phoneme_id_map["$"][0]);
        let inverse: std::collections::HashMap<i64, char> = syms.iter().map(|&c| (cfg.phoneme_id_map[&c.to_string()][0], c)).collect();
        for (k, &c) in chosen.iter().enumerate() {
            prop_assert_eq!(inverse[&m.ids[2 + 2 * k]], c);
            prop_assert_eq!(m.ids[3 + 2 * k], cfg.phoneme_id_map["_"][0]);
        }
        prop_assert_eq!(m.dropped.len(), noise.len());
    }

    #[test]
    fn wav_round_trips(pcm in proptest::collection::vec(any::<i16>(), 0..5000), rate in 8000u32..96000) {
        let mut buf = Vec::new();
        write_wav_to(&mut buf, SampleRate(rate), &pcm).unwrap();
        let (r, back) = read_wav(&buf).unwrap();
        prop_assert_eq!(r, SampleRate(rate));
        prop_assert_eq!(back, pcm);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// Rendering frames in chunks of any size gives the whole-sentence samples.
    #[test]
    fn chunked_equals_whole(chunk in 1usize..200, seed in 0u64..1000) {
        let f = fixture();
        let ids = f.voice.ids.sentence_ids("həlˈoʊ wˈɜːld, ðɪs ɪz ɐ tˈɛst.").ids;
        let opts = SynthOptions { noise: Noise::Seeded(seed), ..SynthOptions::default() };
        let (whole, chunked) = f.be.install(|| {
            let mut u = f.model.prepare(&f.be, &ids, &opts).unwrap();
            let mut v = f.model.prepare(&f.be, &ids, &opts).unwrap();
            let mut whole = Vec::new();
            let n = u.frames();
            f.model.render(&f.be, &mut u, 0, n, &mut whole).unwrap();
            let mut chunked = Vec::new();
            let mut a = 0;
            while a < n {
                let b = (a + chunk).min(n);
                f.model.render(&f.be, &mut v, a, b, &mut chunked).unwrap();
                a = b;
            }
            (whole, chunked)
        });
        prop_assert_eq!(whole.len(), chunked.len());
        let max = whole.iter().zip(&chunked).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        prop_assert!(max < 1e-4, "max diff {} with chunk {}", max, chunk);
        prop_assert!(common::snr_db(&whole, &chunked) > 80.0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Streaming a long sentence runs the duration predictor on a prefix
    /// first: its durations, and every sample, are the whole sentence's.
    #[test]
    fn prefix_durations_equal_whole(reps in 4usize..14, first in 1usize..40, seed in 0u64..1000) {
        let f = fixture();
        let text = "həlˈoʊ wˈɜːld, ðɪs ɪz ɐ lˈɑːŋɡɚ tˈɛst ʌv ðə stɹˈiːmɪŋ pˈæθ. ".repeat(reps);
        let ids = f.voice.ids.sentence_ids(&text).ids;
        let opts = SynthOptions { noise: Noise::Seeded(seed), ..SynthOptions::default() };
        let (full, stream, partial, head) = f.be.install(|| {
            let mut u = f.model.prepare(&f.be, &ids, &opts).unwrap();
            let mut full = Vec::new();
            let n = u.frames();
            f.model.render(&f.be, &mut u, 0, n, &mut full).unwrap();
            let mut v = f.model.prepare_first(&f.be, &ids, &opts, first).unwrap();
            let partial = !v.durations_complete();
            let head = (v.logw.clone(), v.durations.clone());
            let mut stream = Vec::new();
            let (mut a, mut size) = (0, first);
            while a < v.frames() || !v.durations_complete() {
                let b = a + size;
                f.model.render(&f.be, &mut v, a, b, &mut stream).unwrap();
                a = b.min(v.frames());
                size *= 4;
            }
            assert_eq!(v.durations, u.durations);
            assert_eq!(v.logw, u.logw);
            (full, stream, partial, head)
        });
        // Long inputs take the prefix path (the radius is 65 ids for Piper
        // voices) where the kernels compute each column alone (every CPU
        // kernel family); other backends always run all ids.
        let exact = f.be.columns_exact();
        prop_assert!(partial || ids.len() < 200 || !exact, "{} ids ran whole", ids.len());
        let k = head.0.len();
        prop_assert!(k > 0);
        let u = f.be.install(|| f.model.prepare(&f.be, &ids, &opts).unwrap());
        prop_assert!(head.0[..] == u.logw[..k], "prefix log-durations differ");
        prop_assert!(head.1[..] == u.durations[..k]);
        if exact {
            prop_assert!(stream == full, "streamed samples differ from the whole sentence's");
        } else {
            prop_assert_eq!(stream.len(), full.len());
            prop_assert!(common::snr_db(&full, &stream) > 80.0);
        }
    }
}
