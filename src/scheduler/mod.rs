//! The scheduler: one actor thread per device owns the device-side state of
//! every active request. Requests arrive on a bounded channel (backpressure:
//! a full queue blocks the caller, or fails with [`Error::Timeout`] /
//! [`Error::InvalidArgument`] naming the queue depth). Each admitted request
//! holds a slot [`State`] in the actor's arena and streams its results back
//! through its own bounded channel ([`Stream`]). Dropping the stream cancels
//! the request: the actor frees the slot before its next step.
//!
//! Order of work: a request that has not delivered its first item yet goes
//! ahead of requests already streaming (time to first audio first); the rest
//! are served round-robin. Work runs as soon as it is ready (no waiting for a
//! batch to fill), so a lone request is never held back.
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
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            queue_depth: 64,
            max_active: 64,
            stream_depth: 4,
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
}

#[derive(Default)]
struct Stats {
    active: AtomicUsize,
    admitted: AtomicUsize,
    finished: AtomicUsize,
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
        let opts = SchedulerOptions {
            queue_depth: opts.queue_depth.max(1),
            max_active: opts.max_active.max(1),
            stream_depth: opts.stream_depth.max(1),
        };
        let (tx, rx) = mpsc::sync_channel(opts.queue_depth);
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        std::thread::Builder::new()
            .name(format!("voxide-sched-{name}"))
            .spawn(move || actor(rx, st, opts.max_active))
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

fn actor<J: Job>(rx: Receiver<Submit<J>>, stats: Arc<Stats>, max_active: usize) {
    let mut arena: SlotArena<Active<J>> = SlotArena::new(max_active);
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
            if s.cancel.load(Ordering::Acquire) {
                stats.admitted.fetch_add(1, Ordering::AcqRel);
                stats.finished.fetch_add(1, Ordering::AcqRel);
                continue;
            }
            seq += 1;
            let a = Active {
                job: s.job,
                tx: s.tx,
                cancel: s.cancel,
                pending: None,
                started: false,
                done: false,
                seq,
            };
            if arena.alloc(a).is_some() {
                stats.admitted.fetch_add(1, Ordering::AcqRel);
                stats.active.store(arena.live(), Ordering::Release);
            }
        }
        if !open && arena.live() == 0 {
            return;
        }
        // Free cancelled and finished slots, and flush pending items.
        let mut runnable: Vec<(bool, u64, State)> = Vec::new();
        for st in arena.states() {
            let Some(a) = arena.get_mut(st) else { continue };
            let mut free = a.cancel.load(Ordering::Acquire);
            if !free {
                if let Some(item) = a.pending.take() {
                    match a.tx.try_send(item) {
                        Ok(()) => {}
                        Err(TrySendError::Full(back)) => a.pending = Some(back),
                        Err(TrySendError::Disconnected(_)) => free = true,
                    }
                }
                if a.done && a.pending.is_none() {
                    free = true;
                }
            }
            if free {
                arena.release(st);
                stats.finished.fetch_add(1, Ordering::AcqRel);
                continue;
            }
            if a.pending.is_none() {
                runnable.push((a.started, a.seq, st));
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
        // New requests (no item delivered yet) first, oldest first; then round-robin.
        let pick = runnable
            .iter()
            .filter(|r| !r.0)
            .min_by_key(|r| r.1)
            .or_else(|| {
                runnable
                    .iter()
                    .filter(|r| r.1 > last_served)
                    .min_by_key(|r| r.1)
                    .or_else(|| runnable.iter().min_by_key(|r| r.1))
            })
            .map(|r| r.2);
        let Some(st) = pick else { continue };
        let Some(a) = arena.get_mut(st) else { continue };
        last_served = a.seq;
        let out = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.job.step())) {
            Ok(r) => r,
            Err(_) => Err(Error::Panic("a scheduled request panicked".into())),
        };
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
                    arena.release(st);
                    stats.finished.fetch_add(1, Ordering::AcqRel);
                    stats.active.store(arena.live(), Ordering::Release);
                    continue;
                }
            }
        }
        if a.done && a.pending.is_none() {
            arena.release(st);
            stats.finished.fetch_add(1, Ordering::AcqRel);
            stats.active.store(arena.live(), Ordering::Release);
        }
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
