//! Audio containers and WAV I/O: [`AudioSample`], [`SampleRate`], [`Audio`].

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// One float32 audio sample in (−1, 1), as produced by the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct AudioSample(pub f32);

/// A sample rate in hertz.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SampleRate(pub u32);

impl SampleRate {
    /// The rate in hertz.
    pub fn hz(self) -> u32 {
        self.0
    }
}

/// View a slice of samples as plain `f32` (zero-cost; `AudioSample` is `repr(transparent)`).
pub fn as_f32(samples: &[AudioSample]) -> &[f32] {
    // SAFETY: AudioSample is repr(transparent) over f32.
    unsafe { std::slice::from_raw_parts(samples.as_ptr().cast::<f32>(), samples.len()) }
}

/// View a slice of `f32` as samples.
pub fn from_f32(samples: &[f32]) -> &[AudioSample] {
    // SAFETY: AudioSample is repr(transparent) over f32.
    unsafe { std::slice::from_raw_parts(samples.as_ptr().cast::<AudioSample>(), samples.len()) }
}

/// Synthesized speech: the model's raw float samples, sentence by sentence.
///
/// ```
/// use voxide::{Audio, AudioSample, SampleRate};
/// let a = Audio::new(vec![AudioSample(0.5), AudioSample(-0.25)], SampleRate(22050));
/// assert_eq!(a.samples().len(), 2);
/// assert_eq!(a.sample_rate().hz(), 22050);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    samples: Vec<AudioSample>,
    sentence_ends: Vec<usize>,
    rate: SampleRate,
    words: Vec<WordTiming>,
    marks: Vec<Mark>,
    warnings: Vec<String>,
}

/// When an input word is spoken: its text and byte range in the input (for
/// SSML: in the SSML source), and its first and past-the-end sample in the
/// audio. Taken from the model's own durations: the word's phonemes start
/// at `start` and end at `end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordTiming {
    /// The word as written (without the punctuation around it).
    pub text: String,
    /// First byte of the word in the input.
    pub char_start: usize,
    /// Byte past the word in the input.
    pub char_end: usize,
    /// First sample of the word.
    pub start: usize,
    /// Sample past the word's last.
    pub end: usize,
}

/// What a streamed request delivers, in order (see `Engine::speak_events`).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SpeechEvent<'a> {
    /// The next samples.
    Audio(&'a [AudioSample]),
    /// An input word is complete: sent right after the samples that end it.
    Word(&'a WordTiming),
    /// An SSML mark was reached (its samples before it have been sent).
    Mark(&'a Mark),
    /// A sentence (or an SSML break's silence) ended.
    SentenceEnd,
}

/// An SSML `mark` and the sample at which it falls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The mark's name.
    pub name: String,
    /// The sample it falls on.
    pub sample: usize,
}

impl Audio {
    /// Audio of one sentence.
    pub fn new(samples: Vec<AudioSample>, rate: SampleRate) -> Self {
        let n = samples.len();
        Audio {
            samples,
            sentence_ends: if n > 0 { vec![n] } else { vec![] },
            rate,
            words: Vec::new(),
            marks: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Empty audio (no sentences).
    pub fn empty(rate: SampleRate) -> Self {
        Audio {
            samples: Vec::new(),
            sentence_ends: Vec::new(),
            rate,
            words: Vec::new(),
            marks: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Append one sentence's raw samples.
    pub fn push_sentence(&mut self, samples: &[AudioSample]) {
        self.samples.extend_from_slice(samples);
        self.sentence_ends.push(self.samples.len());
    }

    /// Append a word's timing.
    pub(crate) fn push_word(&mut self, w: WordTiming) {
        self.words.push(w);
    }

    /// Append a mark.
    pub(crate) fn push_mark(&mut self, m: Mark) {
        self.marks.push(m);
    }

    /// Add a warning about the input.
    pub(crate) fn push_warning(&mut self, w: String) {
        self.warnings.push(w);
    }

    /// Warnings about the input: SSML elements or attributes that were
    /// ignored or spoken as plain text ("line L, column C: ...").
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every input word with the samples it is spoken in, in input order
    /// (empty for `Input::Ids`).
    pub fn words(&self) -> &[WordTiming] {
        &self.words
    }

    /// The SSML marks with their sample positions, in order.
    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    /// All samples, sentences concatenated, without normalisation.
    pub fn samples(&self) -> &[AudioSample] {
        &self.samples
    }

    /// Samples as plain `f32`.
    pub fn samples_f32(&self) -> &[f32] {
        as_f32(&self.samples)
    }

    /// The sample rate.
    pub fn sample_rate(&self) -> SampleRate {
        self.rate
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / self.rate.0.max(1) as f64
    }

    /// 16-bit PCM as Piper writes it: each sentence peak-normalised, clipped,
    /// scaled by 32767 and truncated toward zero.
    pub fn to_pcm16(&self) -> Vec<i16> {
        let mut out = Vec::with_capacity(self.samples.len());
        let mut start = 0;
        for &end in &self.sentence_ends {
            out.extend(pcm16_piper(as_f32(&self.samples[start..end])));
            start = end;
        }
        out
    }

    /// Write a 16-bit mono PCM WAV file (Piper's post-processing, see [`Audio::to_pcm16`]).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it cannot be written.
    pub fn write_wav(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            context: format!("cannot write {}", path.display()),
            source,
        };
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        write_wav_to(&mut f, self.rate, &self.to_pcm16()).map_err(io)?;
        f.flush().map_err(io)
    }
}

/// Piper's per-sentence conversion of float samples to int16.
pub fn pcm16_piper(samples: &[f32]) -> impl Iterator<Item = i16> + '_ {
    let peak = samples.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    // NaN peaks count as silent too.
    let silent = peak.is_nan() || peak < 1e-8;
    samples.iter().map(move |&x| {
        if silent {
            return 0;
        }
        let v = (x / peak).clamp(-1.0, 1.0) * 32767.0;
        v.clamp(-32767.0, 32767.0) as i16
    })
}

/// The 44-byte header of a 16-bit mono PCM WAV. `data_len` in bytes; use
/// `u32::MAX`-ish placeholders for streams of unknown length.
pub fn wav_header(rate: SampleRate, data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&rate.0.to_le_bytes());
    h[28..32].copy_from_slice(&(rate.0 * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Write a complete WAV (header + samples) to a writer.
pub fn write_wav_to(w: &mut impl Write, rate: SampleRate, pcm: &[i16]) -> std::io::Result<()> {
    let bytes = u32::try_from(pcm.len() * 2).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "audio too long for WAV")
    })?;
    w.write_all(&wav_header(rate, bytes))?;
    let mut buf = Vec::with_capacity(pcm.len() * 2);
    for s in pcm {
        buf.extend_from_slice(&s.to_le_bytes());
    }
    w.write_all(&buf)
}

/// Parse a 16-bit mono PCM WAV produced by [`write_wav_to`] (used by tests and tools).
///
/// # Errors
/// [`Error::InvalidArgument`] when the bytes are not such a WAV.
pub fn read_wav(bytes: &[u8]) -> Result<(SampleRate, Vec<i16>)> {
    let bad = |m: &str| Error::InvalidArgument(format!("not a 16-bit mono PCM WAV: {m}"));
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header"));
    }
    let mut pos = 12;
    let mut rate = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = &bytes[pos + 8..];
        if id == b"fmt " {
            if len < 16 || body.len() < 16 {
                return Err(bad("short fmt chunk"));
            }
            let fmt = u16::from_le_bytes([body[0], body[1]]);
            let ch = u16::from_le_bytes([body[2], body[3]]);
            let bits = u16::from_le_bytes([body[14], body[15]]);
            if fmt != 1 || ch != 1 || bits != 16 {
                return Err(bad("not PCM16 mono"));
            }
            rate = Some(SampleRate(u32::from_le_bytes([
                body[4], body[5], body[6], body[7],
            ])));
        } else if id == b"data" {
            let rate = rate.ok_or_else(|| bad("data before fmt"))?;
            let n = len.min(body.len()) / 2;
            let pcm = (0..n)
                .map(|i| i16::from_le_bytes([body[2 * i], body[2 * i + 1]]))
                .collect();
            return Ok((rate, pcm));
        }
        pos += 8 + len + (len & 1);
    }
    Err(bad("no data chunk"))
}
