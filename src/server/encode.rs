//! Response encoders: 16-bit samples in, bytes of the chosen format out, as
//! the audio arrives. `pcm` and `wav` stream every chunk at once; `mp3`,
//! `opus` and `flac` stream every encoded frame (FLAC: the header first, its
//! STREAMINFO with the length and MD5 left unknown, as the format allows for
//! streams; then one frame per 4096 samples, the last one shorter).
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
    /// FLAC, a frame at a time.
    Flac(Box<FlacStream>),
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
            Format::Flac => Encoder::Flac(Box::new(FlacStream::new(rate.hz())?)),
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
            Encoder::Flac(f) => f.push(samples),
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
            Encoder::Flac(f) => f.finish(),
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

/// Samples per FLAC frame (the encoder's default block size).
const FLAC_BLOCK: usize = 4096;

/// A FLAC stream (16-bit mono) written as the samples arrive: the `fLaC`
/// marker and STREAMINFO first (block size fixed; frame sizes, total samples
/// and MD5 0 = unknown, as the format allows for streams), then a frame per
/// [`FLAC_BLOCK`] samples, the rest as a last shorter frame.
pub struct FlacStream {
    config: flacenc::error::Verified<flacenc::config::Encoder>,
    info: flacenc::component::StreamInfo,
    /// Samples not yet in a frame (fewer than a block).
    pending: Vec<i32>,
    frames: usize,
    header: bool,
}

fn flac_fail(what: impl std::fmt::Debug) -> ApiError {
    ApiError::internal(format!("FLAC encoder: {what:?}"))
}

impl FlacStream {
    fn new(rate: u32) -> Result<FlacStream, ApiError> {
        use flacenc::error::Verify;
        let config = flacenc::config::Encoder::default()
            .into_verified()
            .map_err(|(_, e)| flac_fail(e))?;
        let mut info =
            flacenc::component::StreamInfo::new(rate as usize, 1, 16).map_err(flac_fail)?;
        info.set_block_sizes(FLAC_BLOCK, FLAC_BLOCK)
            .map_err(flac_fail)?;
        info.set_frame_sizes(0, 0).map_err(flac_fail)?;
        Ok(FlacStream {
            config,
            info,
            pending: Vec::with_capacity(FLAC_BLOCK),
            frames: 0,
            header: false,
        })
    }

    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>, ApiError> {
        let mut sink = flacenc::bitsink::ByteSink::new();
        self.header(&mut sink)?;
        for &x in samples {
            self.pending.push(i32::from(pcm16_stream(x)));
            if self.pending.len() == FLAC_BLOCK {
                self.frame(&mut sink)?;
            }
        }
        Ok(sink.as_slice().to_vec())
    }

    fn finish(&mut self) -> Result<Vec<u8>, ApiError> {
        let mut sink = flacenc::bitsink::ByteSink::new();
        self.header(&mut sink)?;
        if !self.pending.is_empty() {
            self.frame(&mut sink)?;
        }
        Ok(sink.as_slice().to_vec())
    }

    fn header(&mut self, sink: &mut flacenc::bitsink::ByteSink) -> Result<(), ApiError> {
        use flacenc::component::BitRepr;
        if !self.header {
            self.header = true;
            flacenc::component::Stream::with_stream_info(self.info.clone())
                .write(sink)
                .map_err(flac_fail)?;
        }
        Ok(())
    }

    /// The pending samples as the next frame.
    fn frame(&mut self, sink: &mut flacenc::bitsink::ByteSink) -> Result<(), ApiError> {
        use flacenc::component::BitRepr;
        use flacenc::source::Fill;
        let mut fb =
            flacenc::source::FrameBuf::with_size(1, self.pending.len()).map_err(flac_fail)?;
        fb.fill_interleaved(&self.pending).map_err(flac_fail)?;
        let frame = flacenc::encode_fixed_size_frame(&self.config, &fb, self.frames, &self.info)
            .map_err(flac_fail)?;
        frame.write(sink).map_err(flac_fail)?;
        self.frames += 1;
        self.pending.clear();
        Ok(())
    }
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
    fn flac_streams_a_frame_per_block() {
        let mut f = Encoder::new(Format::Flac, SampleRate(22050)).unwrap();
        let x: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
        // The header (marker + STREAMINFO: 4 + 4 + 34 bytes) and the first
        // 4096-sample frame come out at once; the rest with the last frame.
        let head = f.push(&x).unwrap();
        assert_eq!(&head[..4], b"fLaC");
        assert!(head.len() > 42, "{} bytes: no frame", head.len());
        assert_eq!(
            &head[42..44],
            &[0xFF, 0xF8],
            "a frame's sync code after the header"
        );
        let tail = f.finish().unwrap();
        assert_eq!(&tail[..2], &[0xFF, 0xF8], "the last frame");
    }
}
