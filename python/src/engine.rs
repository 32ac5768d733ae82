//! `Engine` (a [`voxide::Engine`]: voices, device, permits) and `Permit`.
//! Synthesis and permit waits run with the GIL released.

use crate::audio::Audio;
use crate::errors::{invalid, raise, IntoPy};
use crate::request::Request;
use crate::stream::Stream;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use voxide::{Device, Input, Precision, SpeakOptions};

/// The right to run one request, taken ahead (`Engine.permit`).
#[pyclass(module = "voxide", frozen)]
pub struct Permit {
    inner: Mutex<Option<voxide::Permit>>,
}

impl Permit {
    /// Take the permit out for a request.
    fn take(&self) -> PyResult<voxide::Permit> {
        self.slot().take().ok_or_else(|| {
            invalid("the permit was already used by a request or released; take a new one")
        })
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<voxide::Permit>> {
        // A poisoned lock only means another thread panicked while holding
        // it; the `Option` inside is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl Permit {
    /// Give the permit back now if it is unused (else nothing).
    fn release(&self) {
        drop(self.slot().take());
    }

    /// Whether the permit is still unused (neither used nor released).
    #[getter]
    fn valid(&self) -> bool {
        self.slot().is_some()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.release();
        false
    }

    fn __repr__(&self) -> String {
        format!("Permit(valid={})", self.valid())
    }
}

/// A text-to-speech engine.
#[pyclass(module = "voxide", frozen, subclass)]
pub struct Engine {
    pub(crate) inner: voxide::Engine,
}

fn parse_input(s: &str) -> PyResult<Input> {
    Input::parse(s).py_err()
}

impl Engine {
    /// The options and the permit of one request, checked before it runs.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        py: Python<'_>,
        voice: Option<String>,
        speaker: Option<&Bound<'_, PyAny>>,
        speed: f32,
        seed: Option<&Bound<'_, PyAny>>,
        input: &str,
        noise_scale: Option<f32>,
        length_scale: Option<f32>,
        noise_w: Option<f32>,
        permit: Option<&Bound<'_, Permit>>,
    ) -> PyResult<Request> {
        let seed: u64 = match seed {
            None => 0,
            Some(s) => s
                .extract()
                .map_err(|_| invalid(format!("seed must be an integer in 0..2**64, not {s}")))?,
        };
        let mut options = SpeakOptions::default()
            .speed(speed)
            .seed(seed)
            .input(parse_input(input)?);
        options.noise_scale = noise_scale;
        options.length_scale = length_scale;
        options.noise_w = noise_w;
        // Checks the voice name now (UnknownVoice before any permit wait).
        self.inner.sample_rate(voice.as_deref()).py_err()?;
        if let Some(s) = speaker {
            let name = if let Ok(id) = s.extract::<i64>() {
                id.to_string()
            } else if let Ok(name) = s.extract::<String>() {
                name
            } else {
                return Err(invalid(format!(
                    "speaker must be an id (int) or a name (str), not {s}"
                )));
            };
            options.speaker = Some(self.inner.speaker_id(voice.as_deref(), &name).py_err()?);
        }
        let permit = match permit {
            Some(p) => p.get().take()?,
            None => {
                let engine = self.inner.clone();
                py.detach(move || engine.acquire_permit()).py_err()?
            }
        };
        Ok(Request {
            voice,
            options,
            permit,
        })
    }
}

/// Build the engine from the Python arguments.
fn build(
    voice: Option<PathBuf>,
    voices: Option<&Bound<'_, PyAny>>,
    max_concurrent: usize,
    device: &str,
    threads: usize,
    precision: &str,
) -> PyResult<voxide::EngineBuilder> {
    if max_concurrent == 0 {
        return Err(invalid("max_concurrent must be at least 1"));
    }
    let mut b = voxide::Engine::builder()
        .max_concurrent(max_concurrent)
        .device(Device::parse(device).py_err()?)
        .threads(threads)
        .precision(Precision::parse(precision).map_err(invalid)?);
    let voice = voice.or_else(|| std::env::var_os("VOXIDE_VOICE").map(PathBuf::from));
    if let Some(v) = voice {
        b = b.voice(v);
    }
    match voices {
        None => {}
        Some(v) if v.is_none() => {}
        Some(v) => {
            if let Ok(d) = v.cast::<PyDict>() {
                for (name, path) in d.iter() {
                    let name: String = name
                        .extract()
                        .map_err(|_| invalid(format!("voice names must be str, not {name}")))?;
                    let path: PathBuf = path.extract().map_err(|_| {
                        invalid(format!(
                            "the path of voice {name:?} must be str or os.PathLike"
                        ))
                    })?;
                    b = b.named_voice(&name, path);
                }
            } else if let Ok(l) = v.cast::<PyList>() {
                for path in l.iter() {
                    let p: PathBuf = path.extract().map_err(|_| {
                        invalid(format!(
                            "voice paths must be str or os.PathLike, not {path}"
                        ))
                    })?;
                    b = b.voice(p);
                }
            } else {
                return Err(invalid(
                    "voices must be a dict of name to path or a list of paths",
                ));
            }
        }
    }
    Ok(b)
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (voice = None, *, voices = None, max_concurrent = 2, device = "auto", threads = 0, precision = "auto"))]
    fn new(
        py: Python<'_>,
        voice: Option<PathBuf>,
        voices: Option<&Bound<'_, PyAny>>,
        max_concurrent: usize,
        device: &str,
        threads: usize,
        precision: &str,
    ) -> PyResult<Self> {
        let b = build(voice, voices, max_concurrent, device, threads, precision)?;
        let inner = py.detach(move || b.build()).map_err(|e| match e {
            voxide::Error::InvalidArgument(m) if m.contains("no voice") => {
                invalid("no voice given: pass a voice path, voices=, or set $VOXIDE_VOICE")
            }
            e => crate::errors::to_py(e),
        })?;
        Ok(Engine { inner })
    }

    /// Speak `text`; return the whole audio.
    #[pyo3(signature = (text, *, voice = None, speaker = None, speed = 1.0, seed = None, input = "text", noise_scale = None, length_scale = None, noise_w = None, permit = None))]
    #[allow(clippy::too_many_arguments)]
    fn speak(
        &self,
        py: Python<'_>,
        text: String,
        voice: Option<String>,
        speaker: Option<&Bound<'_, PyAny>>,
        speed: f32,
        seed: Option<&Bound<'_, PyAny>>,
        input: &str,
        noise_scale: Option<f32>,
        length_scale: Option<f32>,
        noise_w: Option<f32>,
        permit: Option<&Bound<'_, Permit>>,
    ) -> PyResult<Audio> {
        let r = self.request(
            py,
            voice,
            speaker,
            speed,
            seed,
            input,
            noise_scale,
            length_scale,
            noise_w,
            permit,
        )?;
        let engine = self.inner.clone();
        let inner = py
            .detach(move || engine.speak_with(&text, r.voice.as_deref(), &r.options, r.permit))
            .py_err()?;
        Ok(Audio { inner })
    }

    /// Speak `text` chunk by chunk: an iterator of numpy float32 arrays.
    #[pyo3(signature = (text, *, voice = None, speaker = None, speed = 1.0, seed = None, input = "text", noise_scale = None, length_scale = None, noise_w = None, permit = None))]
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        py: Python<'_>,
        text: String,
        voice: Option<String>,
        speaker: Option<&Bound<'_, PyAny>>,
        speed: f32,
        seed: Option<&Bound<'_, PyAny>>,
        input: &str,
        noise_scale: Option<f32>,
        length_scale: Option<f32>,
        noise_w: Option<f32>,
        permit: Option<&Bound<'_, Permit>>,
    ) -> PyResult<Stream> {
        let r = self.request(
            py,
            voice,
            speaker,
            speed,
            seed,
            input,
            noise_scale,
            length_scale,
            noise_w,
            permit,
        )?;
        let rate = self.inner.sample_rate(r.voice.as_deref()).py_err()?.hz();
        Stream::start(self.inner.clone(), text, r, rate)
    }

    /// Take a permit, waiting up to `timeout` seconds (None: as long as it takes).
    #[pyo3(signature = (timeout = None))]
    fn permit(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Permit> {
        let engine = self.inner.clone();
        let permit = match timeout {
            None => py.detach(move || engine.acquire_permit()),
            Some(t) => {
                let t = Duration::try_from_secs_f64(t).map_err(|_| {
                    invalid(format!("timeout must be a number of seconds >= 0, not {t}"))
                })?;
                py.detach(move || engine.acquire_permit_timeout(t))
            }
        }
        .map_err(|e| match e {
            voxide::Error::Timeout => raise(
                "PermitTimeout",
                format!(
                    "timed out waiting for a permit ({} in use)",
                    self.inner.max_concurrent()
                ),
            ),
            e => crate::errors::to_py(e),
        })?;
        Ok(Permit {
            inner: Mutex::new(Some(permit)),
        })
    }

    /// Take a permit if one is free now, else return None.
    fn try_permit(&self) -> Option<Permit> {
        self.inner.try_acquire_permit().map(|p| Permit {
            inner: Mutex::new(Some(p)),
        })
    }

    /// Load another voice under `name`.
    fn add_voice(&self, py: Python<'_>, name: String, path: PathBuf) -> PyResult<()> {
        let engine = self.inner.clone();
        py.detach(move || engine.add_voice(&name, path)).py_err()
    }

    /// Names of the loaded voices.
    #[getter]
    fn voices(&self) -> Vec<String> {
        self.inner.voice_names()
    }

    /// The default voice's name.
    #[getter]
    fn default_voice(&self) -> String {
        self.inner.default_voice().to_string()
    }

    /// The device in use: `cpu` or `cuda:N (name)`.
    #[getter]
    fn device(&self) -> String {
        self.inner.device_name()
    }

    /// Requests that may run at once (permits in total).
    #[getter]
    fn max_concurrent(&self) -> usize {
        self.inner.max_concurrent()
    }

    /// CPU threads the engine uses.
    #[getter]
    fn threads(&self) -> usize {
        self.inner.threads()
    }

    /// The arithmetic in use (`f32`, `bf16x3`, `bf16`).
    #[getter]
    fn precision(&self) -> String {
        self.inner.precision().as_str().to_string()
    }

    /// Sample rate of a voice (None: the default voice).
    #[pyo3(signature = (voice = None))]
    fn sample_rate(&self, voice: Option<&str>) -> PyResult<u32> {
        Ok(self.inner.sample_rate(voice).py_err()?.hz())
    }

    /// The id of a speaker of a multi-speaker voice, by name or number.
    #[pyo3(signature = (name, voice = None))]
    fn speaker_id(&self, name: &str, voice: Option<&str>) -> PyResult<i64> {
        self.inner.speaker_id(voice, name).py_err()
    }

    fn __repr__(&self) -> String {
        format!(
            "Engine(device={:?}, voices={:?}, max_concurrent={})",
            self.inner.device_name(),
            self.inner.voice_names(),
            self.inner.max_concurrent()
        )
    }
}
