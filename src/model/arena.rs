//! Per-request scratch buffers: sized once for the largest chunk seen and
//! reused, so the per-chunk path does not allocate (stable addresses, too).

use crate::backend::Backend;
use crate::error::BackendError;

/// A set of reusable device buffers.
pub(crate) struct Arena<B: Backend> {
    caps: Vec<usize>,
    bufs: Vec<B::Buf>,
}

impl<B: Backend> Default for Arena<B> {
    fn default() -> Self {
        Arena {
            caps: Vec::new(),
            bufs: Vec::new(),
        }
    }
}

impl<B: Backend> Arena<B> {
    /// Floats held in all buffers.
    pub(crate) fn held(&self) -> usize {
        self.caps.iter().sum()
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
                self.bufs.push(be.alloc(len, what)?);
                self.caps.push(len);
            } else if self.caps[i] < len {
                // Headroom, so that slowly growing chunks do not reallocate each time.
                let cap = len + len / 4;
                self.bufs[i] = be.alloc(cap, what)?;
                self.caps[i] = cap;
            }
        }
        Ok(&mut self.bufs[..lens.len()])
    }
}
