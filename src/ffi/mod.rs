//! The C ABI (`include/voxide.h`, prefix `voxide_`).
//!
//! Layout of this module:
//! - [`status`]: `VoxideStatus`, the thread-local last-error message, and the
//!   one panic-boundary helper every `extern "C"` body runs inside.
//! - `handles`: the only place where raw pointers from C become Rust
//!   references (opaque handles, C strings, out-pointers, sized option structs).
//! - [`options`]: `VoxideEngineOptions`, `VoxideSpeakOptions` and their defaults.
//! - [`engine`] / [`audio`]: the entry points.
//!
//! The header is generated from this module by cbindgen (`cbindgen.toml`,
//! `scripts/check-header.sh`); the doc comments here are the header's docs,
//! so they are written for C callers.

pub mod audio;
pub mod engine;
mod handles;
pub mod options;
pub mod status;
pub mod timing;

pub use audio::*;
pub use engine::*;
pub use handles::{VoxideAudio, VoxideEngine, VoxidePermit};
pub use options::*;
pub use status::*;
pub use timing::*;
