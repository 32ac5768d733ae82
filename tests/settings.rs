//! Settings as data: every engine setting the environment can give has a
//! builder method and a C option field that win over the environment, and
//! errors keep their kind and their source.

mod common;

use std::error::Error as _;
use std::ffi::{CStr, CString};
use std::ptr;
use voxide::c_api::*;
use voxide::{Engine, Error, ErrorKind, Isa, Precision, Settings, SpeakOptions};

fn last_error() -> String {
    unsafe { CStr::from_ptr(voxide_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn c_voice() -> CString {
    CString::new(common::voice_path().to_str().unwrap()).unwrap()
}

/// Create an engine through the C ABI with `set` applied to the defaults.
fn create(set: impl FnOnce(&mut VoxideEngineOptions)) -> Result<*mut VoxideEngine, String> {
    let voice = c_voice();
    let mut o = voxide_engine_options_default();
    o.voice_path = voice.as_ptr();
    o.threads = 1;
    set(&mut o);
    let mut e = ptr::null_mut();
    match unsafe { voxide_engine_create_with(&o, &mut e) } {
        VoxideStatus::VOXIDE_OK => Ok(e),
        st => Err(format!("{}: {}", st.name(), last_error())),
    }
}

#[test]
fn builder_settings_are_applied() {
    let e = Engine::builder()
        .voice(common::voice_path())
        .threads(1)
        .precision(Precision::F32)
        .cpu_isa(Isa::Portable)
        .scheduler(true)
        .build()
        .unwrap();
    assert_eq!(e.precision(), Precision::F32);
    // The portable kernels run f32 only: asking for more is a clear error.
    let bad = Engine::builder()
        .voice(common::voice_path())
        .precision(Precision::Bf16)
        .cpu_isa(Isa::Portable)
        .build()
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::Device, "{bad}");
    // A scheduled engine on the portable kernels still speaks.
    let o = SpeakOptions::default().input(voxide::Input::Phonemes);
    let a = e
        .speak_with("həlˈoʊ.", None, &o, e.acquire_permit().unwrap())
        .unwrap();
    assert!(a.samples().len() > 1000);
}

#[test]
fn every_variable_has_a_c_field() {
    // Defaults leave each setting to the environment.
    let d = voxide_engine_options_default();
    assert_eq!(d.precision, VoxidePrecision::VOXIDE_PRECISION_AUTO as i32);
    assert_eq!(d.cpu_isa, VoxideCpuIsa::VOXIDE_CPU_ISA_AUTO as i32);
    assert_eq!(d.scheduler, VoxideSwitch::VOXIDE_SWITCH_DEFAULT as i32);
    assert_eq!(d.cuda_graphs, VoxideSwitch::VOXIDE_SWITCH_DEFAULT as i32);
    assert_eq!(d.queue_depth, 0);

    let e = create(|o| {
        o.precision = VoxidePrecision::VOXIDE_PRECISION_F32 as i32;
        o.cpu_isa = VoxideCpuIsa::VOXIDE_CPU_ISA_PORTABLE as i32;
        o.scheduler = VoxideSwitch::VOXIDE_SWITCH_ON as i32;
        o.queue_depth = 3;
        o.cuda_graphs = VoxideSwitch::VOXIDE_SWITCH_OFF as i32;
    })
    .unwrap();
    unsafe { voxide_engine_free(e) };

    // Values outside each enum are refused with a message naming the field.
    for (field, set) in [
        (
            "precision",
            Box::new(|o: &mut VoxideEngineOptions| o.precision = 9) as Box<dyn Fn(&mut _)>,
        ),
        (
            "cpu_isa",
            Box::new(|o: &mut VoxideEngineOptions| o.cpu_isa = -2),
        ),
        (
            "scheduler",
            Box::new(|o: &mut VoxideEngineOptions| o.scheduler = 2),
        ),
        (
            "cuda_graphs",
            Box::new(|o: &mut VoxideEngineOptions| o.cuda_graphs = 7),
        ),
    ] {
        let err = create(|o| set(o)).unwrap_err();
        assert!(
            err.starts_with("VOXIDE_ERR_INVALID_ARGUMENT") && err.contains(field),
            "{field}: {err}"
        );
    }
    // A precision the CPU's portable kernels cannot run: a device error.
    let err = create(|o| {
        o.precision = VoxidePrecision::VOXIDE_PRECISION_BF16 as i32;
        o.cpu_isa = VoxideCpuIsa::VOXIDE_CPU_ISA_PORTABLE as i32;
    })
    .unwrap_err();
    assert!(err.starts_with("VOXIDE_ERR_DEVICE"), "{err}");
}

#[test]
fn settings_name_the_bad_variable() {
    let get = |name: &str| (name == "VOXIDE_PRECISION").then(|| "half".to_string());
    let e = Settings::from_lookup(get).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("VOXIDE_PRECISION"), "{e}");
}

#[test]
fn errors_keep_their_kind_and_source() {
    // A missing voice file: an I/O error whose source is the OS error.
    let e = Engine::builder()
        .voice("/nonexistent/voice.onnx")
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    let src = e.source().expect("the OS error is kept as the source");
    assert!(src.downcast_ref::<std::io::Error>().is_some(), "{src:?}");
    // A corrupt model: a model error naming the file.
    let dir = std::env::temp_dir().join(format!("voxide-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let onnx = dir.join("bad.onnx");
    std::fs::write(&onnx, b"not a model").unwrap();
    std::fs::copy(
        common::voice_path().with_extension("onnx.json"),
        dir.join("bad.onnx.json"),
    )
    .unwrap();
    let e = Engine::builder().voice(&onnx).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Model, "{e}");
    assert!(matches!(e, Error::Model(_)));
    assert!(e.to_string().contains("bad.onnx"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
    // The C statuses follow the kinds, new ones appended.
    assert_eq!(
        VoxideStatus::from(&Error::Busy("queue full".into())),
        VoxideStatus::VOXIDE_ERR_BUSY
    );
    assert_eq!(VoxideStatus::VOXIDE_ERR_BUSY as i32, 12);
    assert_eq!(VoxideStatus::VOXIDE_ERR_UNAVAILABLE as i32, 13);
}
