//! [`Voice`]: a voice's config, id map and typed weights, loaded into host memory.

use super::weights::Weights;
use super::{PhonemeIdMap, VoiceConfig};
use crate::error::{Error, Result, VoiceError};
use std::path::{Path, PathBuf};

/// A loaded voice: config, id map and weights (host memory).
#[derive(Debug)]
pub struct Voice {
    /// The `.onnx` path it came from.
    pub path: PathBuf,
    /// Validated config.
    pub config: VoiceConfig,
    /// Phoneme -> id mapping.
    pub ids: PhonemeIdMap,
    /// Weights.
    pub weights: Weights,
}

impl Voice {
    /// Load `voice` (`.onnx`) and its config (`config`, default: voice path + `.json`).
    ///
    /// # Errors
    /// [`Error::Io`] for unreadable files, [`Error::Model`] for bad JSON, a
    /// corrupt model or a missing/ill-shaped tensor — each naming the file and fault.
    pub fn load(voice: &Path, config: Option<&Path>) -> Result<Self> {
        let config_path = match config {
            Some(p) => p.to_path_buf(),
            None => {
                let mut s = voice.as_os_str().to_owned();
                s.push(".json");
                PathBuf::from(s)
            }
        };
        let weights = Weights::load(voice)?;
        let config = VoiceConfig::load(&config_path)?;
        if weights.enc.symbols < config.num_symbols {
            return Err(Error::Model(VoiceError::Config {
                path: config_path,
                msg: format!(
                    "num_symbols {} exceeds the model's embedding rows {}",
                    config.num_symbols, weights.enc.symbols
                ),
            }));
        }
        let model_speakers = weights.speakers.as_ref().map_or(1, |s| s.count);
        if model_speakers != config.num_speakers {
            return Err(Error::Model(VoiceError::Config {
                path: config_path,
                msg: format!(
                    "num_speakers {} differs from the model's {model_speakers} (rows of emb_g.weight)",
                    config.num_speakers
                ),
            }));
        }
        let ids = PhonemeIdMap::new(&config);
        Ok(Voice {
            path: voice.to_path_buf(),
            config,
            ids,
            weights,
        })
    }

    /// Samples per frame.
    pub fn hop(&self) -> usize {
        self.weights.hop()
    }
}
