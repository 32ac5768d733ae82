//! The scheduler: one actor thread per device owns the device-side state of
//! every active request. Requests arrive on a bounded channel (backpressure:
//! a full queue blocks the caller, or fails with [`Error::Timeout`] /
//! [`Error::InvalidArgument`] naming the queue depth). Each admitted request
//! holds a slot [`State`] in the actor's arena and streams its results back
//! through its own bounded channel ([`Stream`]). Dropping the stream cancels
//! the request: the actor frees the slot before its next step.
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
//! The scheduler is device-independent: what a step computes is the [`Job`]'s
//! business (the engine's job runs the model's stages on its backend).

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The slot of a request in the actor's batch arena; [`State::EMPTY`] when none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State(pub i64);

impl State {
    /// No slot.
    pub const EMPTY: State = State(-1);

    /// The slot index, `None` for [`State::EMPTY`] (or any negative value).
    pub fn index(self) -> Option<usize> {
        usize::try_from(self.0).ok()
    }
}

/// A fixed-capacity arena of slots with a free list: allocation and release are O(1).
#[derive(Debug)]
pub struct SlotArena<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> SlotArena<T> {
    /// An arena of `capacity` slots (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SlotArena {
            slots: (0..capacity).map(|_| None).collect(),
            free: (0..capacity).rev().collect(),
        }
    }

    /// Put `value` in a free slot; `None` when all slots are taken.
    pub fn alloc(&mut self, value: T) -> Option<State> {
        let i = self.free.pop()?;
        self.slots[i] = Some(value);
        Some(State(i as i64))
    }

    /// Take the value out of slot `s` and free the slot. `None` for an empty or invalid slot.
    pub fn release(&mut self, s: State) -> Option<T> {
        let i = s.index()?;
        let v = self.slots.get_mut(i)?.take()?;
        self.free.push(i);
        Some(v)
    }

    /// The value in slot `s`.
    pub fn get_mut(&mut self, s: State) -> Option<&mut T> {
        self.slots.get_mut(s.index()?)?.as_mut()
    }

    /// Slots in use.
    pub fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Whether every slot is taken.
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// The taken slots and their values, in index order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (State, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, v)| v.as_mut().map(|v| (State(i as i64), v)))
    }

    /// The taken slots, in index order.
    pub fn states(&self) -> Vec<State> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .map(|i| State(i as i64))
            .collect()
    }
}

/// Batch sizes the device records graphs for: 1, 2, 4, … up to `max` (a power of two).
pub fn bucket(n: usize, max: usize) -> usize {
    let max = max.max(1).next_power_of_two();
    n.max(1).next_power_of_two().min(max)
}

/// One request's work, advanced one step at a time by the actor.
pub trait Job: Send + 'static {
    /// What a step delivers to the caller.
    type Item: Send + 'static;
    /// Run the next step: `Ok(Some(item))` to deliver, `Ok(None)` when done.
    ///
    /// # Errors
    /// Any error ends the request and is delivered to its caller.
    fn step(&mut self) -> Result<Option<Self::Item>>;

    /// Run the next step of every job in `jobs` together (one batched launch
    /// where the device allows), returning one result per job, in order.
    /// `bucket` is `jobs.len()` rounded up to a batch bucket: a device that
    /// replays recorded launches per bucket pads the batch to it with empty
    /// slots; the CPU needs no padding. The default runs [`Job::step`] of
    /// each job in turn.
    fn step_batch(jobs: &mut [&mut Self], bucket: usize) -> Vec<Result<Option<Self::Item>>>
    where
        Self: Sized,
    {
        let _ = bucket;
        jobs.iter_mut().map(|j| j.step()).collect()
    }
}

/// Scheduler options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// Requests waiting in the queue before submitters block.
    pub queue_depth: usize,
    /// Requests active at once (slots in the arena).
    pub max_active: usize,
    /// Items buffered per request before the actor waits for its caller.
    pub stream_depth: usize,
    /// Requests per batched step at most (rounded down to a power of two:
    /// the largest bucket).
    pub max_batch: usize,
    /// How long a new request's first batch may wait for more requests to
    /// arrive and join it (only while the batch has room and a slot is free).
    /// Zero (the default): never wait, so a lone request is never held back.
    pub max_wait: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            queue_depth: 64,
            max_active: 64,
            stream_depth: 4,
            max_batch: 64,
            max_wait: Duration::ZERO,
        }
    }
}

struct Submit<J: Job> {
    job: J,
    tx: SyncSender<Result<J::Item>>,
    cancel: Arc<AtomicBool>,
}

struct Active<J: Job> {
    job: J,
    tx: SyncSender<Result<J::Item>>,
    cancel: Arc<AtomicBool>,
    /// An item the caller's stream had no room for yet.
    pending: Option<Result<J::Item>>,
    started: bool,
    done: bool,
    seq: u64,
    admitted_at: Instant,
}

#[derive(Default)]
struct Stats {
    active: AtomicUsize,
    admitted: AtomicUsize,
    finished: AtomicUsize,
    batches: AtomicUsize,
    batched: AtomicUsize,
    largest: AtomicUsize,
}

/// Handle to a device's actor. Cloning shares the actor; the actor thread ends
/// when every handle is dropped and its last request is finished.
pub struct Scheduler<J: Job> {
    tx: SyncSender<Submit<J>>,
    stats: Arc<Stats>,
    opts: SchedulerOptions,
}

impl<J: Job> Clone for Scheduler<J> {
    fn clone(&self) -> Self {
        Scheduler {
            tx: self.tx.clone(),
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

/// A request's results, in order. Dropping it cancels the request.
pub struct Stream<T> {
    rx: Receiver<Result<T>>,
    cancel: Arc<AtomicBool>,
}

impl<T> Stream<T> {
    /// Cancel now (also done by drop).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }
}

impl<T> Iterator for Stream<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        self.rx.recv().ok()
    }
}

impl<T> Drop for Stream<T> {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl<J: Job> Scheduler<J> {
    /// Start the actor thread.
    ///
    /// # Errors
    /// [`Error::Device`] when the thread cannot be spawned.
    pub fn start(name: &str, opts: SchedulerOptions) -> Result<Self> {
        let max_batch = opts.max_batch.max(1);
        let opts = SchedulerOptions {
            queue_depth: opts.queue_depth.max(1),
            max_active: opts.max_active.max(1),
            stream_depth: opts.stream_depth.max(1),
            // The largest bucket at most.
            max_batch: 1 << (usize::BITS - 1 - max_batch.leading_zeros()),
            max_wait: opts.max_wait,
        };
        let (tx, rx) = mpsc::sync_channel(opts.queue_depth);
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        std::thread::Builder::new()
            .name(format!("voxide-sched-{name}"))
            .spawn(move || actor(rx, st, opts))
            .map_err(|e| Error::Device(format!("cannot start the scheduler thread: {e}")))?;
        Ok(Scheduler { tx, stats, opts })
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

    fn pair(&self, job: J) -> (Submit<J>, Stream<J::Item>) {
        let (tx, rx) = mpsc::sync_channel(self.opts.stream_depth);
        let cancel = Arc::new(AtomicBool::new(false));
        (
            Submit {
                job,
                tx,
                cancel: cancel.clone(),
            },
            Stream { rx, cancel },
        )
    }

    /// Queue a request, blocking while the queue is full.
    ///
    /// # Errors
    /// [`Error::Device`] when the actor has stopped.
    pub fn submit(&self, job: J) -> Result<Stream<J::Item>> {
        let (s, stream) = self.pair(job);
        self.tx
            .send(s)
            .map_err(|_| Error::Device("the scheduler has stopped".into()))?;
        Ok(stream)
    }

    /// Queue a request without blocking.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the queue is full (naming its depth);
    /// [`Error::Device`] when the actor has stopped.
    pub fn try_submit(&self, job: J) -> Result<Stream<J::Item>> {
        let (s, stream) = self.pair(job);
        match self.tx.try_send(s) {
            Ok(()) => Ok(stream),
            Err(TrySendError::Full(_)) => Err(Error::InvalidArgument(format!(
                "the scheduler queue is full ({} requests waiting)",
                self.opts.queue_depth
            ))),
            Err(TrySendError::Disconnected(_)) => {
                Err(Error::Device("the scheduler has stopped".into()))
            }
        }
    }

    /// Queue a request, waiting at most `timeout` for room in the queue.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the queue stayed full; [`Error::Device`] when the actor has stopped.
    pub fn submit_timeout(&self, job: J, timeout: Duration) -> Result<Stream<J::Item>> {
        let deadline = Instant::now() + timeout;
        let (mut s, stream) = self.pair(job);
        loop {
            match self.tx.try_send(s) {
                Ok(()) => return Ok(stream),
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout);
                    }
                    s = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(Error::Device("the scheduler has stopped".into()))
                }
            }
        }
    }
}

/// Take a submission into a free slot (or count it finished when it was
/// cancelled before it started).
fn admit<J: Job>(arena: &mut SlotArena<Active<J>>, stats: &Stats, s: Submit<J>, seq: &mut u64) {
    stats.admitted.fetch_add(1, Ordering::AcqRel);
    if s.cancel.load(Ordering::Acquire) {
        stats.finished.fetch_add(1, Ordering::AcqRel);
        return;
    }
    *seq += 1;
    let a = Active {
        job: s.job,
        tx: s.tx,
        cancel: s.cancel,
        pending: None,
        started: false,
        done: false,
        seq: *seq,
        admitted_at: Instant::now(),
    };
    if arena.alloc(a).is_none() {
        // Callers admit only while a slot is free; count it so nothing is lost.
        stats.finished.fetch_add(1, Ordering::AcqRel);
    }
    stats.active.store(arena.live(), Ordering::Release);
}

/// Free slot `st` (finished, failed, cancelled or caller gone).
fn free<J: Job>(arena: &mut SlotArena<Active<J>>, stats: &Stats, st: State) {
    if arena.release(st).is_some() {
        stats.finished.fetch_add(1, Ordering::AcqRel);
    }
    stats.active.store(arena.live(), Ordering::Release);
}

fn actor<J: Job>(rx: Receiver<Submit<J>>, stats: Arc<Stats>, opts: SchedulerOptions) {
    let mut arena: SlotArena<Active<J>> = SlotArena::new(opts.max_active);
    let mut seq = 0u64;
    let mut open = true;
    // Round-robin cursor over started requests: the sequence number served last.
    let mut last_served = 0u64;
    loop {
        // Admit while there is room. Block only when nothing is active.
        while open && !arena.is_full() {
            let got = if arena.live() == 0 {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(s) => Some(s),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            } else {
                match rx.try_recv() {
                    Ok(s) => Some(s),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            };
            let Some(s) = got else { break };
            admit(&mut arena, &stats, s, &mut seq);
        }
        if !open && arena.live() == 0 {
            return;
        }
        // Free cancelled and finished slots, and flush pending items.
        let mut runnable: Vec<(bool, u64, State, Instant)> = Vec::new();
        for st in arena.states() {
            let Some(a) = arena.get_mut(st) else { continue };
            let mut gone = a.cancel.load(Ordering::Acquire);
            if !gone {
                if let Some(item) = a.pending.take() {
                    match a.tx.try_send(item) {
                        Ok(()) => {}
                        Err(TrySendError::Full(back)) => a.pending = Some(back),
                        Err(TrySendError::Disconnected(_)) => gone = true,
                    }
                }
                if a.done && a.pending.is_none() {
                    gone = true;
                }
            }
            if gone {
                free(&mut arena, &stats, st);
                continue;
            }
            if a.pending.is_none() {
                runnable.push((a.started, a.seq, st, a.admitted_at));
            }
        }
        stats.active.store(arena.live(), Ordering::Release);
        if runnable.is_empty() {
            if arena.live() > 0 {
                // Every active caller is behind: wait for one to read.
                std::thread::sleep(Duration::from_micros(200));
            }
            continue;
        }
        // New requests (no item delivered yet) form their own batch, oldest
        // first; otherwise the started ones, round-robin from the cursor.
        let mut fresh: Vec<_> = runnable.iter().filter(|r| !r.0).collect();
        let batch: Vec<State> = if !fresh.is_empty() {
            fresh.sort_by_key(|r| r.1);
            // Bounded wait for more requests to join a first batch with room.
            if !opts.max_wait.is_zero() && fresh.len() < opts.max_batch && open && !arena.is_full()
            {
                let deadline = fresh[0].3 + opts.max_wait;
                let now = Instant::now();
                if now < deadline {
                    match rx.recv_timeout(deadline - now) {
                        Ok(s) => admit(&mut arena, &stats, s, &mut seq),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => open = false,
                    }
                    // Re-gather (cancellations may have come in meanwhile).
                    continue;
                }
            }
            fresh.iter().take(opts.max_batch).map(|r| r.2).collect()
        } else {
            let mut old: Vec<_> = runnable.iter().collect();
            old.sort_by_key(|r| (r.1 <= last_served, r.1));
            old.iter().take(opts.max_batch).map(|r| r.2).collect()
        };
        run_batch(&mut arena, &stats, &batch, &mut last_served, opts.max_batch);
    }
}

/// One batched step of the requests in slots `batch` (in that order), then
/// delivery of their items and release of finished slots.
fn run_batch<J: Job>(
    arena: &mut SlotArena<Active<J>>,
    stats: &Stats,
    batch: &[State],
    last_served: &mut u64,
    max_batch: usize,
) {
    let n = batch.len();
    if n == 0 {
        return;
    }
    let mut release = Vec::new();
    {
        let mut chosen: Vec<(usize, State, &mut Active<J>)> = arena
            .iter_mut()
            .filter_map(|(st, a)| batch.iter().position(|&b| b == st).map(|k| (k, st, a)))
            .collect();
        chosen.sort_by_key(|c| c.0);
        // The round-robin cursor moves past a batch of started requests.
        if let Some(last) = chosen.last().filter(|c| c.2.started) {
            *last_served = last.2.seq;
        }
        let outs = {
            let mut jobs: Vec<&mut J> = chosen.iter_mut().map(|c| &mut c.2.job).collect();
            let k = bucket(jobs.len(), max_batch);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                J::step_batch(&mut jobs, k)
            })) {
                Ok(v) if v.len() == jobs.len() => v,
                Ok(v) => {
                    let msg = format!(
                        "a batched step returned {} results for {} requests",
                        v.len(),
                        jobs.len()
                    );
                    (0..jobs.len())
                        .map(|_| Err(Error::Device(msg.clone())))
                        .collect()
                }
                Err(_) => (0..jobs.len())
                    .map(|_| Err(Error::Panic("a scheduled request panicked".into())))
                    .collect(),
            }
        };
        stats.batches.fetch_add(1, Ordering::AcqRel);
        stats.batched.fetch_add(n, Ordering::AcqRel);
        stats.largest.fetch_max(n, Ordering::AcqRel);
        for ((_, st, a), out) in chosen.into_iter().zip(outs) {
            match out {
                Ok(Some(item)) => {
                    a.started = true;
                    a.pending = Some(Ok(item));
                }
                Ok(None) => a.done = true,
                Err(e) => {
                    a.done = true;
                    a.pending = Some(Err(e));
                }
            }
            if let Some(item) = a.pending.take() {
                match a.tx.try_send(item) {
                    Ok(()) => {}
                    Err(TrySendError::Full(back)) => a.pending = Some(back),
                    Err(TrySendError::Disconnected(_)) => {
                        release.push(st);
                        continue;
                    }
                }
            }
            if a.done && a.pending.is_none() {
                release.push(st);
            }
        }
    }
    for st in release {
        free(arena, stats, st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_state_is_minus_one() {
        assert_eq!(State::EMPTY.0, -1);
        assert_eq!(State::EMPTY.index(), None);
    }

    #[test]
    fn arena_reuses_slots() {
        let mut a = SlotArena::new(2);
        let x = a.alloc(1).unwrap();
        let y = a.alloc(2).unwrap();
        assert!(a.alloc(3).is_none());
        assert_eq!(a.release(x), Some(1));
        assert_eq!(a.release(x), None);
        assert_eq!(a.live(), 1);
        let z = a.alloc(4).unwrap();
        assert_eq!(z, x);
        assert_ne!(y, z);
        assert_eq!(a.release(State::EMPTY), None);
    }

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(bucket(0, 64), 1);
        assert_eq!(bucket(1, 64), 1);
        assert_eq!(bucket(3, 64), 4);
        assert_eq!(bucket(33, 64), 64);
        assert_eq!(bucket(300, 64), 64);
    }
}
