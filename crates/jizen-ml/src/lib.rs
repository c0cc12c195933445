//! Classical machine learning in f64 on [`faer`].
//!
//! Estimators follow one pattern: a plain `*Config` struct (serde data) whose `fit` validates
//! the input and returns a fitted model, which then offers `predict` / `transform` / `score`.
//! Features are a [`Matrix`] (`faer::Mat<f64>`, samples in rows); class labels are `usize`.
//! Bad input (NaN or infinite features, empty data, more components or neighbours than the data
//! holds, a single class) is an [`MlError`], never a panic or a silently NaN model.
//!
//! The estimators: [`LogisticRegression`] (binary or multinomial; L2, L1 or no penalty; class
//! weights; L-BFGS, FISTA or mini-batch SGD), [`LinearSvc`] (dual coordinate descent) and [`Svc`]
//! (SMO with shrinking and a kernel cache; RBF, polynomial, linear), [`Knn`] and
//! [`KnnRegressor`] (brute force or a k-d tree), [`Pca`] (full or randomized SVD, whitening),
//! [`KMeans`] and [`GaussianMixture`] (EM, four covariance types), with [`StandardScaler`],
//! splits, stratified k-fold cross-validation and classification metrics around them. Every
//! fitted estimator can be saved and loaded ([`Persist`]: safetensors with JSON metadata).
//!
//! scikit-learn is the oracle: `tests/sklearn_parity.rs`, `logistic_parity.rs`, `svm_parity.rs`,
//! `mixture_parity.rs` and `extras_parity.rs` compare with fixtures written by
//! `scripts/fixtures/sklearn_*.py`; `tests/persist.rs` checks save/load round trips.
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
pub mod fista;
pub mod gmm;
pub mod kdtree;
pub mod kmeans;
pub mod knn;
pub mod lbfgs;
pub mod logistic;
pub mod metrics;
mod parallel;

pub use parallel::num_threads;
pub mod pca;
pub mod persist;
pub mod scaler;
pub mod split;
pub mod svm;

pub use data::{check_features, check_labels, check_n_features, encode_classes, matrix_from_rows, select_rows, Matrix};
pub use error::{MlError, Result};
pub use fista::{minimize_l1, FistaConfig, FistaReport};
pub use gmm::{CovarianceType, Covariances, GaussianMixture, GaussianMixtureConfig, GmmInit, GmmParams};
pub use kdtree::KdTree;
pub use kmeans::{KMeans, KMeansConfig, KMeansInit};
pub use knn::{Knn, KnnAlgorithm, KnnConfig, KnnRegressor, KnnRegressorConfig, KnnWeights, KD_TREE_MAX_FEATURES};
pub use lbfgs::{minimize, LbfgsConfig, LbfgsReport};
pub use logistic::{ClassWeight, LogisticRegression, LogisticRegressionConfig, Penalty, SgdConfig, Solver};
pub use metrics::{
    accuracy, classification_report, confusion_matrix, f1_score, precision_score, recall_score, Average,
    ClassificationReport, ConfusionMatrix,
};
pub use pca::{Pca, PcaConfig, SvdSolver};
pub use persist::{Persist, SavedState};
pub use scaler::{StandardScaler, StandardScalerConfig};
pub use split::{cross_val_score, train_test_indices, train_test_split, Fold, Split, StratifiedKFold};
pub use svm::{Gamma, Kernel, LinearSvc, LinearSvcConfig, Svc, SvcConfig, SvmLoss};

/// The faer version this crate is built on, re-exported so callers can build [`Matrix`] values.
pub use faer;
