//! Per-voice pools of utterance scratch ([`Work`]): a sentence in flight
//! leases a set ([`Lease`]) and gives it back when done, so memory stays flat
//! once warm (no allocation per chunk or per sentence).

use super::arena::{Arena, Sizes};
use crate::backend::Backend;
use parking_lot::Mutex;
use std::mem::ManuallyDrop;
use std::sync::Arc;

/// Buffers of one utterance in flight.
pub(super) struct Work<B: Backend> {
    /// Encoder (`vits::ML` is its output `m_p ‖ logs_p` `[2H, T]`) and duration
    /// predictor scratch.
    pub(super) prep: Arena<B>,
    /// Flow output `[C, F]` (buffer 0), computed progressively by `render`.
    pub(super) z: Arena<B>,
    pub(super) flow: Arena<B>,
    pub(super) dec: Arena<B>,
}

/// A voice's scratch sets not in use, and the sizes all of them share (see
/// [`super::arena`]: every set is allocated at the largest size needed so far,
/// so the pool reaches its steady state as soon as the largest chunk and the
/// most concurrent sentences have been seen once).
pub(super) struct Pool<B: Backend> {
    free: Mutex<Vec<Work<B>>>,
    prep: Arc<Sizes>,
    z: Arc<Sizes>,
    flow: Arc<Sizes>,
    dec: Arc<Sizes>,
}

/// Largest per-sentence buffer (floats) the pool keeps: 4M floats (16 MB) is
/// about 5,400 ids through the encoder's FFN or 21,000 frames (4 minutes of
/// audio) of flow output. A sentence beyond it gets its buffers, which are
/// dropped after it instead of pinning that much memory for good.
const PREP_KEEP_FLOATS: usize = 1 << 22;

impl<B: Backend> Pool<B> {
    pub(super) fn new() -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
            prep: Arc::new(Sizes::capped(PREP_KEEP_FLOATS)),
            z: Arc::new(Sizes::capped(PREP_KEEP_FLOATS)),
            flow: Arc::default(),
            dec: Arc::default(),
        }
    }

    /// A free scratch set (renewed: it catches up with the family's sizes on
    /// its first use), or a new one of the pool's family.
    fn take(&self) -> Work<B> {
        let free = self.free.lock().pop();
        if let Some(mut w) = free {
            for a in [&mut w.prep, &mut w.z, &mut w.flow, &mut w.dec] {
                a.renew();
            }
            return w;
        }
        Work {
            prep: Arena::shared(Arc::clone(&self.prep)),
            z: Arena::shared(Arc::clone(&self.z)),
            flow: Arena::shared(Arc::clone(&self.flow)),
            dec: Arena::shared(Arc::clone(&self.dec)),
        }
    }

    /// Keep `w` for the next sentence (unless the pool is full or `w` holds
    /// a one-off huge buffer).
    fn give(&self, w: Work<B>) {
        if w.prep.over_cap() || w.z.over_cap() {
            return;
        }
        let mut free = self.free.lock();
        if free.len() < POOL_MAX {
            free.push(w);
        }
    }
}

/// Scratch sets kept for reuse per voice (one per concurrent utterance, up to this).
const POOL_MAX: usize = 16;

/// A scratch set taken from a voice's pool, given back when dropped.
pub(super) struct Lease<B: Backend> {
    work: ManuallyDrop<Work<B>>,
    pool: Arc<Pool<B>>,
}

impl<B: Backend> Lease<B> {
    pub(super) fn new(pool: &Arc<Pool<B>>) -> Self {
        Lease {
            work: ManuallyDrop::new(pool.take()),
            pool: Arc::clone(pool),
        }
    }
}

impl<B: Backend> std::ops::Deref for Lease<B> {
    type Target = Work<B>;
    fn deref(&self) -> &Work<B> {
        &self.work
    }
}

impl<B: Backend> std::ops::DerefMut for Lease<B> {
    fn deref_mut(&mut self) -> &mut Work<B> {
        &mut self.work
    }
}

impl<B: Backend> Drop for Lease<B> {
    fn drop(&mut self) {
        // SAFETY: `work` is not touched again: this is the end of `self`.
        let w = unsafe { ManuallyDrop::take(&mut self.work) };
        self.pool.give(w);
    }
}
