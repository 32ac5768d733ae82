//! Many threads, few permits: every thread gets exactly the solo samples.

mod common;

use voxide::{Engine, Input, SpeakOptions};

#[test]
fn eight_threads_two_permits_identical_audio() {
    let eng = Engine::builder()
        .voice(common::voice_path())
        .max_concurrent(2)
        .threads(2)
        .build()
        .unwrap();
    let opts = SpeakOptions {
        input: Input::Phonemes,
        seed: 5,
        ..SpeakOptions::default()
    };
    let text = "ðə kwˈɪk bɹˈaʊn fˈɑːks.";
    let solo = eng
        .speak_with(text, None, &opts, eng.acquire_permit().unwrap())
        .unwrap();
    assert!(solo.samples().len() > 10_000);
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (eng, opts, solo) = (&eng, &opts, &solo);
            s.spawn(move || {
                for _ in 0..2 {
                    let permit = eng.acquire_permit().unwrap();
                    let audio = eng.speak_with(text, None, opts, permit).unwrap();
                    assert_eq!(audio.samples(), solo.samples());
                }
            });
        }
    });
    // All permits were given back.
    let _a = eng.try_acquire_permit().expect("permit 1 free");
    let _b = eng.try_acquire_permit().expect("permit 2 free");
    assert!(eng.try_acquire_permit().is_none());
}
