//! Errors of the tensor engine. Every message names the operation and the shapes involved.

use std::path::PathBuf;

/// Everything that can go wrong in `jizen-tensor`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two shapes that had to agree did not.
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },

    /// An operation was given a tensor of a dtype it does not support, or two different dtypes.
    #[error("{op}: {msg}")]
    DType { op: &'static str, msg: String },

    /// An argument was out of range or otherwise invalid.
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },

    /// Autograd was used in a way that cannot work (backward of a non-scalar, no graph, ...).
    #[error("autograd: {0}")]
    Autograd(String),

    /// A safetensors file could not be read or written.
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },

    /// An I/O error without a better description.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A shape error of operation `op` (for crates that build operations on the engine).
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Error {
        Error::Shape { op, msg: msg.into() }
    }

    /// An invalid-argument error of operation `op`.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
        Error::Invalid { op, msg: msg.into() }
    }
}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn shape_err(op: &'static str, msg: impl Into<String>) -> Error {
    Error::Shape { op, msg: msg.into() }
}

pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
    Error::Invalid { op, msg: msg.into() }
}

pub(crate) fn dtype_err(op: &'static str, msg: impl Into<String>) -> Error {
    Error::DType { op, msg: msg.into() }
}
