//! The actor's wake-up primitive: a sticky flag under a mutex plus a condition
//! variable. Every event that can let the actor make progress rings it.

use parking_lot::{Condvar, Mutex};
use std::time::Instant;

/// Rung by submissions, consumers freeing room in a full stream, cancelled
/// streams and the last scheduler handle going away; waited on by the actor.
///
/// The flag is sticky: a ring that comes while the actor is still looking at
/// its requests (before it waits) is kept, so the following wait returns at
/// once and no wake-up is lost.
#[derive(Debug, Default)]
pub(crate) struct Bell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Bell {
    /// Wake the actor (or make its next wait return at once).
    pub(crate) fn ring(&self) {
        *self.rung.lock() = true;
        self.cv.notify_one();
    }

    /// Block until the bell is rung or `deadline` passes (`None`: no
    /// deadline), then clear the flag. Returns whether it was rung.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut rung = self.rung.lock();
        while !*rung {
            match deadline {
                None => self.cv.wait(&mut rung),
                Some(d) => {
                    if self.cv.wait_until(&mut rung, d).timed_out() {
                        break;
                    }
                }
            }
        }
        std::mem::replace(&mut *rung, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_ring_before_the_wait_is_kept() {
        let b = Bell::default();
        b.ring();
        b.ring();
        assert!(b.wait(None));
        // Cleared: the next wait runs to its deadline.
        assert!(!b.wait(Some(Instant::now() + Duration::from_millis(5))));
    }

    #[test]
    fn a_ring_from_another_thread_wakes_the_waiter() {
        let b = Arc::new(Bell::default());
        let b2 = b.clone();
        let h = std::thread::spawn(move || b2.wait(None));
        b.ring();
        assert!(h.join().unwrap());
    }

    #[test]
    fn a_past_deadline_returns_at_once() {
        let b = Bell::default();
        assert!(!b.wait(Some(Instant::now())));
    }
}
