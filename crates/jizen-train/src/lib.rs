//! # jizen-train
//!
//! Training loops, evaluation, checkpoints, and the experiments that measure what pre-training
//! buys: [`headstart`] runs the demo's from-scratch against pre-trained comparison.

pub mod headstart;
pub mod plot;
pub mod stats;

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
