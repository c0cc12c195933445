//! The one error type of jizen-ml: every variant names the estimator or function that raised it
//! and says what was wrong with the input, with the shapes or values involved.

use thiserror::Error;

/// What went wrong in a jizen-ml call. `what` names the call (`"Pca::fit"`, `"accuracy"`).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MlError {
    /// The input has no rows or no columns.
    #[error("{what}: empty input ({rows} rows x {cols} columns); need at least one sample and one feature")]
    Empty {
        /// The call that raised the error.
        what: &'static str,
        /// Rows of the offending input.
        rows: usize,
        /// Columns of the offending input.
        cols: usize,
    },
    /// A feature is NaN or infinite.
    #[error("{what}: non-finite value {value} at row {row}, column {col}; clean or impute the data first")]
    NonFinite {
        /// The call that raised the error.
        what: &'static str,
        /// Row of the first non-finite value.
        row: usize,
        /// Column of the first non-finite value.
        col: usize,
        /// The value itself (NaN, inf or -inf).
        value: f64,
    },
    /// Two inputs, or an input and a fitted model, disagree in shape.
    #[error("{what}: shape mismatch: {detail}")]
    ShapeMismatch {
        /// The call that raised the error.
        what: &'static str,
        /// Which shapes disagree, e.g. `x has 150 rows but y has 149 labels`.
        detail: String,
    },
    /// A size parameter asks for more than the data holds (components, neighbours, samples).
    #[error("{what}: {param} = {requested} is too large: the data has only {available} {unit}")]
    TooFew {
        /// The call that raised the error.
        what: &'static str,
        /// The parameter, e.g. `n_components` or `k`.
        param: &'static str,
        /// Its value.
        requested: usize,
        /// What the data allows.
        available: usize,
        /// What `available` counts, e.g. `samples` or `features`.
        unit: &'static str,
    },
    /// A classifier was given labels of a single class.
    #[error("{what}: needs samples of at least two classes, but every label is {class}")]
    SingleClass {
        /// The call that raised the error.
        what: &'static str,
        /// The only class present.
        class: usize,
    },
    /// A configuration value is out of its range.
    #[error("{what}: invalid parameter: {detail}")]
    InvalidParameter {
        /// The call that raised the error.
        what: &'static str,
        /// Which parameter and why, e.g. `C must be positive and finite, got -1`.
        detail: String,
    },
    /// Saving or loading a fitted estimator failed: the file could not be written or read, is
    /// not a safetensors file, holds another estimator, or its contents are inconsistent.
    #[error("{what}: {path}: {detail}")]
    Persist {
        /// The call that raised the error, e.g. `Pca::load`.
        what: &'static str,
        /// The file.
        path: String,
        /// What was wrong, e.g. `holds a Knn, not a Pca`.
        detail: String,
    },
    /// A numerical routine failed (an SVD that did not converge, a non-finite objective).
    #[error("{what}: numerical failure: {detail}")]
    Numerical {
        /// The call that raised the error.
        what: &'static str,
        /// What failed.
        detail: String,
    },
}

/// Shorthand for `Result<T, MlError>`.
pub type Result<T> = std::result::Result<T, MlError>;
