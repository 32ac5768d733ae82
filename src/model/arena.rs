//! Per-request scratch buffers: sized once for the largest chunk seen and
//! reused, so the per-chunk path does not allocate (stable addresses, too).
//!
//! The arenas of one voice's pool share their sizes ([`Sizes`]): an arena
//! that needs a buffer allocates it at the largest size any arena of the pool
//! has needed so far, in one go. So every scratch set is at its steady-state
//! size from its first use, instead of each growing through every chunk size
//! on its own (8, 32, 128, 256 frames...). That matters for the host's
//! allocator: each growth frees the previous multi-MB buffer, which with
//! glibc raises the dynamic mmap threshold, after which the next big buffers
//! land in (per-thread) heap arenas and fragment them: RSS crept up for
//! thousands of requests with the live heap flat. With shared sizes a big
//! buffer is freed only when the pool's maximum grows, and a new one is
//! never smaller than a freed one (so it stays above the threshold).

use crate::backend::Backend;
use crate::error::BackendError;
use parking_lot::Mutex;
use std::sync::Arc;

/// The largest length (floats) each buffer index of a family of arenas has
/// needed so far, up to a cap: a one-off huge need (a very long sentence) is
/// met but neither raises the family's sizes nor stays in a pool (see
/// [`Arena::over_cap`]).
pub(crate) struct Sizes {
    hw: Mutex<Vec<usize>>,
    cap: usize,
}

impl Default for Sizes {
    /// Sizes without a cap.
    fn default() -> Self {
        Sizes::capped(usize::MAX)
    }
}

impl Sizes {
    /// Sizes whose marks stop at `cap` floats per buffer.
    pub(crate) fn capped(cap: usize) -> Self {
        Sizes {
            hw: Mutex::new(Vec::new()),
            cap,
        }
    }

    /// The capacity to allocate for buffer `i` that must hold `len` floats:
    /// at least the family's high-water mark, which it raises (up to the cap).
    fn grow(&self, i: usize, len: usize) -> usize {
        let mut hw = self.hw.lock();
        if hw.len() <= i {
            hw.resize(i + 1, 0);
        }
        hw[i] = hw[i].max(len.min(self.cap));
        hw[i].max(len)
    }

    /// The family's mark for buffer `i` (0 if none yet).
    fn mark(&self, i: usize) -> usize {
        self.hw.lock().get(i).copied().unwrap_or(0)
    }
}

/// A set of reusable device buffers.
pub(crate) struct Arena<B: Backend> {
    caps: Vec<usize>,
    bufs: Vec<B::Buf>,
    sizes: Arc<Sizes>,
    /// Handed to a new user that has not asked for buffers yet.
    fresh: bool,
}

impl<B: Backend> Default for Arena<B> {
    /// An arena sizing its buffers on its own.
    fn default() -> Self {
        Arena::shared(Arc::default())
    }
}

impl<B: Backend> Arena<B> {
    /// An arena of the family whose sizes are `sizes`.
    pub(crate) fn shared(sizes: Arc<Sizes>) -> Self {
        Arena {
            caps: Vec::new(),
            bufs: Vec::new(),
            sizes,
            fresh: true,
        }
    }

    /// Hand the arena to a new user: its next [`Arena::bufs`] may replace
    /// buffers that are behind the family's sizes.
    pub(crate) fn renew(&mut self) {
        self.fresh = true;
    }

    /// Floats held in all buffers.
    pub(crate) fn held(&self) -> usize {
        self.caps.iter().sum()
    }

    /// Whether a buffer is over the family's cap (an arena worth dropping
    /// rather than keeping for reuse).
    pub(crate) fn over_cap(&self) -> bool {
        self.caps.iter().any(|&c| c > self.sizes.cap)
    }

    /// Buffer `i` as last sized by [`Arena::bufs`].
    pub(crate) fn get(&self, i: usize) -> Option<&B::Buf> {
        self.bufs.get(i)
    }

    /// Buffer `i`, mutable.
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut B::Buf> {
        self.bufs.get_mut(i)
    }

    /// Buffers with at least `lens[i]` floats each. Contents are whatever the
    /// previous user left: every op writes its whole output view.
    pub(crate) fn bufs(
        &mut self,
        be: &B,
        lens: &[usize],
        what: &'static str,
    ) -> Result<&mut [B::Buf], BackendError> {
        for (i, &len) in lens.iter().enumerate() {
            if i == self.bufs.len() {
                let cap = self.sizes.grow(i, len);
                self.bufs.push(be.alloc(cap, what)?);
                self.caps.push(cap);
            } else if self.caps[i] < len {
                // Headroom, so that slowly growing chunks do not reallocate
                // each time; and never below what the family already needed.
                let cap = self.sizes.grow(i, len + len / 4);
                self.bufs[i] = be.alloc(cap, what)?;
                self.caps[i] = cap;
            } else if self.fresh && self.caps[i] < self.sizes.mark(i) {
                // Behind the family (another arena met a longer input since
                // this one last grew): catch up at the first use by a new
                // user, whose buffers hold nothing for it yet, so that a pool
                // reaches its steady size early instead of whenever this
                // arena happens to meet that input. Never later: a user may
                // keep data in its buffers from call to call.
                let cap = self.sizes.grow(i, len);
                self.bufs[i] = be.alloc(cap, what)?;
                self.caps[i] = cap;
            }
        }
        self.fresh = false;
        Ok(&mut self.bufs[..lens.len()])
    }
}

/// A process-unique id for a model part, for keys of recorded device work:
/// buffer addresses alone can come back for another voice's weights.
pub(crate) fn unique_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;

    #[test]
    fn arenas_of_a_family_allocate_at_the_largest_size_needed_so_far() {
        let be = CpuBackend::new(1).expect("cpu backend");
        let sizes = Arc::new(Sizes::default());
        let mut a: Arena<CpuBackend> = Arena::shared(Arc::clone(&sizes));
        let mut b: Arena<CpuBackend> = Arena::shared(Arc::clone(&sizes));
        let mut lone: Arena<CpuBackend> = Arena::default();
        assert_eq!(a.bufs(&be, &[10, 100], "t").expect("alloc")[1].len(), 100);
        // Growth keeps headroom and raises the family's mark...
        assert_eq!(a.bufs(&be, &[10, 200], "t").expect("alloc")[1].len(), 250);
        // ...so a new arena starts at it, even for a small request.
        let bb = b.bufs(&be, &[1, 1], "t").expect("alloc");
        assert_eq!((bb[0].len(), bb[1].len()), (10, 250));
        // A large need in one arena does not touch another's buffers while
        // it is in use (they may hold data)...
        assert_eq!(b.bufs(&be, &[1, 1000], "t").expect("alloc")[1].len(), 1250);
        assert_eq!(a.bufs(&be, &[10, 250], "t").expect("alloc")[1].len(), 250);
        // ...but a renewed arena catches up with the family on its first use.
        a.renew();
        assert_eq!(a.bufs(&be, &[10, 250], "t").expect("alloc")[1].len(), 1250);
        assert_eq!(a.bufs(&be, &[10, 250], "t").expect("alloc")[1].len(), 1250);
        // An arena outside any family sizes on its own.
        assert_eq!(lone.bufs(&be, &[5], "t").expect("alloc")[0].len(), 5);
    }

    #[test]
    fn a_need_over_the_cap_is_met_but_not_passed_on() {
        let be = CpuBackend::new(1).expect("cpu backend");
        let sizes = Arc::new(Sizes::capped(100));
        let mut a: Arena<CpuBackend> = Arena::shared(Arc::clone(&sizes));
        assert_eq!(a.bufs(&be, &[50], "t").expect("alloc")[0].len(), 50);
        assert!(!a.over_cap());
        assert_eq!(a.bufs(&be, &[400], "t").expect("alloc")[0].len(), 500);
        assert!(a.over_cap());
        // A new arena of the family starts at the cap, not at 500.
        let mut b: Arena<CpuBackend> = Arena::shared(sizes);
        assert_eq!(b.bufs(&be, &[1], "t").expect("alloc")[0].len(), 100);
        assert!(!b.over_cap());
    }
}
