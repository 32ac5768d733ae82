//! Voices: `.onnx` + `.onnx.json` -> [`VoiceConfig`] + typed [`Weights`].

mod config;
mod ids;
internal_mod! {
    /// The ONNX messages voxide reads.
    onnx;
    /// Typed weights from the ONNX initializers.
    weights;
    /// A voice loaded into host memory.
    load;
}

pub use config::{Scales, VoiceConfig};
pub use ids::{phoneme_sentences, MappedIds, PhonemeIdMap};
#[cfg(feature = "internals")]
pub use load::Voice;
#[cfg(not(feature = "internals"))]
pub(crate) use load::Voice;
