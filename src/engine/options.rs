//! What a caller chooses: the [`Device`] of an engine, and per request the
//! kind of [`Input`] and the [`SpeakOptions`].

use crate::error::{Error, Result};
use crate::model::DEFAULT_MAX_FRAMES;
use crate::text::Phonemizer;

/// Which compute device runs the model.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA when a usable GPU and driver are present, else CPU.
    #[default]
    Auto,
    /// The CPU backend.
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
}

impl Device {
    /// Parse `auto`, `cpu`, `cuda` or `cuda:N`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for anything else.
    pub fn parse(s: &str) -> Result<Device> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "unknown device {s:?} (expected auto, cpu, cuda or cuda:N)"
                    ))
                }),
        }
    }
}

/// What the `text` of a request is.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Input {
    /// Plain text, phonemized by the text frontend.
    #[default]
    Text,
    /// espeak-style IPA, one sentence per line.
    Phonemes,
    /// Comma-separated phoneme ids of one utterance.
    Ids,
    /// SSML (a `speak` document; see docs/ssml.md for the elements).
    Ssml,
}

impl Input {
    /// Parse `text`, `phonemes`, `ids` or `ssml`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the accepted values.
    pub fn parse(s: &str) -> Result<Input> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" | "" => Ok(Input::Text),
            "phonemes" | "ipa" => Ok(Input::Phonemes),
            "ids" => Ok(Input::Ids),
            "ssml" => Ok(Input::Ssml),
            other => Err(Error::InvalidArgument(format!(
                "unknown input kind {other:?} (expected text, phonemes, ids or ssml)"
            ))),
        }
    }
}

/// Slowest and fastest [`SpeakOptions::speed`].
pub const SPEED_RANGE: std::ops::RangeInclusive<f32> = 0.25..=4.0;

/// Per-request options. `None` scales take the voice's defaults. Start from
/// [`SpeakOptions::default`] and set what you need, with the chainable
/// setters or the fields:
///
/// ```
/// use voxide::{Input, SpeakOptions};
/// let o = SpeakOptions::default().input(Input::Phonemes).seed(7);
/// assert_eq!((o.input, o.seed), (Input::Phonemes, 7));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct SpeakOptions {
    /// Prior noise scale.
    pub noise_scale: Option<f32>,
    /// Duration multiplier (larger is slower).
    pub length_scale: Option<f32>,
    /// Duration noise scale.
    pub noise_w: Option<f32>,
    /// Noise seed; the same input and options give the same samples.
    pub seed: u64,
    /// Speaker id for multi-speaker voices (see `Engine::speaker_id` for
    /// names).
    pub speaker: Option<i64>,
    /// Speaking speed, 0.25 to 4 (1 normal, 2 twice as fast): divides the
    /// length scale.
    pub speed: f32,
    /// Kind of input.
    pub input: Input,
    /// Cap on frames per sentence.
    pub max_frames: usize,
    /// Frames in the first streamed chunk (default 8, about 93 ms of audio; later
    /// chunks grow ×4 up to `chunk_frames`). Smaller means earlier first audio.
    /// Only the request's first sentence starts this small: later sentences
    /// start at `chunk_frames` (their audio follows audio already delivered).
    pub first_chunk_frames: usize,
    /// Frames per streamed chunk after the first ones.
    pub chunk_frames: usize,
    /// Phonemizer for [`Input::Text`]: built-in, or espeak-ng loaded at run time.
    pub phonemizer: Phonemizer,
}

impl Default for SpeakOptions {
    fn default() -> Self {
        SpeakOptions {
            noise_scale: None,
            length_scale: None,
            noise_w: None,
            seed: 0,
            speaker: None,
            speed: 1.0,
            input: Input::Text,
            max_frames: DEFAULT_MAX_FRAMES,
            first_chunk_frames: 8,
            chunk_frames: 128,
            phonemizer: Phonemizer::BuiltIn,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty => $value:expr;)*) => {
        impl SpeakOptions {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, v: $ty) -> Self {
                    self.$name = $value(v);
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`SpeakOptions::noise_scale`].
    noise_scale: f32 => Some;
    /// Sets [`SpeakOptions::length_scale`].
    length_scale: f32 => Some;
    /// Sets [`SpeakOptions::noise_w`].
    noise_w: f32 => Some;
    /// Sets [`SpeakOptions::seed`].
    seed: u64 => std::convert::identity;
    /// Sets [`SpeakOptions::speaker`].
    speaker: i64 => Some;
    /// Sets [`SpeakOptions::speed`].
    speed: f32 => std::convert::identity;
    /// Sets [`SpeakOptions::input`].
    input: Input => std::convert::identity;
    /// Sets [`SpeakOptions::max_frames`].
    max_frames: usize => std::convert::identity;
    /// Sets [`SpeakOptions::first_chunk_frames`].
    first_chunk_frames: usize => std::convert::identity;
    /// Sets [`SpeakOptions::chunk_frames`].
    chunk_frames: usize => std::convert::identity;
    /// Sets [`SpeakOptions::phonemizer`].
    phonemizer: Phonemizer => std::convert::identity;
}
