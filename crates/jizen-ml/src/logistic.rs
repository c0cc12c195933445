//! Multinomial logistic regression with an L2 penalty, fitted by L-BFGS (scikit-learn's
//! `LogisticRegression(solver="lbfgs")`).
//!
//! Objective (scikit-learn's): `0.5 ‖W‖² + C Σᵢ log-loss(softmax(W xᵢ + b), yᵢ)`, the intercept
//! `b` unpenalised. The solver minimises it divided by `C n` (the mean log-loss plus
//! `‖W‖² / (2 C n)`), as scikit-learn does, so `tol` means the same in both.

use serde::{Deserialize, Serialize};

use crate::data::{check_features, check_labels, check_n_features, encode_classes, Matrix};
use crate::error::{MlError, Result};
use crate::lbfgs::{minimize, LbfgsConfig};
use crate::metrics::accuracy;

/// Configuration of a [`LogisticRegression`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegressionConfig {
    /// Inverse regularisation strength (scikit-learn's `C`): larger means a weaker penalty.
    pub c: f64,
    /// Whether to fit an (unpenalised) intercept per class.
    pub fit_intercept: bool,
    /// The most L-BFGS iterations.
    pub max_iter: usize,
    /// Stop when the largest entry of the scaled objective's gradient is at most `tol`.
    pub tol: f64,
    /// L-BFGS history length.
    pub memory: usize,
}

impl Default for LogisticRegressionConfig {
    /// scikit-learn's defaults: `C = 1`, intercept, 100 iterations, `tol = 1e-4`, memory 10.
    fn default() -> Self {
        LogisticRegressionConfig { c: 1.0, fit_intercept: true, max_iter: 100, tol: 1e-4, memory: 10 }
    }
}

/// A fitted classifier: one weight row and one intercept per class.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    classes: Vec<usize>,
    /// `[n_classes, n_features]`.
    coef: Matrix,
    intercept: Vec<f64>,
    n_iter: usize,
    converged: bool,
}

/// Row-wise log-sum-exp of `z`, the maximum subtracted first so no exponential overflows.
fn logsumexp(z: &[f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// `X Wᵀ + b`: `[n, n_classes]` logits.
fn logits(x: &Matrix, coef: &Matrix, intercept: &[f64]) -> Matrix {
    let mut z = x * coef.transpose();
    for (c, b) in intercept.iter().enumerate() {
        z.col_mut(c).iter_mut().for_each(|v| *v += b);
    }
    z
}

impl LogisticRegressionConfig {
    /// A default configuration with inverse regularisation strength `c`.
    pub fn with_c(c: f64) -> Self {
        LogisticRegressionConfig { c, ..Default::default() }
    }

    fn validate(&self, what: &'static str) -> Result<()> {
        let bad = |detail: String| Err(MlError::InvalidParameter { what, detail });
        if !(self.c.is_finite() && self.c > 0.0) {
            return bad(format!("C must be positive and finite, got {}", self.c));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return bad(format!("tol must be non-negative and finite, got {}", self.tol));
        }
        if self.max_iter == 0 || self.memory == 0 {
            return bad(format!("max_iter ({}) and memory ({}) must be at least 1", self.max_iter, self.memory));
        }
        Ok(())
    }

    /// Fits the softmax model from zero weights. Errors on invalid settings, non-finite
    /// features, mismatched lengths and labels of a single class.
    ///
    /// With two classes the model is scikit-learn's binary (sigmoid) one: the softmax fit uses
    /// `C / 2`, which makes `coef()[1] - coef()[0]` equal scikit-learn's `coef_[0]` (the two rows
    /// come out as exact negatives, since the solver starts at zero and every gradient sums to
    /// zero over the classes).
    ///
    /// Not reaching `tol` within `max_iter` is not an error (scikit-learn warns):
    /// [`converged`](LogisticRegression::converged) reports it.
    pub fn fit(&self, x: &Matrix, y: &[usize]) -> Result<LogisticRegression> {
        const WHAT: &str = "LogisticRegressionConfig::fit";
        self.validate(WHAT)?;
        check_features(WHAT, x)?;
        check_labels(WHAT, x, y)?;
        let (classes, y) = encode_classes(WHAT, y)?;
        let (n, d, k) = (x.nrows(), x.ncols(), classes.len());
        let c = if k == 2 { self.c / 2.0 } else { self.c };
        let l2 = 1.0 / (c * n as f64);
        let inv_n = 1.0 / n as f64;
        let n_w = k * d;
        let fit_intercept = self.fit_intercept;
        // θ = [W row-major (k x d), b (k)]; returns the scaled objective and writes its gradient.
        let zeros = vec![0.0; k];
        let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
            let coef = Matrix::from_fn(k, d, |r, j| theta[r * d + j]);
            let mut z = logits(x, &coef, if fit_intercept { &theta[n_w..] } else { &zeros });
            let mut loss = 0.0;
            let mut row = vec![0.0; k];
            for i in 0..n {
                row.iter_mut().enumerate().for_each(|(c, v)| *v = z[(i, c)]);
                let lse = logsumexp(&row);
                loss += lse - row[y[i]];
                // z becomes the gradient of the mean log-loss wrt the logits: (P - Y) / n.
                for c in 0..k {
                    z[(i, c)] = ((row[c] - lse).exp() - f64::from(u8::from(c == y[i]))) * inv_n;
                }
            }
            let gw = z.transpose() * x; // [k, d]
            let mut penalty = 0.0;
            for r in 0..k {
                for j in 0..d {
                    let w = theta[r * d + j];
                    penalty += w * w;
                    grad[r * d + j] = gw[(r, j)] + l2 * w;
                }
                if fit_intercept {
                    grad[n_w + r] = z.col(r).iter().sum();
                }
            }
            loss * inv_n + 0.5 * l2 * penalty
        };
        let n_params = n_w + if fit_intercept { k } else { 0 };
        let cfg = LbfgsConfig { memory: self.memory, max_iter: self.max_iter, tol: self.tol, ..Default::default() };
        let report = minimize(objective, vec![0.0; n_params], &cfg)?;
        if !report.f.is_finite() || report.x.iter().any(|v| !v.is_finite()) {
            return Err(MlError::Numerical { what: WHAT, detail: "the fit produced non-finite weights".into() });
        }
        let coef = Matrix::from_fn(k, d, |r, j| report.x[r * d + j]);
        let intercept = if fit_intercept { report.x[n_w..].to_vec() } else { vec![0.0; k] };
        Ok(LogisticRegression { classes, coef, intercept, n_iter: report.n_iter, converged: report.converged })
    }
}

impl LogisticRegression {
    /// The sorted distinct training labels; row `c` of [`coef`](Self::coef) and column `c` of
    /// [`predict_proba`](Self::predict_proba) belong to `classes()[c]`.
    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    /// The weights, `[n_classes, n_features]` (for two classes see [`LogisticRegressionConfig::fit`]).
    pub fn coef(&self) -> &Matrix {
        &self.coef
    }

    /// The intercepts, one per class (all 0 without `fit_intercept`).
    pub fn intercept(&self) -> &[f64] {
        &self.intercept
    }

    /// L-BFGS iterations the fit took.
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Whether the solver met its tolerance (rather than stopping at `max_iter`).
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// The raw class scores `X Wᵀ + b`, `[n, n_classes]`.
    pub fn decision_function(&self, x: &Matrix) -> Result<Matrix> {
        check_n_features("LogisticRegression::decision_function", x, self.coef.ncols())?;
        Ok(logits(x, &self.coef, &self.intercept))
    }

    /// Class probabilities, the softmax of the scores, `[n, n_classes]`; every row sums to 1.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        let mut z = self.decision_function(x)?;
        let k = z.ncols();
        let mut row = vec![0.0; k];
        for i in 0..z.nrows() {
            row.iter_mut().enumerate().for_each(|(c, v)| *v = z[(i, c)]);
            let lse = logsumexp(&row);
            for c in 0..k {
                z[(i, c)] = (row[c] - lse).exp();
            }
        }
        Ok(z)
    }

    /// The most probable class of each row (the first, i.e. smallest, label on exact ties).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<usize>> {
        let z = self.decision_function(x)?;
        Ok((0..z.nrows())
            .map(|i| {
                let mut best = 0;
                for c in 1..z.ncols() {
                    if z[(i, c)] > z[(i, best)] {
                        best = c;
                    }
                }
                self.classes[best]
            })
            .collect())
    }

    /// The accuracy of [`predict`](Self::predict) on `(x, y)`, in [0, 1].
    pub fn score(&self, x: &Matrix, y: &[usize]) -> Result<f64> {
        check_labels("LogisticRegression::score", x, y)?;
        accuracy(y, &self.predict(x)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::matrix_from_rows;

    fn blobs() -> (Matrix, Vec<usize>) {
        let pts = [
            (0.0, 0.0),
            (0.5, 0.3),
            (0.2, 0.8),
            (4.0, 0.1),
            (4.5, 0.7),
            (3.8, -0.4),
            (2.0, 4.0),
            (2.3, 4.6),
            (1.7, 3.9),
        ];
        let x = Matrix::from_fn(9, 2, |i, j| if j == 0 { pts[i].0 } else { pts[i].1 });
        (x, vec![0, 0, 0, 1, 1, 1, 2, 2, 2])
    }

    #[test]
    fn separates_blobs_and_satisfies_the_optimality_condition() {
        let (x, y) = blobs();
        let cfg = LogisticRegressionConfig { tol: 1e-12, max_iter: 1000, ..Default::default() };
        let m = cfg.fit(&x, &y).unwrap();
        assert!(m.converged());
        assert_eq!(m.predict(&x).unwrap(), y);
        // At the optimum W = C (Y - P)ᵀ X and Σᵢ (Y - P) = 0.
        let p = m.predict_proba(&x).unwrap();
        for c in 0..3 {
            let resid: Vec<f64> = (0..9).map(|i| f64::from(u8::from(y[i] == c)) - p[(i, c)]).collect();
            let r: f64 = resid.iter().sum();
            // The solver stops on SciPy's relative decrease test (64 eps) before tol = 1e-12.
            assert!(r.abs() < 1e-6, "{r} after {} iterations", m.n_iter());
            for j in 0..2 {
                let w: f64 = (0..9).map(|i| resid[i] * x[(i, j)]).sum();
                assert!((m.coef()[(c, j)] - w).abs() < 1e-6, "{} vs {w}", m.coef()[(c, j)]);
            }
        }
        let row: f64 = (0..3).map(|c| p[(4, c)]).sum();
        assert!((row - 1.0).abs() < 1e-12);
    }

    #[test]
    fn probabilities_survive_huge_scores() {
        let (x, y) = blobs();
        let mut m = LogisticRegressionConfig::default().fit(&x, &y).unwrap();
        m.coef[(0, 0)] = 1e6;
        let p = m.predict_proba(&matrix_from_rows(1, 2, &[1e3, 0.0]).unwrap()).unwrap();
        assert!(p[(0, 0)] == 1.0 && p[(0, 1)].is_finite() && p[(0, 1)] >= 0.0);
    }

    #[test]
    fn two_classes_give_mirrored_rows() {
        let (x, y) = blobs();
        let m = LogisticRegressionConfig::default().fit(&x.subrows(0, 6).to_owned(), &y[..6]).unwrap();
        for j in 0..2 {
            assert!((m.coef()[(0, j)] + m.coef()[(1, j)]).abs() < 1e-12);
        }
        assert_eq!(m.score(&x.subrows(0, 6).to_owned(), &y[..6]).unwrap(), 1.0);
    }

    #[test]
    fn bad_settings_are_errors() {
        let (x, y) = blobs();
        for cfg in [
            LogisticRegressionConfig::with_c(0.0),
            LogisticRegressionConfig::with_c(f64::NAN),
            LogisticRegressionConfig { max_iter: 0, ..Default::default() },
        ] {
            assert!(matches!(cfg.fit(&x, &y), Err(MlError::InvalidParameter { .. })));
        }
    }
}
