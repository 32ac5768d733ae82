//! Device memory: [`CudaBuf`] (freed through the backend's graveyard), buffer
//! and weight allocation, the shared scratch slots (grown only outside
//! recordings), uploads of host data into scratch, and the host copies of
//! views (`write`, `read`; strided views go through the `copy` kernel of
//! `elementwise.cu` and a staging slot).

use super::context::{CudaBackend, Graveyard, Scratch, Slot};
use super::module::{dev_err, grid, launch, view};
use crate::backend::{shape, Mat};
use crate::error::BackendError;
use cudarc::driver::{result as dres, CudaSlice, DevicePtr, DeviceRepr};
use std::sync::{Arc, Weak};

/// A device buffer of `f32` and its address.
pub struct CudaBuf {
    mem: Option<CudaSlice<f32>>,
    pub(super) ptr: u64,
    len: usize,
    graveyard: Weak<Graveyard>,
}

impl Drop for CudaBuf {
    /// A buffer may be dropped on any thread (an utterance ending, a voice
    /// replaced) while another thread records a graph on the stream: a free
    /// then would join that recording. So the memory goes to the backend's
    /// graveyard, emptied under the device lock outside recordings.
    fn drop(&mut self) {
        if let Some(mem) = self.mem.take() {
            match self.graveyard.upgrade() {
                Some(g) => g.lock().push(mem),
                None => drop(mem),
            }
        }
    }
}

impl CudaBuf {
    /// Address of element `off`.
    pub(super) fn at(&self, off: usize) -> u64 {
        self.ptr + 4 * off as u64
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its identity in the keys of recorded graphs: address and size.
    pub(super) fn key(&self) -> u64 {
        self.ptr ^ ((self.len as u64) << 48)
    }
}

impl CudaBackend {
    /// A zeroed buffer of `len` floats ([`crate::backend::Backend::alloc`]).
    pub(super) fn alloc_buf(
        &self,
        len: usize,
        what: &'static str,
    ) -> Result<CudaBuf, BackendError> {
        let mem =
            self.stream
                .alloc_zeros::<f32>(len.max(1))
                .map_err(|_| BackendError::OutOfMemory {
                    bytes: len.saturating_mul(4),
                    what,
                })?;
        let ptr = mem.device_ptr(&self.stream).0;
        Ok(CudaBuf {
            mem: Some(mem),
            ptr,
            len,
            graveyard: Arc::downgrade(&self.graveyard),
        })
    }

    /// A buffer holding `v` (weights, biases, tables).
    pub(super) fn upload_f32(
        &self,
        v: &[f32],
        what: &'static str,
    ) -> Result<CudaBuf, BackendError> {
        // Weights may be prepared on any thread (the model prepares its parts in parallel).
        self.ctx.bind_to_thread().map_err(|e| dev_err(what, e))?;
        let b = self.alloc_buf(v.len(), what)?;
        if !v.is_empty() {
            // SAFETY: b holds v.len() floats.
            unsafe { dres::memcpy_htod_async(b.ptr, v, self.stream.cu_stream()) }
                .map_err(|e| dev_err(what, e))?;
        }
        Ok(b)
    }

    /// Host memory cannot take part in a recording: say so and skip the op.
    /// Otherwise make sure this thread has the context (raw driver calls follow).
    fn host_io_allowed(&self) -> bool {
        if self.capture.active() {
            self.capture.spoil();
            false
        } else {
            self.note("bind context", self.ctx.bind_to_thread())
                .is_some()
        }
    }

    /// Address of a scratch slot of at least `bytes` (grown outside recordings only).
    pub(super) fn scratch(&self, s: &mut Scratch, slot: Slot, bytes: usize) -> Option<u64> {
        let bytes = bytes.max(4);
        let have = s.slots.get(&slot).map_or(0, |b| b.len());
        if have < bytes {
            if self.capture.active() {
                self.capture.spoil();
                return None;
            }
            let cap = bytes + bytes / 4;
            // SAFETY: scratch is fully written by the op before it is read.
            let buf = self.note("scratch allocation", unsafe {
                self.stream.alloc::<u8>(cap)
            })?;
            s.slots.insert(slot, buf);
            if matches!(slot, Slot::Cols | Slot::Phases) {
                s.generation += 1;
            }
        }
        s.slots.get(&slot).map(|b| b.device_ptr(&self.stream).0)
    }

    /// Upload host data into a scratch slot; its address.
    pub(super) fn upload<T: DeviceRepr>(
        &self,
        s: &mut Scratch,
        slot: Slot,
        data: &[T],
    ) -> Option<u64> {
        if !self.host_io_allowed() {
            return None;
        }
        let p = self.scratch(s, slot, std::mem::size_of_val(data))?;
        if !data.is_empty() {
            // SAFETY: p has room for `data`; pageable host memory is copied before return.
            self.note("upload", unsafe {
                dres::memcpy_htod_async(p, data, self.stream.cu_stream())
            })?;
        }
        Some(p)
    }

    /// Copy a dense host matrix into the view ([`crate::backend::Backend::write`]).
    pub(super) fn write_view(&self, dst: &mut CudaBuf, m: Mat, src: &[f32]) {
        if !self.admit("write", &[(dst.len, m)], shape::host(m, src.len())) {
            return;
        }
        let n = m.len();
        if n == 0 || !self.host_io_allowed() {
            return;
        }
        let src = &src[..n];
        if m.ld() == m.cols() || m.rows() == 1 {
            // SAFETY: the view is inside dst; pageable memory is copied before return.
            let r =
                unsafe { dres::memcpy_htod_async(dst.at(m.off()), src, self.stream.cu_stream()) };
            self.note("write", r);
            return;
        }
        let mut s = self.scratch.lock();
        let Some(p) = self.upload(&mut s, Slot::Staging, src) else {
            return;
        };
        let (sv, dv) = (view(Mat::new(m.rows(), m.cols())), view(m));
        launch!(self, copy, grid(n), p, sv, dst.ptr, dv);
    }

    /// Copy the view into a dense host matrix ([`crate::backend::Backend::read`]).
    pub(super) fn read_view(&self, src: &CudaBuf, m: Mat, dst: &mut [f32]) {
        if !self.admit("read", &[(src.len, m)], shape::host(m, dst.len())) {
            return;
        }
        let n = m.len();
        if n == 0 || !self.host_io_allowed() {
            return;
        }
        let dst = &mut dst[..n];
        // The staging slot stays locked until the copy is queued.
        let mut s = self.scratch.lock();
        let from = if m.ld() == m.cols() || m.rows() == 1 {
            src.at(m.off())
        } else {
            let Some(p) = self.scratch(&mut s, Slot::Staging, 4 * n) else {
                return;
            };
            let (sv, dv) = (view(m), view(Mat::new(m.rows(), m.cols())));
            launch!(self, copy, grid(n), src.ptr, sv, p, dv);
            p
        };
        // SAFETY: `from` holds n floats; the stream is synchronised before return.
        let r = unsafe { dres::memcpy_dtoh_async(dst, from, self.stream.cu_stream()) };
        if self.note("read", r).is_some() {
            self.note("read", self.stream.synchronize());
        }
    }
}
