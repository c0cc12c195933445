//! # jizen-train
//!
//! Training, evaluation and prediction as separate pieces: a [`Trainer`] (epochs, schedules,
//! metrics files, learning curves, checkpoints, early stopping, exact resume), an [`Evaluator`]
//! (loss, accuracy, top-k, per-class accuracy, confusion matrix) and a [`Predictor`] (batched
//! inference from a checkpoint). [`headstart`] runs the demo's from-scratch against pre-trained
//! comparison.

pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod curves;
pub mod evaluate;
pub mod headstart;
pub mod lm;
pub mod metrics;
pub mod plot;
pub mod predict;
pub mod probe;
pub mod stacked;
pub mod stats;
pub mod trainer;
pub mod transfer;

pub use checkpoint::{Ancestor, Lineage};
pub use checkpoint::{Checkpoint, CheckpointMeta};
pub use config::{AugmentConfig, EarlyStopping, Objective, OptimizerConfig, ScheduleConfig, TrainConfig};
pub use evaluate::{EvalReport, Evaluator, SharedDataset};
pub use metrics::{MetricsLog, Record};
pub use predict::{Prediction, Predictor};
pub use probe::{ArmReport, ProbeConfig, ProbeReport, ProbeTask};
pub use trainer::{Callback, FitReport, Trainer};
pub use transfer::{OnShapeMismatch, Stages, TransferManifest, TransferReport};

/// Errors of training and experiments.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tensor(#[from] jizen_tensor::Error),
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("{0}")]
    Msg(String),
}

pub type Result<T> = std::result::Result<T, Error>;
