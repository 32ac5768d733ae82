//! `voxide._voxide`: the Rust half of the Python package `voxide`, a thin
//! layer of PyO3 classes over the engine's public API ([`voxide::Engine`]).
//! The pure-Python half (`voxide/__init__.py`) adds the asyncio wrappers and
//! the exception classes this module raises (`voxide/_errors.py`).
//!
//! - `engine.rs`: `Engine` (voices, device, options) and `Permit`;
//! - `audio.rs`: `Audio` (samples as a numpy view without a copy), `Word`, `Mark`;
//! - `stream.rs`: `Stream`, an iterator of numpy chunks fed by a Rust thread;
//! - `request.rs`: `Request`, one checked request (voice, options, permit);
//! - `errors.rs`: [`voxide::Error`] to the `voxide.Error` hierarchy.

mod audio;
mod engine;
mod errors;
mod request;
mod stream;

use pyo3::prelude::*;

#[pymodule]
fn _voxide(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::Engine>()?;
    m.add_class::<engine::Permit>()?;
    m.add_class::<audio::Audio>()?;
    m.add_class::<audio::Word>()?;
    m.add_class::<audio::Mark>()?;
    m.add_class::<stream::Stream>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
