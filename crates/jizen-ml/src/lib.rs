//! Classical machine learning in f64 on [`faer`].
//!
//! Estimators follow one pattern: a plain `*Config` struct (serde data) whose `fit` validates
//! the input and returns a fitted model, which then offers `predict` / `transform` / `score`.
//! Features are a [`Matrix`] (`faer::Mat<f64>`, samples in rows); class labels are `usize`.
//! Bad input (NaN or infinite features, empty data, more components or neighbours than the data
//! holds, a single class) is an [`MlError`], never a panic or a silently NaN model.
//!
//! scikit-learn is the oracle: `tests/sklearn_parity.rs` compares with fixtures written by
//! `scripts/fixtures/sklearn_ml.py`.
//!
//! ```
//! use jizen_ml::{matrix_from_rows, StandardScalerConfig};
//! let x = matrix_from_rows(3, 1, &[1.0, 2.0, 3.0]).unwrap();
//! let scaler = StandardScalerConfig::default().fit(&x).unwrap();
//! assert_eq!(scaler.mean(), &[2.0]);
//! ```

#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod knn;
pub mod lbfgs;
pub mod logistic;
pub mod metrics;
pub mod pca;
pub mod scaler;
pub mod split;

pub use data::{check_features, check_labels, check_n_features, encode_classes, matrix_from_rows, select_rows, Matrix};
pub use error::{MlError, Result};
pub use knn::{Knn, KnnConfig, KnnWeights};
pub use lbfgs::{minimize, LbfgsConfig, LbfgsReport};
pub use logistic::{LogisticRegression, LogisticRegressionConfig};
pub use metrics::{accuracy, confusion_matrix, ConfusionMatrix};
pub use pca::{Pca, PcaConfig};
pub use scaler::{StandardScaler, StandardScalerConfig};
pub use split::{train_test_indices, train_test_split, Split};

/// The faer version this crate is built on, re-exported so callers can build [`Matrix`] values.
pub use faer;
