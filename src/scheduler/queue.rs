//! The bounded submission queue between the scheduler's handles and its actor.
//! A full queue makes submitters wait on a condition variable (no polling);
//! every submission rings the actor's [`Bell`].

use super::wake::Bell;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// How long [`Inlet::push`] may wait for room.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Not at all.
    No,
    /// Until there is room (or the actor stops).
    Forever,
    /// Until this instant at most.
    Until(Instant),
}

/// Why [`Inlet::push`] did not queue the item (the item is dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue was full and the push was not to wait.
    Full,
    /// The queue stayed full until the deadline.
    TimedOut,
    /// The actor has stopped.
    Stopped,
}

/// What [`Outlet::pop`] found.
#[derive(Debug)]
pub(crate) enum Pop<T> {
    Item(T),
    /// Nothing queued now.
    Empty,
    /// Nothing queued and the inlet is gone: nothing will come.
    Closed,
}

#[derive(Debug)]
struct Inbox<T> {
    items: VecDeque<T>,
    /// The inlet (every scheduler handle) is gone.
    closed: bool,
    /// The outlet (the actor) is gone.
    stopped: bool,
}

#[derive(Debug)]
struct Shared<T> {
    inbox: Mutex<Inbox<T>>,
    /// Signalled when an item leaves the queue or the actor stops.
    room: Condvar,
    depth: usize,
    bell: Arc<Bell>,
}

/// The submitting side; dropping it closes the queue and wakes the actor.
#[derive(Debug)]
pub(crate) struct Inlet<T>(Arc<Shared<T>>);

/// The actor's side; dropping it refuses further submissions, drops what is
/// still queued and wakes every waiting submitter.
#[derive(Debug)]
pub(crate) struct Outlet<T>(Arc<Shared<T>>);

/// A queue of `depth` items at most (at least one) whose submissions ring `bell`.
pub(crate) fn bounded<T>(depth: usize, bell: Arc<Bell>) -> (Inlet<T>, Outlet<T>) {
    let depth = depth.max(1);
    let shared = Arc::new(Shared {
        inbox: Mutex::new(Inbox {
            items: VecDeque::with_capacity(depth),
            closed: false,
            stopped: false,
        }),
        room: Condvar::new(),
        depth,
        bell,
    });
    (Inlet(shared.clone()), Outlet(shared))
}

impl<T> Inlet<T> {
    /// Queue `item`, waiting for room as `wait` allows.
    ///
    /// # Errors
    /// [`Refused`] says why the item was not queued; it is dropped (outside the lock).
    pub(crate) fn push(&self, item: T, wait: Wait) -> Result<(), Refused> {
        let mut inbox = self.0.inbox.lock();
        loop {
            if inbox.stopped {
                drop(inbox);
                drop(item);
                return Err(Refused::Stopped);
            }
            if inbox.items.len() < self.0.depth {
                inbox.items.push_back(item);
                drop(inbox);
                self.0.bell.ring();
                return Ok(());
            }
            match wait {
                Wait::No => {
                    drop(inbox);
                    drop(item);
                    return Err(Refused::Full);
                }
                Wait::Forever => self.0.room.wait(&mut inbox),
                Wait::Until(deadline) => {
                    // Room is looked for before the deadline: a pop that
                    // signalled just as the deadline passed still counts.
                    if Instant::now() >= deadline {
                        drop(inbox);
                        drop(item);
                        return Err(Refused::TimedOut);
                    }
                    let _ = self.0.room.wait_until(&mut inbox, deadline);
                }
            }
        }
    }

    /// Items the queue holds at most.
    pub(crate) fn depth(&self) -> usize {
        self.0.depth
    }
}

impl<T> Drop for Inlet<T> {
    fn drop(&mut self) {
        self.0.inbox.lock().closed = true;
        self.0.bell.ring();
    }
}

impl<T> Outlet<T> {
    /// Take the oldest queued item, waking one submitter waiting for room.
    pub(crate) fn pop(&self) -> Pop<T> {
        let mut inbox = self.0.inbox.lock();
        match inbox.items.pop_front() {
            Some(item) => {
                drop(inbox);
                self.0.room.notify_one();
                Pop::Item(item)
            }
            None if inbox.closed => Pop::Closed,
            None => Pop::Empty,
        }
    }
}

impl<T> Drop for Outlet<T> {
    fn drop(&mut self) {
        let left = {
            let mut inbox = self.0.inbox.lock();
            inbox.stopped = true;
            std::mem::take(&mut inbox.items)
        };
        self.0.room.notify_all();
        // Queued items (and whatever they own) are dropped outside the lock.
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn queue(depth: usize) -> (Inlet<u32>, Outlet<u32>, Arc<Bell>) {
        let bell = Arc::new(Bell::default());
        let (i, o) = bounded(depth, bell.clone());
        (i, o, bell)
    }

    #[test]
    fn items_come_out_in_order_and_ring_the_bell() {
        let (i, o, bell) = queue(3);
        assert!(matches!(o.pop(), Pop::Empty));
        for k in 0..3 {
            i.push(k, Wait::No).unwrap();
        }
        assert!(bell.wait(Some(Instant::now())));
        assert_eq!(i.push(9, Wait::No), Err(Refused::Full));
        for k in 0..3 {
            assert!(matches!(o.pop(), Pop::Item(v) if v == k));
        }
        assert!(matches!(o.pop(), Pop::Empty));
        drop(i);
        assert!(bell.wait(Some(Instant::now())));
        assert!(matches!(o.pop(), Pop::Closed));
    }

    #[test]
    fn a_full_queue_times_out() {
        let (i, _o, _bell) = queue(1);
        i.push(1, Wait::No).unwrap();
        let deadline = Instant::now() + Duration::from_millis(10);
        assert_eq!(i.push(2, Wait::Until(deadline)), Err(Refused::TimedOut));
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn a_waiting_push_is_woken_by_a_pop() {
        let (i, o, _bell) = queue(1);
        i.push(1, Wait::No).unwrap();
        let (done, got) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                // A deadline far beyond the test's own guard below.
                let far = Instant::now() + Duration::from_secs(600);
                done.send(i.push(2, Wait::Until(far))).unwrap();
            });
            std::thread::sleep(Duration::from_millis(20));
            assert!(matches!(o.pop(), Pop::Item(1)));
            let r = got
                .recv_timeout(Duration::from_secs(60))
                .expect("the waiting push was not woken by the pop");
            assert_eq!(r, Ok(()));
        });
        assert!(matches!(o.pop(), Pop::Item(2)));
    }

    #[test]
    fn a_stopped_actor_refuses_and_wakes_waiters() {
        let (i, o, _bell) = queue(1);
        i.push(1, Wait::No).unwrap();
        std::thread::scope(|s| {
            let h = s.spawn(|| i.push(2, Wait::Forever));
            std::thread::sleep(Duration::from_millis(20));
            drop(o);
            assert_eq!(h.join().unwrap(), Err(Refused::Stopped));
        });
        assert_eq!(i.push(3, Wait::No), Err(Refused::Stopped));
    }
}
