//! # jizen-data
//!
//! Data sets and formats: the 8×8 digit sets embedded in the binary for `jizen demo` (see
//! `assets/README.md` for their origin, format and licences) and the IDX format of MNIST and
//! Fashion-MNIST.

pub mod digits;
pub mod idx;

pub use digits::Digits;
pub use idx::{load_mnist, ImageSet, Split};

use std::path::PathBuf;

/// A data file that could not be read: which file, and what was wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {msg}", path.display())]
pub struct DataError {
    pub path: PathBuf,
    pub msg: String,
}

impl DataError {
    pub fn new(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        DataError { path: path.into(), msg: msg.into() }
    }
}
