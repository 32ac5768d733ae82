//! What the scheduler runs and within which limits: the [`Job`] trait (one
//! request's work, stepped by the actor) and [`SchedulerOptions`].

use crate::error::Result;
use std::time::Duration;

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

impl SchedulerOptions {
    /// The options in force: every count at least one, `max_batch` rounded
    /// down to a power of two (the largest bucket).
    pub(crate) fn normalized(self) -> Self {
        let max_batch = self.max_batch.max(1);
        SchedulerOptions {
            queue_depth: self.queue_depth.max(1),
            max_active: self.max_active.max(1),
            stream_depth: self.stream_depth.max(1),
            max_batch: 1 << (usize::BITS - 1 - max_batch.leading_zeros()),
            max_wait: self.max_wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_options_are_usable() {
        let o = SchedulerOptions {
            queue_depth: 0,
            max_active: 0,
            stream_depth: 0,
            max_batch: 0,
            max_wait: Duration::ZERO,
        }
        .normalized();
        assert_eq!(
            (o.queue_depth, o.max_active, o.stream_depth, o.max_batch),
            (1, 1, 1, 1)
        );
        let batch = |n| {
            SchedulerOptions {
                max_batch: n,
                ..SchedulerOptions::default()
            }
            .normalized()
            .max_batch
        };
        assert_eq!(
            (batch(6), batch(64), batch(65), batch(usize::MAX)),
            (4, 64, 64, 1 << (usize::BITS - 1))
        );
    }
}
