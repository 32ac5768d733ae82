//! `libtriton_voxide.so`: a Triton Inference Server backend running voxide.
//!
//! Triton loads it for models with `backend: "voxide"` (see docs/triton.md).
//! One engine per model, shared by the model's instances; each request is
//! spoken whole (one response) or, for decoupled models, streamed one
//! response per audio chunk and a final flag. Every entry point catches
//! panics so nothing unwinds into the server.

mod error;
mod execute;
mod instance;
mod io;
mod model;
mod sys;

use std::ffi::c_void;

use error::{check, guard, log, Error};
use instance::InstanceState;
use model::ModelState;

/// Check the server's backend API version; the major must match ours.
///
/// # Safety
/// Called by Triton with a live backend.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_Initialize(
    _backend: *mut sys::TRITONBACKEND_Backend,
) -> sys::Err {
    guard("initializing the voxide backend", || {
        let (mut major, mut minor) = (0u32, 0u32);
        // SAFETY: valid out-pointers.
        check(
            unsafe { sys::TRITONBACKEND_ApiVersion(&mut major, &mut minor) },
            "backend API version",
        )?;
        if major != sys::API_VERSION_MAJOR || minor < sys::API_VERSION_MINOR {
            return Err(Error {
                code: sys::ERROR_UNSUPPORTED,
                message: format!(
                    "Triton's backend API is {major}.{minor}; this backend needs {}.{} or a later 1.x",
                    sys::API_VERSION_MAJOR,
                    sys::API_VERSION_MINOR
                ),
            });
        }
        log(
            sys::LOG_INFO,
            &format!(
                "voxide backend {} on backend API {major}.{minor}",
                env!("CARGO_PKG_VERSION")
            ),
        );
        Ok(())
    })
}

/// Read the model configuration; the engine is built by the first instance.
///
/// # Safety
/// Called by Triton with a live model.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInitialize(
    model: *mut sys::TRITONBACKEND_Model,
) -> sys::Err {
    guard("initializing a model", || {
        let state = Box::new(ModelState::new(model)?);
        let ptr = Box::into_raw(state);
        // SAFETY: `model` is live; on success Triton holds the pointer until
        // ModelFinalize, which frees it.
        let r = check(
            unsafe { sys::TRITONBACKEND_ModelSetState(model, ptr.cast::<c_void>()) },
            "model state",
        );
        if r.is_err() {
            // SAFETY: not handed over: still ours, freed once.
            drop(unsafe { Box::from_raw(ptr) });
        }
        r
    })
}

/// Free the model state (and its engine once no instance holds it).
///
/// # Safety
/// Called by Triton with a live model, after its instances are finalized.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelFinalize(
    model: *mut sys::TRITONBACKEND_Model,
) -> sys::Err {
    guard("finalizing a model", || {
        let mut ptr = std::ptr::null_mut();
        // SAFETY: `model` is live.
        check(
            unsafe { sys::TRITONBACKEND_ModelState(model, &mut ptr) },
            "model state",
        )?;
        if !ptr.is_null() {
            // SAFETY: the pointer ModelInitialize boxed; Triton finalizes once.
            drop(unsafe { Box::from_raw(ptr.cast::<ModelState>()) });
        }
        Ok(())
    })
}

/// Attach the model's engine (built here by the first instance).
///
/// # Safety
/// Called by Triton with a live instance.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInstanceInitialize(
    instance: *mut sys::TRITONBACKEND_ModelInstance,
) -> sys::Err {
    guard("initializing a model instance", || {
        let mut model = std::ptr::null_mut();
        // SAFETY: `instance` is live.
        check(
            unsafe { sys::TRITONBACKEND_ModelInstanceModel(instance, &mut model) },
            "instance model",
        )?;
        let mut model_state = std::ptr::null_mut();
        // SAFETY: the instance's model is live.
        check(
            unsafe { sys::TRITONBACKEND_ModelState(model, &mut model_state) },
            "model state",
        )?;
        if model_state.is_null() {
            return Err(Error::internal("the model has no state"));
        }
        // SAFETY: set by ModelInitialize, alive until ModelFinalize, which
        // Triton calls after every instance is finalized.
        let model_state = unsafe { &*model_state.cast::<ModelState>() };
        let state = Box::into_raw(Box::new(InstanceState::new(instance, model_state)?));
        // SAFETY: as for the model state.
        let r = check(
            unsafe { sys::TRITONBACKEND_ModelInstanceSetState(instance, state.cast::<c_void>()) },
            "instance state",
        );
        if r.is_err() {
            // SAFETY: not handed over: still ours, freed once.
            drop(unsafe { Box::from_raw(state) });
        }
        r
    })
}

/// Free the instance state.
///
/// # Safety
/// Called by Triton with a live instance, after its last execution.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInstanceFinalize(
    instance: *mut sys::TRITONBACKEND_ModelInstance,
) -> sys::Err {
    guard("finalizing a model instance", || {
        let mut ptr = std::ptr::null_mut();
        // SAFETY: `instance` is live.
        check(
            unsafe { sys::TRITONBACKEND_ModelInstanceState(instance, &mut ptr) },
            "instance state",
        )?;
        if !ptr.is_null() {
            // SAFETY: the pointer InstanceInitialize boxed; finalized once.
            drop(unsafe { Box::from_raw(ptr.cast::<InstanceState>()) });
        }
        Ok(())
    })
}

/// Run the requests one after another. Each is answered and released here,
/// so this returns success even when requests fail (their errors went out
/// as responses), as the API requires once requests are released.
///
/// # Safety
/// Called by Triton with a live instance and `request_count` live requests.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInstanceExecute(
    instance: *mut sys::TRITONBACKEND_ModelInstance,
    requests: *mut *mut sys::TRITONBACKEND_Request,
    request_count: u32,
) -> sys::Err {
    let mut state = std::ptr::null_mut();
    // SAFETY: `instance` is live.
    let got = check(
        unsafe { sys::TRITONBACKEND_ModelInstanceState(instance, &mut state) },
        "instance state",
    );
    let requests: &[*mut sys::TRITONBACKEND_Request] = if requests.is_null() || request_count == 0 {
        &[]
    } else {
        // SAFETY: Triton passes `request_count` request pointers.
        unsafe { std::slice::from_raw_parts(requests, request_count as usize) }
    };
    if let Err(e) = got.and_then(|()| {
        if state.is_null() {
            Err(Error::internal("the instance has no state"))
        } else {
            Ok(())
        }
    }) {
        // The requests are not released: Triton answers them with this error.
        return e.to_triton();
    }
    // SAFETY: set by InstanceInitialize, alive until InstanceFinalize, which
    // never runs during an execution.
    let state = unsafe { &*state.cast::<InstanceState>() };
    let start = execute::now_ns();
    let mut compute_ns = 0u64;
    for &request in requests {
        let t = execute::now_ns();
        // Never panics: it catches the request's panics itself.
        execute::execute_one(state, request);
        compute_ns += execute::now_ns().saturating_sub(t);
    }
    let end = execute::now_ns();
    if !requests.is_empty() {
        // SAFETY: `instance` is live; the timestamps are ordered.
        let err = unsafe {
            sys::TRITONBACKEND_ModelInstanceReportBatchStatistics(
                instance,
                requests.len() as u64,
                start,
                start,
                start + compute_ns.min(end - start),
                end,
            )
        };
        if let Err(e) = check(err, "reporting batch statistics") {
            log(sys::LOG_ERROR, &e.message);
        }
    }
    std::ptr::null_mut()
}
