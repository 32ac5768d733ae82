//! # voxide
//!
//! A native neural text-to-speech engine for Piper/VITS voices, with its own
//! CPU and CUDA kernels and a stable C ABI. See the README for the CLI and
//! examples, and `docs/architecture.md` for the layers inside.
//!
//! The public API: [`Engine`] (built by [`EngineBuilder`]; requests take a
//! [`Permit`]), [`SpeakOptions`], [`Audio`], [`Error`] / [`ErrorKind`], the
//! engine [`Settings`] (the environment variables the library reads), the
//! text frontend ([`text::phonemize`]) and voice configs ([`voice`]).
//!
//! The rooms below the engine (`backend`, `model`, `scheduler`, the C ABI's
//! Rust side, the voice loader) are crate-private. The `internals` feature makes
//! them visible, undocumented and without stability promise, for this
//! crate's own tests, benches and fuzz targets (its dev-dependency on itself
//! turns the feature on for them).

#[macro_use]
mod macros;
#[cfg(test)]
pub(crate) use macros::test_skip;

pub mod audio;
pub mod captions;
mod engine;
pub mod error;
#[cfg(feature = "server")]
pub mod server;
pub mod text;
pub mod voice;

internal_mod! {
    /// Compute backends (CPU, CUDA): how an op runs.
    backend;
    /// The VITS model as a sequence of backend ops.
    model;
    /// The scheduler: an actor per device, batching, streams.
    scheduler;
}

// The C ABI: its `extern "C"` functions are the library's C interface
// (declared once, so cbindgen reads it once); its Rust side is internal.
#[allow(dead_code, unused_imports)]
mod ffi;

/// The C ABI's Rust side (status mapping, panic boundary), for tests and fuzzing.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod c_api {
    pub use crate::ffi::*;
}

pub use audio::{Audio, AudioSample, Mark, SampleRate, SpeechEvent, WordTiming};
pub use backend::cpu::Isa;
pub use backend::Precision;
pub use engine::{Device, Engine, EngineBuilder, Input, Permit, Settings, SpeakOptions};
pub use error::{Error, ErrorKind, Result};
pub use text::Phonemizer;
