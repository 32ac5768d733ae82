//! Word timestamps, marks, captions, speakers by name and the event stream
//! of the C ABI.

use super::engine::{call_back, finish_stream, stream_args};
use super::handles::{self, c_string, VoxideAudio, VoxideEngine, VoxidePermit};
use super::options::VoxideSpeakOptions;
use super::status::{boundary, boundary_value, FfiError, VoxideStatus};
use crate::audio::{as_f32, SpeechEvent};
use crate::captions::{timestamps_json, Captions};
use crate::error::Error;
use std::ffi::{c_char, c_void};
use std::ops::ControlFlow;
use std::path::Path;

/// One input word and when it is spoken (`voxide_audio_word`, and the
/// `word` of a `VOXIDE_EVENT_WORD` event).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VoxideWord {
    /// The word as written, without the punctuation around it (UTF-8,
    /// NUL-terminated; owned by the audio or the event: valid until the
    /// audio is freed, or for an event until the callback returns).
    pub text: *const c_char,
    /// First byte of the word in the input text (for SSML: in the SSML).
    pub char_start: usize,
    /// Byte past the word in the input text.
    pub char_end: usize,
    /// First sample of the word in the audio.
    pub start: usize,
    /// Sample past the word's last.
    pub end: usize,
}

/// What a `VoxideEvent` carries.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoxideEventKind {
    /// `samples`/`len`: the next audio.
    VOXIDE_EVENT_AUDIO = 0,
    /// `word`: an input word is complete (sent right after the audio that ends it).
    VOXIDE_EVENT_WORD = 1,
    /// `mark_name`/`mark_sample`: an SSML mark was reached.
    VOXIDE_EVENT_MARK = 2,
    /// A sentence (or an SSML break's silence) ended.
    VOXIDE_EVENT_SENTENCE_END = 3,
}

/// The raw integer behind a `VoxideEventKind` field (named `VoxideEventKind` in the header).
pub type VoxideEventKindValue = i32;

/// One event of `voxide_engine_speak_events`; only the fields of its `kind`
/// are set (the others are 0/NULL). Pointers are valid until the callback
/// returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VoxideEvent {
    /// Which event this is.
    pub kind: VoxideEventKindValue,
    /// `VOXIDE_EVENT_AUDIO`: the samples (`len` >= 1) at the voice's rate.
    pub samples: *const f32,
    /// Number of samples.
    pub len: usize,
    /// `VOXIDE_EVENT_WORD`: the word.
    pub word: VoxideWord,
    /// `VOXIDE_EVENT_MARK`: the mark's name (UTF-8, NUL-terminated).
    pub mark_name: *const c_char,
    /// `VOXIDE_EVENT_MARK`: the sample it falls on.
    pub mark_sample: usize,
}

/// Receives the events of `voxide_engine_speak_events`, in order, on the
/// calling thread. Return true to continue, false to cancel (the call then
/// returns `VOXIDE_ERR_CANCELLED`). The rules of `VoxideChunkCallback`
/// apply (no unwinding out of it; it may call voxide).
pub type VoxideEventCallback =
    Option<unsafe extern "C" fn(event: *const VoxideEvent, user_data: *mut c_void) -> bool>;

const NO_WORD: VoxideWord = VoxideWord {
    text: std::ptr::null(),
    char_start: 0,
    char_end: 0,
    start: 0,
    end: 0,
};

/// Number of input words with timestamps in the audio (0 for ids input,
/// and if `audio` is NULL).
///
/// # Safety
/// `audio` is NULL or a live audio.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_word_count(audio: *const VoxideAudio) -> usize {
    boundary_value(0, || Ok(handles::audio(audio)?.audio.words().len()))
}

/// Word `index` (0-based, in input order) of the audio into `*out_word`;
/// its `text` stays valid until the audio is freed.
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT`, `VOXIDE_ERR_INVALID_ARGUMENT` (index
/// out of range).
///
/// # Safety
/// `audio` is NULL or live; `out_word` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_word(
    audio: *const VoxideAudio,
    index: usize,
    out_word: *mut VoxideWord,
) -> VoxideStatus {
    boundary(|| {
        let a = handles::audio(audio)?;
        let out = handles::out(out_word, "out_word")?;
        let (Some(w), Some(t)) = (a.audio.words().get(index), a.word_texts.get(index)) else {
            return Err(Error::InvalidArgument(format!(
                "word {index} of an audio of {} words",
                a.audio.words().len()
            ))
            .into());
        };
        out.write(VoxideWord {
            text: t.as_ptr(),
            char_start: w.char_start,
            char_end: w.char_end,
            start: w.start,
            end: w.end,
        });
        Ok(())
    })
}

/// Number of SSML marks in the audio (0 if `audio` is NULL).
///
/// # Safety
/// `audio` is NULL or a live audio.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_mark_count(audio: *const VoxideAudio) -> usize {
    boundary_value(0, || Ok(handles::audio(audio)?.audio.marks().len()))
}

/// Mark `index` of the audio: its name (valid until the audio is freed)
/// into `*out_name` and its sample into `*out_sample`.
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT`, `VOXIDE_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `audio` NULL or live; out pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_mark(
    audio: *const VoxideAudio,
    index: usize,
    out_name: *mut *const c_char,
    out_sample: *mut usize,
) -> VoxideStatus {
    boundary(|| {
        let a = handles::audio(audio)?;
        let name = handles::out(out_name, "out_name")?;
        let sample = handles::out(out_sample, "out_sample")?;
        let (Some(m), Some(n)) = (a.audio.marks().get(index), a.mark_names.get(index)) else {
            return Err(Error::InvalidArgument(format!(
                "mark {index} of an audio of {} marks",
                a.audio.marks().len()
            ))
            .into());
        };
        name.write(n.as_ptr());
        sample.write(m.sample);
        Ok(())
    })
}

/// Write the audio's word timestamps and marks to `path` as JSON
/// (`{"sample_rate", "samples", "words": [{"text", "char_start",
/// "char_end", "start", "end"}], "marks": [{"name", "sample"}]}`).
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT`, `VOXIDE_ERR_INVALID_UTF8`, `VOXIDE_ERR_IO`.
///
/// # Safety
/// `audio` NULL or live; `path` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_write_timestamps(
    audio: *const VoxideAudio,
    path: *const c_char,
) -> VoxideStatus {
    boundary(|| {
        let a = handles::audio(audio)?;
        let path = handles::str_arg(path, "path")?;
        write_file(path, &timestamps_json(&a.audio))
    })
}

/// Write captions of the audio's words to `path`: WebVTT when it ends in
/// `.vtt`, else SubRip (SRT). `source`: the plain text that was spoken (cues
/// then show it with its punctuation), or NULL (cues show the words).
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT`, `VOXIDE_ERR_INVALID_UTF8`, `VOXIDE_ERR_IO`.
///
/// # Safety
/// `audio` NULL or live; `path` NULL or NUL-terminated; `source` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_write_subtitles(
    audio: *const VoxideAudio,
    path: *const c_char,
    source: *const c_char,
) -> VoxideStatus {
    boundary(|| {
        let a = handles::audio(audio)?;
        let path = handles::str_arg(path, "path")?;
        let source = handles::opt_str_arg(source, "source")?;
        let c = Captions::new(
            a.audio.words(),
            a.audio.sample_rate().hz(),
            source,
            Default::default(),
        );
        let vtt = Path::new(path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("vtt"));
        write_file(path, &if vtt { c.vtt() } else { c.srt() })
    })
}

fn write_file(path: &str, body: &str) -> Result<(), FfiError> {
    std::fs::write(path, body).map_err(|source| {
        Error::Io {
            context: format!("cannot write {path}"),
            source,
        }
        .into()
    })
}

/// The id of speaker `name` of `voice` (NULL: the default voice): a name
/// from the voice's `speaker_id_map`, or a number in range. On `VOXIDE_OK`
/// writes `*out_id` (use it as `VoxideSpeakOptions.speaker_id`).
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT`, `VOXIDE_ERR_INVALID_UTF8`,
/// `VOXIDE_ERR_UNKNOWN_VOICE`, `VOXIDE_ERR_INVALID_ARGUMENT` (no such
/// speaker; the message lists the voice's speakers).
///
/// # Safety
/// `engine` NULL or live; strings NULL or NUL-terminated; `out_id` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_speaker_id(
    engine: *const VoxideEngine,
    voice: *const c_char,
    name: *const c_char,
    out_id: *mut i64,
) -> VoxideStatus {
    boundary(|| {
        let engine = handles::engine(engine)?.engine.clone();
        let voice = handles::opt_str_arg(voice, "voice")?;
        let name = handles::str_arg(name, "name")?;
        let out = handles::out(out_id, "out_id")?;
        out.write(engine.speaker_id(voice, name)?);
        Ok(())
    })
}

/// `voxide_engine_speak_stream` with every event: audio chunks, each input
/// word once the audio that ends it has been delivered, SSML marks, and
/// sentence ends, to `callback(event, user_data)` on the calling thread.
/// The audio events concatenated equal the samples of
/// `voxide_engine_speak_with`, and the words equal its audio's words.
/// The permit is ALWAYS consumed. Errors: as `voxide_engine_speak_stream`.
///
/// # Safety
/// As `voxide_engine_speak_stream`; `callback` NULL or a valid function.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_speak_events(
    engine: *mut VoxideEngine,
    text: *const c_char,
    voice: *const c_char,
    options: *const VoxideSpeakOptions,
    permit: *mut VoxidePermit,
    callback: VoxideEventCallback,
    user_data: *mut c_void,
) -> VoxideStatus {
    boundary(|| {
        let (permit, engine, text, voice, options) =
            stream_args(engine, text, voice, options, permit)?;
        let callback = callback.ok_or_else(|| FfiError::Null("callback is NULL".into()))?;
        let mut panic_msg = None;
        let r = engine.speak_events(text, voice, &options, permit, |ev| {
            let mut e = VoxideEvent {
                kind: VoxideEventKind::VOXIDE_EVENT_SENTENCE_END as i32,
                samples: std::ptr::null(),
                len: 0,
                word: NO_WORD,
                mark_name: std::ptr::null(),
                mark_sample: 0,
            };
            // Owned here until the callback returns.
            let name;
            match ev {
                SpeechEvent::Audio(chunk) => {
                    let s = as_f32(chunk);
                    if s.is_empty() {
                        return ControlFlow::Continue(());
                    }
                    e.kind = VoxideEventKind::VOXIDE_EVENT_AUDIO as i32;
                    e.samples = s.as_ptr();
                    e.len = s.len();
                }
                SpeechEvent::Word(w) => {
                    name = c_string(&w.text);
                    e.kind = VoxideEventKind::VOXIDE_EVENT_WORD as i32;
                    e.word = VoxideWord {
                        text: name.as_ptr(),
                        char_start: w.char_start,
                        char_end: w.char_end,
                        start: w.start,
                        end: w.end,
                    };
                }
                SpeechEvent::Mark(m) => {
                    name = c_string(&m.name);
                    e.kind = VoxideEventKind::VOXIDE_EVENT_MARK as i32;
                    e.mark_name = name.as_ptr();
                    e.mark_sample = m.sample;
                }
                SpeechEvent::SentenceEnd => {}
            }
            // SAFETY: `e` and what it points to live until the callback
            // returns; the callback is a valid function (documented contract).
            call_back(&mut panic_msg, "event", || unsafe {
                callback(&e, user_data)
            })
        });
        finish_stream(r, panic_msg)
    })
}
