//! Fuzz targets for every input surface of voxide, plus a small
//! structure-aware mutator.
//!
//! Each target takes arbitrary bytes, drives one surface and checks its
//! promises with `assert!` (a failed assertion or any panic is a finding):
//!
//! - `voice_onnx`: `.onnx` bytes -> `Weights::parse` (mutated and truncated models).
//! - `voice_config`: `.onnx.json` bytes -> `VoiceConfig::parse` -> `PhonemeIdMap`.
//! - `text`: any bytes as (lossy) UTF-8 -> the text frontend (`text::phonemize`).
//! - `phonemes`: the phoneme-line splitter, phoneme -> id mapping and the `--ids` parser
//!   against the real voice's id map.
//! - `ssml`: any bytes as (lossy) UTF-8 -> the SSML parser (`text::ssml::parse`):
//!   runs whose source maps stay in the input, or an error with a position.
//! - `server_request`: any bytes as a `POST /v1/audio/speech` body ->
//!   `server::parse_speech_request`: a request within its limits, or a 400
//!   with OpenAI's error body.
//! - `capi`: a random sequence of C ABI calls (NULLs, zero timeouts, cancelled
//!   streams, bad option structs, frees) against one real engine.
//!
//! The AFL++ binaries in `src/bin` call these; `tests/fuzz_replay.rs` in the main
//! crate includes this file (`#[path]`) to replay `fuzz/corpus/*` and to run a
//! short mutation run of each target under plain `cargo test`.

#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use voxide::c_api::*;

/// The target names (also the corpus directory names).
pub const TARGETS: &[&str] = &[
    "voice_onnx",
    "voice_config",
    "text",
    "phonemes",
    "ssml",
    "capi",
    "server_request",
];

/// Run `target` on `data`. Panics on a finding; `false` for an unknown target.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "voice_onnx" => voice_onnx(data),
        "voice_config" => voice_config(data),
        "text" => text(data),
        "phonemes" => phonemes(data),
        "ssml" => ssml(data),
        "capi" => capi(data),
        "server_request" => server_request(data),
        _ => return false,
    }
    true
}

/// The real voice: `$VOXIDE_VOICE`, else `voices/en_US-joe-medium.onnx` in the
/// repository (found from this crate or the main crate).
pub fn voice_path() -> PathBuf {
    if let Some(p) = std::env::var_os("VOXIDE_VOICE") {
        return PathBuf::from(p);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for root in [here, here.parent().unwrap_or(here)] {
        let p = root.join("voices/en_US-joe-medium.onnx");
        if p.exists() {
            return p;
        }
    }
    here.join("voices/en_US-joe-medium.onnx")
}

/// The repository root (where `fuzz/corpus` lives).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("fuzz/corpus").exists() {
        here.to_path_buf()
    } else {
        here.parent().unwrap_or(here).to_path_buf()
    }
}

/// `.onnx` bytes: any input gives `Ok` or an error that names the file; never a panic.
pub fn voice_onnx(data: &[u8]) {
    let path = Path::new("fuzz.onnx");
    if let Err(e) = voxide::voice::weights::Weights::parse(data, path) {
        let msg = e.to_string();
        assert!(
            msg.contains("fuzz.onnx"),
            "error does not name the file: {msg}"
        );
    }
}

/// `.onnx.json` bytes: `Ok` (and a usable id map) or an error naming the file.
pub fn voice_config(data: &[u8]) {
    let path = Path::new("fuzz.onnx.json");
    match voxide::voice::VoiceConfig::parse(data, path) {
        Ok(cfg) => {
            let map = voxide::voice::PhonemeIdMap::new(&cfg);
            let m = map.sentence_ids("həlˈoʊ wˈɜːld.");
            assert!(m.ids.len() + m.dropped.len() >= 1 || cfg.phoneme_id_map.is_empty());
            for id in map.parse_ids("0, 1,2").unwrap_or_default() {
                assert!(id >= 0 && (id as u64) < cfg.num_symbols as u64);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("fuzz.onnx.json"),
                "error does not name the file: {msg}"
            );
        }
    }
}

/// Any text: the frontend returns sentences of phonemes or an error, never
/// panics; each sentence fits in `MAX_SENTENCE_PHONEMES` code points and every
/// symbol is in the real voice's phoneme map.
pub fn text(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    match voxide::text::phonemize(&s) {
        Ok(sentences) => {
            for p in &sentences {
                assert!(!p.trim().is_empty(), "empty sentence in {sentences:?}");
                assert!(!p.contains('\n'), "a sentence holds a newline: {p:?}");
                let n = p.chars().count();
                assert!(
                    n <= voxide::text::MAX_SENTENCE_PHONEMES,
                    "a sentence of {n} code points: {p:?}"
                );
                let m = real_map().map.sentence_ids(p);
                assert!(
                    m.dropped.is_empty(),
                    "{:?} not in the voice: {p:?}",
                    m.dropped
                );
            }
            if s.trim().is_empty() {
                assert!(sentences.is_empty(), "whitespace gave {sentences:?}");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Any bytes as an SSML document: `Ok` with runs whose source maps lie in
/// the input (a Text run's map non-decreasing, on char boundaries, one entry
/// per byte plus the end; Say/Ipa ranges in bounds), or an error with a
/// 1-based position; never a panic.
pub fn ssml(data: &[u8]) {
    use voxide::text::ssml::{parse, Run, MAX_BREAK_MS, MAX_RATE, MAX_WARNINGS, MIN_RATE};
    let s = String::from_utf8_lossy(data);
    let rates = MIN_RATE..=MAX_RATE;
    match parse(&s) {
        Ok(doc) => {
            let mut prev_boundary = true;
            for r in &doc.runs {
                match r {
                    Run::Text { text, src, style } => {
                        assert_eq!(src.len(), text.len() + 1, "map length of {text:?}");
                        assert!(
                            src.windows(2).all(|w| w[0] <= w[1]),
                            "map decreases: {src:?}"
                        );
                        assert!(
                            src.iter().all(|&i| i <= s.len() && s.is_char_boundary(i)),
                            "map off the source: {src:?}"
                        );
                        // Exact: each char has its own source (one char per
                        // reference, `\r\n` one char), so char starts increase.
                        let starts: Vec<usize> = text.char_indices().map(|(i, _)| src[i]).collect();
                        assert!(
                            starts.windows(2).all(|w| w[0] < w[1]),
                            "chars share a source: {src:?}"
                        );
                        assert!(!text.trim().is_empty(), "blank text run");
                        assert!(rates.contains(&style.rate), "rate {}", style.rate);
                    }
                    Run::Say { src, style, .. } | Run::Ipa { src, style, .. } => {
                        assert!(src.start <= src.end && src.end <= s.len(), "range {src:?}");
                        assert!(s.is_char_boundary(src.start) && s.is_char_boundary(src.end));
                        assert!(rates.contains(&style.rate), "rate {}", style.rate);
                    }
                    Run::Break { ms } => assert!(*ms <= MAX_BREAK_MS, "break of {ms} ms"),
                    Run::Mark { name } => assert!(!name.trim().is_empty()),
                    Run::Boundary => assert!(!prev_boundary, "boundary first or twice"),
                }
                prev_boundary = matches!(r, Run::Boundary);
            }
            assert!(
                doc.warnings.len() <= MAX_WARNINGS + 1,
                "{} warnings",
                doc.warnings.len()
            );
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "position of {e}");
            assert!(!e.message.is_empty());
        }
    }
}

struct RealMap {
    map: voxide::voice::PhonemeIdMap,
    symbols: usize,
}

fn real_map() -> &'static RealMap {
    static MAP: OnceLock<RealMap> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut p = voice_path().into_os_string();
        p.push(".json");
        let cfg = match voxide::voice::VoiceConfig::load(Path::new(&p)) {
            Ok(c) => c,
            Err(e) => panic!("fuzz setup: the real voice config is needed: {e}"),
        };
        RealMap {
            map: voxide::voice::PhonemeIdMap::new(&cfg),
            symbols: cfg.num_symbols,
        }
    })
}

/// Phoneme lines and id lists, mapped with the real voice's id map: every id
/// produced lies inside the voice, the sentence framing is Piper's, and the
/// id parser accepts exactly what it returns.
pub fn phonemes(data: &[u8]) {
    let m = real_map();
    let s = String::from_utf8_lossy(data);
    for line in voxide::voice::phoneme_sentences(&s) {
        assert!(!line.is_empty() && line.trim() == line && !line.contains('\n'));
        let mapped = m.map.sentence_ids(line);
        assert!(mapped.ids.len() >= 3, "no ^ _ $ framing: {:?}", mapped.ids);
        assert_eq!(mapped.ids[0], 1, "first id is not ^");
        assert_eq!(mapped.ids[mapped.ids.len() - 1], 2, "last id is not $");
        for &id in &mapped.ids {
            assert!(
                id >= 0 && (id as usize) < m.symbols,
                "id {id} outside the voice"
            );
        }
    }
    match m.map.parse_ids(&s) {
        Ok(ids) => {
            assert!(!ids.is_empty());
            for (i, &id) in ids.iter().enumerate() {
                assert!(m.map.check_id(id, i).is_ok());
            }
            // Round trip: the ids printed back parse to the same list.
            let text: Vec<String> = ids.iter().map(i64::to_string).collect();
            assert_eq!(m.map.parse_ids(&text.join(",")).ok(), Some(ids));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// The engine the `capi` target drives: 2 permits, 1 thread, CPU; made once per process.
struct Shared(*mut VoxideEngine);
// SAFETY: a VoxideEngine is thread-safe (the C ABI contract); the handle is never freed.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// The permits of the shared engine.
pub const CAPI_PERMITS: usize = 2;

fn shared_engine() -> *mut VoxideEngine {
    static ENGINE: OnceLock<Shared> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let path = CString::new(voice_path().to_string_lossy().into_owned())
                .unwrap_or_else(|_| panic!("fuzz setup: voice path holds a NUL"));
            let mut o = voxide_engine_options_default();
            o.voice_path = path.as_ptr();
            o.max_concurrent = CAPI_PERMITS as u32;
            o.threads = 1;
            o.device = VoxideDevice::VOXIDE_DEVICE_CPU as i32;
            let mut e = std::ptr::null_mut();
            // SAFETY: valid options and out-pointer.
            let st = unsafe { voxide_engine_create_with(&o, &mut e) };
            assert_eq!(st, VoxideStatus::VOXIDE_OK, "fuzz setup: {}", last_error());
            Shared(e)
        })
        .0
}

fn last_error() -> String {
    // SAFETY: never NULL, NUL-terminated, valid until the next call on this thread.
    unsafe { CStr::from_ptr(voxide_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Reads bytes off the front of the fuzz input; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
    /// Up to `max` bytes as a C string (NULs replaced by spaces).
    fn cstring(&mut self, max: usize) -> CString {
        let n = (self.u8() as usize % (max + 1)).min(self.0.len());
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        let v: Vec<u8> = s.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
        CString::new(v).unwrap_or_default()
    }
}

struct StreamState {
    chunks_left: u32,
    samples: usize,
}

unsafe extern "C" fn stream_cb(samples: *const f32, len: usize, user: *mut c_void) -> bool {
    let st = &mut *(user as *mut StreamState);
    assert!(!samples.is_null() && len > 0, "empty chunk delivered");
    let s = std::slice::from_raw_parts(samples, len);
    assert!(s.iter().all(|v| v.is_finite()), "non-finite sample");
    st.samples += len;
    if st.chunks_left == 0 {
        return false;
    }
    st.chunks_left -= 1;
    true
}

fn check(st: VoxideStatus, allowed: &[VoxideStatus], what: &str) {
    assert!(
        allowed.contains(&st),
        "{what}: unexpected status {st:?} ({})",
        last_error()
    );
    if st != VoxideStatus::VOXIDE_OK {
        assert!(!last_error().is_empty(), "{what}: {st:?} with no message");
    }
}

/// A random sequence of C ABI calls on the shared engine. Checks statuses
/// against the contract; at the end every permit must be back.
pub fn capi(data: &[u8]) {
    use VoxideStatus::*;
    let e = shared_engine();
    let mut b = Bytes(data);
    let mut permits: Vec<*mut VoxidePermit> = Vec::new();
    let mut audios: Vec<*mut VoxideAudio> = Vec::new();
    let mut ops = 0;
    // SAFETY (whole block): every handle passed is live or NULL, every string
    // NUL-terminated, every out-pointer writable — the contract the C ABI asks for.
    unsafe {
        while !b.done() && ops < 64 {
            ops += 1;
            match b.u8() % 14 {
                0 => {
                    let timeout = [0u32, 1, 5][b.u8() as usize % 3];
                    let mut p = std::ptr::null_mut();
                    let st = voxide_engine_acquire_permit(e, timeout, &mut p);
                    if permits.len() >= CAPI_PERMITS {
                        check(st, &[VOXIDE_ERR_TIMEOUT], "acquire with all permits held");
                    } else {
                        check(st, &[VOXIDE_OK], "acquire with a permit free");
                        permits.push(p);
                    }
                }
                1 => voxide_permit_free(permits.pop().unwrap_or(std::ptr::null_mut())),
                op @ (2 | 3) => {
                    let permit = permits.pop().unwrap_or(std::ptr::null_mut());
                    let text = b.cstring(12);
                    let mut o = voxide_speak_options_default();
                    o.input = (b.u8() % 4) as i32; // 3 is unknown
                    o.length_scale = [-1.0, 0.5, 1.0, 1.7, f32::NAN][b.u8() as usize % 5];
                    o.noise_w = [-1.0, 0.0, 0.8][b.u8() as usize % 3];
                    o.seed = u64::from(b.u8());
                    o.struct_size = match b.u8() % 8 {
                        0 => std::mem::size_of::<usize>(),
                        1 => std::mem::size_of::<VoxideSpeakOptions>() + 8,
                        2 => 0,
                        _ => std::mem::size_of::<VoxideSpeakOptions>(),
                    };
                    let opts: *const VoxideSpeakOptions = if b.u8() % 5 == 0 {
                        std::ptr::null()
                    } else {
                        &o
                    };
                    let voice = match b.u8() % 6 {
                        0 => c"nope".as_ptr(),
                        1 => c"en_US-joe-medium".as_ptr(),
                        _ => std::ptr::null(),
                    };
                    let allowed = [
                        VOXIDE_OK,
                        VOXIDE_ERR_NULL_ARGUMENT,
                        VOXIDE_ERR_INVALID_UTF8,
                        VOXIDE_ERR_INVALID_ARGUMENT,
                        VOXIDE_ERR_UNKNOWN_VOICE,
                        VOXIDE_ERR_CANCELLED,
                    ];
                    if op == 2 {
                        let mut a = std::ptr::null_mut();
                        let st =
                            voxide_engine_speak_with(e, text.as_ptr(), voice, opts, permit, &mut a);
                        check(st, &allowed[..5], "speak_with");
                        if permit.is_null() {
                            assert_eq!(st, VOXIDE_ERR_NULL_ARGUMENT);
                        }
                        if st == VOXIDE_OK {
                            assert!(!a.is_null());
                            audios.push(a);
                        }
                    } else {
                        let mut state = StreamState {
                            chunks_left: u32::from(b.u8() % 4),
                            samples: 0,
                        };
                        let cb: VoxideChunkCallback = if b.u8() % 7 == 0 {
                            None
                        } else {
                            Some(stream_cb)
                        };
                        let st = voxide_engine_speak_stream(
                            e,
                            text.as_ptr(),
                            voice,
                            opts,
                            permit,
                            cb,
                            (&mut state as *mut StreamState).cast(),
                        );
                        check(st, &allowed, "speak_stream");
                        if permit.is_null() {
                            assert_eq!(st, VOXIDE_ERR_NULL_ARGUMENT);
                        }
                        if cb.is_none() {
                            assert!(!matches!(st, VOXIDE_OK | VOXIDE_ERR_CANCELLED));
                        }
                    }
                }
                4 => {
                    let a = audios.pop().unwrap_or(std::ptr::null_mut());
                    let n = voxide_audio_len(a);
                    let p = voxide_audio_samples(a);
                    if a.is_null() {
                        assert_eq!(n, 0);
                    } else if n > 0 {
                        assert!(!p.is_null());
                        let s = std::slice::from_raw_parts(p, n);
                        assert!(s.iter().all(|v| v.is_finite()));
                        assert_eq!(voxide_audio_sample_rate(a), 22050);
                    }
                    voxide_audio_free(a);
                }
                5 => {
                    // NULL where a pointer is required.
                    let mut p = std::ptr::null_mut();
                    let mut a = std::ptr::null_mut();
                    let mut r = 0u32;
                    let mut eng: *mut VoxideEngine = std::ptr::null_mut();
                    for (st, what) in [
                        (
                            voxide_engine_acquire_permit(std::ptr::null_mut(), 0, &mut p),
                            "acquire(NULL engine)",
                        ),
                        (
                            voxide_engine_acquire_permit(e, 0, std::ptr::null_mut()),
                            "acquire(NULL out)",
                        ),
                        (
                            voxide_engine_speak(
                                std::ptr::null_mut(),
                                c"hi".as_ptr(),
                                std::ptr::null(),
                                std::ptr::null_mut(),
                                &mut a,
                            ),
                            "speak(NULL engine, NULL permit)",
                        ),
                        (
                            voxide_engine_sample_rate(e, std::ptr::null(), std::ptr::null_mut()),
                            "sample_rate(NULL out)",
                        ),
                        (
                            voxide_engine_sample_rate(
                                std::ptr::null_mut(),
                                std::ptr::null(),
                                &mut r,
                            ),
                            "sample_rate(NULL)",
                        ),
                        (
                            voxide_engine_add_voice(e, std::ptr::null(), c"x".as_ptr()),
                            "add_voice(NULL name)",
                        ),
                        (
                            voxide_engine_create(std::ptr::null(), &mut eng),
                            "create(NULL path)",
                        ),
                        (
                            voxide_engine_create_with(std::ptr::null(), &mut eng),
                            "create_with(NULL)",
                        ),
                        (
                            voxide_audio_write_wav(std::ptr::null_mut(), c"/dev/null".as_ptr()),
                            "write_wav(NULL audio)",
                        ),
                    ] {
                        check(st, &[VOXIDE_ERR_NULL_ARGUMENT], what);
                    }
                    assert!(voxide_engine_device_name(std::ptr::null_mut()).is_null());
                    assert!(voxide_audio_samples(std::ptr::null_mut()).is_null());
                }
                6 => {
                    let all = [
                        VOXIDE_OK,
                        VOXIDE_ERR_NULL_ARGUMENT,
                        VOXIDE_ERR_INVALID_UTF8,
                        VOXIDE_ERR_INVALID_ARGUMENT,
                        VOXIDE_ERR_IO,
                        VOXIDE_ERR_MODEL,
                        VOXIDE_ERR_UNKNOWN_VOICE,
                        VOXIDE_ERR_TIMEOUT,
                        VOXIDE_ERR_CANCELLED,
                        VOXIDE_ERR_DEVICE,
                        VOXIDE_ERR_OUT_OF_MEMORY,
                        VOXIDE_ERR_PANIC,
                    ];
                    let v = i32::from(b.u8() as i8);
                    let name = voxide_status_name(v);
                    assert!(!name.is_null());
                    let name = CStr::from_ptr(name).to_string_lossy();
                    if (0..all.len() as i32).contains(&v) {
                        assert!(name.starts_with("VOXIDE_") && name != "VOXIDE_UNKNOWN_STATUS");
                        assert_eq!(all[v as usize] as i32, v);
                    } else {
                        assert_eq!(name, "VOXIDE_UNKNOWN_STATUS");
                    }
                    assert!(!voxide_last_error().is_null());
                    assert!(!voxide_version().is_null());
                }
                7 => {
                    let name = b.cstring(8);
                    let mut r = 0u32;
                    let st = voxide_engine_sample_rate(e, name.as_ptr(), &mut r);
                    check(
                        st,
                        &[VOXIDE_OK, VOXIDE_ERR_UNKNOWN_VOICE, VOXIDE_ERR_INVALID_UTF8],
                        "sample_rate",
                    );
                }
                8 => {
                    let path = b.cstring(8);
                    let st = voxide_engine_add_voice(e, c"fuzz-extra".as_ptr(), path.as_ptr());
                    check(
                        st,
                        &[VOXIDE_ERR_IO, VOXIDE_ERR_MODEL, VOXIDE_ERR_INVALID_UTF8],
                        "add_voice(garbage path)",
                    );
                }
                9 => {
                    if let Some(&a) = audios.last() {
                        let st = voxide_audio_write_wav(a, c"/nonexistent-dir/x.wav".as_ptr());
                        check(st, &[VOXIDE_ERR_IO], "write_wav(bad dir)");
                    }
                }
                10 => {
                    // Options the engine must reject before any work.
                    let permit = permits.pop().unwrap_or(std::ptr::null_mut());
                    let mut o = voxide_speak_options_default();
                    match b.u8() % 3 {
                        0 => o.noise_scale = f32::INFINITY,
                        1 => o.input = 99,
                        _ => o.speaker_id = 7,
                    }
                    let mut a = std::ptr::null_mut();
                    let st = voxide_engine_speak_with(
                        e,
                        c"hi".as_ptr(),
                        std::ptr::null(),
                        &o,
                        permit,
                        &mut a,
                    );
                    let want = if permit.is_null() {
                        VOXIDE_ERR_NULL_ARGUMENT
                    } else {
                        VOXIDE_ERR_INVALID_ARGUMENT
                    };
                    check(st, &[want], "speak_with(bad options)");
                }
                11 => {
                    voxide_permit_free(std::ptr::null_mut());
                    voxide_audio_free(std::ptr::null_mut());
                    voxide_engine_free(std::ptr::null_mut());
                }
                12 => {
                    // An option struct of a size this library does not know.
                    let mut opts = voxide_engine_options_default();
                    opts.struct_size =
                        [0, 4, std::mem::size_of::<VoxideEngineOptions>() + 1][b.u8() as usize % 3];
                    let mut other: *mut VoxideEngine = std::ptr::null_mut();
                    let st = voxide_engine_create_with(&opts, &mut other);
                    check(
                        st,
                        &[VOXIDE_ERR_INVALID_ARGUMENT],
                        "create_with(bad struct_size)",
                    );
                }
                _ => {
                    // Invalid UTF-8 text.
                    let permit = permits.pop().unwrap_or(std::ptr::null_mut());
                    let bad = [0xffu8, 0xfe, b'a', 0];
                    let mut a = std::ptr::null_mut();
                    let st = voxide_engine_speak(
                        e,
                        bad.as_ptr().cast(),
                        std::ptr::null(),
                        permit,
                        &mut a,
                    );
                    let want = if permit.is_null() {
                        VOXIDE_ERR_NULL_ARGUMENT
                    } else {
                        VOXIDE_ERR_INVALID_UTF8
                    };
                    check(st, &[want], "speak(invalid UTF-8)");
                }
            }
        }
        for p in permits.drain(..) {
            voxide_permit_free(p);
        }
        for a in audios.drain(..) {
            voxide_audio_free(a);
        }
        // Every permit is back: all can be taken without waiting.
        let mut held = Vec::new();
        for _ in 0..CAPI_PERMITS {
            let mut p = std::ptr::null_mut();
            let st = voxide_engine_acquire_permit(e, 0, &mut p);
            assert_eq!(st, VOXIDE_OK, "a permit leaked: {}", last_error());
            held.push(p);
        }
        for p in held {
            voxide_permit_free(p);
        }
    }
}

/// A small xorshift generator (deterministic per seed).
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Tokens the text frontend treats specially, for structure-aware mutation.
const TEXT_TOKENS: &[&str] = &[
    "0",
    "7",
    "1,000",
    "3.14",
    "-5",
    "1st",
    "$",
    "£",
    "€",
    "%",
    "12:30",
    "am",
    "Dr.",
    "St.",
    "Mr.",
    "e.g.",
    "NASA",
    "U.S.A.",
    "http://x.y/z?q=1",
    "a@b.c",
    "km",
    "°C",
    ".",
    "?",
    "!",
    ",",
    "...",
    ";",
    ":",
    "\"",
    "'",
    "(",
    ")",
    "-",
    "—",
    "\n",
    "\r\n",
    "\t",
    "\u{0}",
    "\u{7}",
    "\u{1b}[0m",
    "\u{200b}",
    "\u{feff}",
    "\u{301}",
    "é",
    "ß",
    "İ",
    "ﬁ",
    "日本",
    "😀",
    "👩‍👩‍👧",
    "\u{fffd}",
    " ",
    "hello",
    "world",
    "read",
    "the",
    "A",
    "I",
    "x",
];

/// Any bytes as a speech request body: `Ok` only for a request within the
/// limits (input not blank and at most the character limit, speed 0.25..4,
/// scales 0..10, timestamps only with SSE), else a 400 with OpenAI's error
/// body naming the cause; never a panic.
pub fn server_request(data: &[u8]) {
    use voxide::server::{parse_speech_request, Limits};
    let limits = Limits {
        max_input_chars: 64,
    };
    match parse_speech_request(data, &limits) {
        Ok(r) => {
            assert!(!r.input.trim().is_empty(), "blank input accepted");
            assert!(r.input.chars().count() <= 64, "input over the limit");
            assert!((0.25..=4.0).contains(&r.speed), "speed {}", r.speed);
            for s in [r.noise_scale, r.noise_w, r.length_scale]
                .into_iter()
                .flatten()
            {
                assert!((0.0..=10.0).contains(&s), "scale {s}");
            }
            assert!(!r.timestamps || r.sse, "timestamps without SSE");
            assert!(!r.model.is_empty() && r.voice.as_deref() != Some(""));
        }
        Err(e) => {
            assert_eq!(e.status, 400, "{e}");
            let body = e.body();
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{body}"
            );
            assert!(body["error"]["type"].is_string(), "{body}");
        }
    }
}

/// JSON for structure-aware mutation of the `server_request` target.
const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"input\":",
    "\"model\":\"tts-1\"",
    "\"voice\":\"alloy\"",
    "\"response_format\":\"opus\"",
    "\"speed\":",
    "\"stream_format\":\"sse\"",
    "\"timestamps\":true",
    "\"seed\":",
    "\"speaker\":",
    "\"input_type\":\"ssml\"",
    "\"noise_w\":",
    "null",
    "true",
    "1e999",
    "-0.0",
    "0.25",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"a\"",
];

/// SSML markup for structure-aware mutation of the `ssml` target.
const SSML_TOKENS: &[&str] = &[
    "<speak>",
    "</speak>",
    "<s>",
    "</s>",
    "<p>",
    "</p>",
    "<break/>",
    "<break time=\"1.5s\"/>",
    "<break time=\"99s\"/>",
    "<break strength=\"x-strong\"/>",
    "<prosody rate=\"+50%\">",
    "<prosody rate=\"x-fast\" pitch=\"high\">",
    "</prosody>",
    "<emphasis level=\"strong\">",
    "</emphasis>",
    "<voice name=\"amy\">",
    "</voice>",
    "<say-as interpret-as=\"characters\">",
    "<say-as interpret-as=\"cardinal\">",
    "<say-as interpret-as=\"ordinal\">",
    "<say-as interpret-as=\"date\" format=\"dmy\">",
    "<say-as interpret-as=\"time\">",
    "<say-as interpret-as=\"telephone\">",
    "</say-as>",
    "<sub alias=\"x y\">",
    "</sub>",
    "<phoneme alphabet=\"ipa\" ph=\"təˈmeɪ\">",
    "</phoneme>",
    "<mark name=\"m\"/>",
    "<audio src=\"a\">",
    "</audio>",
    "<desc>",
    "</desc>",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?pi x?>",
    "&amp;",
    "&lt;",
    "&#233;",
    "&#x1F600;",
    "&bogus;",
    "\r\n",
    "12/25/2024",
    "14:30",
    "-1,234.5",
    "21st",
    "555-1234",
    "xml:lang=\"fr\"",
    "<!DOCTYPE speak>",
];

/// Mutate `input` for `target`: generic byte mutations, plus token splices and
/// long runs for the text-like targets (huge inputs, digit and punctuation
/// runs, control characters).
pub fn mutate(rng: &mut Rng, input: &[u8], target: &str) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let textual = matches!(
            target,
            "text" | "phonemes" | "voice_config" | "ssml" | "server_request"
        );
        let tokens = if target == "server_request" {
            JSON_TOKENS
        } else if target == "ssml" && rng.below(2) == 0 {
            SSML_TOKENS
        } else {
            TEXT_TOKENS
        };
        match rng.below(if textual { 9 } else { 6 }) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next_u64() as u8);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(64));
                v.drain(i..i + n);
            }
            3 => v.truncate(rng.below(v.len() + 1)),
            4 if !v.is_empty() => {
                // Interesting values.
                let i = rng.below(v.len());
                v[i] = [0, 0xff, 0x7f, 0x80, b'0', b'9', b'"', b'{'][rng.below(8)];
            }
            5 if v.len() > 1 => {
                // Duplicate a slice.
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(256));
                let s = v[i..i + n].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, s);
            }
            6 => {
                let t = tokens[rng.below(tokens.len())].as_bytes();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, t.iter().copied());
            }
            7 => {
                // A long run: digits, punctuation or a token, up to 64k bytes.
                let t = tokens[rng.below(tokens.len())];
                let max = if rng.below(8) == 0 { 65536 } else { 64 };
                let n = 1 + rng.below(max);
                let run = t.repeat(n.div_ceil(t.len().max(1)));
                let at = rng.below(v.len() + 1);
                v.splice(at..at, run.bytes());
            }
            8 => {
                let at = rng.below(v.len() + 1);
                let c = char::from_u32(rng.next_u64() as u32 % 0x11_0000).unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                v.splice(at..at, c.encode_utf8(&mut buf).bytes());
            }
            _ => {}
        }
    }
    v
}

/// The committed seed corpus of `target` (file name, bytes), sorted by name.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("fuzz/corpus").join(target);
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for entry in rd.flatten() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                out.push((entry.file_name().to_string_lossy().into_owned(), bytes));
            }
        }
    }
    out.sort();
    out
}
