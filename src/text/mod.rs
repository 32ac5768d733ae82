//! Placeholder until the text-frontend branch is merged (replaced by it).

/// Errors of the text frontend.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Not available in this build.
    #[error("plain-text input is not available yet; pass phonemes")]
    Unavailable,
}

/// Phonemize text (not yet available).
///
/// # Errors
/// Always [`TextError::Unavailable`] for non-empty text.
pub fn phonemize(text: &str) -> Result<Vec<String>, TextError> {
    if text.trim().is_empty() {
        Ok(Vec::new())
    } else {
        Err(TextError::Unavailable)
    }
}
