//! The IDX format of MNIST and Fashion-MNIST (LeCun et al.): a big-endian header — magic
//! `0x00 0x00 <type> <ndims>`, then one u32 per dimension — followed by the values. jizen reads
//! unsigned-byte files (type 0x08), raw or gzip-compressed (detected by content, not by name).

use std::io::Read;
use std::path::{Path, PathBuf};

use jizen_tensor::{DType, Result as TResult, Tensor};

use crate::DataError;

/// Images with integer labels, as stored on disk (pixels 0–255).
#[derive(Clone, Debug)]
pub struct ImageSet {
    pub rows: usize,
    pub cols: usize,
    /// `len * rows * cols` pixels, image-major, each image row-major.
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

/// Which half of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Reads a file, gunzipping it when it starts with the gzip magic bytes.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::new(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an unsigned-byte IDX buffer with `ndims` dimensions: returns the dimensions and values.
fn parse_idx(bytes: &[u8], ndims: usize, path: &Path) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let err = |msg: String| DataError::new(path, msg);
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(err(format!("{} bytes is too short for an IDX header of {header} bytes", bytes.len())));
    }
    let magic = [0u8, 0, 0x08, ndims as u8];
    if bytes[..4] != magic {
        return Err(err(format!(
            "bad magic number {:02x?}: expected {:02x?} (unsigned bytes, {ndims} dimensions)",
            &bytes[..4],
            magic
        )));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| u32::from_be_bytes([bytes[4 + 4 * i], bytes[5 + 4 * i], bytes[6 + 4 * i], bytes[7 + 4 * i]]) as usize)
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("dimensions {dims:?} overflow")))?;
    let have = bytes.len() - header;
    if have != n {
        let what = if have < n { "truncated" } else { "trailing bytes" };
        return Err(err(format!(
            "{what}: the header's dimensions {dims:?} need {n} bytes of data, the file has {have}"
        )));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Reads an IDX image file (`[count, rows, cols]` of u8).
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let (dims, pixels) = parse_idx(&read_file(path)?, 3, path)?;
    Ok((dims[0], dims[1], dims[2], pixels))
}

/// Reads an IDX label file (`[count]` of u8).
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(parse_idx(&read_file(path)?, 1, path)?.1)
}

/// The first of `candidates` that exists in `dir`.
fn find(dir: &Path, candidates: &[String]) -> Result<PathBuf, DataError> {
    candidates.iter().map(|c| dir.join(c)).find(|p| p.exists()).ok_or_else(|| {
        DataError::new(
            dir,
            format!("none of {candidates:?} is there (expected the MNIST-format files of the data set)"),
        )
    })
}

/// Loads one split of MNIST or Fashion-MNIST from `dir`, which holds the four original files
/// (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-…`). Checks that the
/// counts agree and that labels are below `classes`.
pub fn load_mnist(dir: &Path, split: Split, classes: u8) -> Result<ImageSet, DataError> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let names = |kind: &str| vec![format!("{prefix}-{kind}-ubyte.gz"), format!("{prefix}-{kind}-ubyte")];
    let img_path = find(dir, &names("images-idx3"))?;
    let lbl_path = find(dir, &names("labels-idx1"))?;
    let (count, rows, cols, pixels) = read_images(&img_path)?;
    let labels = read_labels(&lbl_path)?;
    if labels.len() != count {
        return Err(DataError::new(
            &lbl_path,
            format!("{} labels, but {} has {count} images", labels.len(), img_path.display()),
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l >= classes) {
        return Err(DataError::new(
            &lbl_path,
            format!("label {} of example {i} is out of range 0..{classes}", labels[i]),
        ));
    }
    Ok(ImageSet { rows, cols, pixels, labels })
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The examples at `indices` as features `[n, rows*cols]` scaled to [0, 1] and i64 labels.
    pub fn tensors(&self, indices: &[usize], dtype: DType) -> TResult<(Tensor, Tensor)> {
        crate::labelled_tensors(&self.pixels, &self.labels, self.rows * self.cols, 255.0, indices, dtype)
    }
}
