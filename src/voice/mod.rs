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

/// The voices in `dir`: its `*.onnx` files (each with its `.onnx.json`
/// beside it), sorted by path. Used by `voxide voices` and `voxide serve
/// --voices DIR`.
///
/// # Errors
/// [`crate::error::Error::Io`] naming the directory when it cannot be listed.
pub fn voice_files_in(dir: &std::path::Path) -> crate::error::Result<Vec<std::path::PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|source| crate::error::Error::Io {
        context: format!("cannot list {}", dir.display()),
        source,
    })?;
    let mut found: Vec<std::path::PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    found.sort();
    Ok(found)
}
