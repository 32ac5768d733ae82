//! Error types: one `thiserror` enum per layer ([`VoiceError`],
//! [`BackendError`], [`crate::text::TextError`]), wrapped upward into
//! [`Error`] with their sources kept; [`ErrorKind`] classifies an error (the
//! C ABI maps kinds to `VoxideStatus` codes; C-only statuses live in `ffi/`).

use crate::text::TextError;
use std::path::PathBuf;

/// Errors while loading a voice (`.onnx` + `.onnx.json`).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The `.onnx.json` is not valid JSON or lacks a field.
    #[error("{}: invalid voice config: {msg}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the JSON position where known.
        msg: String,
    },
    /// The `.onnx` file is not a readable ONNX model (truncated, corrupt, external data).
    #[error("{}: not a usable ONNX model: {msg}", path.display())]
    Onnx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A weight tensor is missing, extra, or has the wrong shape or type.
    #[error("{}: {msg}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor and the fault.
        msg: String,
    },
}

/// Errors raised by a compute backend.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A buffer of this many bytes could not be allocated.
    #[error("cannot allocate {bytes} bytes for {what}")]
    OutOfMemory {
        /// Requested size.
        bytes: usize,
        /// What the buffer was for.
        what: &'static str,
    },
    /// The device is absent or failed.
    #[error("device error: {0}")]
    Device(String),
    /// An op was given views that do not fit its buffers or its weights
    /// (a bug in the caller's shapes; the op did nothing).
    #[error("shape error: {0}")]
    Shape(String),
}

/// The crate's error type: one variant per cause, each keeping the error it
/// wraps as its [`std::error::Error::source`]. [`Error::kind`] classifies it
/// (the C ABI's status is the kind's).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument is out of range or malformed (bad id, bad option, too long).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The voice model or its config is invalid.
    #[error(transparent)]
    Model(VoiceError),
    /// The text frontend refused the input or its phonemizer failed.
    #[error(transparent)]
    Text(#[from] TextError),
    /// The compute backend failed (allocation, device, shapes).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// No voice with this name is loaded.
    #[error("unknown voice {0:?}")]
    UnknownVoice(String),
    /// Waiting for a permit timed out.
    #[error("timed out waiting for a permit")]
    Timeout,
    /// The scheduler's queue is full: try again later.
    #[error("busy: {0}")]
    Busy(String),
    /// The caller cancelled a stream.
    #[error("cancelled by the caller")]
    Cancelled,
    /// The requested compute device is not usable, or failed.
    #[error("device: {0}")]
    Device(String),
    /// Memory could not be allocated.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// An internal panic was caught.
    #[error("internal panic: {0}")]
    Panic(String),
}

/// The class of an [`Error`]: what a caller can do about it. The C ABI
/// reports it as a `VoxideStatus`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A bad argument or input.
    InvalidArgument,
    /// A file could not be read or written.
    Io,
    /// A voice model or config is invalid.
    Model,
    /// No voice of that name is loaded.
    UnknownVoice,
    /// No permit in time.
    Timeout,
    /// The request queue is full; retry later.
    Busy,
    /// The caller cancelled.
    Cancelled,
    /// The compute device is not usable or failed.
    Device,
    /// An optional component is not installed (for example libespeak-ng).
    Unavailable,
    /// Memory could not be allocated.
    OutOfMemory,
    /// An internal error (a caught panic); the engine stays usable.
    Panic,
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Io { .. } => ErrorKind::Io,
            Error::Model(_) => ErrorKind::Model,
            Error::Text(TextError::Unavailable(_)) => ErrorKind::Unavailable,
            Error::Text(_) => ErrorKind::InvalidArgument,
            Error::Backend(BackendError::OutOfMemory { .. }) | Error::OutOfMemory(_) => {
                ErrorKind::OutOfMemory
            }
            Error::Backend(_) | Error::Device(_) => ErrorKind::Device,
            Error::UnknownVoice(_) => ErrorKind::UnknownVoice,
            Error::Timeout => ErrorKind::Timeout,
            Error::Busy(_) => ErrorKind::Busy,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Panic(_) => ErrorKind::Panic,
        }
    }

    /// The same failure again, for each request of a batch that failed as a
    /// whole (the sources of an error are not `Clone`: the copy keeps the
    /// kind and the message).
    pub(crate) fn replicate(&self) -> Error {
        let msg = self.to_string();
        match self.kind() {
            ErrorKind::OutOfMemory => Error::OutOfMemory(msg),
            ErrorKind::InvalidArgument => Error::InvalidArgument(msg),
            ErrorKind::Busy => Error::Busy(msg),
            ErrorKind::Timeout => Error::Timeout,
            ErrorKind::Cancelled => Error::Cancelled,
            ErrorKind::Panic => Error::Panic(msg),
            _ => Error::Device(format!("a batched render failed: {msg}")),
        }
    }
}

impl From<VoiceError> for Error {
    fn from(e: VoiceError) -> Self {
        match e {
            VoiceError::Io { path, source } => Error::Io {
                context: format!("cannot read {}", path.display()),
                source,
            },
            other => Error::Model(other),
        }
    }
}

/// The message of a caught panic: its `&str` or `String` payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Result alias for the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
