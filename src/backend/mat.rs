//! [`Mat`]: a checked 2-D view into a backend buffer. Its fields are private:
//! a view is made only by [`Mat::new`], [`Mat::strided`] or a sub-view, so
//! its rows never overlap (`ld >= cols`) and its extent never overflows. The
//! ops check a view against its buffer ([`Mat::fits`]) before touching it;
//! together this keeps the parallel row writes of the kernels disjoint and
//! inside their buffers for any view safe code can make.

/// A 2-D view: `rows × cols` elements, row stride `ld`, starting at element `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mat {
    off: usize,
    rows: usize,
    cols: usize,
    ld: usize,
}

impl Mat {
    /// A dense `rows × cols` matrix at the start of a buffer.
    ///
    /// # Panics
    /// When `rows · cols` overflows `usize` (no buffer could hold it).
    pub fn new(rows: usize, cols: usize) -> Mat {
        Mat::strided(0, rows, cols, cols).expect("a dense view's size overflows usize")
    }

    /// A view of `rows × cols` elements with row stride `ld` from element
    /// `off`; `None` when rows would overlap (`ld < cols` with more than one
    /// row) or the extent overflows `usize`.
    pub fn strided(off: usize, rows: usize, cols: usize, ld: usize) -> Option<Mat> {
        if rows > 1 && ld < cols {
            return None;
        }
        let m = Mat {
            off,
            rows,
            cols,
            ld,
        };
        m.checked_end().map(|_| m)
    }

    /// First element.
    pub fn off(self) -> usize {
        self.off
    }

    /// Rows (channels).
    pub fn rows(self) -> usize {
        self.rows
    }

    /// Columns (time steps).
    pub fn cols(self) -> usize {
        self.cols
    }

    /// Row stride in elements (`>= cols` whenever there is more than one row).
    pub fn ld(self) -> usize {
        self.ld
    }

    /// Elements in the view (`rows · cols`).
    pub fn len(self) -> usize {
        self.rows * self.cols
    }

    /// Whether the view has no element.
    pub fn is_empty(self) -> bool {
        self.rows == 0 || self.cols == 0
    }

    /// Rows `r0..r1` of this view.
    ///
    /// # Panics
    /// When `r0..r1` is not inside `0..rows` (a bug in the caller's shapes).
    pub fn sub_rows(self, r0: usize, r1: usize) -> Mat {
        assert!(
            r0 <= r1 && r1 <= self.rows,
            "rows {r0}..{r1} outside a view of {} rows",
            self.rows
        );
        Mat {
            off: self.off + r0 * self.ld,
            rows: r1 - r0,
            ..self
        }
    }

    /// Columns `c0..c1` of this view.
    ///
    /// # Panics
    /// When `c0..c1` is not inside `0..cols` (a bug in the caller's shapes).
    pub fn sub_cols(self, c0: usize, c1: usize) -> Mat {
        assert!(
            c0 <= c1 && c1 <= self.cols,
            "columns {c0}..{c1} outside a view of {} columns",
            self.cols
        );
        Mat {
            off: self.off + c0,
            cols: c1 - c0,
            ..self
        }
    }

    /// One past the last element this view touches (`off` for an empty view).
    pub fn end(self) -> usize {
        // Checked at construction; sub-views only shrink the extent.
        self.checked_end().unwrap_or(usize::MAX)
    }

    fn checked_end(self) -> Option<usize> {
        if self.is_empty() {
            return Some(self.off);
        }
        (self.rows - 1)
            .checked_mul(self.ld)?
            .checked_add(self.cols)?
            .checked_add(self.off)
    }

    /// Whether the view lies inside a buffer of `len` elements.
    pub fn fits(self, len: usize) -> bool {
        self.end() <= len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_or_overflowing_views_cannot_be_made() {
        assert!(Mat::strided(0, 2, 5, 4).is_none(), "rows would overlap");
        assert!(
            Mat::strided(0, 1, 5, 0).is_some(),
            "one row needs no stride"
        );
        assert!(Mat::strided(3, 2, 5, 5).is_some());
        assert!(Mat::strided(usize::MAX - 3, 1, 5, 5).is_none());
        assert!(Mat::strided(0, usize::MAX / 2, 5, 5).is_none());
    }

    #[test]
    fn sub_views_stay_inside_and_keep_the_stride() {
        let m = Mat::strided(2, 4, 10, 12).unwrap();
        let s = m.sub_rows(1, 3).sub_cols(2, 7);
        assert_eq!(
            (s.off(), s.rows(), s.cols(), s.ld()),
            (2 + 12 + 2, 2, 5, 12)
        );
        assert_eq!(s.end(), 2 + 12 + 2 + 12 + 5);
        assert!(m.fits(m.end()) && !m.fits(m.end() - 1));
        assert_eq!(Mat::new(0, 7).end(), 0);
    }

    #[test]
    #[should_panic(expected = "columns 3..11")]
    fn a_sub_view_past_the_end_is_refused() {
        let _ = Mat::new(2, 10).sub_cols(3, 11);
    }
}
