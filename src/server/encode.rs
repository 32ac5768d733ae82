//! Response encoders: 16-bit samples in, bytes of the chosen format out, as
//! the audio arrives. `pcm` and `wav` stream every chunk at once; `mp3` and
//! `opus` stream every encoded frame; `flac` is written when the audio ends
//! (its STREAMINFO carries the length and MD5, so the file is exact).
//!
//! The 16-bit samples are those of `voxide speak --output -`: each float
//! clamped to [-1, 1] and scaled by 32767, truncated toward zero (no peak
//! normalisation, since a sentence's peak is unknown while it streams).

use super::codecs::{Lame, OpusEnc};
use super::error::ApiError;
use super::request::Format;
use crate::audio::{wav_header, SampleRate};

/// The streamed 16-bit conversion of `voxide speak --output -`.
pub fn pcm16_stream(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0) as i16
}

/// One response's encoder.
pub enum Encoder {
    /// Raw s16le.
    Pcm,
    /// WAV: the header first (lengths at their maximum, as the CLI's
    /// streamed WAV: unknown while streaming), then s16le.
    Wav {
        /// The header is not written yet.
        header: Option<[u8; 44]>,
    },
    /// FLAC: samples kept, encoded at the end.
    Flac {
        /// Samples so far.
        samples: Vec<i32>,
        /// The voice's rate.
        rate: u32,
    },
    /// MP3 through LAME.
    Mp3(Lame),
    /// Ogg Opus through libopus.
    Opus(OpusEnc),
}

impl Encoder {
    /// An encoder of `format` at the voice's `rate`.
    ///
    /// # Errors
    /// 501 when the format's system library is missing; 500 when it fails
    /// to start.
    pub fn new(format: Format, rate: SampleRate) -> Result<Encoder, ApiError> {
        Ok(match format {
            Format::Pcm => Encoder::Pcm,
            Format::Wav => Encoder::Wav {
                header: Some(wav_header(rate, u32::MAX - 36)),
            },
            Format::Flac => Encoder::Flac {
                samples: Vec::new(),
                rate: rate.hz(),
            },
            Format::Mp3 => Encoder::Mp3(Lame::new(rate.hz())?),
            Format::Opus => Encoder::Opus(OpusEnc::new(rate.hz())?),
        })
    }

    /// Encode the next samples; the bytes ready now (maybe none).
    ///
    /// # Errors
    /// 500 when a codec library fails.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, ApiError> {
        match self {
            Encoder::Pcm => Ok(s16le(samples, Vec::with_capacity(samples.len() * 2))),
            Encoder::Wav { header } => {
                let mut out = Vec::with_capacity(44 + samples.len() * 2);
                if let Some(h) = header.take() {
                    out.extend_from_slice(&h);
                }
                Ok(s16le(samples, out))
            }
            Encoder::Flac { samples: all, .. } => {
                all.extend(samples.iter().map(|&x| i32::from(pcm16_stream(x))));
                Ok(Vec::new())
            }
            Encoder::Mp3(l) => {
                let pcm: Vec<i16> = samples.iter().map(|&x| pcm16_stream(x)).collect();
                l.encode(&pcm)
            }
            Encoder::Opus(o) => o.encode(samples),
        }
    }

    /// The last bytes.
    ///
    /// # Errors
    /// 500 when a codec fails.
    pub fn finish(&mut self) -> Result<Vec<u8>, ApiError> {
        match self {
            Encoder::Pcm => Ok(Vec::new()),
            Encoder::Wav { header } => Ok(header.take().map(|h| h.to_vec()).unwrap_or_default()),
            Encoder::Flac { samples, rate } => flac(samples, *rate),
            Encoder::Mp3(l) => l.flush(),
            Encoder::Opus(o) => o.finish(),
        }
    }
}

fn s16le(samples: &[f32], mut out: Vec<u8>) -> Vec<u8> {
    for &x in samples {
        out.extend_from_slice(&pcm16_stream(x).to_le_bytes());
    }
    out
}

/// A whole FLAC file (16-bit mono) of `samples`.
fn flac(samples: &[i32], rate: u32) -> Result<Vec<u8>, ApiError> {
    use flacenc::component::BitRepr;
    use flacenc::error::Verify;
    let fail = |what: String| ApiError::internal(format!("FLAC encoder: {what}"));
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| fail(format!("{e:?}")))?;
    let source = flacenc::source::MemSource::from_samples(samples, 1, 16, rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| fail(format!("{e:?}")))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| fail(format!("{e:?}")))?;
    Ok(sink.as_slice().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_and_wav_carry_the_cli_samples() {
        let x = [0.0f32, 0.5, -0.5, 1.5, -2.0];
        let want: Vec<u8> = x
            .iter()
            .flat_map(|&v| ((v.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
            .collect();
        let mut p = Encoder::new(Format::Pcm, SampleRate(22050)).unwrap();
        assert_eq!(p.push(&x).unwrap(), want);
        let mut w = Encoder::new(Format::Wav, SampleRate(22050)).unwrap();
        let got = w.push(&x).unwrap();
        assert_eq!(&got[..44], &wav_header(SampleRate(22050), u32::MAX - 36));
        assert_eq!(&got[44..], &want[..]);
        assert!(w.finish().unwrap().is_empty());
    }

    #[test]
    fn flac_is_a_flac_stream() {
        let mut f = Encoder::new(Format::Flac, SampleRate(22050)).unwrap();
        let x: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
        assert!(f.push(&x).unwrap().is_empty());
        let out = f.finish().unwrap();
        assert_eq!(&out[..4], b"fLaC");
    }
}
