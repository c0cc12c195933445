//! The binary versions of CIFAR-10 and CIFAR-100 (Krizhevsky, 2009). Each file is a sequence of
//! fixed-size records: CIFAR-10 has one label byte then 3072 pixel bytes; CIFAR-100 has a coarse
//! (superclass, 0..20) label byte, a fine (class, 0..100) label byte, then 3072 pixel bytes. The
//! pixels are 3×32×32, channel-major (the 1024 red values, then green, then blue), each channel
//! row-major.

use std::path::{Path, PathBuf};

use crate::{DataError, Images, Split};

/// Pixels of one CIFAR image (3 × 32 × 32).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Which CIFAR set, and for CIFAR-100 which of its two labels to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar {
    /// CIFAR-10: 10 classes.
    Ten,
    /// CIFAR-100 with its 100 fine labels.
    HundredFine,
    /// CIFAR-100 with its 20 coarse labels (superclasses).
    HundredCoarse,
}

impl Cifar {
    /// Bytes per record in the binary files.
    pub fn record_len(self) -> usize {
        match self {
            Cifar::Ten => 1 + IMAGE_BYTES,
            Cifar::HundredFine | Cifar::HundredCoarse => 2 + IMAGE_BYTES,
        }
    }

    /// Number of classes of the chosen labels.
    pub fn classes(self) -> u32 {
        match self {
            Cifar::Ten => 10,
            Cifar::HundredFine => 100,
            Cifar::HundredCoarse => 20,
        }
    }

    /// The folder the archive extracts to.
    pub fn folder(self) -> &'static str {
        match self {
            Cifar::Ten => "cifar-10-batches-bin",
            Cifar::HundredFine | Cifar::HundredCoarse => "cifar-100-binary",
        }
    }

    /// The files of `split`, in the order their records are concatenated.
    pub fn files(self, split: Split) -> Vec<String> {
        match (self, split) {
            (Cifar::Ten, Split::Train) => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            (Cifar::Ten, Split::Test) => vec!["test_batch.bin".into()],
            (_, Split::Train) => vec!["train.bin".into()],
            (_, Split::Test) => vec!["test.bin".into()],
        }
    }
}

/// Parses the records of one CIFAR binary file (already read into `bytes`), appending the pixels
/// and the chosen labels. Checks the length and the range of both labels.
pub fn parse_records(
    bytes: &[u8],
    kind: Cifar,
    path: &Path,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<(), DataError> {
    let rec = kind.record_len();
    if !bytes.len().is_multiple_of(rec) {
        return Err(DataError::new(
            path,
            format!(
                "{} bytes is not a whole number of {rec}-byte records ({} records and {} bytes left over); \
                 is this a {} file, and is it complete?",
                bytes.len(),
                bytes.len() / rec,
                bytes.len() % rec,
                if kind == Cifar::Ten { "CIFAR-10" } else { "CIFAR-100" }
            ),
        ));
    }
    if bytes.is_empty() {
        return Err(DataError::new(path, "the file is empty: expected CIFAR records"));
    }
    pixels.reserve(bytes.len() / rec * IMAGE_BYTES);
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = match kind {
            Cifar::Ten => check_label(r[0], 10, "label", i, path)?,
            Cifar::HundredFine | Cifar::HundredCoarse => {
                let coarse = check_label(r[0], 20, "coarse label", i, path)?;
                let fine = check_label(r[1], 100, "fine label", i, path)?;
                if kind == Cifar::HundredFine {
                    fine
                } else {
                    coarse
                }
            }
        };
        labels.push(label);
        pixels.extend_from_slice(&r[rec - IMAGE_BYTES..]);
    }
    Ok(())
}

fn check_label(value: u8, classes: u32, what: &str, record: usize, path: &Path) -> Result<u32, DataError> {
    if value as u32 >= classes {
        return Err(DataError::new(path, format!("record {record}: {what} {value} is out of range 0..{classes}")));
    }
    Ok(value as u32)
}

/// Loads one split of CIFAR-10 or CIFAR-100 from `dir`, which is either the extracted folder
/// itself (`cifar-10-batches-bin/`, `cifar-100-binary/`) or a folder holding it. Images are
/// `[3, 32, 32]`; batches from the [`crate::DataLoader`] are f32 `[n, 3, 32, 32]` in [0, 1].
pub fn load_cifar(dir: &Path, kind: Cifar, split: Split) -> Result<Images, DataError> {
    let files = kind.files(split);
    let base: PathBuf = if dir.join(&files[0]).exists() { dir.to_path_buf() } else { dir.join(kind.folder()) };
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for name in &files {
        let path = base.join(name);
        if !path.exists() {
            return Err(DataError::new(
                &path,
                format!("missing: expected the files {files:?} of the extracted {} archive", kind.folder()),
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| DataError::new(&path, format!("cannot read: {e}")))?;
        parse_records(&bytes, kind, &path, &mut pixels, &mut labels)?;
    }
    Ok(Images { channels: 3, height: 32, width: 32, pixels, labels, classes: class_names(kind) })
}

/// The class names of CIFAR-10 (as in its `batches.meta.txt`); empty for CIFAR-100.
fn class_names(kind: Cifar) -> Vec<String> {
    match kind {
        Cifar::Ten => ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
            .map(String::from)
            .to_vec(),
        _ => Vec::new(),
    }
}
