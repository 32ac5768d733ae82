//! The backend's error type and its conversion to `TRITONSERVER_Error`,
//! plus logging through the server's log.

use std::ffi::{CStr, CString};

use crate::sys;

/// An error with the Triton code it is reported under.
#[derive(Debug)]
pub struct Error {
    pub code: sys::ErrorCode,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error {
            code: sys::ERROR_INVALID_ARG,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error {
            code: sys::ERROR_INTERNAL,
            message: message.into(),
        }
    }

    /// An engine error: bad input stays `INVALID_ARG`, a cancelled request
    /// `CANCELLED`, a busy or failing device `UNAVAILABLE`, the rest
    /// `INTERNAL`.
    pub fn engine(context: &str, e: &voxide::Error) -> Error {
        let code = match e.kind() {
            voxide::ErrorKind::InvalidArgument | voxide::ErrorKind::UnknownVoice => {
                sys::ERROR_INVALID_ARG
            }
            voxide::ErrorKind::Cancelled => sys::ERROR_CANCELLED,
            voxide::ErrorKind::Busy
            | voxide::ErrorKind::Timeout
            | voxide::ErrorKind::Device
            | voxide::ErrorKind::Unavailable
            | voxide::ErrorKind::OutOfMemory => sys::ERROR_UNAVAILABLE,
            _ => sys::ERROR_INTERNAL,
        };
        Error {
            code,
            message: format!("{context}: {e}"),
        }
    }

    /// A new `TRITONSERVER_Error` owned by the caller (who passes it to
    /// Triton as a return value, or deletes it after `ResponseSend`).
    pub fn to_triton(&self) -> sys::Err {
        let msg = c_string(&format!("voxide: {}", self.message));
        // SAFETY: `msg` is a valid NUL-terminated string for the call;
        // Triton copies it.
        unsafe { sys::TRITONSERVER_ErrorNew(self.code, msg.as_ptr()) }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A C string of `s`, interior NULs replaced (messages may quote input).
pub fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// Check the result of a Triton call: `Ok` on null, else the error's
/// message (with `what` in front) and the error object deleted.
pub fn check(err: sys::Err, what: &str) -> Result<()> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null error returned by Triton is ours to read and
    // delete, exactly once.
    let message = unsafe {
        let text = sys::TRITONSERVER_ErrorMessage(err);
        let text = if text.is_null() {
            String::from("(no message)")
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        };
        sys::TRITONSERVER_ErrorDelete(err);
        text
    };
    Err(Error::internal(format!("{what}: {message}")))
}

/// Log `msg` to the server's log at `level`; a failure to log is dropped.
pub fn log(level: sys::LogLevel, msg: &str) {
    let file = c"triton_voxide";
    let msg = c_string(msg);
    // SAFETY: both strings are valid for the call; Triton copies them.
    let err =
        unsafe { sys::TRITONSERVER_LogMessage(level, file.as_ptr(), line!() as i32, msg.as_ptr()) };
    let _ = check(err, "log");
}

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("(non-string panic payload)")
    }
}

/// Run an entry point's body, turning an error or a panic into a
/// `TRITONSERVER_Error` so nothing unwinds into Triton.
pub fn guard(what: &str, f: impl FnOnce() -> Result<()>) -> sys::Err {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => {
            log(sys::LOG_ERROR, &format!("{what}: {e}"));
            e.to_triton()
        }
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            // A payload whose destructor panics must not unwind either.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)));
            let e = Error::internal(format!("{what} panicked: {msg}"));
            log(sys::LOG_ERROR, &e.message);
            e.to_triton()
        }
    }
}
