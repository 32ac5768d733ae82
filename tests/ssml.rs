//! SSML through the engine on real input: plain text in `<speak>` gives the
//! samples of text input; a `break` adds exactly its samples of silence;
//! marks land on the sample where the next word starts; prosody rate
//! lengthens its words only; `voice` switches to another loaded voice;
//! streamed words and marks equal whole ones; bad SSML is an error naming
//! line and column, and the engine goes on.

mod common;

use std::ops::ControlFlow;
use voxide::audio::as_f32;
use voxide::{Audio, Engine, Error, Input, SpeakOptions, SpeechEvent};

fn engine() -> Engine {
    Engine::builder()
        .voice(common::voice_path())
        .named_voice("other", common::voice_path())
        .threads(1)
        .build()
        .unwrap()
}

fn ssml() -> SpeakOptions {
    SpeakOptions::default().input(Input::Ssml)
}

fn speak(eng: &Engine, text: &str, o: &SpeakOptions) -> Result<Audio, Error> {
    eng.speak_with(text, None, o, eng.acquire_permit().unwrap())
}

#[test]
fn plain_text_in_speak_gives_the_text_samples() {
    let eng = engine();
    let text = "Hello world. Dr. Smith paid $3.50 &amp; left; it was 9:30.";
    let plain = text.replace("&amp;", "&");
    let a = speak(&eng, &format!("<speak>{text}</speak>"), &ssml()).unwrap();
    let b = speak(&eng, &plain, &SpeakOptions::default()).unwrap();
    assert_eq!(a.samples(), b.samples());
    let wa: Vec<(&str, usize, usize)> = a
        .words()
        .iter()
        .map(|w| (w.text.as_str(), w.start, w.end))
        .collect();
    let wb: Vec<(&str, usize, usize)> = b
        .words()
        .iter()
        .map(|w| (w.text.as_str(), w.start, w.end))
        .collect();
    assert_eq!(wa, wb);
    // Offsets point into the SSML source.
    let src = format!("<speak>{text}</speak>");
    for w in a.words() {
        assert_eq!(&src[w.char_start..w.char_end], w.text.replace('&', "&amp;"));
    }
    assert!(a.warnings().is_empty(), "{:?}", a.warnings());
}

#[test]
fn a_break_is_exactly_its_silence() {
    let eng = engine();
    let first = speak(&eng, "Hello there.", &SpeakOptions::default()).unwrap();
    let both = speak(&eng, "Hello there. How are you?", &SpeakOptions::default()).unwrap();
    let n1 = first.samples().len();
    for (brk, ms) in [
        ("<break time=\"500ms\"/>", 500),
        ("<break time=\"1.5s\"/>", 1500),
        ("<break strength=\"strong\"/>", 750),
    ] {
        let a = speak(
            &eng,
            &format!("<speak>Hello there. {brk} How are you?</speak>"),
            &ssml(),
        )
        .unwrap();
        let gap = (ms * 22050usize).div_ceil(1000);
        let s = a.samples();
        assert_eq!(s.len(), both.samples().len() + gap, "{brk}");
        assert_eq!(&s[..n1], &both.samples()[..n1], "{brk}: first sentence");
        assert!(
            as_f32(&s[n1..n1 + gap]).iter().all(|&x| x == 0.0),
            "{brk}: silence"
        );
        assert_eq!(
            &s[n1 + gap..],
            &both.samples()[n1..],
            "{brk}: second sentence"
        );
        // The words after the break moved by exactly the silence.
        for (x, y) in a.words().iter().zip(both.words()).skip(2) {
            assert_eq!(x.start, y.start + gap);
        }
    }
}

#[test]
fn marks_land_where_the_next_word_starts() {
    let eng = engine();
    let src = "<speak><mark name=\"a\"/>Hello <mark name=\"b\"/>world. \
               <break time=\"200ms\"/><mark name=\"c\"/>Bye.<mark name=\"z\"/></speak>";
    let a = speak(&eng, src, &ssml()).unwrap();
    let names: Vec<&str> = a.marks().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "z"]);
    let w = a.words();
    assert_eq!(a.marks()[0].sample, 0);
    assert_eq!(a.marks()[1].sample, w[1].start, "b before 'world'");
    // c: after the silence, at the start of the last sentence.
    assert!(a.marks()[2].sample < w[2].start && a.marks()[2].sample > w[1].end);
    let s = as_f32(a.samples());
    let c = a.marks()[2].sample;
    assert!(
        s[c - 4410..c].iter().all(|&x| x == 0.0),
        "c follows 200 ms of silence"
    );
    assert_eq!(a.marks()[3].sample, a.samples().len());
    // Streamed: the same marks and words, each mark after the samples before it.
    let (mut marks, mut words, mut n) = (Vec::new(), Vec::new(), 0usize);
    eng.speak_events(src, None, &ssml(), eng.acquire_permit().unwrap(), |ev| {
        match ev {
            SpeechEvent::Audio(c) => n += c.len(),
            SpeechEvent::Mark(m) => {
                assert!(m.sample <= n, "{m:?} before its samples ({n})");
                marks.push(m.clone());
            }
            SpeechEvent::Word(w) => words.push(w.clone()),
            _ => {}
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(marks, a.marks());
    assert_eq!(words, a.words());
}

#[test]
fn prosody_rate_changes_its_words_only() {
    let eng = engine();
    let len = |src: &str| {
        let a = speak(&eng, src, &ssml()).unwrap();
        let w = a.words().to_vec();
        (w[1].end - w[1].start, w[0].end - w[0].start)
    };
    let (normal, first) = len("<speak>Say banana slowly.</speak>");
    let (slow, first_slow) =
        len("<speak>Say <prosody rate=\"50%\">banana</prosody> slowly.</speak>");
    let (fast, _) = len("<speak>Say <prosody rate=\"x-fast\">banana</prosody> slowly.</speak>");
    assert!(slow as f64 > normal as f64 * 1.6, "slow {slow} vs {normal}");
    assert!(
        (fast as f64) < normal as f64 * 0.75,
        "fast {fast} vs {normal}"
    );
    assert_eq!(
        first, first_slow,
        "the word before the span keeps its length"
    );
}

#[test]
fn say_as_sub_phoneme_are_one_word_each() {
    let eng = engine();
    let src = "<speak>Call <say-as interpret-as=\"telephone\">555-1234</say-as> about \
               <say-as interpret-as=\"characters\">abc</say-as>, <sub alias=\"doctor\">Dr.</sub> \
               <phoneme alphabet=\"ipa\" ph=\"təmˈɑːtoʊ\">tomato</phoneme>.</speak>";
    let a = speak(&eng, src, &ssml()).unwrap();
    let texts: Vec<&str> = a.words().iter().map(|w| w.text.as_str()).collect();
    assert_eq!(texts, ["Call", "555-1234", "about", "abc", "Dr.", "tomato"]);
    for w in a.words() {
        assert_eq!(&src[w.char_start..w.char_end], w.text);
        assert!(w.end > w.start, "{w:?}");
    }
    // Seven digits take longer than one short word.
    assert!(a.words()[1].end - a.words()[1].start > 3 * (a.words()[2].end - a.words()[2].start));
}

#[test]
fn voice_switches_and_unknown_voices() {
    let eng = engine();
    let a = speak(
        &eng,
        "<speak>One. <voice name=\"other\">Two.</voice> Three.</speak>",
        &ssml(),
    )
    .unwrap();
    let b = speak(&eng, "One. Two. Three.", &SpeakOptions::default()).unwrap();
    // The same model under another name: the same samples.
    assert_eq!(a.samples(), b.samples());
    assert_eq!(a.words().len(), 3);
    let e = speak(
        &eng,
        "<speak><voice name=\"nobody\">Hi.</voice></speak>",
        &ssml(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(e.to_string().contains("nobody"), "{e}");
}

#[test]
fn bad_ssml_names_line_and_column_and_the_engine_goes_on() {
    let eng = engine();
    for (src, want) in [
        ("<speak>Hello <b>world</speak>", "line 1, column"),
        ("<speak>\n  Hello <break time=\"fast\"/></speak>", "line 2"),
        ("<voice>Hi</voice>", "speak"),
        ("<speak>&bogus;</speak>", "line 1"),
    ] {
        let e = speak(&eng, src, &ssml()).unwrap_err();
        assert!(
            matches!(e, Error::Text(_)) || matches!(e, Error::InvalidArgument(_)),
            "{e}"
        );
        assert_eq!(e.kind(), voxide::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains(want), "{src}: {e}");
    }
    // Unknown elements: spoken, with a warning.
    let a = speak(&eng, "<speak>Hello <foo>there</foo>.</speak>", &ssml()).unwrap();
    assert_eq!(a.words().len(), 2);
    assert!(
        a.warnings().iter().any(|w| w.contains("foo")),
        "{:?}",
        a.warnings()
    );
    assert!(!speak(&eng, "Fine.", &SpeakOptions::default())
        .unwrap()
        .samples()
        .is_empty());
}

/// The 3-speaker test voice (random weights, `tests/fixtures/voices/`).
fn three_speakers() -> Engine {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/voices");
    Engine::builder()
        .voice(dir.join("test-3spk.onnx"))
        .threads(1)
        .build()
        .unwrap()
}

#[test]
fn voice_names_a_speaker_and_speakers_go_by_name() {
    let eng = three_speakers();
    assert_eq!(eng.speaker_id(None, "bob").unwrap(), 1);
    assert_eq!(eng.speaker_id(None, "2").unwrap(), 2);
    let e = eng.speaker_id(None, "zed").unwrap_err();
    assert!(e.to_string().contains("1 bob"), "{e}");
    let by_ssml = speak(
        &eng,
        "<speak>One. <voice name=\"bob\">Two.</voice></speak>",
        &ssml(),
    )
    .unwrap();
    let ann = speak(&eng, "One. Two.", &SpeakOptions::default()).unwrap();
    let bob = speak(&eng, "One. Two.", &SpeakOptions::default().speaker(1)).unwrap();
    // Sentence 1 by ann, sentence 2 by bob (each sentence keeps its seed).
    let n1 = speak(&eng, "One.", &SpeakOptions::default())
        .unwrap()
        .samples()
        .len();
    let n2b = bob.samples().len()
        - speak(&eng, "One.", &SpeakOptions::default().speaker(1))
            .unwrap()
            .samples()
            .len();
    let s = by_ssml.samples();
    assert_eq!(&s[..n1], &ann.samples()[..n1]);
    assert_eq!(&s[n1..], &bob.samples()[bob.samples().len() - n2b..]);
    assert_ne!(
        &ann.samples()[ann.samples().len() - n2b.min(ann.samples().len())..],
        &s[n1..]
    );
}
