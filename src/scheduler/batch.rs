//! Batch buckets, and the choice of which ready requests run in the next
//! batched step: first chunks first, oldest first, then round robin; at most
//! `max_batch`; a first batch may wait up to `max_wait` for company.

use super::slots::State;
use std::time::{Duration, Instant};

/// Batch sizes the device records graphs for: 1, 2, 4, … up to `max` (a power of two).
pub fn bucket(n: usize, max: usize) -> usize {
    let max = max.max(1).next_power_of_two();
    n.max(1).next_power_of_two().min(max)
}

/// An active request whose caller has room for its next item.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ready {
    /// It has delivered its first item.
    pub(crate) started: bool,
    /// Admission order (1, 2, …).
    pub(crate) seq: u64,
    pub(crate) slot: State,
    pub(crate) admitted_at: Instant,
}

/// What the actor does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Step these slots together, in this order.
    Run(Vec<State>),
    /// Nothing to run yet: wait for an event, or until the instant.
    Wait(Option<Instant>),
}

/// How batches are formed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    /// Requests per batch at most (a power of two: the largest bucket).
    pub(crate) max_batch: usize,
    /// How long a first batch may wait for more requests to join it.
    pub(crate) max_wait: Duration,
}

impl Policy {
    /// Choose the next batch from `ready` (reordered in place).
    ///
    /// Requests that have not delivered their first item form their own
    /// batch, oldest first; while that batch has room and `can_grow` (the
    /// queue is open and a slot is free) it waits until `max_wait` after the
    /// oldest one's admission. Otherwise the started requests run
    /// round-robin: those admitted after `last_served` (the last request of
    /// the previous batch of started ones) first, in admission order.
    pub(crate) fn next(
        &self,
        ready: &mut [Ready],
        can_grow: bool,
        last_served: u64,
        now: Instant,
    ) -> Next {
        let max_batch = self.max_batch.max(1);
        let fresh = ready.iter().filter(|r| !r.started).count();
        if fresh > 0 {
            ready.sort_by_key(|r| (r.started, r.seq));
            if !self.max_wait.is_zero() && fresh < max_batch && can_grow {
                match ready[0].admitted_at.checked_add(self.max_wait) {
                    Some(deadline) if now < deadline => return Next::Wait(Some(deadline)),
                    Some(_) => {}
                    // Too far to name: wait for events only.
                    None => return Next::Wait(None),
                }
            }
            return Next::Run(
                ready[..fresh.min(max_batch)]
                    .iter()
                    .map(|r| r.slot)
                    .collect(),
            );
        }
        if ready.is_empty() {
            return Next::Wait(None);
        }
        ready.sort_by_key(|r| (r.seq <= last_served, r.seq));
        Next::Run(ready.iter().take(max_batch).map(|r| r.slot).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::slots::SlotArena;
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(bucket(0, 64), 1);
        assert_eq!(bucket(1, 64), 1);
        assert_eq!(bucket(3, 64), 4);
        assert_eq!(bucket(33, 64), 64);
        assert_eq!(bucket(300, 64), 64);
    }

    /// Ready requests with slots from an arena; `started[k]` for seq k + 1.
    fn ready(started: &[bool], at: Instant) -> (Vec<Ready>, Vec<State>) {
        let mut arena = SlotArena::new(started.len());
        let mut out = Vec::new();
        let mut slots = Vec::new();
        for (k, &s) in started.iter().enumerate() {
            let slot = arena.alloc(k).unwrap();
            slots.push(slot);
            out.push(Ready {
                started: s,
                seq: k as u64 + 1,
                slot,
                admitted_at: at,
            });
        }
        (out, slots)
    }

    fn policy(max_batch: usize, max_wait_ms: u64) -> Policy {
        Policy {
            max_batch,
            max_wait: Duration::from_millis(max_wait_ms),
        }
    }

    #[test]
    fn nothing_ready_waits_for_an_event() {
        let p = policy(4, 0);
        assert_eq!(p.next(&mut [], true, 0, Instant::now()), Next::Wait(None));
    }

    #[test]
    fn first_chunks_go_first_oldest_first_and_alone() {
        let now = Instant::now();
        let (mut r, s) = ready(&[true, false, true, false, false], now);
        r.reverse();
        let got = policy(2, 0).next(&mut r, true, 0, now);
        assert_eq!(got, Next::Run(vec![s[1], s[3]]));
        let got = policy(8, 0).next(&mut r, true, 0, now);
        assert_eq!(got, Next::Run(vec![s[1], s[3], s[4]]));
    }

    #[test]
    fn started_requests_run_round_robin() {
        let now = Instant::now();
        let (mut r, s) = ready(&[true; 5], now);
        let p = policy(2, 0);
        assert_eq!(p.next(&mut r, true, 0, now), Next::Run(vec![s[0], s[1]]));
        assert_eq!(p.next(&mut r, true, 2, now), Next::Run(vec![s[2], s[3]]));
        assert_eq!(p.next(&mut r, true, 4, now), Next::Run(vec![s[4], s[0]]));
        assert_eq!(p.next(&mut r, true, 5, now), Next::Run(vec![s[0], s[1]]));
    }

    #[test]
    fn max_wait_holds_a_first_batch_until_its_deadline() {
        let t0 = Instant::now();
        let (mut r, s) = ready(&[false, false], t0);
        let p = policy(4, 50);
        let deadline = t0 + Duration::from_millis(50);
        assert_eq!(p.next(&mut r, true, 0, t0), Next::Wait(Some(deadline)));
        // At the deadline, when no slot is free, or when the batch is full: run.
        assert_eq!(
            p.next(&mut r, true, 0, deadline),
            Next::Run(vec![s[0], s[1]])
        );
        assert_eq!(p.next(&mut r, false, 0, t0), Next::Run(vec![s[0], s[1]]));
        assert_eq!(
            policy(2, 50).next(&mut r, true, 0, t0),
            Next::Run(vec![s[0], s[1]])
        );
        // Started requests never wait.
        let (mut r, s) = ready(&[true], t0);
        assert_eq!(p.next(&mut r, true, 0, t0), Next::Run(vec![s[0]]));
    }

    #[test]
    fn an_unnameable_deadline_waits_for_events() {
        let t0 = Instant::now();
        let (mut r, _) = ready(&[false], t0);
        let p = Policy {
            max_batch: 4,
            max_wait: Duration::MAX,
        };
        assert_eq!(p.next(&mut r, true, 0, t0), Next::Wait(None));
    }
}
