//! Kernels of [`Svc`](crate::svm::Svc): RBF, polynomial and linear, all evaluated from a dot
//! product and the two squared norms, so a block of kernel values is one matrix product.

use serde::{Deserialize, Serialize};

use crate::data::Matrix;
use crate::error::{MlError, Result};

/// The kernel width `gamma` of the RBF and polynomial kernels.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum Gamma {
    /// `1 / (n_features · var(X))`, the variance taken over every entry of the training matrix
    /// (scikit-learn's `gamma="scale"`, its default); 1 when that variance is 0.
    #[default]
    Scale,
    /// `1 / n_features` (scikit-learn's `gamma="auto"`).
    Auto,
    /// A fixed positive value.
    Value(f64),
}

/// A kernel function `k(a, b)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Kernel {
    /// `exp(-gamma ‖a − b‖²)`.
    Rbf {
        /// The width.
        gamma: Gamma,
    },
    /// `(gamma ⟨a, b⟩ + coef0)^degree`.
    Poly {
        /// The exponent (at least 1).
        degree: u32,
        /// The scale of the dot product.
        gamma: Gamma,
        /// The constant term.
        coef0: f64,
    },
    /// `⟨a, b⟩`.
    Linear,
}

impl Default for Kernel {
    /// scikit-learn's default: RBF with `gamma = "scale"`.
    fn default() -> Self {
        Kernel::Rbf { gamma: Gamma::Scale }
    }
}

/// A kernel with its `gamma` resolved to a number (from the training data when it was
/// [`Gamma::Scale`] or [`Gamma::Auto`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum KernelFn {
    Rbf { gamma: f64 },
    Poly { degree: u32, gamma: f64, coef0: f64 },
    Linear,
}

impl Kernel {
    /// Checks the parameters and fixes `gamma` from the training data `x`.
    pub(crate) fn resolve(&self, what: &'static str, x: &Matrix) -> Result<KernelFn> {
        let gamma_of = |g: Gamma| -> Result<f64> {
            let value = match g {
                Gamma::Value(v) => v,
                Gamma::Auto => 1.0 / x.ncols() as f64,
                Gamma::Scale => {
                    let count = (x.nrows() * x.ncols()) as f64;
                    let mean = (0..x.ncols()).map(|j| x.col(j).iter().sum::<f64>()).sum::<f64>() / count;
                    let var = (0..x.ncols())
                        .map(|j| x.col(j).iter().map(|v| (v - mean) * (v - mean)).sum::<f64>())
                        .sum::<f64>()
                        / count;
                    if var > 0.0 {
                        1.0 / (x.ncols() as f64 * var)
                    } else {
                        1.0
                    }
                }
            };
            if value.is_finite() && value > 0.0 {
                Ok(value)
            } else {
                Err(MlError::InvalidParameter {
                    what,
                    detail: format!("gamma must be positive and finite, got {value}"),
                })
            }
        };
        match *self {
            Kernel::Rbf { gamma } => Ok(KernelFn::Rbf { gamma: gamma_of(gamma)? }),
            Kernel::Poly { degree, gamma, coef0 } => {
                if degree == 0 {
                    return Err(MlError::InvalidParameter { what, detail: "degree must be at least 1".into() });
                }
                if !coef0.is_finite() {
                    return Err(MlError::InvalidParameter {
                        what,
                        detail: format!("coef0 must be finite, got {coef0}"),
                    });
                }
                Ok(KernelFn::Poly { degree, gamma: gamma_of(gamma)?, coef0 })
            }
            Kernel::Linear => Ok(KernelFn::Linear),
        }
    }
}

impl KernelFn {
    /// `k(a, b)` from `⟨a, b⟩`, `‖a‖²` and `‖b‖²`.
    #[inline]
    pub(crate) fn eval(&self, dot: f64, sq_a: f64, sq_b: f64) -> f64 {
        match *self {
            // Clamped at 0: rounding can make the expanded squared distance slightly negative.
            KernelFn::Rbf { gamma } => (-gamma * (sq_a + sq_b - 2.0 * dot).max(0.0)).exp(),
            KernelFn::Poly { degree, gamma, coef0 } => (gamma * dot + coef0).powi(degree as i32),
            KernelFn::Linear => dot,
        }
    }

    /// The gamma actually used (1 for the linear kernel, which has none).
    pub(crate) fn gamma(&self) -> f64 {
        match *self {
            KernelFn::Rbf { gamma } | KernelFn::Poly { gamma, .. } => gamma,
            KernelFn::Linear => 1.0,
        }
    }

    /// The kernel block `K[i, j] = k(a_i, b_j)`, `[a.nrows(), b.nrows()]`, from one matrix product;
    /// `sq_b` holds the squared norms of the rows of `b`.
    pub(crate) fn block(&self, a: &Matrix, b: &Matrix, sq_b: &[f64]) -> Matrix {
        let mut k = a * b.transpose();
        if let KernelFn::Linear = self {
            return k;
        }
        let sq_a = row_norms(a);
        for (j, &sq_bj) in sq_b.iter().enumerate() {
            for (v, &sq_ai) in k.col_mut(j).iter_mut().zip(&sq_a) {
                *v = self.eval(*v, sq_ai, sq_bj);
            }
        }
        k
    }
}

/// The squared Euclidean norm of every row of `x`.
pub(crate) fn row_norms(x: &Matrix) -> Vec<f64> {
    let mut sq = vec![0.0; x.nrows()];
    for j in 0..x.ncols() {
        for (s, v) in sq.iter_mut().zip(x.col(j).iter()) {
            *s += v * v;
        }
    }
    sq
}

/// `⟨a, b⟩` with four independent accumulators, which lets the compiler vectorise the loop.
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::matrix_from_rows;

    #[test]
    fn block_matches_the_definitions() {
        let a = matrix_from_rows(2, 3, &[1.0, 0.5, -1.0, 0.0, 2.0, 1.0]).unwrap();
        let b = matrix_from_rows(3, 3, &[0.3, -0.2, 0.1, 1.0, 1.0, 1.0, -2.0, 0.0, 0.5]).unwrap();
        let sq_b = row_norms(&b);
        for k in [KernelFn::Rbf { gamma: 0.7 }, KernelFn::Poly { degree: 3, gamma: 0.5, coef0: 1.0 }, KernelFn::Linear]
        {
            let got = k.block(&a, &b, &sq_b);
            for i in 0..2 {
                for j in 0..3 {
                    let d: f64 = (0..3).map(|t| a[(i, t)] * b[(j, t)]).sum();
                    let d2: f64 = (0..3).map(|t| (a[(i, t)] - b[(j, t)]).powi(2)).sum();
                    let want = match k {
                        KernelFn::Rbf { gamma } => (-gamma * d2).exp(),
                        KernelFn::Poly { degree, gamma, coef0 } => (gamma * d + coef0).powi(degree as i32),
                        KernelFn::Linear => d,
                    };
                    assert!((got[(i, j)] - want).abs() < 1e-12, "{k:?} ({i}, {j}): {} vs {want}", got[(i, j)]);
                }
            }
        }
    }

    #[test]
    fn scale_gamma_uses_the_variance_of_all_entries() {
        let x = matrix_from_rows(2, 2, &[0.0, 2.0, 4.0, 6.0]).unwrap();
        // Entries 0, 2, 4, 6: mean 3, variance 5, so gamma = 1 / (2 * 5).
        let k = Kernel::Rbf { gamma: Gamma::Scale }.resolve("t", &x).unwrap();
        assert!((k.gamma() - 0.1).abs() < 1e-15);
        let auto = Kernel::Rbf { gamma: Gamma::Auto }.resolve("t", &x).unwrap();
        assert_eq!(auto.gamma(), 0.5);
        let bad = Kernel::Rbf { gamma: Gamma::Value(0.0) }.resolve("t", &x);
        assert!(matches!(bad, Err(MlError::InvalidParameter { .. })));
        assert!((dot(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0; 5]) - 15.0).abs() < 1e-15);
    }
}
