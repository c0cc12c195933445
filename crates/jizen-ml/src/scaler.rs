//! Standardisation: subtract each feature's mean and divide by its standard deviation.

use serde::{Deserialize, Serialize};

use crate::data::{check_features, check_n_features, Matrix};
use crate::error::{MlError, Result};
use crate::persist::{Persist, SavedState};

/// Configuration of a [`StandardScaler`] (scikit-learn's `StandardScaler`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StandardScalerConfig {
    /// Subtract the mean (default true).
    pub with_mean: bool,
    /// Divide by the standard deviation (default true).
    pub with_std: bool,
}

impl Default for StandardScalerConfig {
    fn default() -> Self {
        StandardScalerConfig { with_mean: true, with_std: true }
    }
}

/// A fitted standardiser: `transform(x) = (x - mean) / scale`, column by column.
#[derive(Debug, Clone, PartialEq)]
pub struct StandardScaler {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl StandardScalerConfig {
    /// Learns each column's mean and population standard deviation (divisor `n`, as NumPy's
    /// `std` and scikit-learn). A column with zero variance gets scale 1, so it maps to 0 rather
    /// than to NaN. With `with_mean = false` the mean is 0; with `with_std = false` the scale is 1.
    pub fn fit(&self, x: &Matrix) -> Result<StandardScaler> {
        check_features("StandardScaler::fit", x)?;
        let n = x.nrows() as f64;
        let mut mean = vec![0.0; x.ncols()];
        let mut scale = vec![1.0; x.ncols()];
        for j in 0..x.ncols() {
            let col = x.col(j);
            // Two passes (mean, then squared deviations): the one-pass formula cancels badly
            // when the mean is large relative to the spread.
            let m = col.iter().sum::<f64>() / n;
            if self.with_std {
                let var = col.iter().map(|&v| (v - m) * (v - m)).sum::<f64>() / n;
                // scikit-learn's `_is_constant_feature`: a variance within rounding error of zero
                // (relative to n and the mean) counts as zero, so constant columns stay exact.
                let eps = f64::EPSILON;
                let bound = n * eps * var + (n * m * eps).powi(2);
                scale[j] = if var <= bound { 1.0 } else { var.sqrt() };
            }
            if self.with_mean {
                mean[j] = m;
            }
        }
        if let Some(j) = (0..x.ncols()).find(|&j| !(mean[j].is_finite() && scale[j].is_finite())) {
            return Err(MlError::Numerical {
                what: "StandardScaler::fit",
                detail: format!(
                    "column {j} overflows f64 (mean {}, scale {}); rescale the data first",
                    mean[j], scale[j]
                ),
            });
        }
        Ok(StandardScaler { mean, scale })
    }
}

impl StandardScaler {
    /// The per-feature means subtracted by [`transform`](Self::transform) (scikit-learn's `mean_`).
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The per-feature divisors (scikit-learn's `scale_`): population standard deviations, 1 where
    /// the variance is zero.
    pub fn scale(&self) -> &[f64] {
        &self.scale
    }

    /// `(x - mean) / scale`, column by column.
    pub fn transform(&self, x: &Matrix) -> Result<Matrix> {
        check_n_features("StandardScaler::transform", x, self.mean.len())?;
        Ok(Matrix::from_fn(x.nrows(), x.ncols(), |i, j| (x[(i, j)] - self.mean[j]) / self.scale[j]))
    }

    /// `z * scale + mean`: undoes [`transform`](Self::transform).
    pub fn inverse_transform(&self, z: &Matrix) -> Result<Matrix> {
        check_n_features("StandardScaler::inverse_transform", z, self.mean.len())?;
        Ok(Matrix::from_fn(z.nrows(), z.ncols(), |i, j| z[(i, j)] * self.scale[j] + self.mean[j]))
    }
}

impl Persist for StandardScaler {
    const KIND: &'static str = "StandardScaler";

    fn to_state(&self) -> SavedState {
        let mut s = SavedState::new();
        s.put_vector("mean", &self.mean);
        s.put_vector("scale", &self.scale);
        s
    }

    fn from_state(s: &SavedState) -> std::result::Result<Self, String> {
        let mean = s.vector("mean")?;
        let scale = s.vector_of("scale", mean.len())?;
        Ok(StandardScaler { mean, scale })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::matrix_from_rows;

    #[test]
    fn population_std_and_constant_columns() {
        let x = matrix_from_rows(4, 2, &[1.0, 5.0, 2.0, 5.0, 3.0, 5.0, 4.0, 5.0]).unwrap();
        let s = StandardScalerConfig::default().fit(&x).unwrap();
        assert_eq!(s.mean(), &[2.5, 5.0]);
        assert!((s.scale()[0] - 1.25f64.sqrt()).abs() < 1e-15);
        assert_eq!(s.scale()[1], 1.0);
        let z = s.transform(&x).unwrap();
        assert_eq!(z[(0, 1)], 0.0);
        let col: f64 = (0..4).map(|i| z[(i, 0)] * z[(i, 0)]).sum::<f64>() / 4.0;
        assert!((col - 1.0).abs() < 1e-12);
        let back = s.inverse_transform(&z).unwrap();
        assert!((0..4).all(|i| (back[(i, 0)] - x[(i, 0)]).abs() < 1e-12));
    }

    #[test]
    fn options_and_feature_count() {
        let x = matrix_from_rows(2, 1, &[1.0, 3.0]).unwrap();
        let s = StandardScalerConfig { with_mean: false, with_std: false }.fit(&x).unwrap();
        assert_eq!((s.mean(), s.scale()), (&[0.0][..], &[1.0][..]));
        assert!(s.transform(&Matrix::zeros(2, 2)).is_err());
        let huge = matrix_from_rows(2, 1, &[f64::MAX, f64::MAX]).unwrap();
        assert!(matches!(StandardScalerConfig::default().fit(&huge), Err(MlError::Numerical { .. })));
    }
}
