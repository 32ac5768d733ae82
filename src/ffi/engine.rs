//! Engine, permit and speak entry points.

use super::handles::{self, VoxideAudio, VoxideEngine, VoxidePermit};
use super::options::{
    VoxideCpuIsa, VoxideDevice, VoxideEngineOptions, VoxideInput, VoxidePhonemizer,
    VoxidePrecision, VoxideSpeakOptions, VoxideSwitch,
};
use super::status::{boundary, boundary_value, VoxideStatus};
use super::status::{FfiError, FfiResult as Result};
use crate::audio::as_f32;
use crate::backend::cpu::Isa;
use crate::backend::Precision;
use crate::engine::{Device, Engine, Input, Permit, SpeakOptions};
use crate::error::Error;
use crate::text::Phonemizer;
use std::ffi::{c_char, c_void};
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Receives one chunk of a streamed request.
///
/// `samples` points to `len` float samples (len >= 1) at the voice's sample
/// rate, valid only until the callback returns: copy them to keep them.
/// `user_data` is the pointer given to `voxide_engine_speak_stream`.
/// Return true to continue, false to cancel (the stream call then returns
/// `VOXIDE_ERR_CANCELLED`). The callback runs on the thread that called
/// `voxide_engine_speak_stream`; it may call voxide functions (also on the
/// same engine, with another permit, and `voxide_engine_free`), but must not
/// unwind (throw a C++ exception or longjmp) out of the call. The request
/// holds its permit while the callback runs: waiting forever for another
/// permit from inside the callback deadlocks when all are in use.
pub type VoxideChunkCallback =
    Option<unsafe extern "C" fn(samples: *const f32, len: usize, user_data: *mut c_void) -> bool>;

fn create(o: &VoxideEngineOptions) -> Result<VoxideEngine> {
    // SAFETY: the caller passes NUL-terminated strings (documented).
    let voice = unsafe { handles::str_arg(o.voice_path, "options->voice_path")? };
    let config = unsafe { handles::opt_str_arg(o.config_path, "options->config_path")? };
    if o.max_concurrent == 0 {
        return Err(Error::InvalidArgument(
            "options->max_concurrent is 0; at least one permit is needed".into(),
        )
        .into());
    }
    let mut b = Engine::builder()
        .voice(voice)
        .max_concurrent(o.max_concurrent as usize)
        .threads(o.threads as usize);
    if let Some(c) = config {
        b = b.config(c);
    }
    b = match o.device {
        d if d == VoxideDevice::VOXIDE_DEVICE_AUTO as i32 => b, // the builder reads $VOXIDE_DEVICE
        d if d == VoxideDevice::VOXIDE_DEVICE_CPU as i32 => b.device(Device::Cpu),
        d if d == VoxideDevice::VOXIDE_DEVICE_CUDA as i32 => {
            b.device(Device::Cuda(o.device_ordinal as usize))
        }
        d => {
            return Err(Error::InvalidArgument(format!(
                "options->device is {d}; expected VOXIDE_DEVICE_AUTO, _CPU or _CUDA"
            ))
            .into())
        }
    };
    b = match o.precision {
        p if p == VoxidePrecision::VOXIDE_PRECISION_AUTO as i32 => b, // $VOXIDE_PRECISION
        p if p == VoxidePrecision::VOXIDE_PRECISION_F32 as i32 => b.precision(Precision::F32),
        p if p == VoxidePrecision::VOXIDE_PRECISION_BF16X3 as i32 => b.precision(Precision::Bf16x3),
        p if p == VoxidePrecision::VOXIDE_PRECISION_BF16 as i32 => b.precision(Precision::Bf16),
        p => {
            return Err(Error::InvalidArgument(format!(
                "options->precision is {p}; expected VOXIDE_PRECISION_AUTO, _F32, _BF16X3 or _BF16"
            ))
            .into())
        }
    };
    b = match o.cpu_isa {
        i if i == VoxideCpuIsa::VOXIDE_CPU_ISA_AUTO as i32 => b, // $VOXIDE_CPU_ISA
        i if i == VoxideCpuIsa::VOXIDE_CPU_ISA_AVX512 as i32 => b.cpu_isa(Isa::Avx512),
        i if i == VoxideCpuIsa::VOXIDE_CPU_ISA_PORTABLE as i32 => b.cpu_isa(Isa::Portable),
        i if i == VoxideCpuIsa::VOXIDE_CPU_ISA_AVX2 as i32 => b.cpu_isa(Isa::Avx2),
        i => {
            return Err(Error::InvalidArgument(format!(
                "options->cpu_isa is {i}; expected VOXIDE_CPU_ISA_AUTO, _AVX512, _PORTABLE or _AVX2"
            ))
            .into())
        }
    };
    if let Some(on) = switch(o.scheduler, "scheduler")? {
        b = b.scheduler(on);
    }
    if let Some(on) = switch(o.cuda_graphs, "cuda_graphs")? {
        b = b.cuda_graphs(on);
    }
    if o.queue_depth > 0 {
        b = b.queue_depth(o.queue_depth as usize);
    }
    Ok(VoxideEngine::new(b.build()?))
}

/// A `VoxideSwitch` field: `None` for the default.
fn switch(v: i32, what: &str) -> Result<Option<bool>> {
    match v {
        v if v == VoxideSwitch::VOXIDE_SWITCH_DEFAULT as i32 => Ok(None),
        v if v == VoxideSwitch::VOXIDE_SWITCH_OFF as i32 => Ok(Some(false)),
        v if v == VoxideSwitch::VOXIDE_SWITCH_ON as i32 => Ok(Some(true)),
        v => Err(Error::InvalidArgument(format!(
            "options->{what} is {v}; expected VOXIDE_SWITCH_DEFAULT, _OFF or _ON"
        ))
        .into()),
    }
}

/// Load the voice at `voice_path` (config: `voice_path` + ".json") into a new
/// engine with default options (2 permits, `VOXIDE_DEVICE_AUTO`, so
/// `$VOXIDE_DEVICE` is honoured; all cores).
///
/// `voice_path`: UTF-8, NUL-terminated; only read during the call.
/// On `VOXIDE_OK`, `*out_engine` receives a new engine that the caller owns
/// and frees with `voxide_engine_free`; on failure it is left untouched.
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT`, `VOXIDE_ERR_INVALID_UTF8`,
/// `VOXIDE_ERR_IO` (missing or unreadable file), `VOXIDE_ERR_MODEL` (corrupt
/// model or config), `VOXIDE_ERR_DEVICE`, `VOXIDE_ERR_INVALID_ARGUMENT`
/// (bad `$VOXIDE_DEVICE`).
///
/// # Safety
/// `voice_path` is NULL or a NUL-terminated string; `out_engine` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_create(
    voice_path: *const c_char,
    out_engine: *mut *mut VoxideEngine,
) -> VoxideStatus {
    boundary(|| {
        let out = handles::out(out_engine, "out_engine")?;
        let mut o = super::options::voxide_engine_options_default();
        if voice_path.is_null() {
            return Err(FfiError::Null("voice_path is NULL".into()));
        }
        o.voice_path = voice_path;
        let engine = create(&o)?;
        out.write(handles::into_raw(engine));
        Ok(())
    })
}

/// Create an engine from `options` (start from
/// `voxide_engine_options_default()`; `voice_path` is required).
///
/// `options` and the strings it points to are only read during the call.
/// On `VOXIDE_OK`, `*out_engine` receives a new engine owned by the caller
/// (free with `voxide_engine_free`).
/// Errors: as `voxide_engine_create`, plus `VOXIDE_ERR_INVALID_ARGUMENT` for a
/// bad `struct_size`, `max_concurrent` 0 or an unknown `device`, and
/// `VOXIDE_ERR_DEVICE` when `VOXIDE_DEVICE_CUDA` is not usable.
///
/// # Safety
/// `options` is NULL or points to `options->struct_size` readable bytes;
/// `out_engine` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_create_with(
    options: *const VoxideEngineOptions,
    out_engine: *mut *mut VoxideEngine,
) -> VoxideStatus {
    boundary(|| {
        let out = handles::out(out_engine, "out_engine")?;
        let o = handles::sized_options(options, "options")?;
        let engine = create(&o)?;
        out.write(handles::into_raw(engine));
        Ok(())
    })
}

/// Load another voice into the engine under `name` (replacing a voice of the
/// same name); speak calls select it by passing `name` as `voice`. The
/// engine's first voice is named after its file (without ".onnx") and is
/// the default. Safe to call while other threads speak.
///
/// `name` and `voice_path` (config: `voice_path` + ".json") are only read
/// during the call.
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT`, `VOXIDE_ERR_INVALID_UTF8`,
/// `VOXIDE_ERR_INVALID_ARGUMENT` (empty name), `VOXIDE_ERR_IO`, `VOXIDE_ERR_MODEL`.
///
/// # Safety
/// `engine` is NULL or a live engine; the strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_add_voice(
    engine: *mut VoxideEngine,
    name: *const c_char,
    voice_path: *const c_char,
) -> VoxideStatus {
    boundary(|| {
        let engine = handles::engine(engine)?.engine.clone();
        let name = handles::str_arg(name, "name")?;
        let path = handles::str_arg(voice_path, "voice_path")?;
        Ok(engine.add_voice(name, path)?)
    })
}

/// Wait up to `timeout_ms` milliseconds for a permit (0: try once without
/// waiting; `UINT32_MAX`: wait forever). An engine has `max_concurrent`
/// permits; a speak call needs one and gives it back when it ends.
///
/// On `VOXIDE_OK`, `*out_permit` receives a permit owned by the caller: pass
/// it to one speak call (which consumes it) or give it back with
/// `voxide_permit_free`. The permit stays valid even after
/// `voxide_engine_free`.
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT`, `VOXIDE_ERR_TIMEOUT`.
///
/// # Safety
/// `engine` is NULL or a live engine; `out_permit` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_acquire_permit(
    engine: *mut VoxideEngine,
    timeout_ms: u32,
    out_permit: *mut *mut VoxidePermit,
) -> VoxideStatus {
    boundary(|| {
        let engine = handles::engine(engine)?.engine.clone();
        let out = handles::out(out_permit, "out_permit")?;
        let permit = match timeout_ms {
            0 => engine
                .try_acquire_permit()
                .ok_or(FfiError::from(Error::Timeout))?,
            u32::MAX => engine.acquire_permit()?,
            ms => engine.acquire_permit_timeout(Duration::from_millis(u64::from(ms)))?,
        };
        out.write(handles::into_raw(VoxidePermit { permit }));
        Ok(())
    })
}

fn scale(v: f32, what: &str) -> Result<Option<f32>> {
    if v.is_nan() || v.is_infinite() {
        Err(Error::InvalidArgument(format!("options->{what} is {v}")).into())
    } else if v < 0.0 {
        Ok(None)
    } else {
        Ok(Some(v))
    }
}

pub(super) fn speak_options(o: &VoxideSpeakOptions) -> Result<SpeakOptions> {
    let input = match o.input {
        i if i == VoxideInput::VOXIDE_INPUT_TEXT as i32 => Input::Text,
        i if i == VoxideInput::VOXIDE_INPUT_PHONEMES as i32 => Input::Phonemes,
        i if i == VoxideInput::VOXIDE_INPUT_IDS as i32 => Input::Ids,
        i if i == VoxideInput::VOXIDE_INPUT_SSML as i32 => Input::Ssml,
        i => {
            return Err(Error::InvalidArgument(format!(
                "options->input is {i}; expected VOXIDE_INPUT_TEXT, _PHONEMES, _IDS or _SSML"
            ))
            .into())
        }
    };
    let phonemizer = match o.phonemizer {
        p if p == VoxidePhonemizer::VOXIDE_PHONEMIZER_BUILTIN as i32 => Phonemizer::BuiltIn,
        p if p == VoxidePhonemizer::VOXIDE_PHONEMIZER_ESPEAK as i32 => Phonemizer::Espeak,
        p => {
            return Err(Error::InvalidArgument(format!(
                "options->phonemizer is {p}; expected VOXIDE_PHONEMIZER_BUILTIN or _ESPEAK"
            ))
            .into())
        }
    };
    Ok(SpeakOptions {
        noise_scale: scale(o.noise_scale, "noise_scale")?,
        length_scale: scale(o.length_scale, "length_scale")?,
        noise_w: scale(o.noise_w, "noise_w")?,
        seed: o.seed,
        speaker: (o.speaker_id >= 0).then_some(o.speaker_id),
        input,
        phonemizer,
        speed: if o.speed == 0.0 { 1.0 } else { o.speed },
        ..SpeakOptions::default()
    })
}

/// The arguments of a streaming call, the permit taken first (so it is
/// consumed on every path).
///
/// # Safety
/// As `voxide_engine_speak_with`.
pub(super) unsafe fn stream_args<'a>(
    engine: *mut VoxideEngine,
    text: *const c_char,
    voice: *const c_char,
    options: *const VoxideSpeakOptions,
    permit: *mut VoxidePermit,
) -> Result<(Permit, Engine, &'a str, Option<&'a str>, SpeakOptions)> {
    let permit = handles::take_permit(permit)?;
    let engine = handles::engine(engine)?.engine.clone();
    let text = handles::str_arg(text, "text")?;
    let voice = handles::opt_str_arg(voice, "voice")?;
    Ok((permit, engine, text, voice, speak_options_arg(options)?))
}

/// Run a C callback: true continues, false cancels; a panic (an unwinding
/// foreign exception) cancels and is remembered in `panic_msg`.
pub(super) fn call_back(
    panic_msg: &mut Option<String>,
    what: &str,
    f: impl FnOnce() -> bool,
) -> ControlFlow<()> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(true) => ControlFlow::Continue(()),
        Ok(false) => ControlFlow::Break(()),
        Err(_) => {
            *panic_msg = Some(format!("the {what} callback panicked"));
            ControlFlow::Break(())
        }
    }
}

/// A streaming call's status: a callback's panic first, else the request's.
pub(super) fn finish_stream(r: crate::error::Result<()>, panic_msg: Option<String>) -> Result<()> {
    match (r, panic_msg) {
        (_, Some(m)) => Err(Error::Panic(m).into()),
        (r, None) => Ok(r?),
    }
}

/// Options from a caller's pointer; NULL gives the defaults.
pub(super) unsafe fn speak_options_arg(options: *const VoxideSpeakOptions) -> Result<SpeakOptions> {
    if options.is_null() {
        Ok(SpeakOptions::default())
    } else {
        speak_options(&handles::sized_options(options, "options")?)
    }
}

/// Speak plain `text` with the default options and return the whole audio.
///
/// `text`: UTF-8, NUL-terminated; empty or whitespace-only text gives an
/// audio of 0 samples. `voice`: a voice name, or NULL for the engine's
/// default voice. Both are only read during the call.
/// `permit` is ALWAYS consumed, on success and on every error path: do not
/// use or free it afterwards. On `VOXIDE_OK`, `*out_audio` receives an audio
/// owned by the caller (free with `voxide_audio_free`).
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT` (engine, text, permit or out_audio),
/// `VOXIDE_ERR_INVALID_UTF8`, `VOXIDE_ERR_UNKNOWN_VOICE`,
/// `VOXIDE_ERR_INVALID_ARGUMENT` (a permit of another engine, text the
/// frontend rejects), `VOXIDE_ERR_OUT_OF_MEMORY`.
///
/// # Safety
/// Pointers are NULL or valid as described; `permit` is not used again.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_speak(
    engine: *mut VoxideEngine,
    text: *const c_char,
    voice: *const c_char,
    permit: *mut VoxidePermit,
    out_audio: *mut *mut VoxideAudio,
) -> VoxideStatus {
    voxide_engine_speak_with(engine, text, voice, std::ptr::null(), permit, out_audio)
}

/// Speak `text` with `options` (NULL: the defaults, as `voxide_engine_speak`)
/// and return the whole audio. `options` is only read during the call.
///
/// Ownership and errors as `voxide_engine_speak` (the permit is always
/// consumed), plus `VOXIDE_ERR_INVALID_ARGUMENT` for a bad `struct_size`,
/// a NaN or infinite scale, an unknown `input`, an unknown speaker or a bad id.
///
/// # Safety
/// As `voxide_engine_speak`; `options` is NULL or points to
/// `options->struct_size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_speak_with(
    engine: *mut VoxideEngine,
    text: *const c_char,
    voice: *const c_char,
    options: *const VoxideSpeakOptions,
    permit: *mut VoxidePermit,
    out_audio: *mut *mut VoxideAudio,
) -> VoxideStatus {
    boundary(|| {
        // Take the permit first so it is consumed on every path.
        let permit = handles::take_permit(permit)?;
        let engine = handles::engine(engine)?.engine.clone();
        let text = handles::str_arg(text, "text")?;
        let voice = handles::opt_str_arg(voice, "voice")?;
        let options = speak_options_arg(options)?;
        let out = handles::out(out_audio, "out_audio")?;
        let audio = engine.speak_with(text, voice, &options, permit)?;
        out.write(handles::into_raw(VoxideAudio::new(audio)));
        Ok(())
    })
}

/// Speak `text` and deliver the audio in chunks, as soon as each is ready,
/// to `callback(samples, len, user_data)` on the calling thread; returns
/// when the request is done. The chunks concatenated equal the samples
/// `voxide_engine_speak_with` returns for the same arguments.
///
/// `options` may be NULL (defaults). `user_data` is passed through untouched
/// and may be NULL. The permit is ALWAYS consumed.
/// Errors: as `voxide_engine_speak_with`, plus `VOXIDE_ERR_NULL_ARGUMENT` for a
/// NULL callback and `VOXIDE_ERR_CANCELLED` when the callback returned false.
/// The engine handle may be freed (by another thread or by the callback)
/// while the stream runs: the stream keeps what it needs alive.
///
/// # Safety
/// As `voxide_engine_speak_with`; `callback` is NULL or a valid function.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_speak_stream(
    engine: *mut VoxideEngine,
    text: *const c_char,
    voice: *const c_char,
    options: *const VoxideSpeakOptions,
    permit: *mut VoxidePermit,
    callback: VoxideChunkCallback,
    user_data: *mut c_void,
) -> VoxideStatus {
    boundary(|| {
        let (permit, engine, text, voice, options) =
            stream_args(engine, text, voice, options, permit)?;
        let callback = callback.ok_or_else(|| FfiError::Null("callback is NULL".into()))?;
        let mut panic_msg = None;
        let r = engine.speak_stream(text, voice, &options, permit, |chunk| {
            let s = as_f32(chunk);
            if s.is_empty() {
                return ControlFlow::Continue(());
            }
            // SAFETY: `s` is valid for `s.len()` reads during the call; the
            // callback is a valid function (documented contract).
            call_back(&mut panic_msg, "stream", || unsafe {
                callback(s.as_ptr(), s.len(), user_data)
            })
        });
        finish_stream(r, panic_msg)
    })
}

/// The sample rate in Hz of `voice` (NULL: the default voice), e.g. 22050, so
/// that a stream's consumer can set up its output before the first chunk.
/// On `VOXIDE_OK` writes `*out_rate`.
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT`, `VOXIDE_ERR_INVALID_UTF8`,
/// `VOXIDE_ERR_UNKNOWN_VOICE`.
///
/// # Safety
/// `engine` is NULL or live; `voice` NULL or NUL-terminated; `out_rate` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_sample_rate(
    engine: *const VoxideEngine,
    voice: *const c_char,
    out_rate: *mut u32,
) -> VoxideStatus {
    boundary(|| {
        let engine = &handles::engine(engine)?.engine;
        let voice = handles::opt_str_arg(voice, "voice")?;
        let out = handles::out(out_rate, "out_rate")?;
        out.write(engine.sample_rate(voice)?.hz());
        Ok(())
    })
}

/// The device the engine runs on: "cpu" or "cuda:N (name)".
///
/// The string is owned by the engine and valid until `voxide_engine_free`;
/// do not free it. NULL if `engine` is NULL.
///
/// # Safety
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_device_name(engine: *const VoxideEngine) -> *const c_char {
    boundary_value(std::ptr::null(), || {
        Ok(handles::engine(engine)?.device_name.as_ptr())
    })
}

/// Free an engine handle. NULL is a no-op.
///
/// Safe while permits, audio and streams of this engine are still alive:
/// they keep the engine's shared state (voices, threads) alive, and it is
/// released when the last of them is gone. Other threads must not start new
/// calls with this handle once it is freed.
///
/// # Safety
/// `engine` is NULL or a live engine, not used again.
#[no_mangle]
pub unsafe extern "C" fn voxide_engine_free(engine: *mut VoxideEngine) {
    boundary_value((), || {
        handles::free(engine);
        Ok(())
    })
}

/// Give back a permit without using it. NULL is a no-op. Do not free a
/// permit that was passed to a speak call (that call consumed it).
///
/// # Safety
/// `permit` is NULL or a live permit, not used again.
#[no_mangle]
pub unsafe extern "C" fn voxide_permit_free(permit: *mut VoxidePermit) {
    boundary_value((), || {
        handles::free(permit);
        Ok(())
    })
}
