//! Every [`voxide::Error`] becomes an instance of one of the exception
//! classes of `voxide/_errors.py` (all subclasses of `voxide.Error`), with
//! the engine's message.

use pyo3::prelude::*;
use pyo3::types::PyType;
use voxide::text::TextError;
use voxide::{Error, ErrorKind};

/// The class (in `voxide._errors`) for an error.
fn class_name(e: &Error) -> &'static str {
    if let Error::Text(TextError::Ssml(_)) = e {
        return "SsmlError";
    }
    match e.kind() {
        ErrorKind::InvalidArgument => "InvalidArgument",
        ErrorKind::Io => "VoiceIoError",
        ErrorKind::Model => "ModelError",
        ErrorKind::UnknownVoice => "UnknownVoice",
        ErrorKind::Timeout => "PermitTimeout",
        ErrorKind::Busy => "Busy",
        ErrorKind::Cancelled => "Cancelled",
        ErrorKind::Device => "DeviceError",
        ErrorKind::Unavailable => "Unavailable",
        ErrorKind::OutOfMemory => "OutOfMemory",
        ErrorKind::Panic => "InternalError",
        // A kind added to the engine later: still a `voxide.Error`.
        _ => "Error",
    }
}

/// A Python exception of class `name` of `voxide._errors` with `msg`.
pub(crate) fn raise(name: &str, msg: String) -> PyErr {
    Python::attach(|py| {
        let class = py
            .import("voxide._errors")
            .and_then(|m| m.getattr(name))
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
        match class {
            Ok(class) => PyErr::from_type(class, msg),
            // The package is broken (its Python half missing): say so.
            Err(e) => e,
        }
    })
}

/// The Python exception for an engine error.
pub(crate) fn to_py(e: Error) -> PyErr {
    raise(class_name(&e), e.to_string())
}

/// `InvalidArgument(msg)`.
pub(crate) fn invalid(msg: impl Into<String>) -> PyErr {
    raise("InvalidArgument", msg.into())
}

/// Map an engine result to a Python one.
pub(crate) trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for voxide::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
