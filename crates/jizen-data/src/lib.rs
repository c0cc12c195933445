//! # jizen-data
//!
//! Data sets and formats: the 8×8 digit sets embedded in the binary for `jizen demo` (see
//! `assets/README.md` for their origin, format and licences), the IDX format of MNIST and
//! Fashion-MNIST, the binary CIFAR-10/100 files, numeric CSV tables, image folders, plain-text
//! corpora for language models, image transforms, and the download of the public sets.

pub mod cifar;
pub mod csv;
pub mod digits;
pub mod download;
pub mod idx;
pub mod image_folder;
pub mod images;
pub mod loader;
pub mod text;
pub mod transforms;

pub use cifar::{load_cifar, Cifar};
pub use csv::{load_csv, CsvOptions, CsvSet, LabelColumn};
pub use digits::Digits;
pub use download::{get, GetOptions, GetReport};
pub use idx::{load_mnist, ImageSet, Split};
pub use image_folder::{load_image_folder, ImageFolderOptions};
pub use images::{Image, ImageSource, Images};
pub use loader::{holdout_split, per_class, Batches, ClassSubset, DataLoader, Dataset, LoaderConfig, Subset};
pub use text::{batchify, read_tokens, LmBatches, Tokens, Vocab};
pub use transforms::{Compose, Normalize, RandomCrop, RandomHorizontalFlip, Transform, Transformed};

use std::path::PathBuf;

/// A data file that could not be read: which file, and what was wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {msg}", path.display())]
pub struct DataError {
    pub path: PathBuf,
    pub msg: String,
}

impl DataError {
    /// An error about the file (or folder) at `path`.
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
