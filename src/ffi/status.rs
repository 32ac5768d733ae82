//! `VoxideStatus`, the thread-local last error, and the panic boundary.

use crate::error::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Result of a voxide call. `VOXIDE_OK` is 0; every other value is an error
/// whose message `voxide_last_error()` returns on the same thread.
/// The values are fixed: new statuses are only ever appended.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoxideStatus {
    /// Success. Out parameters have been written.
    VOXIDE_OK = 0,
    /// A pointer that must not be NULL was NULL.
    VOXIDE_ERR_NULL_ARGUMENT = 1,
    /// A string argument was not valid UTF-8.
    VOXIDE_ERR_INVALID_UTF8 = 2,
    /// An argument was out of range or malformed (a bad option, a bad
    /// `struct_size`, a permit of another engine, text the frontend rejects).
    VOXIDE_ERR_INVALID_ARGUMENT = 3,
    /// Reading or writing a file failed (a missing voice file, an unwritable WAV path).
    VOXIDE_ERR_IO = 4,
    /// The voice model or its JSON config is invalid or corrupt.
    VOXIDE_ERR_MODEL = 5,
    /// No voice with this name is loaded in the engine.
    VOXIDE_ERR_UNKNOWN_VOICE = 6,
    /// No permit became free within the timeout.
    VOXIDE_ERR_TIMEOUT = 7,
    /// The stream callback returned false.
    VOXIDE_ERR_CANCELLED = 8,
    /// The requested compute device is not usable (for example CUDA without a GPU).
    VOXIDE_ERR_DEVICE = 9,
    /// Memory could not be allocated.
    VOXIDE_ERR_OUT_OF_MEMORY = 10,
    /// An internal error (a caught Rust panic); the engine stays usable.
    VOXIDE_ERR_PANIC = 11,
    /// The engine's request queue is full (scheduler on): try again later.
    VOXIDE_ERR_BUSY = 12,
    /// An optional component the request needs is not installed (for example
    /// libespeak-ng for `VOXIDE_PHONEMIZER_ESPEAK`).
    VOXIDE_ERR_UNAVAILABLE = 13,
}

impl VoxideStatus {
    /// Every status, in value order.
    pub const ALL: [VoxideStatus; 14] = [
        VoxideStatus::VOXIDE_OK,
        VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT,
        VoxideStatus::VOXIDE_ERR_INVALID_UTF8,
        VoxideStatus::VOXIDE_ERR_INVALID_ARGUMENT,
        VoxideStatus::VOXIDE_ERR_IO,
        VoxideStatus::VOXIDE_ERR_MODEL,
        VoxideStatus::VOXIDE_ERR_UNKNOWN_VOICE,
        VoxideStatus::VOXIDE_ERR_TIMEOUT,
        VoxideStatus::VOXIDE_ERR_CANCELLED,
        VoxideStatus::VOXIDE_ERR_DEVICE,
        VoxideStatus::VOXIDE_ERR_OUT_OF_MEMORY,
        VoxideStatus::VOXIDE_ERR_PANIC,
        VoxideStatus::VOXIDE_ERR_BUSY,
        VoxideStatus::VOXIDE_ERR_UNAVAILABLE,
    ];

    /// The status's name as a NUL-terminated static string.
    fn name_cstr(self) -> &'static CStr {
        match self {
            VoxideStatus::VOXIDE_OK => c"VOXIDE_OK",
            VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT => c"VOXIDE_ERR_NULL_ARGUMENT",
            VoxideStatus::VOXIDE_ERR_INVALID_UTF8 => c"VOXIDE_ERR_INVALID_UTF8",
            VoxideStatus::VOXIDE_ERR_INVALID_ARGUMENT => c"VOXIDE_ERR_INVALID_ARGUMENT",
            VoxideStatus::VOXIDE_ERR_IO => c"VOXIDE_ERR_IO",
            VoxideStatus::VOXIDE_ERR_MODEL => c"VOXIDE_ERR_MODEL",
            VoxideStatus::VOXIDE_ERR_UNKNOWN_VOICE => c"VOXIDE_ERR_UNKNOWN_VOICE",
            VoxideStatus::VOXIDE_ERR_TIMEOUT => c"VOXIDE_ERR_TIMEOUT",
            VoxideStatus::VOXIDE_ERR_CANCELLED => c"VOXIDE_ERR_CANCELLED",
            VoxideStatus::VOXIDE_ERR_DEVICE => c"VOXIDE_ERR_DEVICE",
            VoxideStatus::VOXIDE_ERR_OUT_OF_MEMORY => c"VOXIDE_ERR_OUT_OF_MEMORY",
            VoxideStatus::VOXIDE_ERR_PANIC => c"VOXIDE_ERR_PANIC",
            VoxideStatus::VOXIDE_ERR_BUSY => c"VOXIDE_ERR_BUSY",
            VoxideStatus::VOXIDE_ERR_UNAVAILABLE => c"VOXIDE_ERR_UNAVAILABLE",
        }
    }

    /// The status's name, e.g. `"VOXIDE_ERR_TIMEOUT"`.
    pub fn name(self) -> &'static str {
        self.name_cstr().to_str().unwrap_or("VOXIDE_UNKNOWN_STATUS")
    }
}

/// An error of a C entry point: the C-only faults (a NULL pointer, bytes that
/// are not UTF-8) or an error of the library.
#[derive(Debug, thiserror::Error)]
pub enum FfiError {
    /// A pointer that must not be NULL was NULL.
    #[error("null argument: {0}")]
    Null(String),
    /// A string argument was not valid UTF-8.
    #[error("invalid UTF-8 in {0}")]
    Utf8(String),
    /// An error of the library.
    #[error(transparent)]
    Voxide(#[from] Error),
}

/// The result of a C entry point's body.
pub type FfiResult<T> = std::result::Result<T, FfiError>;

impl From<ErrorKind> for VoxideStatus {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::InvalidArgument => VoxideStatus::VOXIDE_ERR_INVALID_ARGUMENT,
            ErrorKind::Io => VoxideStatus::VOXIDE_ERR_IO,
            ErrorKind::Model => VoxideStatus::VOXIDE_ERR_MODEL,
            ErrorKind::UnknownVoice => VoxideStatus::VOXIDE_ERR_UNKNOWN_VOICE,
            ErrorKind::Timeout => VoxideStatus::VOXIDE_ERR_TIMEOUT,
            ErrorKind::Busy => VoxideStatus::VOXIDE_ERR_BUSY,
            ErrorKind::Cancelled => VoxideStatus::VOXIDE_ERR_CANCELLED,
            ErrorKind::Device => VoxideStatus::VOXIDE_ERR_DEVICE,
            ErrorKind::Unavailable => VoxideStatus::VOXIDE_ERR_UNAVAILABLE,
            ErrorKind::OutOfMemory => VoxideStatus::VOXIDE_ERR_OUT_OF_MEMORY,
            ErrorKind::Panic => VoxideStatus::VOXIDE_ERR_PANIC,
            // A kind added later than this table: the closest general status.
            #[allow(unreachable_patterns)]
            _ => VoxideStatus::VOXIDE_ERR_INVALID_ARGUMENT,
        }
    }
}

impl From<&Error> for VoxideStatus {
    fn from(e: &Error) -> Self {
        e.kind().into()
    }
}

impl From<&FfiError> for VoxideStatus {
    fn from(e: &FfiError) -> Self {
        match e {
            FfiError::Null(_) => VoxideStatus::VOXIDE_ERR_NULL_ARGUMENT,
            FfiError::Utf8(_) => VoxideStatus::VOXIDE_ERR_INVALID_UTF8,
            FfiError::Voxide(e) => e.into(),
        }
    }
}

/// The raw integer a caller may pass where a `VoxideStatus` is expected. Rust
/// never materialises a `VoxideStatus` from a caller's integer (an unknown
/// value would be undefined behaviour); the header names this type
/// `VoxideStatus` (see `cbindgen.toml`).
pub type VoxideStatusValue = i32;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Record `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // `try_with`: during thread teardown the slot may be gone; then drop the message.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut s) = slot.try_borrow_mut() {
            *s = c;
        }
    });
}

fn fail(e: &FfiError) -> VoxideStatus {
    set_last_error(&e.to_string());
    VoxideStatus::from(e)
}

fn panicked(payload: Box<dyn std::any::Any + Send>) -> FfiError {
    let e = FfiError::Voxide(Error::Panic(crate::error::panic_message(&*payload)));
    // A payload whose destructor panics must not unwind out of the boundary.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    e
}

/// The panic boundary for entry points that return a status: runs `f`,
/// maps its error (or a caught panic) to a status and records the message as
/// this thread's last error.
pub fn boundary(f: impl FnOnce() -> FfiResult<()>) -> VoxideStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => VoxideStatus::VOXIDE_OK,
        Ok(Err(e)) => fail(&e),
        Err(payload) => fail(&panicked(payload)),
    }
}

/// The panic boundary for getters: `fallback` on error or panic (the message
/// becomes this thread's last error).
pub fn boundary_value<T>(fallback: T, f: impl FnOnce() -> FfiResult<T>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            fail(&e);
            fallback
        }
        Err(payload) => {
            fail(&panicked(payload));
            fallback
        }
    }
}

/// The message of the last failed voxide call on the calling thread (UTF-8,
/// NUL-terminated), or "" if no call has failed on this thread yet.
///
/// Never NULL. Owned by voxide: do not free it. The pointer stays valid until
/// the next voxide call on the same thread (only a failing call replaces the
/// message, but do not rely on that); copy it if you need it longer. Each
/// thread has its own message, so a failure on another thread never changes it.
#[no_mangle]
pub extern "C" fn voxide_last_error() -> *const c_char {
    catch_unwind(|| {
        LAST_ERROR
            .try_with(|slot| match slot.try_borrow() {
                Ok(s) => s.as_ptr(),
                Err(_) => c"".as_ptr(),
            })
            .unwrap_or(c"".as_ptr())
    })
    .unwrap_or(c"".as_ptr())
}

/// The name of `status` ("VOXIDE_OK", "VOXIDE_ERR_TIMEOUT", ...), or
/// "VOXIDE_UNKNOWN_STATUS" for a value that is no status.
///
/// Never NULL. The string is static: valid for the life of the process; do not free it.
#[no_mangle]
pub extern "C" fn voxide_status_name(status: VoxideStatusValue) -> *const c_char {
    VoxideStatus::ALL
        .iter()
        .find(|s| **s as i32 == status)
        .map_or(c"VOXIDE_UNKNOWN_STATUS".as_ptr(), |s| {
            s.name_cstr().as_ptr()
        })
}

/// The version of the voxide library, e.g. "0.1.0" (semantic versioning; the
/// ABI is stable within a major version).
///
/// Never NULL. The string is static: valid for the life of the process; do not free it.
#[no_mangle]
pub extern "C" fn voxide_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(c) => c,
            Err(_) => c"0.0.0",
        };
    VERSION.as_ptr()
}
