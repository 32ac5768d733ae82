//! The actor thread: admits queued requests into slots, runs their batched
//! steps, delivers items, frees slots, keeps the stats, and blocks on its
//! [`Bell`] whenever nothing is runnable.

use super::batch::{bucket, Next, Policy, Ready};
use super::job::{Job, SchedulerOptions};
use super::queue::{Outlet, Pop};
use super::slots::{SlotArena, State};
use super::stream::{Offer, Tx};
use super::wake::Bell;
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A request as queued: its job and the actor's end of its stream.
pub(crate) struct Submit<J: Job> {
    pub(crate) job: J,
    pub(crate) tx: Tx<J::Item>,
}

/// An admitted request, in its slot.
struct Active<J: Job> {
    job: J,
    tx: Tx<J::Item>,
    /// An item the caller's stream had no room for yet.
    pending: Option<Result<J::Item>>,
    started: bool,
    done: bool,
    seq: u64,
    admitted_at: Instant,
}

impl<J: Job> Active<J> {
    /// Hand the pending item over if the stream has room; whether the slot
    /// can be freed (the caller cancelled, or the request is done and
    /// everything delivered).
    fn flush(&mut self) -> Flush {
        match self.tx.offer(&mut self.pending) {
            Offer::Cancelled => Flush::Free,
            Offer::Open if self.done => Flush::Free,
            Offer::Open => Flush::Ready,
            Offer::Full => Flush::Blocked,
        }
    }
}

enum Flush {
    /// Ready for its next step.
    Ready,
    /// Waiting for its caller to take an item.
    Blocked,
    /// Finished, failed or cancelled: free the slot.
    Free,
}

/// Counters the handles read.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) active: AtomicUsize,
    pub(crate) admitted: AtomicUsize,
    pub(crate) finished: AtomicUsize,
    pub(crate) batches: AtomicUsize,
    pub(crate) batched: AtomicUsize,
    pub(crate) largest: AtomicUsize,
}

struct Actor<J: Job> {
    arena: SlotArena<Active<J>>,
    stats: Arc<Stats>,
    /// Admissions so far (the last request's sequence number).
    seq: u64,
    /// Round-robin cursor over started requests: the sequence number served last.
    last_served: u64,
    policy: Policy,
}

/// The actor thread's body: runs until every handle is gone (the queue is
/// closed) and the last admitted request has ended.
pub(crate) fn run<J: Job>(
    inbox: Outlet<Submit<J>>,
    bell: Arc<Bell>,
    stats: Arc<Stats>,
    opts: SchedulerOptions,
) {
    let mut actor = Actor {
        arena: SlotArena::new(opts.max_active),
        stats,
        seq: 0,
        last_served: 0,
        policy: Policy {
            max_batch: opts.max_batch,
            max_wait: opts.max_wait,
        },
    };
    let mut open = true;
    let mut ready = Vec::new();
    loop {
        // Sweep before admitting: slots the sweep frees (cancelled or ended
        // requests) go to queued requests in the same pass, so the actor never
        // waits with a free slot and a non-empty queue (a cancellation and a
        // submission may have reached it as one ring).
        actor.sweep(&mut ready);
        while open && !actor.arena.is_full() {
            match inbox.pop() {
                Pop::Item(s) => ready.extend(actor.admit(s)),
                Pop::Empty => break,
                Pop::Closed => open = false,
            }
        }
        if !open && actor.arena.live() == 0 {
            return;
        }
        let can_grow = open && !actor.arena.is_full();
        match actor
            .policy
            .next(&mut ready, can_grow, actor.last_served, Instant::now())
        {
            Next::Run(batch) => actor.run_batch(&batch),
            // Every event that can change the answer rings the bell: a
            // submission, room in a full stream, a cancellation, the last
            // handle going. A ring since the sweep makes this return at once.
            Next::Wait(deadline) => {
                bell.wait(deadline);
            }
        }
    }
}

impl<J: Job> Actor<J> {
    /// Take a submission into a free slot, ready for its first step (or
    /// count it finished when it was cancelled before it started).
    fn admit(&mut self, s: Submit<J>) -> Option<Ready> {
        self.stats.admitted.fetch_add(1, Ordering::AcqRel);
        if s.tx.is_cancelled() {
            self.stats.finished.fetch_add(1, Ordering::AcqRel);
            return None;
        }
        self.seq += 1;
        let admitted_at = Instant::now();
        let a = Active {
            job: s.job,
            tx: s.tx,
            pending: None,
            started: false,
            done: false,
            seq: self.seq,
            admitted_at,
        };
        let slot = self.arena.alloc(a);
        if slot.is_none() {
            // Callers admit only while a slot is free; count it so nothing is lost.
            self.stats.finished.fetch_add(1, Ordering::AcqRel);
        }
        self.stats
            .active
            .store(self.arena.live(), Ordering::Release);
        Some(Ready {
            started: false,
            seq: self.seq,
            slot: slot?,
            admitted_at,
        })
    }

    /// Free slot `st` (finished, failed, cancelled or caller gone); dropping
    /// the request ends its stream.
    fn free(&mut self, st: State) {
        if self.arena.release(st).is_some() {
            self.stats.finished.fetch_add(1, Ordering::AcqRel);
        }
        self.stats
            .active
            .store(self.arena.live(), Ordering::Release);
    }

    /// Flush pending items, free ended requests, and list the ready ones.
    fn sweep(&mut self, ready: &mut Vec<Ready>) {
        ready.clear();
        let mut st = State::EMPTY;
        while let Some(next) = self.arena.next_after(st) {
            st = next;
            let Some(a) = self.arena.get_mut(st) else {
                continue;
            };
            match a.flush() {
                Flush::Ready => ready.push(Ready {
                    started: a.started,
                    seq: a.seq,
                    slot: st,
                    admitted_at: a.admitted_at,
                }),
                Flush::Blocked => {}
                Flush::Free => self.free(st),
            }
        }
    }

    /// One batched step of the requests in slots `batch` (in that order),
    /// then delivery of their items and release of ended slots.
    fn run_batch(&mut self, batch: &[State]) {
        let max_batch = self.policy.max_batch;
        let mut release = Vec::new();
        {
            let mut chosen = self.arena.select_mut(batch);
            let n = chosen.len();
            if n == 0 {
                return;
            }
            // The round-robin cursor moves past a batch of started requests.
            if let Some((_, last)) = chosen.last().filter(|c| c.1.started) {
                self.last_served = last.seq;
            }
            let outs = {
                let mut jobs: Vec<&mut J> = chosen.iter_mut().map(|c| &mut c.1.job).collect();
                step_batch(&mut jobs, bucket(n, max_batch))
            };
            self.stats.batches.fetch_add(1, Ordering::AcqRel);
            self.stats.batched.fetch_add(n, Ordering::AcqRel);
            self.stats.largest.fetch_max(n, Ordering::AcqRel);
            for ((st, a), out) in chosen.into_iter().zip(outs) {
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
                if let Flush::Free = a.flush() {
                    release.push(st);
                }
            }
        }
        for st in release {
            self.free(st);
        }
    }
}

/// [`Job::step_batch`], with a panic or a wrong number of results turned into
/// one error per job.
fn step_batch<J: Job>(jobs: &mut [&mut J], bucket: usize) -> Vec<Result<Option<J::Item>>> {
    let n = jobs.len();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| J::step_batch(jobs, bucket))) {
        Ok(v) if v.len() == n => v,
        Ok(v) => {
            let msg = format!(
                "a batched step returned {} results for {n} requests",
                v.len()
            );
            (0..n).map(|_| Err(Error::Device(msg.clone()))).collect()
        }
        Err(_) => (0..n)
            .map(|_| Err(Error::Panic("a scheduled request panicked".into())))
            .collect(),
    }
}
