//! # jizen-data
//!
//! Data sets and formats: the 8×8 digit sets embedded in the binary for `jizen demo` (see
//! `assets/README.md` for their origin, format and licences) and the IDX format of MNIST and
//! Fashion-MNIST.

pub mod digits;
pub mod idx;
pub mod loader;

pub use digits::Digits;
pub use idx::{load_mnist, ImageSet, Split};
pub use loader::{Batches, DataLoader, Dataset, LoaderConfig};

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

/// The examples at `indices` of a labelled image set (`pixels` image-major, `d` values each) as
/// features `[n, d]` divided by `max` (so in [0, 1]) and i64 labels `[n]`.
pub(crate) fn labelled_tensors(
    pixels: &[u8],
    labels: &[u8],
    d: usize,
    max: f64,
    indices: &[usize],
    dtype: jizen_tensor::DType,
) -> jizen_tensor::Result<(jizen_tensor::Tensor, jizen_tensor::Tensor)> {
    let values = indices.iter().flat_map(|&i| pixels[i * d..(i + 1) * d].iter());
    // Batches are built every step: straight into the target dtype, no f64 detour for f32.
    let x = match dtype {
        jizen_tensor::DType::F32 => jizen_tensor::Tensor::from_vec(
            values.map(|&p| (p as f64 / max) as f32).collect::<Vec<f32>>(),
            &[indices.len(), d],
        )?,
        _ => jizen_tensor::Tensor::from_f64(values.map(|&p| p as f64 / max).collect(), &[indices.len(), d], dtype)?,
    };
    let y = indices.iter().map(|&i| labels[i] as i64).collect();
    Ok((x, jizen_tensor::Tensor::from_vec(y, &[indices.len()])?))
}
