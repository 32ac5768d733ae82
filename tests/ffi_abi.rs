//! Rust-side tests of the C ABI: the extern "C" functions called directly.
//! Panic boundary, NULL handling, status values, struct_size rules, layout.
//! Tests that need the voice skip (a `SKIP` line) when it is absent.

mod common;

use std::ffi::{c_char, CStr, CString};
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::ptr;
use voxide::c_api::*;

fn last_error() -> String {
    unsafe { CStr::from_ptr(voxide_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// The voice for `test`, or `None` after recording `test` as skipped.
fn voice(test: &str) -> Option<CString> {
    let p = std::env::var("VOXIDE_VOICE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("voices/en_US-joe-medium.onnx")
        });
    if p.exists() {
        Some(CString::new(p.to_str()?).ok()?)
    } else {
        common::skip(
            test,
            &format!("voice {} not found (scripts/fetch-voice.sh)", p.display()),
        );
        None
    }
}

fn engine(voice: &CStr, permits: u32) -> *mut VoxideEngine {
    let mut o = voxide_engine_options_default();
    o.voice_path = voice.as_ptr();
    o.max_concurrent = permits;
    o.threads = 1;
    let mut e = ptr::null_mut();
    let st = unsafe { voxide_engine_create_with(&o, &mut e) };
    assert_eq!(st, VoxideStatus::VOXIDE_OK, "{}", last_error());
    e
}

fn permit(e: *mut VoxideEngine) -> *mut VoxidePermit {
    let mut p = ptr::null_mut();
    assert_eq!(
        unsafe { voxide_engine_acquire_permit(e, 0, &mut p) },
        VoxideStatus::VOXIDE_OK
    );
    p
}

#[test]
fn status_values_and_names_are_fixed() {
    let names = [
        "VOXIDE_OK",
        "VOXIDE_ERR_NULL_ARGUMENT",
        "VOXIDE_ERR_INVALID_UTF8",
        "VOXIDE_ERR_INVALID_ARGUMENT",
        "VOXIDE_ERR_IO",
        "VOXIDE_ERR_MODEL",
        "VOXIDE_ERR_UNKNOWN_VOICE",
        "VOXIDE_ERR_TIMEOUT",
        "VOXIDE_ERR_CANCELLED",
        "VOXIDE_ERR_DEVICE",
        "VOXIDE_ERR_OUT_OF_MEMORY",
        "VOXIDE_ERR_PANIC",
        "VOXIDE_ERR_BUSY",
        "VOXIDE_ERR_UNAVAILABLE",
    ];
    assert_eq!(VoxideStatus::ALL.len(), names.len());
    for (i, (s, n)) in VoxideStatus::ALL.iter().zip(names).enumerate() {
        assert_eq!(*s as i32, i as i32);
        assert_eq!(s.name(), n);
        let c = unsafe { CStr::from_ptr(voxide_status_name(i as i32)) };
        assert_eq!(c.to_str().unwrap(), n);
    }
    for bad in [-1, 14, i32::MAX, i32::MIN] {
        let c = unsafe { CStr::from_ptr(voxide_status_name(bad)) };
        assert_eq!(c.to_str().unwrap(), "VOXIDE_UNKNOWN_STATUS");
    }
    assert_eq!(size_of::<VoxideStatus>(), 4);
}

#[test]
fn version_is_the_crate_version() {
    let v = unsafe { CStr::from_ptr(voxide_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn panic_boundary_reports_panic_status_and_message() {
    let st = boundary(|| panic!("boom in the engine"));
    assert_eq!(st, VoxideStatus::VOXIDE_ERR_PANIC);
    assert!(
        last_error().contains("boom in the engine"),
        "{}",
        last_error()
    );
    let st = boundary(|| std::panic::panic_any(42u8));
    assert_eq!(st, VoxideStatus::VOXIDE_ERR_PANIC);
    let v: *const c_char = boundary_value(ptr::null(), || panic!("getter {}", 7));
    assert!(v.is_null());
    assert!(last_error().contains("getter 7"));
    // Errors map to their status and message.
    let st = boundary(|| Err(voxide::Error::Timeout.into()));
    assert_eq!(st, VoxideStatus::VOXIDE_ERR_TIMEOUT);
    assert!(last_error().contains("timed out"));
    // Success leaves the message alone.
    assert_eq!(boundary(|| Ok(())), VoxideStatus::VOXIDE_OK);
    assert!(last_error().contains("timed out"));
}

#[test]
fn last_error_is_per_thread() {
    let _ = boundary(|| Err(voxide::Error::Cancelled.into()));
    std::thread::spawn(|| assert_eq!(last_error(), ""))
        .join()
        .unwrap();
    assert!(last_error().contains("cancelled"));
}

#[test]
fn null_arguments_never_crash() {
    unsafe {
        let mut e = ptr::null_mut();
        assert_eq!(
            voxide_engine_create(ptr::null(), &mut e),
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            voxide_engine_create(c"x".as_ptr(), ptr::null_mut()),
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            voxide_engine_create_with(ptr::null(), &mut e),
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT
        );
        assert!(e.is_null());
        assert_eq!(
            voxide_engine_add_voice(ptr::null_mut(), c"a".as_ptr(), c"b".as_ptr()),
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT
        );
        let mut p = ptr::null_mut();
        assert_eq!(
            voxide_engine_acquire_permit(ptr::null_mut(), 0, &mut p),
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT
        );
        let mut a = ptr::null_mut();
        assert_eq!(
            voxide_engine_speak(
                ptr::null_mut(),
                c"".as_ptr(),
                ptr::null(),
                ptr::null_mut(),
                &mut a
            ),
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            voxide_engine_speak_stream(
                ptr::null_mut(),
                ptr::null(),
                ptr::null(),
                ptr::null(),
                ptr::null_mut(),
                None,
                ptr::null_mut()
            ),
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT
        );
        let mut rate = 0;
        assert_eq!(
            voxide_engine_sample_rate(ptr::null(), ptr::null(), &mut rate),
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT
        );
        assert!(voxide_engine_device_name(ptr::null()).is_null());
        assert!(voxide_audio_samples(ptr::null()).is_null());
        assert_eq!(voxide_audio_len(ptr::null()), 0);
        assert_eq!(voxide_audio_sample_rate(ptr::null()), 0);
        assert_eq!(
            voxide_audio_write_wav(ptr::null(), c"x.wav".as_ptr()),
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT
        );
        voxide_audio_free(ptr::null_mut());
        voxide_permit_free(ptr::null_mut());
        voxide_engine_free(ptr::null_mut());
    }
}

#[test]
fn option_struct_layout_is_stable() {
    // The ABI of released structs never changes; fields are only appended.
    assert_eq!(size_of::<VoxideEngineOptions>(), 64);
    assert_eq!(offset_of!(VoxideEngineOptions, voice_path), 8);
    assert_eq!(offset_of!(VoxideEngineOptions, config_path), 16);
    assert_eq!(offset_of!(VoxideEngineOptions, max_concurrent), 24);
    assert_eq!(offset_of!(VoxideEngineOptions, device), 28);
    assert_eq!(offset_of!(VoxideEngineOptions, device_ordinal), 32);
    assert_eq!(offset_of!(VoxideEngineOptions, threads), 36);
    // Appended (the settings as data): a 40-byte struct of an older header
    // still works, these fields then take their environment defaults.
    assert_eq!(offset_of!(VoxideEngineOptions, precision), 40);
    assert_eq!(offset_of!(VoxideEngineOptions, cpu_isa), 44);
    assert_eq!(offset_of!(VoxideEngineOptions, scheduler), 48);
    assert_eq!(offset_of!(VoxideEngineOptions, queue_depth), 52);
    assert_eq!(offset_of!(VoxideEngineOptions, cuda_graphs), 56);
    assert_eq!(size_of::<VoxideSpeakOptions>(), 56);
    assert_eq!(offset_of!(VoxideSpeakOptions, noise_scale), 8);
    assert_eq!(offset_of!(VoxideSpeakOptions, length_scale), 12);
    assert_eq!(offset_of!(VoxideSpeakOptions, noise_w), 16);
    assert_eq!(offset_of!(VoxideSpeakOptions, seed), 24);
    assert_eq!(offset_of!(VoxideSpeakOptions, speaker_id), 32);
    assert_eq!(offset_of!(VoxideSpeakOptions, input), 40);
    assert_eq!(offset_of!(VoxideSpeakOptions, phonemizer), 44);
    // Appended (speech features): a 48-byte struct of an older header speaks at speed 1.
    assert_eq!(offset_of!(VoxideSpeakOptions, speed), 48);
    let e = voxide_engine_options_default();
    assert_eq!(e.struct_size, 64);
    assert_eq!(e.max_concurrent, 2);
    assert_eq!(e.device, VoxideDevice::VOXIDE_DEVICE_AUTO as i32);
    let s = voxide_speak_options_default();
    assert_eq!(s.struct_size, 56);
    assert_eq!(s.speed, 1.0);
    assert!(s.noise_scale < 0.0 && s.length_scale < 0.0 && s.noise_w < 0.0);
    assert_eq!(s.input, VoxideInput::VOXIDE_INPUT_TEXT as i32);
    assert_eq!(s.phonemizer, 0, "VOXIDE_PHONEMIZER_BUILTIN");
}

#[test]
fn struct_size_rules() {
    unsafe {
        let mut e = ptr::null_mut();
        for bad in [0usize, 4, 65, 1 << 20, usize::MAX] {
            let mut o = voxide_engine_options_default();
            o.voice_path = c"/nonexistent.onnx".as_ptr();
            o.struct_size = bad;
            assert_eq!(
                voxide_engine_create_with(&o, &mut e),
                VoxideStatus::VOXIDE_ERR_INVALID_ARGUMENT,
                "size {bad}"
            );
            assert!(last_error().contains("struct_size"));
        }
        // An old caller's 8-byte struct: only struct_size; voice_path is then missing.
        let small: usize = 8;
        assert_eq!(
            voxide_engine_create_with((&small as *const usize).cast(), &mut e),
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT
        );
        // Through config_path: max_concurrent 0 and device 99 beyond the size are not read.
        let mut o = voxide_engine_options_default();
        o.voice_path = c"/nonexistent-voxide.onnx".as_ptr();
        o.max_concurrent = 0;
        o.device = 99;
        o.struct_size = offset_of!(VoxideEngineOptions, max_concurrent);
        assert_eq!(
            voxide_engine_create_with(&o, &mut e),
            VoxideStatus::VOXIDE_ERR_IO
        );
        o.struct_size = size_of::<VoxideEngineOptions>();
        assert_eq!(
            voxide_engine_create_with(&o, &mut e),
            VoxideStatus::VOXIDE_ERR_INVALID_ARGUMENT
        );
        assert!(e.is_null());
    }
}

#[test]
fn invalid_utf8_and_missing_files() {
    unsafe {
        let mut e = ptr::null_mut();
        assert_eq!(
            voxide_engine_create(c"\xff.onnx".as_ptr(), &mut e),
            VoxideStatus::VOXIDE_ERR_INVALID_UTF8
        );
        assert_eq!(
            voxide_engine_create(c"/nonexistent/v.onnx".as_ptr(), &mut e),
            VoxideStatus::VOXIDE_ERR_IO
        );
        assert!(last_error().contains("/nonexistent/v.onnx"));
        assert!(e.is_null());
    }
}

#[test]
fn permit_is_consumed_on_error_paths() {
    let Some(v) = voice("ffi_abi::permit_is_consumed_on_error_paths") else {
        return;
    };
    unsafe {
        let e = engine(&v, 1);
        let mut a: *mut VoxideAudio = ptr::null_mut();
        // NULL text, invalid UTF-8, unknown voice, NULL out, bad options: the permit comes back each time.
        let mut bad = voxide_speak_options_default();
        bad.struct_size = 1000;
        let cases: [(
            &CStr,
            Option<&CStr>,
            *const VoxideSpeakOptions,
            bool,
            VoxideStatus,
        ); 4] = [
            (
                c"\xe2\x82",
                None,
                ptr::null(),
                true,
                VoxideStatus::VOXIDE_ERR_INVALID_UTF8,
            ),
            (
                c"",
                Some(c"nobody"),
                ptr::null(),
                true,
                VoxideStatus::VOXIDE_ERR_UNKNOWN_VOICE,
            ),
            (
                c"",
                None,
                ptr::null(),
                false,
                VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT,
            ),
            (
                c"",
                None,
                &bad,
                true,
                VoxideStatus::VOXIDE_ERR_INVALID_ARGUMENT,
            ),
        ];
        for (text, voice, opts, with_out, want) in cases {
            let out = if with_out {
                &mut a as *mut _
            } else {
                ptr::null_mut()
            };
            let st = voxide_engine_speak_with(
                e,
                text.as_ptr(),
                voice.map_or(ptr::null(), |v| v.as_ptr()),
                opts,
                permit(e),
                out,
            );
            assert_eq!(st, want, "{}", last_error());
            voxide_permit_free(permit(e)); // the single permit is free again
        }
        assert!(a.is_null());
        // Empty text: a non-NULL audio of 0 samples.
        assert_eq!(
            voxide_engine_speak(e, c" ".as_ptr(), ptr::null(), permit(e), &mut a),
            VoxideStatus::VOXIDE_OK
        );
        assert!(!a.is_null());
        assert_eq!(voxide_audio_len(a), 0);
        assert!(!voxide_audio_samples(a).is_null());
        assert_eq!(voxide_audio_sample_rate(a), 22050);
        voxide_audio_free(a);
        // A permit outlives the engine handle.
        let p = permit(e);
        voxide_engine_free(e);
        voxide_permit_free(p);
    }
}
