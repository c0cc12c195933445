//! Seeded train/test splits and stratified k-fold cross-validation.

use serde::{Deserialize, Serialize};

use crate::data::{check_labels, select_rows, Matrix};
use crate::error::{MlError, Result};

/// A small seeded generator (SplitMix64): enough for shuffling, seeding k-means++ and sampling,
/// and the whole stream is fixed by the seed on every platform. Shared by the crate's seeded
/// estimators.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias for n far below 2^64 is negligible).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw (Box–Muller; the second value of the pair is dropped for
    /// simplicity, which costs speed, not quality).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // in (0, 1]: the log is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Shuffles `v` in place (Fisher–Yates).
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
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

/// One fold of a cross-validation: the samples to fit on and the samples to score on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    /// Training indices, increasing.
    pub train: Vec<usize>,
    /// Test indices, increasing.
    pub test: Vec<usize>,
}

/// Stratified k-fold cross-validation (scikit-learn's `StratifiedKFold`): every sample is in
/// exactly one test fold, and each fold holds every class in (as nearly as integers allow) the
/// proportion of the whole data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StratifiedKFold {
    /// The number of folds (at least 2).
    pub n_splits: usize,
    /// Shuffle each class's samples before dealing them to the folds; without shuffling the
    /// folds take consecutive samples of each class.
    pub shuffle: bool,
    /// Seed of the shuffle.
    pub seed: u64,
}

impl StratifiedKFold {
    /// `n_splits` folds without shuffling.
    pub fn new(n_splits: usize) -> Self {
        StratifiedKFold { n_splits, shuffle: false, seed: 0 }
    }

    /// The folds of labels `y`. Class counts are dealt like cards: with the labels sorted by
    /// class, fold `f` receives sorted positions `f, f + k, f + 2k, …`, so fold sizes differ by at
    /// most one and each class's counts across folds differ by at most one (scikit-learn's
    /// allocation; the particular samples differ from scikit-learn's when shuffling, since the
    /// generators differ). Errors when `n_splits < 2`, when there are fewer samples than folds,
    /// and when no class has at least `n_splits` samples. A class with fewer samples than folds
    /// is allowed (it is missing from some test folds), as scikit-learn allows it with a warning.
    pub fn split(&self, y: &[usize]) -> Result<Vec<Fold>> {
        const WHAT: &str = "StratifiedKFold::split";
        let k = self.n_splits;
        if k < 2 {
            return Err(MlError::InvalidParameter {
                what: WHAT,
                detail: format!("n_splits must be at least 2, got {k}"),
            });
        }
        if y.len() < k {
            return Err(MlError::TooFew {
                what: WHAT,
                param: "n_splits",
                requested: k,
                available: y.len(),
                unit: "samples",
            });
        }
        let mut classes = y.to_vec();
        classes.sort_unstable();
        classes.dedup();
        let members: Vec<Vec<usize>> = classes.iter().map(|c| (0..y.len()).filter(|&i| y[i] == *c).collect()).collect();
        let largest = members.iter().map(Vec::len).max().unwrap_or(0);
        if largest < k {
            return Err(MlError::TooFew {
                what: WHAT,
                param: "n_splits",
                requested: k,
                available: largest,
                unit: "samples in the largest class",
            });
        }
        // allocation[f][c]: how many samples of class c go to test fold f.
        let mut allocation = vec![vec![0usize; classes.len()]; k];
        let mut pos = 0;
        for (c, m) in members.iter().enumerate() {
            for _ in 0..m.len() {
                allocation[pos % k][c] += 1;
                pos += 1;
            }
        }
        let mut rng = SplitMix64(self.seed);
        let mut fold_of = vec![0usize; y.len()];
        for (c, m) in members.iter().enumerate() {
            let mut folds: Vec<usize> = (0..k).flat_map(|f| std::iter::repeat_n(f, allocation[f][c])).collect();
            if self.shuffle {
                rng.shuffle(&mut folds);
            }
            for (&i, &f) in m.iter().zip(&folds) {
                fold_of[i] = f;
            }
        }
        Ok((0..k)
            .map(|f| {
                let (test, train): (Vec<usize>, Vec<usize>) = (0..y.len()).partition(|&i| fold_of[i] == f);
                Fold { train, test }
            })
            .collect())
    }
}

/// Cross-validation with a caller-supplied model (scikit-learn's `cross_val_score`): for every
/// fold, `fit_score(x_train, y_train, x_test, y_test)` fits on the training part and returns a
/// score on the test part. Returns the scores in fold order; the first error is returned as is.
///
/// ```
/// use jizen_ml::{cross_val_score, KnnConfig, Matrix, StratifiedKFold};
/// let x = Matrix::from_fn(20, 1, |i, _| (i % 2) as f64 * 10.0 + i as f64 * 0.01);
/// let y: Vec<usize> = (0..20).map(|i| i % 2).collect();
/// let folds = StratifiedKFold { n_splits: 4, shuffle: true, seed: 1 }.split(&y).unwrap();
/// let scores = cross_val_score(&x, &y, &folds, |xt, yt, xv, yv| KnnConfig::new(1).fit(xt, yt)?.score(xv, yv)).unwrap();
/// assert_eq!(scores, vec![1.0; 4]);
/// ```
pub fn cross_val_score<F>(x: &Matrix, y: &[usize], folds: &[Fold], mut fit_score: F) -> Result<Vec<f64>>
where
    F: FnMut(&Matrix, &[usize], &Matrix, &[usize]) -> Result<f64>,
{
    const WHAT: &str = "cross_val_score";
    check_labels(WHAT, x, y)?;
    let mut scores = Vec::with_capacity(folds.len());
    for (f, fold) in folds.iter().enumerate() {
        if let Some(&i) = fold.train.iter().chain(&fold.test).find(|&&i| i >= y.len()) {
            return Err(MlError::ShapeMismatch {
                what: WHAT,
                detail: format!("fold {f} names sample {i} but the data has {} samples", y.len()),
            });
        }
        let pick = |idx: &[usize]| (select_rows(x, idx), idx.iter().map(|&i| y[i]).collect::<Vec<_>>());
        let (x_train, y_train) = pick(&fold.train);
        let (x_test, y_test) = pick(&fold.test);
        scores.push(fit_score(&x_train, &y_train, &x_test, &y_test)?);
    }
    Ok(scores)
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

    #[test]
    fn stratified_folds_partition_the_data_and_keep_proportions() {
        // 3 classes of 10, 7 and 4 samples, interleaved; 4 folds.
        let y: Vec<usize> = (0..21)
            .map(|i| {
                if i % 3 == 0 && i < 12 {
                    2
                } else if i % 2 == 0 {
                    0
                } else {
                    1
                }
            })
            .collect();
        let counts = |idx: &[usize], c: usize| idx.iter().filter(|&&i| y[i] == c).count();
        for shuffle in [false, true] {
            let folds = StratifiedKFold { n_splits: 4, shuffle, seed: 9 }.split(&y).unwrap();
            let mut seen = vec![0; y.len()];
            for f in &folds {
                f.test.iter().for_each(|&i| seen[i] += 1);
                assert_eq!(f.train.len() + f.test.len(), y.len());
                assert!(f.train.iter().all(|i| !f.test.contains(i)));
                for c in 0..3 {
                    let total = counts(&(0..y.len()).collect::<Vec<_>>(), c);
                    let here = counts(&f.test, c);
                    assert!(here == total / 4 || here == total.div_ceil(4), "class {c}: {here} of {total}");
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{seen:?}");
            let sizes: Vec<usize> = folds.iter().map(|f| f.test.len()).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
        }
        let a = StratifiedKFold { n_splits: 4, shuffle: true, seed: 1 }.split(&y).unwrap();
        let b = StratifiedKFold { n_splits: 4, shuffle: true, seed: 2 }.split(&y).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn cross_val_score_runs_every_fold_and_checks_indices() {
        let x = Matrix::from_fn(6, 1, |i, _| i as f64);
        let y = [0, 1, 0, 1, 0, 1];
        let folds = StratifiedKFold::new(3).split(&y).unwrap();
        let sizes = cross_val_score(&x, &y, &folds, |xt, yt, xv, yv| {
            assert_eq!((xt.nrows(), yt.len(), xv.nrows(), yv.len()), (4, 4, 2, 2));
            Ok(xv.nrows() as f64)
        })
        .unwrap();
        assert_eq!(sizes, vec![2.0; 3]);
        let bad = [Fold { train: vec![0], test: vec![9] }];
        assert!(matches!(cross_val_score(&x, &y, &bad, |_, _, _, _| Ok(0.0)), Err(MlError::ShapeMismatch { .. })));
        assert!(StratifiedKFold::new(1).split(&y).is_err());
        assert!(StratifiedKFold::new(4).split(&y).is_err(), "no class has 4 samples");
    }
}
