//! # voxide
//!
//! A native neural text-to-speech engine for Piper/VITS voices, with its own
//! CPU kernels and a stable C ABI. See the README for the CLI and examples.

pub mod audio;
pub mod backend;
pub mod error;
pub mod ffi;
pub mod model;
pub mod voice;

pub use audio::{Audio, AudioSample, SampleRate};
pub use error::{Error, Result};
pub mod engine;
pub mod scheduler;
pub mod text;

pub use backend::Precision;
pub use engine::{Device, Engine, EngineBuilder, Input, Permit, SpeakOptions};
