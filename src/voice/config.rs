//! The voice's `.onnx.json`: sample rate, default scales, phoneme id map.

use crate::error::{Error, Result, VoiceError};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// Default synthesis scales of a voice (`inference` block).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scales {
    /// Prior noise scale (0.667 for joe).
    pub noise_scale: f32,
    /// Duration multiplier (1.0 = natural speed; larger is slower).
    pub length_scale: f32,
    /// Duration-predictor noise scale (0.8 for joe).
    pub noise_w: f32,
}

impl Default for Scales {
    fn default() -> Self {
        Scales {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

/// A validated voice configuration.
#[derive(Clone, Debug)]
pub struct VoiceConfig {
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// Default scales.
    pub scales: Scales,
    /// Phoneme (one code point, or a listed cluster) -> ids.
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    /// Number of rows of the phoneme embedding.
    pub num_symbols: usize,
    /// Number of speakers (1 for single-speaker voices).
    pub num_speakers: usize,
    /// Speaker name -> id.
    pub speaker_id_map: HashMap<String, i64>,
    /// `phoneme_type` (`espeak` or `text`).
    pub phoneme_type: String,
    /// espeak voice name (`en-us`), if any.
    pub espeak_voice: Option<String>,
    /// Language code (`en_US`), if given.
    pub language: Option<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    audio: RawAudio,
    #[serde(default)]
    inference: Option<RawInference>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    num_symbols: Option<usize>,
    #[serde(default)]
    num_speakers: Option<usize>,
    #[serde(default)]
    speaker_id_map: HashMap<String, i64>,
    #[serde(default)]
    phoneme_type: Option<String>,
    #[serde(default)]
    espeak: Option<RawEspeak>,
    #[serde(default)]
    language: Option<RawLanguage>,
}

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawInference {
    noise_scale: Option<f32>,
    length_scale: Option<f32>,
    noise_w: Option<f32>,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: Option<String>,
}

#[derive(Deserialize)]
struct RawLanguage {
    code: Option<String>,
}

impl VoiceConfig {
    /// The speaker id that `spec` names: an id in `0..num_speakers`, or a
    /// name from `speaker_id_map` (exact, else ignoring ASCII case).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `spec` and listing the voice's
    /// speakers when it is neither.
    pub fn resolve_speaker(&self, spec: &str) -> Result<i64> {
        let spec = spec.trim();
        if let Ok(id) = spec.parse::<i64>() {
            if usize::try_from(id).is_ok_and(|i| i < self.num_speakers) {
                return Ok(id);
            }
            return Err(Error::InvalidArgument(format!(
                "speaker id {id} is outside this voice's speakers 0..{} ({})",
                self.num_speakers,
                self.speaker_list()
            )));
        }
        let found = self.speaker_id_map.get(spec).copied().or_else(|| {
            self.speaker_id_map
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(spec))
                .map(|(_, &id)| id)
        });
        match found {
            Some(id) if usize::try_from(id).is_ok_and(|i| i < self.num_speakers) => Ok(id),
            Some(id) => Err(Error::InvalidArgument(format!(
                "speaker {spec:?} maps to id {id}, outside this voice's speakers 0..{}",
                self.num_speakers
            ))),
            None => Err(Error::InvalidArgument(format!(
                "unknown speaker {spec:?}; this voice has {}",
                self.speaker_list()
            ))),
        }
    }

    /// The name `speaker_id_map` gives speaker `id` (the first by name when
    /// several do), if any.
    pub fn speaker_name(&self, id: i64) -> Option<&str> {
        self.speaker_id_map
            .iter()
            .filter(|(_, &v)| v == id)
            .map(|(n, _)| n.as_str())
            .min()
    }

    /// The named speakers of `speaker_id_map` as (id, name), sorted by id,
    /// then name (a speaker may have several names).
    pub fn named_speakers(&self) -> Vec<(i64, &str)> {
        let mut v: Vec<(i64, &str)> = self
            .speaker_id_map
            .iter()
            .map(|(n, &id)| (id, n.as_str()))
            .collect();
        v.sort_unstable();
        v
    }

    /// The speakers for messages: `3 speakers: 0 ann, 1 bob, 2 cid` (names
    /// where known; at most 20 listed).
    pub(crate) fn speaker_list(&self) -> String {
        const SHOWN: usize = 20;
        let n = self.num_speakers;
        let mut items: Vec<String> = (0..n.min(SHOWN))
            .map(|i| match self.speaker_name(i as i64) {
                Some(name) => format!("{i} {name}"),
                None => i.to_string(),
            })
            .collect();
        if n > SHOWN {
            items.push(format!("… {}", n - 1));
        }
        let noun = if n == 1 { "speaker" } else { "speakers" };
        format!("{n} {noun}: {}", items.join(", "))
    }

    /// Read and validate a `.onnx.json` file.
    ///
    /// # Errors
    /// [`VoiceError::Io`] when unreadable; [`VoiceError::Config`] naming the JSON
    /// line/column or the field at fault.
    pub fn load(path: &Path) -> std::result::Result<Self, VoiceError> {
        let bytes = std::fs::read(path).map_err(|source| VoiceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Parse config bytes; `path` is used only in messages.
    ///
    /// # Errors
    /// [`VoiceError::Config`] naming the JSON position or the field at fault.
    pub fn parse(bytes: &[u8], path: &Path) -> std::result::Result<Self, VoiceError> {
        let err = |msg: String| VoiceError::Config {
            path: path.to_path_buf(),
            msg,
        };
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
        if !(1000..=384_000).contains(&raw.audio.sample_rate) {
            return Err(err(format!(
                "audio.sample_rate {} is out of range",
                raw.audio.sample_rate
            )));
        }
        let d = Scales::default();
        let inf = raw.inference.unwrap_or(RawInference {
            noise_scale: None,
            length_scale: None,
            noise_w: None,
        });
        let scales = Scales {
            noise_scale: inf.noise_scale.unwrap_or(d.noise_scale),
            length_scale: inf.length_scale.unwrap_or(d.length_scale),
            noise_w: inf.noise_w.unwrap_or(d.noise_w),
        };
        for (name, v) in [
            ("noise_scale", scales.noise_scale),
            ("length_scale", scales.length_scale),
            ("noise_w", scales.noise_w),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(err(format!(
                    "inference.{name} = {v} is not a finite value >= 0"
                )));
            }
        }
        let max_id = raw
            .phoneme_id_map
            .values()
            .flatten()
            .copied()
            .max()
            .unwrap_or(-1);
        let num_symbols = raw
            .num_symbols
            .unwrap_or_else(|| usize::try_from(max_id + 1).unwrap_or(0));
        for (p, ids) in &raw.phoneme_id_map {
            if let Some(bad) = ids
                .iter()
                .find(|&&i| i < 0 || usize::try_from(i).map_or(true, |i| i >= num_symbols))
            {
                return Err(err(format!(
                    "phoneme_id_map[{p:?}] has id {bad}, outside 0..{num_symbols}"
                )));
            }
        }
        for key in ["^", "_", "$"] {
            if !raw.phoneme_id_map.contains_key(key) {
                return Err(err(format!("phoneme_id_map lacks the {key:?} symbol")));
            }
        }
        Ok(VoiceConfig {
            sample_rate: raw.audio.sample_rate,
            scales,
            phoneme_id_map: raw.phoneme_id_map,
            num_symbols,
            num_speakers: raw.num_speakers.unwrap_or(1).max(1),
            speaker_id_map: raw.speaker_id_map,
            phoneme_type: raw.phoneme_type.unwrap_or_else(|| "espeak".into()),
            espeak_voice: raw.espeak.and_then(|e| e.voice),
            language: raw.language.and_then(|l| l.code),
        })
    }
}
