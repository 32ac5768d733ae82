//! Columns worth computing in a window cut out of a longer sentence.

use crate::backend::Mat;

/// The columns an op computes at the current rate: all `n` but `l` on the
/// left and `r` on the right, which are wrong already at a cut end (and are
/// 0 at a true end of the sentence, where the zero padding is right).
///
/// A window cut out of a longer sentence sees zeros beyond the cut instead
/// of the real neighbours, so after each "same" conv of radius `p` another
/// `p` columns at that end are wrong. Skipping exactly the columns that are
/// wrong already changes nothing else: every other column reads the same
/// inputs in the same order as with the whole sentence.
#[derive(Clone, Copy)]
pub(crate) struct Span {
    n: usize,
    l: usize,
    r: usize,
    cut: (bool, bool),
}

impl Span {
    pub(crate) fn new(n: usize, cut: (bool, bool)) -> Span {
        Span { n, l: 0, r: 0, cut }
    }

    /// All columns of the window at the current rate.
    pub(crate) fn len(self) -> usize {
        self.n
    }

    /// The computed columns `lo..hi` (empty rather than inverted).
    pub(crate) fn range(self) -> (usize, usize) {
        let lo = self.l.min(self.n);
        (lo, self.n.saturating_sub(self.r).max(lo))
    }

    /// Rows `rows` over the computed columns.
    pub(crate) fn view(self, rows: usize) -> Mat {
        let (lo, hi) = self.range();
        Mat::new(rows, self.n).sub_cols(lo, hi)
    }

    /// After a "same" conv of radius `p`: `p` more wrong columns at each cut end.
    pub(crate) fn grow(&mut self, p: usize) {
        if self.cut.0 {
            self.l += p;
        }
        if self.cut.1 {
            self.r += p;
        }
    }

    /// After a transposed conv of stride `u` (output `n` reads inputs
    /// `(n + u/2)/u` and one before): wrong input columns scale by `u`, plus `u/2`.
    pub(crate) fn up(&mut self, u: usize) {
        self.n *= u;
        if self.cut.0 {
            self.l = self.l * u + u / 2;
        }
        if self.cut.1 {
            self.r = self.r * u + u / 2;
        }
    }

    /// The more trimmed of two spans of one buffer.
    pub(crate) fn widest(self, o: Span) -> Span {
        Span {
            l: self.l.max(o.l),
            r: self.r.max(o.r),
            ..self
        }
    }
}
