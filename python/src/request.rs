//! [`Request`]: one request's voice, options and permit, checked by
//! `engine.rs` and run there (`speak`) or by `stream.rs` (`stream`).
use voxide::SpeakOptions;

/// One request as the engine takes it.
pub(crate) struct Request {
    pub voice: Option<String>,
    pub options: SpeakOptions,
    pub permit: voxide::Permit,
}
