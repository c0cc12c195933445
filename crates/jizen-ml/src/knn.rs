//! k-nearest-neighbour classification by brute force (scikit-learn's
//! `KNeighborsClassifier(algorithm="brute")`, Euclidean metric).

use serde::{Deserialize, Serialize};

use crate::data::{check_features, check_labels, check_n_features, encode_classes, Matrix};
use crate::error::{MlError, Result};
use crate::metrics::accuracy;

/// How the k neighbours' votes are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KnnWeights {
    /// Every neighbour has one vote.
    #[default]
    Uniform,
    /// A neighbour's vote is `1 / distance`; when some neighbours coincide with the query
    /// (distance 0), only they vote, with equal weight (scikit-learn's rule).
    Distance,
}

/// Configuration of a k-nearest-neighbour classifier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KnnConfig {
    /// How many neighbours vote (at least 1, at most the number of training samples).
    pub k: usize,
    /// How the votes are weighted.
    pub weights: KnnWeights,
}

/// A fitted classifier: the training set itself, plus the squared norm of every training row.
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    k: usize,
    weights: KnnWeights,
    x: Matrix,
    x_sq: Vec<f64>,
    classes: Vec<usize>,
    /// Per training row, the index of its label in `classes`.
    y: Vec<usize>,
}

/// Test rows per distance block: bounds the `[block, n_train]` distance matrix in memory.
const BLOCK: usize = 256;

impl KnnConfig {
    /// A configuration with `k` neighbours and uniform weights.
    pub fn new(k: usize) -> Self {
        KnnConfig { k, weights: KnnWeights::Uniform }
    }

    /// Stores the training data. Errors when `k` is 0 or exceeds the number of samples, on
    /// non-finite features, and when `y` has a different length or a single class.
    pub fn fit(&self, x: &Matrix, y: &[usize]) -> Result<Knn> {
        const WHAT: &str = "KnnConfig::fit";
        check_features(WHAT, x)?;
        check_labels(WHAT, x, y)?;
        if self.k == 0 {
            return Err(MlError::InvalidParameter { what: WHAT, detail: "k must be at least 1".into() });
        }
        if self.k > x.nrows() {
            return Err(MlError::TooFew {
                what: WHAT,
                param: "k",
                requested: self.k,
                available: x.nrows(),
                unit: "samples",
            });
        }
        let (classes, y) = encode_classes(WHAT, y)?;
        let x_sq = (0..x.nrows()).map(|i| x.row(i).iter().map(|v| v * v).sum()).collect();
        Ok(Knn { k: self.k, weights: self.weights, x: x.clone(), x_sq, classes, y })
    }
}

impl Knn {
    /// The sorted distinct training labels; column `c` of [`predict_proba`](Self::predict_proba)
    /// belongs to `classes()[c]`.
    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    /// For each row of `x`, the indices (into the training set) and Euclidean distances of its
    /// `k` nearest training rows, nearest first. Squared distances come from
    /// `|a|² + |b|² − 2 a·b` with one matrix product per block of rows, clamped at 0 against
    /// rounding. Equal distances are ordered by training index (scikit-learn leaves that order
    /// unspecified, so on exact ties the k-th neighbour may differ).
    pub fn kneighbors(&self, x: &Matrix) -> Result<Vec<Vec<(usize, f64)>>> {
        check_n_features("Knn::kneighbors", x, self.x.ncols())?;
        let n_train = self.x.nrows();
        let mut out = Vec::with_capacity(x.nrows());
        let mut order: Vec<usize> = Vec::with_capacity(n_train);
        for start in (0..x.nrows()).step_by(BLOCK) {
            let rows = BLOCK.min(x.nrows() - start);
            let q = x.subrows(start, rows);
            let ab = q * self.x.transpose(); // [rows, n_train]
            for i in 0..rows {
                let q_sq: f64 = q.row(i).iter().map(|v| v * v).sum();
                let d2: Vec<f64> = (0..n_train).map(|t| (q_sq + self.x_sq[t] - 2.0 * ab[(i, t)]).max(0.0)).collect();
                let cmp = |a: &usize, b: &usize| d2[*a].total_cmp(&d2[*b]).then(a.cmp(b));
                order.clear();
                order.extend(0..n_train);
                if self.k < n_train {
                    order.select_nth_unstable_by(self.k - 1, cmp);
                    order.truncate(self.k);
                }
                order.sort_unstable_by(cmp);
                out.push(order.iter().map(|&t| (t, d2[t].sqrt())).collect());
            }
        }
        Ok(out)
    }

    /// For each row of `x`, the weighted share of each class among its neighbours,
    /// `[n, n_classes]` with columns in the order of [`classes`](Self::classes).
    pub fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        let nbrs = self.kneighbors(x)?;
        let mut p = Matrix::zeros(x.nrows(), self.classes.len());
        for (i, nb) in nbrs.iter().enumerate() {
            let exact = nb.iter().any(|&(_, d)| d == 0.0);
            for &(t, d) in nb {
                let w = match self.weights {
                    KnnWeights::Uniform => 1.0,
                    KnnWeights::Distance if exact => f64::from(u8::from(d == 0.0)),
                    KnnWeights::Distance => 1.0 / d,
                };
                p[(i, self.y[t])] += w;
            }
            let total: f64 = (0..self.classes.len()).map(|c| p[(i, c)]).sum();
            for c in 0..self.classes.len() {
                p[(i, c)] /= total;
            }
        }
        Ok(p)
    }

    /// The class with the largest (weighted) vote among each row's neighbours. A tie goes to the
    /// smallest label, as in scikit-learn (its `predict` takes the first maximum of the class
    /// votes, whose columns are the sorted labels).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<usize>> {
        let p = self.predict_proba(x)?;
        Ok((0..p.nrows())
            .map(|i| {
                let mut best = 0;
                for c in 1..p.ncols() {
                    if p[(i, c)] > p[(i, best)] {
                        best = c;
                    }
                }
                self.classes[best]
            })
            .collect())
    }

    /// The accuracy of [`predict`](Self::predict) on `(x, y)`, in [0, 1].
    pub fn score(&self, x: &Matrix, y: &[usize]) -> Result<f64> {
        check_labels("Knn::score", x, y)?;
        accuracy(y, &self.predict(x)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::matrix_from_rows;

    fn line() -> (Matrix, Vec<usize>) {
        (matrix_from_rows(6, 1, &[0.0, 1.0, 2.0, 10.0, 11.0, 12.0]).unwrap(), vec![3, 3, 3, 8, 8, 8])
    }

    #[test]
    fn neighbours_are_sorted_and_exact() {
        let (x, y) = line();
        let knn = KnnConfig::new(3).fit(&x, &y).unwrap();
        let q = matrix_from_rows(1, 1, &[10.4]).unwrap();
        let nb = knn.kneighbors(&q).unwrap();
        assert_eq!(nb[0].iter().map(|p| p.0).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert!((nb[0][0].1 - 0.4).abs() < 1e-12);
        assert_eq!(knn.predict(&matrix_from_rows(2, 1, &[1.5, 9.0]).unwrap()).unwrap(), vec![3, 8]);
        assert_eq!(knn.score(&x, &y).unwrap(), 1.0);
    }

    #[test]
    fn ties_go_to_the_smallest_label_and_distance_weights_break_them() {
        let (x, y) = line();
        // k = 2 at 6.0: nearest are 2.0 (label 3, d 4) and 10.0 (label 8, d 4): a tie.
        let q = matrix_from_rows(1, 1, &[6.0]).unwrap();
        assert_eq!(KnnConfig::new(2).fit(&x, &y).unwrap().predict(&q).unwrap(), vec![3]);
        // k = 4 at 6.5: 10.0 (8, d 3.5), 2.0 (3, d 4.5), 11.0 (8, d 4.5), then 1.0 and 12.0 tie
        // at 5.5 and the smaller index, 1.0 (3), wins. Uniform: 2-2 -> 3; distance -> 8.
        let q = matrix_from_rows(1, 1, &[6.5]).unwrap();
        assert_eq!(KnnConfig::new(4).fit(&x, &y).unwrap().predict(&q).unwrap(), vec![3]);
        let cfg = KnnConfig { k: 4, weights: KnnWeights::Distance };
        assert_eq!(cfg.fit(&x, &y).unwrap().predict(&q).unwrap(), vec![8]);
    }

    #[test]
    fn exact_matches_outvote_everything_with_distance_weights() {
        let x = matrix_from_rows(3, 1, &[0.0, 0.1, 0.2]).unwrap();
        let knn = KnnConfig { k: 3, weights: KnnWeights::Distance }.fit(&x, &[1, 2, 2]).unwrap();
        let p = knn.predict_proba(&matrix_from_rows(1, 1, &[0.0]).unwrap()).unwrap();
        assert_eq!((p[(0, 0)], p[(0, 1)]), (1.0, 0.0));
    }
}
