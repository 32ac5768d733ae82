//! The request scheduler: one actor thread per engine owns the device work;
//! requests arrive on a bounded queue (backpressure) and each active request
//! holds a slot, named by a [`State`], until it completes or its caller goes
//! away. Every step runs one chunk of one request: requests that have not
//! produced audio yet go first (time to first audio), the others take turns.
//!
//! Results stream back per request through a small bounded channel; a caller
//! that stops reading is not waited for (its chunk is kept and the actor moves
//! on), and a dropped [`Stream`] frees its slot at the next step.
//!
//! ```no_run
//! use voxide::scheduler::{Scheduler, SchedulerOptions};
//! use voxide::{Engine, SpeakOptions};
//! let engine = Engine::builder().voice("voices/en_US-joe-medium.onnx").build()?;
//! let sched = Scheduler::new(engine, SchedulerOptions::default())?;
//! let stream = sched.submit("Hello there.", None, &SpeakOptions::default())?;
//! let mut samples = Vec::new();
//! for chunk in stream {
//!     samples.extend_from_slice(&chunk?);
//! }
//! # Ok::<(), voxide::Error>(())
//! ```
//!
//! Not yet: batching the chunks of several requests into one launch (the
//! GPU's job, with masks for ragged lengths); on the CPU each step already
//! uses every core.

use crate::audio::AudioSample;
use crate::engine::{Engine, Job, SpeakOptions, Step};
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The slot of a request in the scheduler's arena: an index, or
/// [`State::EMPTY`] for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State(pub i64);

impl State {
    /// No slot.
    pub const EMPTY: State = State(-1);

    /// Whether this names a slot.
    pub fn is_empty(self) -> bool {
        self == State::EMPTY
    }
}

/// Scheduler settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// Requests waiting for a slot before `submit` blocks (`try_submit` fails).
    pub queue_depth: usize,
    /// Requests running at once (slots).
    pub max_active: usize,
    /// Chunks a request may have ready but unread before it is skipped.
    pub stream_depth: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            queue_depth: 64,
            max_active: 8,
            stream_depth: 4,
        }
    }
}

/// One message of a request's stream.
type Chunk = Result<Vec<AudioSample>>;

struct Request {
    job: Job,
    tx: SyncSender<Chunk>,
    dropped: Arc<AtomicBool>,
}

struct Active {
    state: State,
    job: Job,
    tx: SyncSender<Chunk>,
    /// Set when the caller drops its [`Stream`].
    dropped: Arc<AtomicBool>,
    /// A chunk the reader has not had room for yet.
    pending: Option<Chunk>,
    done: bool,
}

#[derive(Default)]
struct Counters {
    active: AtomicUsize,
    queued: AtomicUsize,
    completed: AtomicUsize,
    cancelled: AtomicUsize,
}

/// An actor running an engine's requests. Dropping it stops admitting; the
/// actor thread finishes the requests already queued (their streams stay
/// readable; dropping a stream cancels it) and then exits.
pub struct Scheduler {
    engine: Engine,
    tx: Option<SyncSender<Request>>,
    counters: Arc<Counters>,
    stream_depth: usize,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("active", &self.active())
            .field("queued", &self.queued())
            .finish()
    }
}

impl Scheduler {
    /// Start the actor thread for `engine`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero size; [`Error::Device`] if the
    /// thread cannot be started.
    pub fn new(engine: Engine, opts: SchedulerOptions) -> Result<Scheduler> {
        if opts.queue_depth == 0 || opts.max_active == 0 || opts.stream_depth == 0 {
            return Err(Error::InvalidArgument(
                "scheduler queue_depth, max_active and stream_depth must be at least 1".into(),
            ));
        }
        let (tx, rx) = mpsc::sync_channel(opts.queue_depth);
        let counters = Arc::new(Counters::default());
        let actor = Actor {
            engine: engine.clone(),
            rx,
            slots: (0..opts.max_active).map(|_| None).collect(),
            order: VecDeque::new(),
            counters: Arc::clone(&counters),
            buf: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("voxide-scheduler".into())
            .spawn(move || actor.run())
            .map_err(|e| Error::Device(format!("cannot start the scheduler thread: {e}")))?;
        Ok(Scheduler {
            engine,
            tx: Some(tx),
            counters,
            stream_depth: opts.stream_depth,
            thread: Some(thread),
        })
    }

    fn request(
        &self,
        text: &str,
        voice: Option<&str>,
        options: &SpeakOptions,
    ) -> Result<(Request, Stream)> {
        let job = self.engine.job(text, voice, options)?;
        let (tx, rx) = mpsc::sync_channel(self.stream_depth);
        let dropped = Arc::new(AtomicBool::new(false));
        Ok((
            Request {
                job,
                tx,
                dropped: Arc::clone(&dropped),
            },
            Stream { rx, dropped },
        ))
    }

    /// Queue a request, waiting while the queue is full. Text errors are
    /// returned here; synthesis errors arrive on the stream.
    ///
    /// # Errors
    /// [`Error::UnknownVoice`], [`Error::InvalidArgument`]; [`Error::Device`]
    /// if the actor has stopped.
    pub fn submit(
        &self,
        text: &str,
        voice: Option<&str>,
        options: &SpeakOptions,
    ) -> Result<Stream> {
        let (req, stream) = self.request(text, voice, options)?;
        let tx = self.sender()?;
        self.counters.queued.fetch_add(1, Ordering::SeqCst);
        tx.send(req).map_err(|_| {
            self.counters.queued.fetch_sub(1, Ordering::SeqCst);
            stopped()
        })?;
        Ok(stream)
    }

    /// Queue a request if there is room now.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the queue is full (backpressure), else as [`Scheduler::submit`].
    pub fn try_submit(
        &self,
        text: &str,
        voice: Option<&str>,
        options: &SpeakOptions,
    ) -> Result<Stream> {
        let (req, stream) = self.request(text, voice, options)?;
        let tx = self.sender()?;
        self.counters.queued.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(req) {
            Ok(()) => Ok(stream),
            Err(e) => {
                self.counters.queued.fetch_sub(1, Ordering::SeqCst);
                match e {
                    TrySendError::Full(_) => Err(Error::Timeout),
                    TrySendError::Disconnected(_) => Err(stopped()),
                }
            }
        }
    }

    fn sender(&self) -> Result<&SyncSender<Request>> {
        self.tx.as_ref().ok_or_else(stopped)
    }

    /// Requests holding a slot now.
    pub fn active(&self) -> usize {
        self.counters.active.load(Ordering::SeqCst)
    }

    /// Requests waiting in the queue.
    pub fn queued(&self) -> usize {
        self.counters.queued.load(Ordering::SeqCst)
    }

    /// Requests that ran to the end / were dropped by their caller, so far.
    pub fn finished(&self) -> (usize, usize) {
        (
            self.counters.completed.load(Ordering::SeqCst),
            self.counters.cancelled.load(Ordering::SeqCst),
        )
    }
}

impl Scheduler {
    /// Stop admitting and wait for the actor to finish the queued requests
    /// (each must be read to its end or dropped, or this waits for that).
    pub fn shutdown(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // Closing the queue is enough: the actor exits once its requests are
        // done. Not joined here, so a stream still held by the caller cannot
        // block the drop.
        self.tx = None;
    }
}

fn stopped() -> Error {
    Error::Device("the scheduler has stopped".into())
}

/// The audio of one request, chunk by chunk; iterate until `None`. Dropping
/// it cancels the request.
#[derive(Debug)]
pub struct Stream {
    rx: Receiver<Chunk>,
    dropped: Arc<AtomicBool>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl Iterator for Stream {
    type Item = Result<Vec<AudioSample>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

struct Actor {
    engine: Engine,
    rx: Receiver<Request>,
    slots: Vec<Option<Active>>,
    /// Slot indices in turn order.
    order: VecDeque<usize>,
    counters: Arc<Counters>,
    buf: Vec<f32>,
}

/// How long the actor sleeps when every active reader is full.
const IDLE_WAIT: Duration = Duration::from_millis(2);

impl Actor {
    fn run(mut self) {
        let mut open = true;
        loop {
            // Admit queued requests into free slots; block only when idle.
            while open {
                let Some(free) = self.slots.iter().position(Option::is_none) else {
                    break;
                };
                let next = if self.order.is_empty() {
                    self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
                } else {
                    self.rx.recv_timeout(Duration::ZERO)
                };
                match next {
                    Ok(r) => {
                        self.counters.queued.fetch_sub(1, Ordering::SeqCst);
                        self.counters.active.fetch_add(1, Ordering::SeqCst);
                        self.slots[free] = Some(Active {
                            state: State(free as i64),
                            job: r.job,
                            tx: r.tx,
                            dropped: r.dropped,
                            pending: None,
                            done: false,
                        });
                        self.order.push_back(free);
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
            }
            if self.order.is_empty() {
                if open {
                    continue;
                }
                return;
            }
            if !self.turn() {
                std::thread::sleep(IDLE_WAIT);
            }
        }
    }

    /// Run one step of the most urgent request; false if none could move.
    fn turn(&mut self) -> bool {
        // New requests (no audio yet) first, oldest first; then round robin.
        let pick = self
            .order
            .iter()
            .position(|&i| self.slots[i].as_ref().is_some_and(|a| !a.job.started()))
            .unwrap_or(0);
        let n = self.order.len();
        for k in 0..n {
            let pos = (pick + k) % n;
            let i = self.order[pos];
            match self.advance(i) {
                Progress::Moved => {
                    // Round robin: the one that moved goes to the back.
                    if let Some(p) = self.order.iter().position(|&x| x == i) {
                        self.order.remove(p);
                        if self.slots[i].is_some() {
                            self.order.push_back(i);
                        }
                    }
                    return true;
                }
                Progress::Freed => {
                    self.order.retain(|&x| x != i);
                    return true;
                }
                Progress::Blocked => {}
            }
        }
        false
    }

    fn advance(&mut self, i: usize) -> Progress {
        let Some(a) = self.slots[i].as_mut() else {
            return Progress::Freed;
        };
        if a.dropped.load(Ordering::SeqCst) {
            return self.free(i, false);
        }
        // Deliver what is waiting first.
        if let Some(chunk) = a.pending.take() {
            match a.tx.try_send(chunk) {
                Ok(()) => {}
                Err(TrySendError::Full(c)) => {
                    a.pending = Some(c);
                    return Progress::Blocked;
                }
                Err(TrySendError::Disconnected(_)) => return self.free(i, false),
            }
        }
        if a.done {
            return self.free(i, true);
        }
        let out = loop {
            match self.engine.step(&mut a.job, &mut self.buf) {
                Ok(Step::Samples) => break Ok(crate::audio::from_f32(&self.buf).to_vec()),
                Ok(Step::SentenceEnd) => continue,
                Ok(Step::Done) => return self.free(i, true),
                Err(e) => {
                    a.done = true;
                    break Err(e);
                }
            }
        };
        match a.tx.try_send(out) {
            Ok(()) => Progress::Moved,
            Err(TrySendError::Full(c)) => {
                a.pending = Some(c);
                Progress::Moved
            }
            Err(TrySendError::Disconnected(_)) => self.free(i, false),
        }
    }

    fn free(&mut self, i: usize, completed: bool) -> Progress {
        if let Some(a) = self.slots[i].take() {
            debug_assert_eq!(a.state, State(i as i64));
            self.counters.active.fetch_sub(1, Ordering::SeqCst);
            let c = if completed {
                &self.counters.completed
            } else {
                &self.counters.cancelled
            };
            c.fetch_add(1, Ordering::SeqCst);
        }
        Progress::Freed
    }
}

enum Progress {
    Moved,
    Blocked,
    Freed,
}
