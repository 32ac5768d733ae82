//! The shape rules of the ops, shared by every backend: each function says
//! whether an op's views and weights agree, and why not. A backend checks them
//! (with [`views_fit`]) before it touches memory; on a violation the op does
//! nothing and the backend keeps the message for [`super::Executor::check`],
//! which reports it as [`crate::error::BackendError::Shape`]. So a bad shape
//! is the same error on the CPU and on CUDA, never a panic or a stray write.

use super::Mat;

/// Every `(buffer length, view)` pair: the view lies inside its buffer.
///
/// # Errors
/// The first view that does not fit, with its buffer's length.
pub fn views_fit(views: &[(usize, Mat)]) -> Result<(), String> {
    match views.iter().find(|(len, m)| !m.fits(*len)) {
        Some((len, m)) => Err(format!(
            "view {m:?} (ends at {}) outside its buffer of {len} floats",
            m.end()
        )),
        None => Ok(()),
    }
}

fn rule(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Same rows and columns (element-wise ops between two views).
///
/// # Errors
/// The two shapes.
pub fn same(xm: Mat, ym: Mat) -> Result<(), String> {
    rule(xm.rows() == ym.rows() && xm.cols() == ym.cols(), || {
        format!(
            "input {}×{} and output {}×{} differ",
            xm.rows(),
            xm.cols(),
            ym.rows(),
            ym.cols()
        )
    })
}

/// A "same"-padded conv `cin → cout` (`depthwise`: one input channel per
/// output channel, so the input has `cout` rows).
///
/// # Errors
/// Which dimension disagrees.
pub fn conv1d(cin: usize, cout: usize, depthwise: bool, xm: Mat, ym: Mat) -> Result<(), String> {
    let rows_in = if depthwise { cout } else { cin };
    rule(
        xm.rows() == rows_in && ym.rows() == cout && ym.cols() == xm.cols(),
        || {
            format!(
                "input {}×{} / output {}×{} for a {cin}→{cout} conv{}",
                xm.rows(),
                xm.cols(),
                ym.rows(),
                ym.cols(),
                if depthwise { " (depthwise)" } else { "" }
            )
        },
    )
}

/// A transposed conv `cin → cout` upsampling by `stride`.
///
/// # Errors
/// Which dimension disagrees.
pub fn conv_transpose(
    cin: usize,
    cout: usize,
    stride: usize,
    xm: Mat,
    ym: Mat,
) -> Result<(), String> {
    rule(
        xm.rows() == cin && ym.rows() == cout && Some(ym.cols()) == xm.cols().checked_mul(stride),
        || {
            format!(
                "input {}×{} / output {}×{} for a {cin}→{cout} transposed conv of stride {stride}",
                xm.rows(),
                xm.cols(),
                ym.rows(),
                ym.cols()
            )
        },
    )
}

/// Attention over `heads` heads: `q`, `k`, `v` and `y` all `[heads·d, T]`,
/// relative tables of `rel_len` floats (`(2·window + 1) · d` each).
///
/// # Errors
/// Which dimension disagrees.
pub fn attention(
    heads: usize,
    q: Mat,
    k: Mat,
    v: Mat,
    ym: Mat,
    rel_len: usize,
) -> Result<(), String> {
    let c = q.rows();
    let d = c.checked_div(heads).unwrap_or(0);
    rule(
        heads > 0
            && c.is_multiple_of(heads)
            && [k, v, ym]
                .iter()
                .all(|m| m.rows() == c && m.cols() == q.cols())
            && d > 0
            && rel_len.is_multiple_of(d)
            && (rel_len / d) % 2 == 1,
        || {
            format!(
                "q {}×{}, k {}×{}, v {}×{}, y {}×{} with {heads} heads and relative tables of {rel_len} floats",
                q.rows(),
                q.cols(),
                k.rows(),
                k.cols(),
                v.rows(),
                v.cols(),
                ym.rows(),
                ym.cols()
            )
        },
    )
}

/// A LayerNorm over the rows of `xm` with `gamma`/`beta` of `params` floats
/// (and a residual `rm` of the same shape, if any).
///
/// # Errors
/// Which dimension disagrees.
pub fn layer_norm(xm: Mat, rm: Option<Mat>, params: (usize, usize)) -> Result<(), String> {
    if let Some(rm) = rm {
        same(rm, xm)?;
    }
    rule(params.0 == xm.rows() && params.1 == xm.rows(), || {
        format!(
            "{} channels but gamma/beta of {} / {} values",
            xm.rows(),
            params.0,
            params.1
        )
    })
}

/// `y = tanh(a[0:C]) ⊙ sigmoid(a[C:2C])`: `a` has twice `y`'s rows.
///
/// # Errors
/// Which dimension disagrees.
pub fn gate(am: Mat, ym: Mat) -> Result<(), String> {
    rule(am.rows() == 2 * ym.rows() && am.cols() == ym.cols(), || {
        format!(
            "gate input {}×{} for an output of {}×{}",
            am.rows(),
            am.cols(),
            ym.rows(),
            ym.cols()
        )
    })
}

/// The spline inverse: one row `z`, `θ` of `3·bins − 1` rows, same columns.
///
/// # Errors
/// Which dimension disagrees.
pub fn spline(zm: Mat, thm: Mat, bins: usize) -> Result<(), String> {
    rule(
        zm.rows() == 1
            && bins > 0
            && bins.checked_mul(3).map(|b| b - 1) == Some(thm.rows())
            && thm.cols() == zm.cols(),
        || {
            format!(
                "z {}×{} with θ {}×{} for {bins} bins",
                zm.rows(),
                zm.cols(),
                thm.rows(),
                thm.cols()
            )
        },
    )
}

/// Prior expansion: `ml` holds `m` and `logs` (twice `y`'s rows); one owner
/// per output column, each a column of `ml` or `u32::MAX`; `noise` dense
/// `[y.rows, y.cols]`.
///
/// # Errors
/// Which dimension or owner disagrees.
pub fn expand_prior(mlm: Mat, owner: &[u32], noise: usize, ym: Mat) -> Result<(), String> {
    rule(mlm.rows() == 2 * ym.rows(), || {
        format!(
            "m/logs of {} rows for {} output rows",
            mlm.rows(),
            ym.rows()
        )
    })?;
    rule(owner.len() >= ym.cols() && noise >= ym.len(), || {
        format!(
            "{} owners and {noise} noise values for {}×{} frames",
            owner.len(),
            ym.rows(),
            ym.cols()
        )
    })?;
    match owner[..ym.cols()]
        .iter()
        .find(|&&o| o != u32::MAX && o as usize >= mlm.cols())
    {
        Some(o) => Err(format!("owner {o} outside {} text columns", mlm.cols())),
        None => Ok(()),
    }
}

/// Embedding: every id a row of a table of `table_len` floats with `ym.rows`
/// floats per row, and an output column per id.
///
/// # Errors
/// The first id outside the table.
pub fn embed(table_len: usize, ids: &[i64], ym: Mat) -> Result<(), String> {
    let symbols = table_len.checked_div(ym.rows()).unwrap_or(0);
    rule(ids.len() >= ym.cols(), || {
        format!("{} ids for {} columns", ids.len(), ym.cols())
    })?;
    match ids[..ym.cols()]
        .iter()
        .find(|&&id| id < 0 || id as usize >= symbols)
    {
        Some(id) => Err(format!("id {id} outside a table of {symbols} symbols")),
        None => Ok(()),
    }
}

/// A per-row bias: rows `off..off + xm.rows()` of a vector of `len` floats.
///
/// # Errors
/// The rows past the vector's end.
pub fn add_rows(len: usize, off: usize, xm: Mat) -> Result<(), String> {
    rule(off.checked_add(xm.rows()).is_some_and(|e| e <= len), || {
        format!(
            "rows {off}..{} outside a vector of {len} floats",
            off.saturating_add(xm.rows())
        )
    })
}

/// A host copy: `host` floats for a view of `m.len()` elements.
///
/// # Errors
/// The two sizes.
pub fn host(m: Mat, host: usize) -> Result<(), String> {
    rule(host >= m.len(), || {
        format!(
            "host buffer of {host} floats for a {}×{} view",
            m.rows(),
            m.cols()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_accept_good_shapes_and_name_bad_ones() {
        let (x, y) = (Mat::new(4, 10), Mat::new(8, 10));
        assert!(conv1d(4, 8, false, x, y).is_ok());
        assert!(conv1d(8, 8, true, y, y).is_ok());
        assert!(conv1d(4, 8, false, x, Mat::new(8, 9))
            .unwrap_err()
            .contains("4→8 conv"));
        assert!(conv_transpose(4, 8, 2, x, Mat::new(8, 20)).is_ok());
        assert!(conv_transpose(4, 8, 2, x, y).is_err());
        assert!(views_fit(&[(40, x)]).is_ok());
        assert!(views_fit(&[(39, x)]).unwrap_err().contains("39 floats"));
        assert!(embed(30, &[0, 9], Mat::new(3, 2)).is_ok());
        assert!(embed(30, &[0, 10], Mat::new(3, 2)).is_err());
        assert!(embed(30, &[-1], Mat::new(3, 1)).is_err());
        assert!(add_rows(10, 6, Mat::new(4, 3)).is_ok());
        assert!(add_rows(10, 7, Mat::new(4, 3)).is_err());
        assert!(add_rows(10, usize::MAX, Mat::new(4, 3)).is_err());
        assert!(expand_prior(Mat::new(4, 3), &[0, u32::MAX, 2], 6, Mat::new(2, 3)).is_ok());
        assert!(expand_prior(Mat::new(4, 3), &[0, 3, 2], 6, Mat::new(2, 3)).is_err());
        let q = Mat::new(6, 5);
        assert!(attention(2, q, q, q, q, 3 * 9).is_ok());
        assert!(attention(4, q, q, q, q, 3 * 9).is_err());
        assert!(spline(Mat::new(1, 5), Mat::new(29, 5), 10).is_ok());
        assert!(gate(Mat::new(4, 5), Mat::new(2, 5)).is_ok());
        assert!(layer_norm(x, Some(x), (4, 4)).is_ok());
        assert!(layer_norm(x, None, (3, 4)).is_err());
    }
}
