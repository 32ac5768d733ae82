//! Shared helpers of the CPU ops: the rows of a view as slices, and a raw
//! pointer that parallel work items use to write disjoint parts of one output.

use crate::backend::Mat;

/// Elements from one row's start to the next: the stride, or for a
/// one-row view (whose stride may be below its width) the whole row.
fn step(m: Mat) -> usize {
    m.ld().max(m.cols()).max(1)
}

/// The rows of `m` in `y`, each `m.cols()` long (the view was checked
/// against `y`).
pub(crate) fn rows_mut(y: &mut [f32], m: Mat) -> impl Iterator<Item = &mut [f32]> {
    let (off, step, cols) = (m.off(), step(m), m.cols());
    y[off..m.end().max(off)]
        .chunks_mut(step)
        .take(m.rows())
        .map(move |r| &mut r[..cols])
}

/// The rows of `m` in `x`, each `m.cols()` long.
pub(crate) fn rows(x: &[f32], m: Mat) -> impl Iterator<Item = &[f32]> {
    let (off, step, cols) = (m.off(), step(m), m.cols());
    x[off..m.end().max(off)]
        .chunks(step)
        .take(m.rows())
        .map(move |r| &r[..cols])
}

/// A raw pointer that may cross threads: parallel items (conv tiles,
/// attention heads, LayerNorm column blocks) write disjoint parts of one
/// output through it.
pub(crate) struct SendPtr<T>(pub(crate) *mut T);

// Manual impls: a derive would ask `T: Clone` / `T: Copy`.
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

// SAFETY: only used to write disjoint parts of a buffer that outlives the
// parallel loop (each user says which parts).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `SendPtr`, not
    /// the raw pointer field).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_strided_and_one_row_views() {
        let x: Vec<f32> = (0..20).map(|v| v as f32).collect();
        let m = Mat::strided(1, 3, 2, 6).unwrap();
        let got: Vec<&[f32]> = rows(&x, m).collect();
        assert_eq!(got, [&[1.0, 2.0][..], &[7.0, 8.0], &[13.0, 14.0]]);
        // One row with a stride below its width (allowed: no other row).
        let one = Mat::strided(4, 1, 5, 0).unwrap();
        let mut y = x.clone();
        let rs: Vec<&mut [f32]> = rows_mut(&mut y, one).collect();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0], &[4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(rows(&x, Mat::new(0, 3)).count(), 0);
    }
}
