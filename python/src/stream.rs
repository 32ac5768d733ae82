//! `Stream`: `Engine.stream`'s iterator. A Rust thread runs the request
//! (`Engine::speak_events`) and sends each chunk through a bounded channel;
//! `__next__` waits for the next one with the GIL released. Closing or
//! dropping the iterator makes the thread's callback return `Break`, which
//! stops the synthesis and gives the permit back.

use crate::audio::Word;
use crate::errors::to_py;
use crate::request::Request;
use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use voxide::SpeechEvent;

/// Chunks that may wait in the channel before the synthesis thread blocks.
const BACKLOG: usize = 8;

enum Msg {
    Chunk(Vec<f32>),
    Word(Word),
    /// The request's end: `Ok` or its error.
    End(voxide::Result<()>),
}

struct State {
    rx: Option<Receiver<Msg>>,
    words: Vec<Word>,
    samples: usize,
}

/// An iterator of numpy float32 chunks of one request's audio.
#[pyclass(module = "voxide", frozen)]
pub struct Stream {
    state: Mutex<State>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    rate: u32,
}

impl Stream {
    pub(crate) fn start(
        engine: voxide::Engine,
        text: String,
        r: Request,
        rate: u32,
    ) -> PyResult<Stream> {
        let (tx, rx) = sync_channel(BACKLOG);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("voxide-stream".into())
            .spawn(move || {
                let result =
                    engine.speak_events(&text, r.voice.as_deref(), &r.options, r.permit, |ev| {
                        if stop2.load(Ordering::Relaxed) {
                            return ControlFlow::Break(());
                        }
                        let msg = match ev {
                            SpeechEvent::Audio(s) => Msg::Chunk(voxide::audio::as_f32(s).to_vec()),
                            SpeechEvent::Word(w) => Msg::Word(Word::from(w)),
                            _ => return ControlFlow::Continue(()),
                        };
                        // A send fails when the iterator is gone: stop.
                        match tx.send(msg) {
                            Ok(()) => ControlFlow::Continue(()),
                            Err(_) => ControlFlow::Break(()),
                        }
                    });
                let _ = tx.send(Msg::End(result));
            })
            .map_err(|e| {
                crate::errors::raise("InternalError", format!("cannot start a thread: {e}"))
            })?;
        Ok(Stream {
            state: Mutex::new(State {
                rx: Some(rx),
                words: Vec::new(),
                samples: 0,
            }),
            stop,
            thread: Mutex::new(Some(thread)),
            rate,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next chunk (`None` at the end), waiting without the GIL.
    fn next_chunk(&self, py: Python<'_>) -> voxide::Result<Option<Vec<f32>>> {
        py.detach(|| {
            let mut st = self.lock();
            loop {
                let Some(rx) = st.rx.as_ref() else {
                    return Ok(None);
                };
                match rx.recv() {
                    Ok(Msg::Chunk(c)) => {
                        st.samples += c.len();
                        return Ok(Some(c));
                    }
                    Ok(Msg::Word(w)) => st.words.push(w),
                    Ok(Msg::End(r)) => {
                        st.rx = None;
                        return match r {
                            // Cancelled by `close`: just the end.
                            Err(voxide::Error::Cancelled) if self.stop.load(Ordering::Relaxed) => {
                                Ok(None)
                            }
                            r => r.map(|()| None),
                        };
                    }
                    Err(_) => {
                        st.rx = None;
                        return Ok(None);
                    }
                }
            }
        })
    }
}

#[pymethods]
impl Stream {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        match self.next_chunk(py).map_err(to_py)? {
            Some(chunk) => Ok(chunk.into_pyarray(py)),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    /// Stop the synthesis (if still running) and give its permit back;
    /// returns once the synthesis thread has ended. Idempotent.
    fn close(&self, py: Python<'_>) {
        self.stop.store(true, Ordering::Relaxed);
        py.detach(|| {
            // Dropping the receiver unblocks a thread waiting to send.
            self.lock().rx = None;
            let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(h) = handle {
                let _ = h.join();
            }
        });
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    /// Samples per second of the chunks.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// The words completed so far (each after the chunk that ends it).
    #[getter]
    fn words(&self, py: Python<'_>) -> Vec<Word> {
        py.detach(|| self.lock().words.clone())
    }

    /// Samples delivered so far.
    #[getter]
    fn samples_delivered(&self, py: Python<'_>) -> usize {
        py.detach(|| self.lock().samples)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Without joining: the thread stops at its next chunk and gives
        // the permit back then.
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(mut st) = self.state.lock() {
            st.rx = None;
        }
    }
}
