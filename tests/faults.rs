//! Fault cases (issue 9): what happens to an engine when the world around it
//! misbehaves. Each case must end in success or a clear error — never a
//! crash, an abort, a deadlock or a leaked permit.

mod common;

use std::ffi::{c_void, CStr, CString};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use voxide::c_api::*;
use voxide::{AudioSample, Engine, Error, Input, SpeakOptions};

const HI: &str = "hˈaɪ.";
const LONGER: &str = "ðɪs ɪz ɐ lˈɔŋɡɚ sˈɛntəns, sˈoʊ ðɪ stɹˈiːm hɐz mˈɛni tʃˈʌŋks.";

fn phonemes() -> SpeakOptions {
    SpeakOptions::default().input(Input::Phonemes)
}

fn engine_at(voice: &Path, permits: usize) -> Engine {
    Engine::builder()
        .voice(voice)
        .max_concurrent(permits)
        .threads(1)
        .build()
        .unwrap_or_else(|e| panic!("engine: {e}"))
}

fn engine(permits: usize) -> Engine {
    engine_at(&common::voice_path(), permits)
}

fn speak(e: &Engine, ipa: &str) -> Vec<f32> {
    let p = e.acquire_permit().expect("permit");
    let a = e.speak_with(ipa, None, &phonemes(), p).expect("speak");
    a.samples().iter().map(|s| s.0).collect()
}

/// All permits are free: each can be taken without waiting.
fn assert_all_permits_free(e: &Engine) {
    let held: Vec<_> = (0..e.max_concurrent())
        .map(|i| {
            e.try_acquire_permit()
                .unwrap_or_else(|| panic!("permit {i} of {} is still held", e.max_concurrent()))
        })
        .collect();
    assert!(e.try_acquire_permit().is_none());
    drop(held);
}

/// Run `f` on its own thread; fail (instead of hanging) if it takes longer than `secs`.
fn with_watchdog<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            let _ = h.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: no answer within {secs} s (deadlock?)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => panic!("{what}: thread ended without a result"),
        },
    }
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("voxide-faults-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private copy of the voice (model + config) in `dir`.
fn copy_voice(dir: &Path) -> PathBuf {
    let src = common::voice_path();
    let dst = dir.join("copy.onnx");
    std::fs::copy(&src, &dst).expect("copy voice");
    let mut json = src.into_os_string();
    json.push(".json");
    std::fs::copy(&json, dir.join("copy.onnx.json")).expect("copy config");
    dst
}

#[test]
fn voice_file_truncated_or_replaced_while_in_use() {
    let dir = TempDir::new("truncate");
    let voice = copy_voice(&dir.0);
    let e = engine_at(&voice, 2);
    let before = speak(&e, HI);
    assert!(!before.is_empty());

    // Truncate in place (an mmap of the file would now SIGBUS on access).
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&voice)
        .expect("open");
    f.set_len(0).expect("truncate");
    drop(f);
    assert_eq!(
        speak(&e, HI),
        before,
        "audio changed after the file was truncated"
    );

    // Overwrite with garbage, then replace by rename.
    std::fs::write(&voice, vec![0xa5u8; 1 << 16]).expect("overwrite");
    assert_eq!(
        speak(&e, HI),
        before,
        "audio changed after the file was overwritten"
    );
    let other = dir.0.join("other.onnx");
    std::fs::write(&other, b"not a model").expect("write");
    std::fs::rename(&other, &voice).expect("rename");
    assert_eq!(
        speak(&e, HI),
        before,
        "audio changed after the file was replaced"
    );

    // Loading the damaged file is a clear error naming it; the engine keeps working.
    match e.add_voice("damaged", &voice) {
        Err(Error::Model(m)) => assert!(m.to_string().contains("copy.onnx"), "{m}"),
        other => panic!("loading a damaged voice gave {other:?}"),
    }
    assert!(matches!(
        e.sample_rate(Some("damaged")),
        Err(Error::UnknownVoice(_))
    ));
    assert_eq!(speak(&e, HI), before);
    assert_all_permits_free(&e);
}

#[test]
fn voice_file_rewritten_during_load() {
    let dir = TempDir::new("rewrite");
    let voice = copy_voice(&dir.0);
    let full = std::fs::read(&voice).expect("read");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (voice, stop) = (voice.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // Alternate: truncate to a prefix, then the whole file again.
                let len = if i.is_multiple_of(2) {
                    (i * 7919) % full.len()
                } else {
                    full.len()
                };
                let _ = std::fs::write(&voice, &full[..len]);
                i += 1;
            }
            i
        })
    };
    let (mut ok, mut err) = (0, 0);
    for _ in 0..4 {
        match Engine::builder().voice(&voice).threads(1).build() {
            Ok(e) => {
                ok += 1;
                assert!(!speak(&e, HI).is_empty());
            }
            Err(e @ (Error::Model(_) | Error::Io { .. })) => {
                err += 1;
                assert!(e.to_string().contains("copy.onnx"), "{e}");
            }
            Err(other) => panic!("unexpected error while the file changes: {other}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().expect("writer");
    eprintln!("loads while rewriting: {ok} ok, {err} clear errors, {writes} rewrites");
}

#[test]
fn absurd_sizes_are_errors_not_aborts() {
    let e = engine(1);
    let ids: Vec<String> = (0..60).map(|i| ((i % 40) + 3).to_string()).collect();
    let ids = ids.join(",");
    // Default frame cap: a huge length_scale is refused before any allocation.
    let o = SpeakOptions::default().input(Input::Ids).length_scale(1e30);
    match e.speak_with(&ids, None, &o, e.acquire_permit().expect("permit")) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("cap"), "{m}"),
        other => panic!("length_scale 1e30 gave {other:?}"),
    }
    // No cap: tens of billions of frames cannot be allocated -> OutOfMemory.
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if overcommit.trim() == "1" {
        common::skip(
            "faults::absurd_sizes_are_errors_not_aborts (allocation-failure half)",
            "vm.overcommit_memory=1 lets any allocation succeed",
        );
    } else {
        let o = SpeakOptions::default()
            .input(Input::Ids)
            .length_scale(1e8)
            .noise_w(0.0)
            .max_frames(usize::MAX);
        match e.speak_with(&ids, None, &o, e.acquire_permit().expect("permit")) {
            Err(Error::OutOfMemory(m)) => assert!(m.contains("frames"), "{m}"),
            other => panic!("an absurd frame count gave {other:?}"),
        }
        assert_eq!(
            VoxideStatus::from(&Error::OutOfMemory("x".into())),
            VoxideStatus::VOXIDE_ERR_OUT_OF_MEMORY
        );
    }
    assert_all_permits_free(&e);
    assert!(
        !speak(&e, HI).is_empty(),
        "engine unusable after the failures"
    );

    // Through the C ABI: a clear status and message, no abort.
    let path = CString::new(common::voice_path().to_string_lossy().into_owned()).expect("path");
    unsafe {
        let mut ce = std::ptr::null_mut();
        assert_eq!(
            voxide_engine_create(path.as_ptr(), &mut ce),
            VoxideStatus::VOXIDE_OK
        );
        let mut p = std::ptr::null_mut();
        assert_eq!(
            voxide_engine_acquire_permit(ce, 0, &mut p),
            VoxideStatus::VOXIDE_OK
        );
        let mut so = voxide_speak_options_default();
        so.length_scale = 3.0e38;
        so.input = VoxideInput::VOXIDE_INPUT_PHONEMES as i32;
        let text = CString::new(LONGER).expect("text");
        let mut a = std::ptr::null_mut();
        let st = voxide_engine_speak_with(ce, text.as_ptr(), std::ptr::null(), &so, p, &mut a);
        assert_eq!(st, VoxideStatus::VOXIDE_ERR_INVALID_ARGUMENT);
        let msg = CStr::from_ptr(voxide_last_error())
            .to_string_lossy()
            .into_owned();
        assert!(msg.contains("frames"), "{msg}");
        assert!(a.is_null());
        voxide_engine_free(ce);
    }
}

#[test]
fn stream_callback_reenters_the_same_engine() {
    with_watchdog(300, "re-entrant callback", || {
        // Two permits: a nested request from inside the callback works and
        // gives the same audio as on its own.
        let e = engine(2);
        let solo = speak(&e, HI);
        let mut nested = Vec::new();
        let e2 = e.clone();
        let p = e.acquire_permit().expect("permit");
        e.speak_stream(LONGER, None, &phonemes(), p, |_chunk: &[AudioSample]| {
            if nested.is_empty() {
                let p2 = e2.try_acquire_permit().expect("second permit");
                let a = e2
                    .speak_with(HI, None, &phonemes(), p2)
                    .expect("nested speak");
                nested = a.samples().iter().map(|s| s.0).collect();
            }
            ControlFlow::Continue(())
        })
        .expect("outer stream");
        assert_eq!(nested, solo, "nested request differs from solo");
        assert_all_permits_free(&e);

        // One permit: the nested request cannot get one and says so (no deadlock).
        let e = engine(1);
        let e2 = e.clone();
        let mut outcome = None;
        let p = e.acquire_permit().expect("permit");
        e.speak_stream(HI, None, &phonemes(), p, |_chunk: &[AudioSample]| {
            if outcome.is_none() {
                assert!(e2.try_acquire_permit().is_none());
                outcome = Some(
                    e2.acquire_permit_timeout(Duration::from_millis(50))
                        .map(drop),
                );
            }
            ControlFlow::Continue(())
        })
        .expect("outer stream");
        assert!(matches!(outcome, Some(Err(Error::Timeout))), "{outcome:?}");
        assert_all_permits_free(&e);
    });
}

struct Reenter {
    engine: *mut VoxideEngine,
    nested: Option<VoxideStatus>,
    nested_len: usize,
}

unsafe extern "C" fn reenter_cb(_s: *const f32, _n: usize, user: *mut c_void) -> bool {
    let r = &mut *(user as *mut Reenter);
    if r.nested.is_none() {
        let mut p = std::ptr::null_mut();
        let st = voxide_engine_acquire_permit(r.engine, 0, &mut p);
        if st != VoxideStatus::VOXIDE_OK {
            r.nested = Some(st);
            return true;
        }
        let mut o = voxide_speak_options_default();
        o.input = VoxideInput::VOXIDE_INPUT_PHONEMES as i32;
        let text = CString::new(HI).unwrap_or_default();
        let mut a = std::ptr::null_mut();
        let st = voxide_engine_speak_with(r.engine, text.as_ptr(), std::ptr::null(), &o, p, &mut a);
        r.nested_len = voxide_audio_len(a);
        voxide_audio_free(a);
        r.nested = Some(st);
    }
    true
}

#[test]
fn c_stream_callback_reenters_the_same_engine() {
    with_watchdog(300, "re-entrant C callback", || unsafe {
        let path = CString::new(common::voice_path().to_string_lossy().into_owned()).expect("path");
        for permits in [1u32, 2] {
            let mut eo = voxide_engine_options_default();
            eo.voice_path = path.as_ptr();
            eo.max_concurrent = permits;
            eo.threads = 1;
            let mut e = std::ptr::null_mut();
            assert_eq!(
                voxide_engine_create_with(&eo, &mut e),
                VoxideStatus::VOXIDE_OK
            );
            let mut p = std::ptr::null_mut();
            assert_eq!(
                voxide_engine_acquire_permit(e, 0, &mut p),
                VoxideStatus::VOXIDE_OK
            );
            let mut o = voxide_speak_options_default();
            o.input = VoxideInput::VOXIDE_INPUT_PHONEMES as i32;
            let text = CString::new(HI).expect("text");
            let mut r = Reenter {
                engine: e,
                nested: None,
                nested_len: 0,
            };
            let st = voxide_engine_speak_stream(
                e,
                text.as_ptr(),
                std::ptr::null(),
                &o,
                p,
                Some(reenter_cb),
                (&mut r as *mut Reenter).cast(),
            );
            assert_eq!(st, VoxideStatus::VOXIDE_OK);
            if permits == 1 {
                assert_eq!(r.nested, Some(VoxideStatus::VOXIDE_ERR_TIMEOUT));
            } else {
                assert_eq!(r.nested, Some(VoxideStatus::VOXIDE_OK));
                assert!(r.nested_len > 0);
            }
            voxide_engine_free(e);
        }
    });
}

struct FreeMidStream {
    started: mpsc::Sender<()>,
    resume: mpsc::Receiver<()>,
    samples: Vec<f32>,
}

unsafe extern "C" fn free_mid_cb(s: *const f32, n: usize, user: *mut c_void) -> bool {
    let st = &mut *(user as *mut FreeMidStream);
    if st.samples.is_empty() {
        // Tell the other thread we are mid-stream, and wait until it freed the engine.
        let _ = st.started.send(());
        let _ = st.resume.recv_timeout(Duration::from_secs(60));
    }
    st.samples
        .extend_from_slice(std::slice::from_raw_parts(s, n));
    true
}

struct SendPtr(*mut VoxideEngine);
// SAFETY: engines are thread-safe; the test frees it exactly once.
unsafe impl Send for SendPtr {}

#[test]
fn engine_freed_while_another_thread_is_mid_stream() {
    let solo = {
        let e = engine(2);
        let p = e.acquire_permit().expect("permit");
        let a = e.speak_with(LONGER, None, &phonemes(), p).expect("solo");
        a.samples().iter().map(|s| s.0).collect::<Vec<f32>>()
    };
    with_watchdog(300, "free mid-stream", move || unsafe {
        let path = CString::new(common::voice_path().to_string_lossy().into_owned()).expect("path");
        let mut e = std::ptr::null_mut();
        assert_eq!(
            voxide_engine_create(path.as_ptr(), &mut e),
            VoxideStatus::VOXIDE_OK
        );
        let (started_tx, started_rx) = mpsc::channel();
        let (resume_tx, resume_rx) = mpsc::channel();
        let handle = SendPtr(e);
        let streamer = std::thread::spawn(move || {
            let handle = handle;
            let mut p = std::ptr::null_mut();
            assert_eq!(
                voxide_engine_acquire_permit(handle.0, 0, &mut p),
                VoxideStatus::VOXIDE_OK
            );
            let mut o = voxide_speak_options_default();
            o.input = VoxideInput::VOXIDE_INPUT_PHONEMES as i32;
            let text = CString::new(LONGER).expect("text");
            let mut st = FreeMidStream {
                started: started_tx,
                resume: resume_rx,
                samples: Vec::new(),
            };
            let status = voxide_engine_speak_stream(
                handle.0,
                text.as_ptr(),
                std::ptr::null(),
                &o,
                p,
                Some(free_mid_cb),
                (&mut st as *mut FreeMidStream).cast(),
            );
            (status, st.samples)
        });
        started_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("stream started");
        voxide_engine_free(e); // while the other thread is inside the stream
        resume_tx.send(()).expect("resume");
        let (status, samples) = streamer.join().expect("streamer");
        assert_eq!(status, VoxideStatus::VOXIDE_OK);
        assert_eq!(samples, solo, "stream audio changed by the free");
    });
}

#[test]
fn panic_inside_a_rust_callback_is_caught() {
    let e = engine(2);
    let solo = speak(&e, HI);
    let calls = AtomicUsize::new(0);
    let p = e.acquire_permit().expect("permit");
    let r = e.speak_stream(LONGER, None, &phonemes(), p, |_chunk: &[AudioSample]| {
        if calls.fetch_add(1, Ordering::Relaxed) == 1 {
            panic!("callback boom");
        }
        ControlFlow::Continue(())
    });
    match r {
        Err(Error::Panic(m)) => assert!(m.contains("callback boom"), "{m}"),
        other => panic!("a panicking callback gave {other:?}"),
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        2,
        "the stream went on after the panic"
    );
    assert_all_permits_free(&e);
    assert_eq!(speak(&e, HI), solo, "engine changed after the panic");
    // Through the C ABI the same error is VOXIDE_ERR_PANIC.
    assert_eq!(
        VoxideStatus::from(&Error::Panic("x".into())),
        VoxideStatus::VOXIDE_ERR_PANIC
    );
}
