//! `Audio`: one request's speech. Its `samples` are a read-only numpy view
//! of the Rust-owned buffer (no copy); the view keeps the `Audio` alive.

use crate::errors::{invalid, IntoPy};
use numpy::ndarray::ArrayView1;
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A word of the input and when it is spoken.
#[pyclass(module = "voxide", frozen, get_all)]
#[derive(Clone)]
pub struct Word {
    /// The word as written.
    pub text: String,
    /// First byte of the word in the input (UTF-8).
    pub char_start: usize,
    /// Byte past the word in the input.
    pub char_end: usize,
    /// First sample of the word.
    pub start: usize,
    /// Sample past the word's last.
    pub end: usize,
}

impl From<&voxide::WordTiming> for Word {
    fn from(w: &voxide::WordTiming) -> Self {
        Word {
            text: w.text.clone(),
            char_start: w.char_start,
            char_end: w.char_end,
            start: w.start,
            end: w.end,
        }
    }
}

#[pymethods]
impl Word {
    fn __repr__(&self) -> String {
        format!(
            "Word(text={:?}, char_start={}, char_end={}, start={}, end={})",
            self.text, self.char_start, self.char_end, self.start, self.end
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Word>().is_ok_and(|o| {
            let o = o.get();
            (&o.text, o.char_start, o.char_end, o.start, o.end)
                == (
                    &self.text,
                    self.char_start,
                    self.char_end,
                    self.start,
                    self.end,
                )
        })
    }
}

/// An SSML `<mark/>` and the sample it falls on.
#[pyclass(module = "voxide", frozen, get_all)]
#[derive(Clone)]
pub struct Mark {
    /// The mark's name.
    pub name: String,
    /// The sample it falls on.
    pub sample: usize,
}

#[pymethods]
impl Mark {
    fn __repr__(&self) -> String {
        format!("Mark(name={:?}, sample={})", self.name, self.sample)
    }
}

/// Synthesized speech (immutable).
#[pyclass(module = "voxide", frozen)]
pub struct Audio {
    pub(crate) inner: voxide::Audio,
}

impl Audio {
    fn wav_bytes(&self) -> PyResult<Vec<u8>> {
        let mut out = Vec::with_capacity(44 + 2 * self.inner.samples().len());
        voxide::audio::write_wav_to(&mut out, self.inner.sample_rate(), &self.inner.to_pcm16())
            .map_err(|e| invalid(format!("cannot encode WAV: {e}")))?;
        Ok(out)
    }
}

#[pymethods]
impl Audio {
    /// The samples: a read-only 1-D numpy float32 array viewing this
    /// object's memory (no copy; it keeps the `Audio` alive).
    #[getter]
    fn samples<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let view = ArrayView1::from(slf.get().inner.samples_f32());
        // SAFETY: the array views the samples of a frozen `Audio` (never
        // mutated or moved while it lives) and holds a reference to it as
        // its base object; it is made read-only before it is handed out.
        let array = unsafe { PyArray1::borrow_from_array(&view, slf.clone().into_any()) };
        array.getattr("flags")?.setattr("writeable", false)?;
        Ok(array)
    }

    /// Samples per second.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate().hz()
    }

    /// Length in seconds.
    #[getter]
    fn duration(&self) -> f64 {
        self.inner.duration_secs()
    }

    /// The input's words with their sample ranges.
    #[getter]
    fn words(&self) -> Vec<Word> {
        self.inner.words().iter().map(Word::from).collect()
    }

    /// The SSML marks reached, with their samples.
    #[getter]
    fn marks(&self) -> Vec<Mark> {
        self.inner
            .marks()
            .iter()
            .map(|m| Mark {
                name: m.name.clone(),
                sample: m.sample,
            })
            .collect()
    }

    /// Warnings of the request (for example words spelled out).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings().to_vec()
    }

    /// Write a 16-bit mono WAV file (the same bytes as `voxide speak --output`).
    fn to_wav(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.write_wav(&path)).py_err()
    }

    /// The audio as bytes: `wav` (16-bit WAV file), `pcm` (16-bit
    /// little-endian samples) or `f32` (float32 little-endian, the bytes of
    /// `voxide speak --raw`).
    #[pyo3(signature = (format = "wav"))]
    fn to_bytes<'py>(&self, py: Python<'py>, format: &str) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = match format {
            "wav" => self.wav_bytes()?,
            "pcm" => self
                .inner
                .to_pcm16()
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect(),
            "f32" => self
                .inner
                .samples_f32()
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect(),
            other => {
                return Err(invalid(format!(
                    "unknown audio format {other:?} (expected wav, pcm or f32)"
                )))
            }
        };
        Ok(PyBytes::new(py, &bytes))
    }

    /// An HTML audio player with the speech inline (Jupyter shows it).
    fn _repr_html_(&self, py: Python<'_>) -> PyResult<String> {
        let wav = PyBytes::new(py, &self.wav_bytes()?);
        let b64: String = py
            .import("base64")?
            .call_method1("b64encode", (wav,))?
            .call_method1("decode", ("ascii",))?
            .extract()?;
        Ok(format!(
            "<audio controls src=\"data:audio/wav;base64,{b64}\"></audio>"
        ))
    }

    fn __len__(&self) -> usize {
        self.inner.samples().len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Audio({} samples, {} Hz, {:.2} s, {} words)",
            self.inner.samples().len(),
            self.inner.sample_rate().hz(),
            self.inner.duration_secs(),
            self.inner.words().len()
        )
    }
}
