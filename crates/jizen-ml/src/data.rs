//! Dense inputs and their validation.
//!
//! Features are a [`Matrix`] (`faer::Mat<f64>`, samples in rows, features in columns); class labels
//! are `&[usize]`. Every estimator validates its input with the helpers here before touching it,
//! so NaN, infinities, empty inputs and disagreeing shapes are errors that say where they are.

use crate::error::{MlError, Result};

/// A dense f64 matrix, samples in rows and features in columns (faer's column-major `Mat`).
pub type Matrix = faer::Mat<f64>;

/// Builds a `rows x cols` matrix from row-major `data` (the layout of a CSV file or a NumPy array).
///
/// ```
/// let x = jizen_ml::matrix_from_rows(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
/// assert_eq!(x[(1, 0)], 4.0);
/// ```
pub fn matrix_from_rows(rows: usize, cols: usize, data: &[f64]) -> Result<Matrix> {
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(MlError::ShapeMismatch {
            what: "matrix_from_rows",
            detail: format!("{rows} x {cols} needs {} values, got {}", rows.saturating_mul(cols), data.len()),
        });
    }
    Ok(Matrix::from_fn(rows, cols, |i, j| data[i * cols + j]))
}

/// Copies the rows `idx` of `x`, in that order, into a new matrix (for splits and subsets).
///
/// Panics if an index is out of range, like slice indexing.
pub fn select_rows(x: &Matrix, idx: &[usize]) -> Matrix {
    Matrix::from_fn(idx.len(), x.ncols(), |i, j| x[(idx[i], j)])
}

/// Copies `x` into `out` (`x.nrows() * x.ncols()` values) in row-major order, so every sample
/// becomes one contiguous slice.
///
/// Rows are copied in blocks: a block's rows stay in cache while its columns are read, each
/// column piece one contiguous run.
pub(crate) fn to_row_major(x: faer::MatRef<'_, f64>, out: &mut [f64]) {
    const ROWS: usize = 64;
    let (n, d) = (x.nrows(), x.ncols());
    assert_eq!(out.len(), n * d, "a {n} x {d} matrix does not fill {} values", out.len());
    for start in (0..n).step_by(ROWS) {
        let rows = ROWS.min(n - start);
        let block = &mut out[start * d..(start + rows) * d];
        for j in 0..d {
            for (i, &v) in x.col(j).subrows(start, rows).iter().enumerate() {
                block[i * d + j] = v;
            }
        }
    }
}

/// The exact squared Euclidean distance between `q` and `p` (two rows), summed in feature order.
#[inline]
pub(crate) fn sq_dist(q: &[f64], p: &[f64]) -> f64 {
    q.iter().zip(p).map(|(v, w)| (v - w) * (v - w)).sum()
}

/// Checks that `x` has at least one row and one column and that every value is finite.
pub fn check_features(what: &'static str, x: &Matrix) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(MlError::Empty { what, rows: x.nrows(), cols: x.ncols() });
    }
    // Column-major storage: walk columns outside so the reads are contiguous; report the first
    // offender in row order, which is how a user reads a data file.
    let mut first: Option<(usize, usize, f64)> = None;
    for j in 0..x.ncols() {
        for (i, &v) in x.col(j).iter().enumerate() {
            if !v.is_finite() && first.is_none_or(|(r, _, _)| i < r) {
                first = Some((i, j, v));
                break;
            }
        }
    }
    match first {
        Some((row, col, value)) => Err(MlError::NonFinite { what, row, col, value }),
        None => Ok(()),
    }
}

/// Checks that `x` (validated by [`check_features`]) has `expected` columns, the number of
/// features the model was fitted on.
pub fn check_n_features(what: &'static str, x: &Matrix, expected: usize) -> Result<()> {
    check_features(what, x)?;
    if x.ncols() != expected {
        return Err(MlError::ShapeMismatch {
            what,
            detail: format!("x has {} features but the model was fitted on {expected}", x.ncols()),
        });
    }
    Ok(())
}

/// Checks that there is one label per row of `x`.
pub fn check_labels(what: &'static str, x: &Matrix, y: &[usize]) -> Result<()> {
    if x.nrows() != y.len() {
        return Err(MlError::ShapeMismatch {
            what,
            detail: format!("x has {} rows but y has {} labels", x.nrows(), y.len()),
        });
    }
    Ok(())
}

/// The sorted distinct labels of `y` and, for every sample, the position of its label in that list
/// (scikit-learn's `classes_` and the encoded targets). Errors when fewer than two classes occur.
pub fn encode_classes(what: &'static str, y: &[usize]) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut classes = y.to_vec();
    classes.sort_unstable();
    classes.dedup();
    match classes.len() {
        0 => return Err(MlError::Empty { what, rows: 0, cols: 0 }),
        1 => return Err(MlError::SingleClass { what, class: classes[0] }),
        _ => {}
    }
    let encoded = y.iter().map(|l| classes.binary_search(l).expect("label is in classes")).collect();
    Ok((classes, encoded))
}

/// Linear scores `X Wᵀ + b`, `[n, rows of W]`: intercept `c` is added to column `c` (an empty
/// `intercept` adds none).
pub(crate) fn affine_scores(x: &Matrix, coef: faer::MatRef<'_, f64>, intercept: &[f64]) -> Matrix {
    let mut z = x * coef.transpose();
    for (c, b) in intercept.iter().enumerate() {
        z.col_mut(c).iter_mut().for_each(|v| *v += b);
    }
    z
}

/// The label of each row's largest score (`z` `[n, classes]`), the smallest label on exact
/// ties; a single column is a binary score whose sign picks `classes[1]` (positive) or
/// `classes[0]`.
pub(crate) fn argmax_labels(z: &Matrix, classes: &[usize]) -> Vec<usize> {
    (0..z.nrows())
        .map(|i| {
            if z.ncols() == 1 {
                return classes[usize::from(z[(i, 0)] > 0.0)];
            }
            let mut best = 0;
            for c in 1..z.ncols() {
                if z[(i, c)] > z[(i, best)] {
                    best = c;
                }
            }
            classes[best]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_rows_is_row_major_and_checks_length() {
        let x = matrix_from_rows(2, 2, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!((x[(0, 1)], x[(1, 0)]), (2.0, 3.0));
        assert!(matches!(matrix_from_rows(2, 2, &[1.0]), Err(MlError::ShapeMismatch { .. })));
    }

    #[test]
    fn first_non_finite_value_is_reported_in_row_order() {
        let mut x = Matrix::zeros(3, 2);
        x[(2, 0)] = f64::INFINITY;
        x[(1, 1)] = f64::NAN;
        match check_features("t", &x) {
            Err(MlError::NonFinite { row: 1, col: 1, value, .. }) => assert!(value.is_nan()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(check_features("t", &Matrix::zeros(0, 3)), Err(MlError::Empty { .. })));
    }

    #[test]
    fn classes_are_sorted_and_encoded() {
        let (c, e) = encode_classes("t", &[7, 3, 7, 5]).unwrap();
        assert_eq!((c, e), (vec![3, 5, 7], vec![2, 0, 2, 1]));
        assert!(matches!(encode_classes("t", &[4, 4]), Err(MlError::SingleClass { class: 4, .. })));
    }

    #[test]
    fn labels_must_match_rows() {
        let x = Matrix::zeros(3, 1);
        let err = check_labels("t", &x, &[0, 1]).unwrap_err();
        assert_eq!(err.to_string(), "t: shape mismatch: x has 3 rows but y has 2 labels");
    }
}
