//! One request: parse and check the inputs, speak, respond. Every request
//! gets exactly one final response (or final flag) and is released exactly
//! once, on every path.

use std::ops::ControlFlow;

use voxide::{Engine, Input as InputKind, SpeakOptions, SpeechEvent};

use crate::error::{check, log, panic_message, Error, Result};
use crate::instance::InstanceState;
use crate::io::{audio_response, cancelled, read_input, request_id, Response};
use crate::sys;

/// Nanoseconds of the monotonic clock (Triton's statistics use the same
/// steady clock).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// A checked request.
struct Request {
    text: String,
    options: SpeakOptions,
}

fn parse(engine: &Engine, request: *mut sys::TRITONBACKEND_Request) -> Result<Request> {
    let text = read_input(request, "TEXT")?
        .ok_or_else(|| Error::invalid("the request has no TEXT input"))?
        .string("TEXT")?;
    if text.trim().is_empty() {
        return Err(Error::invalid("TEXT is empty"));
    }
    let mut options = SpeakOptions::default();
    if let Some(kind) = read_input(request, "INPUT_TYPE")? {
        let kind = kind.string("INPUT_TYPE")?;
        options.input = match kind.trim().to_ascii_lowercase().as_str() {
            "text" | "" => InputKind::Text,
            "ssml" => InputKind::Ssml,
            "phonemes" => InputKind::Phonemes,
            other => {
                return Err(Error::invalid(format!(
                    "INPUT_TYPE {other:?} is not one of text, ssml, phonemes"
                )))
            }
        };
    }
    if let Some(speaker) = read_input(request, "SPEAKER")? {
        let id = speaker.i32("SPEAKER")?;
        // The engine checks the id against the voice's speakers.
        let id = engine
            .speaker_id(None, &id.to_string())
            .map_err(|e| Error::engine("SPEAKER", &e))?;
        options.speaker = Some(id);
    }
    if let Some(scale) = read_input(request, "LENGTH_SCALE")? {
        let scale = scale.f32("LENGTH_SCALE")?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::invalid(format!(
                "LENGTH_SCALE must be a positive number, got {scale}"
            )));
        }
        options.length_scale = Some(scale);
    }
    if let Some(seed) = read_input(request, "SEED")? {
        let seed = seed.i64("SEED")?;
        options.seed = u64::try_from(seed)
            .map_err(|_| Error::invalid(format!("SEED must not be negative, got {seed}")))?;
    }
    Ok(Request { text, options })
}

/// What happened to a request, for the statistics and the final response.
struct Outcome {
    /// The final response (or flag) went out.
    final_sent: bool,
    compute_start: u64,
    compute_end: u64,
}

fn run(
    state: &InstanceState,
    request: *mut sys::TRITONBACKEND_Request,
    factory: *mut sys::TRITONBACKEND_ResponseFactory,
    out: &mut Outcome,
) -> Result<()> {
    let engine = &state.engine;
    let req = parse(engine, request)?;
    let rate = engine
        .sample_rate(None)
        .map_err(|e| Error::engine("sample rate", &e))?
        .hz();
    let permit = engine
        .acquire_permit()
        .map_err(|e| Error::engine("waiting for a permit", &e))?;
    out.compute_start = now_ns();
    if state.decoupled {
        let mut failure = None;
        let r = engine.speak_events(&req.text, None, &req.options, permit, |ev| {
            let SpeechEvent::Audio(chunk) = ev else {
                return ControlFlow::Continue(());
            };
            if chunk.is_empty() {
                return ControlFlow::Continue(());
            }
            if cancelled(factory) {
                return ControlFlow::Break(());
            }
            match audio_response(factory, voxide::audio::as_f32(chunk), rate)
                .and_then(|r| r.send(0, None))
            {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        });
        out.compute_end = now_ns();
        if let Some(e) = failure {
            return Err(e);
        }
        r.map_err(|e| Error::engine("speaking", &e))?;
        // SAFETY: `factory` is live; the final flag ends the stream.
        check(
            unsafe {
                sys::TRITONBACKEND_ResponseFactorySendFlags(factory, sys::RESPONSE_COMPLETE_FINAL)
            },
            "sending the final flag",
        )?;
        out.final_sent = true;
    } else {
        let audio = engine
            .speak_with(&req.text, None, &req.options, permit)
            .map_err(|e| Error::engine("speaking", &e))?;
        out.compute_end = now_ns();
        let response = audio_response(factory, audio.samples_f32(), rate)?;
        // Once sent (even if Triton then reports an error) the final
        // response is gone: no second one.
        out.final_sent = true;
        response.send(sys::RESPONSE_COMPLETE_FINAL, None)?;
    }
    Ok(())
}

/// Handle one request to the end: respond, report statistics, release.
pub fn execute_one(state: &InstanceState, request: *mut sys::TRITONBACKEND_Request) -> bool {
    let exec_start = now_ns();
    let mut factory = std::ptr::null_mut();
    // SAFETY: `request` is live until released below.
    let made = check(
        unsafe { sys::TRITONBACKEND_ResponseFactoryNew(&mut factory, request) },
        "response factory",
    );
    let mut out = Outcome {
        final_sent: false,
        compute_start: exec_start,
        compute_end: exec_start,
    };
    let result = match made {
        Err(e) => Err(e),
        Ok(()) if factory.is_null() => Err(Error::internal("Triton gave no response factory")),
        Ok(()) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(state, request, factory, &mut out)
        })) {
            Ok(r) => r,
            Err(payload) => {
                let msg = panic_message(payload.as_ref());
                let _ =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)));
                Err(Error::internal(format!("the request panicked: {msg}")))
            }
        },
    };
    if out.compute_end < out.compute_start {
        out.compute_end = out.compute_start;
    }
    let success = result.is_ok();
    if let Err(e) = &result {
        let id = request_id(request);
        log(
            sys::LOG_WARN,
            &format!("model {:?} request {id:?}: {e}", state.model_name),
        );
        if !out.final_sent {
            send_error(request, factory, e);
        }
    }
    let exec_end = now_ns();
    // SAFETY: instance and request are live; the timestamps are ordered.
    let err = unsafe {
        sys::TRITONBACKEND_ModelInstanceReportStatistics(
            state.instance,
            request,
            success,
            exec_start,
            out.compute_start,
            out.compute_end,
            exec_end,
        )
    };
    if let Err(e) = check(err, "reporting statistics") {
        log(sys::LOG_ERROR, &e.message);
    }
    if !factory.is_null() {
        // SAFETY: the factory is ours, deleted once; its final response or
        // flag has been sent.
        let _ = check(
            unsafe { sys::TRITONBACKEND_ResponseFactoryDelete(factory) },
            "deleting the factory",
        );
    }
    // SAFETY: released exactly once, after its last use.
    let err = unsafe { sys::TRITONBACKEND_RequestRelease(request, sys::REQUEST_RELEASE_ALL) };
    if let Err(e) = check(err, "releasing a request") {
        log(sys::LOG_ERROR, &e.message);
    }
    success
}

/// The final error response, from the factory when there is one.
fn send_error(
    request: *mut sys::TRITONBACKEND_Request,
    factory: *mut sys::TRITONBACKEND_ResponseFactory,
    e: &Error,
) {
    let response = if factory.is_null() {
        let mut r = std::ptr::null_mut();
        // SAFETY: `request` is live and not yet released.
        match check(
            unsafe { sys::TRITONBACKEND_ResponseNew(&mut r, request) },
            "new response",
        ) {
            Ok(()) if !r.is_null() => Ok(Response::from_raw(r)),
            Ok(()) => Err(Error::internal("Triton gave no response object")),
            Err(e) => Err(e),
        }
    } else {
        Response::new(factory)
    };
    if let Err(err) = response.and_then(|r| r.send(sys::RESPONSE_COMPLETE_FINAL, Some(e))) {
        log(
            sys::LOG_ERROR,
            &format!("could not send the error response ({e}): {err}"),
        );
    }
}
