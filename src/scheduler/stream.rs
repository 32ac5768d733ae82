//! The per-request bounded result stream: the caller's [`Stream`] and the
//! actor's [`Tx`]. Taking an item from a stream the actor found full, and
//! dropping (cancelling) a stream, ring the actor's [`Bell`].

use super::wake::Bell;
use crate::error::Result;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Debug)]
struct Buf<T> {
    items: VecDeque<Result<T>>,
    /// The actor is done with the request (finished, failed, freed or gone).
    closed: bool,
    /// The caller cancelled (or dropped) the stream.
    cancelled: bool,
    /// The actor holds an item it found no room for: the next item taken
    /// must wake it.
    actor_waiting: bool,
}

#[derive(Debug)]
struct Chan<T> {
    buf: Mutex<Buf<T>>,
    /// Signalled when an item arrives or the actor closes the stream.
    ready: Condvar,
    depth: usize,
    bell: Arc<Bell>,
}

/// A request's results, in order. Dropping it cancels the request.
#[derive(Debug)]
pub struct Stream<T> {
    chan: Arc<Chan<T>>,
}

/// The actor's end of a [`Stream`]; dropping it ends the stream.
#[derive(Debug)]
pub(crate) struct Tx<T> {
    chan: Arc<Chan<T>>,
}

/// What [`Tx::offer`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// The caller is there (and took the pending item, if any).
    Open,
    /// The stream is full: the item stays pending and the caller's next take
    /// rings the bell.
    Full,
    /// The caller cancelled: the request is to be freed.
    Cancelled,
}

/// A stream of `depth` buffered items at most (at least one) whose caller
/// rings `bell` when it frees room for the actor or cancels.
pub(crate) fn channel<T>(depth: usize, bell: Arc<Bell>) -> (Tx<T>, Stream<T>) {
    let depth = depth.max(1);
    let chan = Arc::new(Chan {
        buf: Mutex::new(Buf {
            items: VecDeque::with_capacity(depth),
            closed: false,
            cancelled: false,
            actor_waiting: false,
        }),
        ready: Condvar::new(),
        depth,
        bell,
    });
    (Tx { chan: chan.clone() }, Stream { chan })
}

impl<T> Stream<T> {
    /// Cancel now (also done by drop): items not yet taken are discarded,
    /// the stream ends, and the actor frees the request's slot before its
    /// next step.
    pub fn cancel(&self) {
        let dropped = {
            let mut buf = self.chan.buf.lock();
            if buf.cancelled {
                return;
            }
            buf.cancelled = true;
            std::mem::take(&mut buf.items)
        };
        self.chan.ready.notify_all();
        self.chan.bell.ring();
        drop(dropped);
    }
}

impl<T> Iterator for Stream<T> {
    type Item = Result<T>;

    /// The next result, blocking until the actor delivers one; `None` when
    /// the request has ended or was cancelled.
    fn next(&mut self) -> Option<Result<T>> {
        let mut buf = self.chan.buf.lock();
        loop {
            if buf.cancelled {
                return None;
            }
            if let Some(item) = buf.items.pop_front() {
                let wake = std::mem::take(&mut buf.actor_waiting);
                drop(buf);
                if wake {
                    self.chan.bell.ring();
                }
                return Some(item);
            }
            if buf.closed {
                return None;
            }
            self.chan.ready.wait(&mut buf);
        }
    }
}

impl<T> Drop for Stream<T> {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl<T> Tx<T> {
    /// Hand the `pending` item (if any) to the caller when the stream has
    /// room; otherwise keep it pending and ask the caller to ring on its next
    /// take. Says whether the caller is still there.
    pub(crate) fn offer(&self, pending: &mut Option<Result<T>>) -> Offer {
        let mut buf = self.chan.buf.lock();
        if buf.cancelled {
            return Offer::Cancelled;
        }
        let Some(item) = pending.take() else {
            return Offer::Open;
        };
        if buf.items.len() < self.chan.depth {
            buf.items.push_back(item);
            drop(buf);
            self.chan.ready.notify_one();
            Offer::Open
        } else {
            buf.actor_waiting = true;
            *pending = Some(item);
            Offer::Full
        }
    }

    /// Whether the caller cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.chan.buf.lock().cancelled
    }
}

impl<T> Drop for Tx<T> {
    fn drop(&mut self) {
        self.chan.buf.lock().closed = true;
        self.chan.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::time::{Duration, Instant};

    fn now() -> Option<Instant> {
        Some(Instant::now())
    }

    #[test]
    fn items_arrive_in_order_then_the_stream_ends() {
        let (tx, mut rx) = channel::<u32>(4, Arc::new(Bell::default()));
        for k in 0..3 {
            assert_eq!(tx.offer(&mut Some(Ok(k))), Offer::Open);
        }
        let mut failed = Some(Err(Error::Timeout));
        assert_eq!(tx.offer(&mut failed), Offer::Open);
        assert!(failed.is_none());
        drop(tx);
        assert_eq!(rx.next().unwrap().unwrap(), 0);
        assert_eq!(rx.next().unwrap().unwrap(), 1);
        assert_eq!(rx.next().unwrap().unwrap(), 2);
        assert!(matches!(rx.next(), Some(Err(Error::Timeout))));
        assert!(rx.next().is_none());
    }

    #[test]
    fn taking_from_a_full_stream_rings_the_bell_once() {
        let bell = Arc::new(Bell::default());
        let (tx, mut rx) = channel::<u32>(1, bell.clone());
        assert_eq!(tx.offer(&mut Some(Ok(0))), Offer::Open);
        let mut pending = Some(Ok(1));
        assert_eq!(tx.offer(&mut pending), Offer::Full);
        assert!(pending.is_some());
        assert!(!bell.wait(now()), "rung before any room was freed");
        assert_eq!(rx.next().unwrap().unwrap(), 0);
        assert!(bell.wait(now()), "taking from a full stream must ring");
        assert_eq!(tx.offer(&mut pending), Offer::Open);
        assert!(pending.is_none());
        assert_eq!(rx.next().unwrap().unwrap(), 1);
        // The actor was not waiting this time: no ring.
        assert!(!bell.wait(now()));
    }

    #[test]
    fn dropping_the_stream_cancels_and_rings() {
        let bell = Arc::new(Bell::default());
        let (tx, rx) = channel::<u32>(2, bell.clone());
        assert_eq!(tx.offer(&mut Some(Ok(0))), Offer::Open);
        assert!(!tx.is_cancelled());
        drop(rx);
        assert!(bell.wait(now()));
        assert!(tx.is_cancelled());
        let mut item = Some(Ok(1));
        assert_eq!(tx.offer(&mut item), Offer::Cancelled);
    }

    #[test]
    fn cancel_ends_the_stream_at_once() {
        let bell = Arc::new(Bell::default());
        let (tx, mut rx) = channel::<u32>(2, bell.clone());
        assert_eq!(tx.offer(&mut Some(Ok(0))), Offer::Open);
        rx.cancel();
        assert!(bell.wait(now()));
        assert!(rx.next().is_none());
        assert!(tx.is_cancelled());
    }

    #[test]
    fn a_waiting_caller_is_woken_by_an_item_and_by_the_end() {
        let bell = Arc::new(Bell::default());
        let (tx, mut rx) = channel::<u32>(1, bell);
        let h = std::thread::spawn(move || {
            let first = rx.next().map(|r| r.ok());
            let end = rx.next().is_none();
            (first, end)
        });
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(tx.offer(&mut Some(Ok(7))), Offer::Open);
        drop(tx);
        assert_eq!(h.join().unwrap(), (Some(Some(7)), true));
    }
}
