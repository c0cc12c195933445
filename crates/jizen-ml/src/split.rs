//! Seeded train/test splits.

use crate::data::{check_labels, select_rows, Matrix};
use crate::error::{MlError, Result};

/// A small seeded generator (SplitMix64): enough for shuffling, and the whole stream is fixed
/// by the seed on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias for n far below 2^64 is negligible).
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Shuffles `0..n` with `seed` and cuts it: the first `ceil(test_fraction * n)` indices are the
/// test set (scikit-learn rounds the test size up too), the rest the training set. Returns
/// `(train, test)`. Errors unless both parts are non-empty.
pub fn train_test_indices(n: usize, test_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    const WHAT: &str = "train_test_split";
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(MlError::InvalidParameter {
            what: WHAT,
            detail: format!("test_fraction must be in (0, 1), got {test_fraction}"),
        });
    }
    let n_test = (test_fraction * n as f64).ceil() as usize;
    if n_test == 0 || n_test >= n {
        return Err(MlError::TooFew { what: WHAT, param: "n_samples", requested: 2, available: n, unit: "samples" });
    }
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64(seed);
    for i in (1..n).rev() {
        idx.swap(i, rng.below(i + 1));
    }
    let train = idx.split_off(n_test);
    Ok((train, idx))
}

/// The four parts of a [`train_test_split`].
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Training features.
    pub x_train: Matrix,
    /// Test features.
    pub x_test: Matrix,
    /// Training labels.
    pub y_train: Vec<usize>,
    /// Test labels.
    pub y_test: Vec<usize>,
}

/// Splits `(x, y)` into shuffled training and test parts with [`train_test_indices`].
///
/// ```
/// let x = jizen_ml::Matrix::from_fn(10, 2, |i, j| (i * 2 + j) as f64);
/// let y: Vec<usize> = (0..10).map(|i| i % 2).collect();
/// let s = jizen_ml::train_test_split(&x, &y, 0.25, 7).unwrap();
/// assert_eq!((s.x_train.nrows(), s.x_test.nrows(), s.y_test.len()), (7, 3, 3));
/// ```
pub fn train_test_split(x: &Matrix, y: &[usize], test_fraction: f64, seed: u64) -> Result<Split> {
    check_labels("train_test_split", x, y)?;
    let (train, test) = train_test_indices(x.nrows(), test_fraction, seed)?;
    Ok(Split {
        x_train: select_rows(x, &train),
        x_test: select_rows(x, &test),
        y_train: train.iter().map(|&i| y[i]).collect(),
        y_test: test.iter().map(|&i| y[i]).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_a_seeded_partition() {
        let (tr, te) = train_test_indices(100, 0.25, 42).unwrap();
        assert_eq!((tr.len(), te.len()), (75, 25));
        let mut all: Vec<usize> = tr.iter().chain(&te).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(train_test_indices(100, 0.25, 42).unwrap(), (tr.clone(), te));
        assert_ne!(train_test_indices(100, 0.25, 43).unwrap().0, tr);
        assert_ne!(tr, (25..100).collect::<Vec<_>>(), "the split should shuffle");
    }

    #[test]
    fn bad_fractions_and_tiny_inputs_are_errors() {
        assert!(train_test_indices(10, 0.0, 0).is_err());
        assert!(train_test_indices(10, f64::NAN, 0).is_err());
        assert!(train_test_indices(1, 0.5, 0).is_err());
    }
}
