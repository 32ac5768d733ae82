//! The scheduler: one actor thread per device owns the device-side state of
//! every active request. Requests arrive on a bounded queue (backpressure:
//! a full queue blocks the caller, or fails with [`Error::Timeout`] /
//! [`Error::Busy`] naming the queue depth). Each admitted request
//! holds a slot [`State`] in the actor's arena and streams its results back
//! through its own bounded [`Stream`]. Dropping the stream cancels the
//! request: the actor frees the slot before its next step.
//!
//! Dynamic batching: at each step the actor gathers the ready work of the
//! active requests into ONE batch and hands it to [`Job::step_batch`] (the
//! engine's job runs their flow + decoder chunks as one batched launch). A
//! batch holds at most [`SchedulerOptions::max_batch`] requests; its size is
//! rounded up to a bucket (1, 2, 4, … [`bucket`]) for the device to replay the
//! bucket's recorded launch.
//!
//! Order of work: requests that have not delivered their first item yet form
//! their own batch, ahead of requests already streaming (time to first audio
//! first, oldest first); the rest are batched round-robin. By default work
//! runs as soon as it is ready (no waiting for a batch to fill), so a lone
//! request is never held back; [`SchedulerOptions::max_wait`] lets new
//! requests wait a bounded time for others to join their first batch.
//!
//! Event-driven: the actor never sleeps or polls. With nothing runnable it
//! blocks on one wake-up primitive (a sticky flag + condition variable),
//! rung by a submission, a caller taking an item from a stream the actor
//! found full, a cancelled (dropped) stream, and the last handle going away;
//! a `max_wait` batch waits on the same primitive with a deadline. Submitters
//! waiting for room in the queue block on its condition variable.
//!
//! Files: `job` (the [`Job`] trait, [`SchedulerOptions`]), `slots` ([`State`],
//! [`SlotArena`]), `stream` ([`Stream`]), `queue` (the submission queue),
//! `wake` (the actor's wake-up), `batch` ([`bucket`], the choice of the next
//! batch), `actor` (the thread's loop); this file holds the [`Scheduler`]
//! handle.
//!
//! The scheduler is device-independent: what a step computes is the [`Job`]'s
//! business (the engine's job runs the model's stages on its backend).

mod actor;
mod batch;
mod job;
mod queue;
mod slots;
mod stream;
mod wake;

pub use batch::bucket;
pub use job::{Job, SchedulerOptions};
pub use slots::{SlotArena, State};
pub use stream::Stream;

use crate::error::{Error, Result};
use actor::{Stats, Submit};
use queue::{Inlet, Refused, Wait};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wake::Bell;

/// Handle to a device's actor. Cloning shares the actor; the actor thread ends
/// when every handle is dropped and its last request is finished.
pub struct Scheduler<J: Job> {
    /// Dropped with the last handle: that closes the queue and wakes the actor.
    inlet: Arc<Inlet<Submit<J>>>,
    bell: Arc<Bell>,
    stats: Arc<Stats>,
    opts: SchedulerOptions,
}

impl<J: Job> Clone for Scheduler<J> {
    fn clone(&self) -> Self {
        Scheduler {
            inlet: self.inlet.clone(),
            bell: self.bell.clone(),
            stats: self.stats.clone(),
            opts: self.opts,
        }
    }
}

impl<J: Job> std::fmt::Debug for Scheduler<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("opts", &self.opts)
            .field("active", &self.active())
            .finish()
    }
}

impl<J: Job> Scheduler<J> {
    /// Start the actor thread.
    ///
    /// # Errors
    /// [`Error::Device`] when the thread cannot be spawned.
    pub fn start(name: &str, opts: SchedulerOptions) -> Result<Self> {
        let opts = opts.normalized();
        let bell = Arc::new(Bell::default());
        let (inlet, outlet) = queue::bounded(opts.queue_depth, bell.clone());
        let stats = Arc::new(Stats::default());
        let (st, b) = (stats.clone(), bell.clone());
        std::thread::Builder::new()
            .name(format!("voxide-sched-{name}"))
            .spawn(move || actor::run(outlet, b, st, opts))
            .map_err(|e| Error::Device(format!("cannot start the scheduler thread: {e}")))?;
        Ok(Scheduler {
            inlet: Arc::new(inlet),
            bell,
            stats,
            opts,
        })
    }

    /// The options in force.
    pub fn options(&self) -> SchedulerOptions {
        self.opts
    }

    /// Requests holding a slot now.
    pub fn active(&self) -> usize {
        self.stats.active.load(Ordering::Acquire)
    }

    /// Requests admitted so far.
    pub fn admitted(&self) -> usize {
        self.stats.admitted.load(Ordering::Acquire)
    }

    /// Requests finished (completed, failed or cancelled) so far.
    pub fn finished(&self) -> usize {
        self.stats.finished.load(Ordering::Acquire)
    }

    /// Batched steps run so far (one per [`Job::step_batch`] call).
    pub fn batches(&self) -> usize {
        self.stats.batches.load(Ordering::Acquire)
    }

    /// Request steps run so far, over all batches (`/ batches()` = mean batch size).
    pub fn batched_steps(&self) -> usize {
        self.stats.batched.load(Ordering::Acquire)
    }

    /// The largest batch run so far.
    pub fn largest_batch(&self) -> usize {
        self.stats.largest.load(Ordering::Acquire)
    }

    /// Queue `job`, waiting for room as `wait` allows.
    fn push(&self, job: J, wait: Wait) -> Result<Stream<J::Item>> {
        let (tx, stream) = stream::channel(self.opts.stream_depth, self.bell.clone());
        match self.inlet.push(Submit { job, tx }, wait) {
            Ok(()) => Ok(stream),
            Err(Refused::Full) => Err(Error::Busy(format!(
                "the scheduler queue is full ({} requests waiting)",
                self.inlet.depth()
            ))),
            Err(Refused::TimedOut) => Err(Error::Timeout),
            Err(Refused::Stopped) => Err(Error::Device("the scheduler has stopped".into())),
        }
    }

    /// Queue a request, blocking while the queue is full.
    ///
    /// # Errors
    /// [`Error::Device`] when the actor has stopped.
    pub fn submit(&self, job: J) -> Result<Stream<J::Item>> {
        self.push(job, Wait::Forever)
    }

    /// Queue a request without blocking.
    ///
    /// # Errors
    /// [`Error::Busy`] when the queue is full (naming its depth);
    /// [`Error::Device`] when the actor has stopped.
    pub fn try_submit(&self, job: J) -> Result<Stream<J::Item>> {
        self.push(job, Wait::No)
    }

    /// Queue a request, waiting at most `timeout` for room in the queue (woken
    /// as soon as the actor takes a request out of it).
    ///
    /// # Errors
    /// [`Error::Timeout`] when the queue stayed full; [`Error::Device`] when the actor has stopped.
    pub fn submit_timeout(&self, job: J, timeout: Duration) -> Result<Stream<J::Item>> {
        let wait = Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until);
        self.push(job, wait)
    }
}
