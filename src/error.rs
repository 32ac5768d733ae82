//! Error types: one `thiserror` enum per layer, wrapped upward into [`Error`],
//! whose variants correspond one to one to the C ABI's `VoxideStatus` codes.

use std::path::PathBuf;

/// Errors while loading a voice (`.onnx` + `.onnx.json`).
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

/// The crate's error type. Each variant maps to one `VoxideStatus` of the C ABI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required pointer was NULL (C ABI only).
    #[error("null argument: {0}")]
    NullArgument(String),
    /// A string argument was not valid UTF-8.
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(String),
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
    #[error("{0}")]
    Model(VoiceError),
    /// No voice with this name is loaded.
    #[error("unknown voice {0:?}")]
    UnknownVoice(String),
    /// Waiting for a permit timed out.
    #[error("timed out waiting for a permit")]
    Timeout,
    /// The caller cancelled a stream.
    #[error("cancelled by the caller")]
    Cancelled,
    /// The requested compute device is not usable.
    #[error("device: {0}")]
    Device(String),
    /// Memory could not be allocated.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// An internal panic was caught.
    #[error("internal panic: {0}")]
    Panic(String),
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

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::OutOfMemory { .. } => Error::OutOfMemory(e.to_string()),
            BackendError::Device(msg) => Error::Device(msg),
            BackendError::Shape(msg) => Error::Device(format!("shape error: {msg}")),
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
