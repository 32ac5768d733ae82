//! Word timestamps and speed on real input: every input word once, in order,
//! at the byte offsets of the input, inside the audio, on frame boundaries;
//! streamed words equal whole words on every path (one thread, sentence
//! lanes on two threads, the scheduler) and arrive with the chunk that
//! completes them; `speed` divides the length scale.

mod common;

use std::ops::ControlFlow;
use voxide::audio::as_f32;
use voxide::{Engine, Error, Input, SpeakOptions, SpeechEvent, WordTiming};

const TEXT: &str = "Hello, world! Dr. Smith paid $3.50 in the end. \
                    The old lighthouse stood at the edge of the cliff for more than a hundred \
                    years; its lamp never failed. Did it? On March 3rd, 2021, at 9:30 a.m., \
                    the U.S. team won 3-2.";

/// Samples per frame of the default voice.
const HOP: usize = 256;

fn engine(threads: usize, scheduler: bool) -> Engine {
    Engine::builder()
        .voice(common::voice_path())
        .threads(threads)
        .scheduler(scheduler)
        .build()
        .unwrap()
}

fn whole(eng: &Engine, text: &str, o: &SpeakOptions) -> voxide::Audio {
    eng.speak_with(text, None, o, eng.acquire_permit().unwrap())
        .unwrap()
}

/// Samples, words and, for each word, the samples delivered before its
/// event and before the audio chunk that preceded it.
struct Streamed {
    samples: Vec<f32>,
    words: Vec<WordTiming>,
    at: Vec<(usize, usize)>,
}

fn streamed(eng: &Engine, text: &str, o: &SpeakOptions) -> Streamed {
    let mut s = Streamed {
        samples: Vec::new(),
        words: Vec::new(),
        at: Vec::new(),
    };
    let mut before_last = 0;
    eng.speak_events(text, None, o, eng.acquire_permit().unwrap(), |ev| {
        match ev {
            SpeechEvent::Audio(c) => {
                before_last = s.samples.len();
                s.samples.extend_from_slice(as_f32(c));
            }
            SpeechEvent::Word(w) => {
                s.words.push(w.clone());
                s.at.push((s.samples.len(), before_last));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    s
}

fn check_words(text: &str, words: &[WordTiming], samples: usize) {
    let mut last_start = 0;
    let mut last_char = 0;
    for w in words {
        assert_eq!(&text[w.char_start..w.char_end], w.text, "{w:?}");
        assert!(w.char_start >= last_char, "words out of input order: {w:?}");
        assert!(
            w.start <= w.end && w.end <= samples,
            "{w:?} in {samples} samples"
        );
        assert!(w.start >= last_start, "word starts go back: {w:?}");
        assert!(
            w.start % HOP == 0 && w.end % HOP == 0,
            "{w:?} off the frame grid"
        );
        last_start = w.start;
        last_char = w.char_end;
    }
}

#[test]
fn every_input_word_once_in_order_inside_the_audio() {
    let eng = engine(1, false);
    let audio = whole(&eng, TEXT, &SpeakOptions::default());
    let words: Vec<&str> = audio.words().iter().map(|w| w.text.as_str()).collect();
    assert_eq!(
        words,
        [
            "Hello",
            "world",
            "Dr",
            "Smith",
            "paid",
            "$3.50",
            "in",
            "the",
            "end",
            "The",
            "old",
            "lighthouse",
            "stood",
            "at",
            "the",
            "edge",
            "of",
            "the",
            "cliff",
            "for",
            "more",
            "than",
            "a",
            "hundred",
            "years",
            "its",
            "lamp",
            "never",
            "failed",
            "Did",
            "it",
            "On",
            "March",
            "3rd",
            "2021",
            "at",
            "9:30",
            "a.m",
            "the",
            "U.S",
            "team",
            "won",
            "3-2"
        ]
    );
    check_words(TEXT, audio.words(), audio.samples().len());
    // Spoken words take time; the words cover most of the audio (the rest
    // is the pauses of punctuation and the sentence ends).
    assert!(audio.words().iter().all(|w| w.end > w.start));
    let spoken: usize = audio.words().iter().map(|w| w.end - w.start).sum();
    let n = audio.samples().len();
    assert!(
        spoken * 10 > n * 6 && spoken < n,
        "{spoken} of {n} samples in words"
    );
    // A long pause (the sentence end after "end.") lies between two words.
    let gap = audio.words()[9].start - audio.words()[8].end;
    assert!(gap >= 5 * HOP, "sentence pause of {gap} samples");
    // The audio under each word is not silence.
    let s = as_f32(audio.samples());
    for w in audio.words() {
        let peak = s[w.start..w.end].iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(peak > 0.01, "{w:?} is silent");
    }
}

#[test]
fn streamed_words_equal_whole_words_on_every_path() {
    let o = SpeakOptions::default().seed(3);
    for (threads, scheduler) in [(1, false), (2, false), (1, true)] {
        let eng = engine(threads, scheduler);
        let a = whole(&eng, TEXT, &o);
        let s = streamed(&eng, TEXT, &o);
        let what = format!("threads {threads}, scheduler {scheduler}");
        common::assert_same_audio(as_f32(a.samples()), &s.samples, &what);
        assert_eq!(a.words(), &s.words[..], "{what}");
        for (w, &(delivered, before_last)) in s.words.iter().zip(&s.at) {
            // Sent once its samples are out, with the chunk that completes it.
            assert!(w.end <= delivered, "{what}: {w:?} sent at {delivered}");
            assert!(
                w.end > before_last || w.end == w.start,
                "{what}: {w:?} sent late (at {delivered}, before {before_last})"
            );
        }
    }
}

#[test]
fn speed_divides_the_length_scale() {
    let eng = engine(1, false);
    let text = "Speed changes how long the words last.";
    let base = whole(&eng, text, &SpeakOptions::default());
    let same = whole(&eng, text, &SpeakOptions::default().speed(1.0));
    assert_eq!(base.samples(), same.samples());
    let fast = whole(&eng, text, &SpeakOptions::default().speed(2.0));
    let half = whole(&eng, text, &SpeakOptions::default().length_scale(0.5));
    assert_eq!(fast.samples(), half.samples(), "speed 2 = length scale / 2");
    let r = fast.samples().len() as f64 / base.samples().len() as f64;
    assert!((0.45..0.75).contains(&r), "speed 2 gives {r} of the length");
    let slow = whole(&eng, text, &SpeakOptions::default().speed(0.5));
    let r = slow.samples().len() as f64 / base.samples().len() as f64;
    assert!((1.7..2.3).contains(&r), "speed 0.5 gives {r} of the length");
    check_words(text, slow.words(), slow.samples().len());
    for bad in [0.0, 0.2, 4.5, f32::NAN, f32::INFINITY] {
        let e = eng
            .speak_with(
                text,
                None,
                &SpeakOptions::default().speed(bad),
                eng.acquire_permit().unwrap(),
            )
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "speed {bad}: {e}");
    }
    // The engine still works.
    assert_eq!(
        whole(&eng, text, &SpeakOptions::default()).samples(),
        base.samples()
    );
}

#[test]
fn phoneme_words_and_ids_without_words() {
    let eng = engine(1, false);
    let ipa = "həlˈoʊ wˈɜːld.\nbˈaɪ.";
    let o = SpeakOptions::default().input(Input::Phonemes);
    let a = whole(&eng, ipa, &o);
    let words: Vec<&str> = a.words().iter().map(|w| w.text.as_str()).collect();
    assert_eq!(words, ["həlˈoʊ", "wˈɜːld", "bˈaɪ"]);
    check_words(ipa, a.words(), a.samples().len());
    let ids = eng.sentence_ids("Hi.", None, Input::Text).unwrap();
    let list: Vec<String> = ids[0].iter().map(i64::to_string).collect();
    let a = whole(
        &eng,
        &list.join(","),
        &SpeakOptions::default().input(Input::Ids),
    );
    assert!(!a.samples().is_empty() && a.words().is_empty());
}

#[test]
fn empty_text_has_no_words() {
    let eng = engine(1, false);
    let a = whole(&eng, "  ", &SpeakOptions::default());
    assert!(a.samples().is_empty() && a.words().is_empty() && a.marks().is_empty());
}
