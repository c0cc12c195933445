//! 8×8 digit images in the `JZDIGIT1` format, and the two sets embedded in the binary:
//! 20,000 MNIST training digits converted to the UCI 8×8 format, and the 1,797 UCI digits.

use jizen_tensor::{DType, Result as TResult, Tensor};

use crate::DataError;

static MNIST8X8: &[u8] = include_bytes!("../assets/mnist8x8-20k.bin");
static UCI8X8: &[u8] = include_bytes!("../assets/uci-digits-8x8.bin");

const MAGIC: &[u8; 8] = b"JZDIGIT1";

/// A set of small grey-level digit images with labels 0..9; pixel values 0..=16.
#[derive(Clone, Debug)]
pub struct Digits {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub labels: Vec<u8>,
    /// `len * rows * cols` values, sample-major.
    pub pixels: Vec<u8>,
}

impl Digits {
    /// Parses a `JZDIGIT1` buffer, checking magic, length and value ranges.
    pub fn parse(bytes: &[u8], name: &str) -> Result<Digits, DataError> {
        let err = |msg: String| DataError::new(name, msg);
        if bytes.len() < 20 {
            return Err(err(format!("{} bytes is too short for the 20-byte header", bytes.len())));
        }
        if &bytes[..8] != MAGIC {
            return Err(err(format!("bad magic {:?}, expected \"JZDIGIT1\"", String::from_utf8_lossy(&bytes[..8]))));
        }
        let u32_at = |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize;
        let (n, rows, cols) = (u32_at(8), u32_at(12), u32_at(16));
        let expect = n.checked_mul(rows * cols + 1).and_then(|v| v.checked_add(20));
        if expect != Some(bytes.len()) {
            return Err(err(format!(
                "header says {n} images of {rows}x{cols} ({expect:?} bytes), the buffer has {} bytes",
                bytes.len()
            )));
        }
        let labels = bytes[20..20 + n].to_vec();
        let pixels = bytes[20 + n..].to_vec();
        if let Some(i) = labels.iter().position(|&l| l > 9) {
            return Err(err(format!("label {} of image {i} is out of range 0..9", labels[i])));
        }
        if let Some(i) = pixels.iter().position(|&p| p > 16) {
            return Err(err(format!("pixel value {} at {i} is out of range 0..16", pixels[i])));
        }
        Ok(Digits { name: name.to_string(), rows, cols, labels, pixels })
    }

    /// 20,000 MNIST training digits converted to the UCI 8×8 format (embedded).
    pub fn mnist8x8() -> Digits {
        Digits::parse(MNIST8X8, "embedded mnist8x8-20k.bin").expect("embedded data is valid (checked by a test)")
    }

    /// The 1,797 UCI 8×8 optical digits (embedded).
    pub fn uci8x8() -> Digits {
        Digits::parse(UCI8X8, "embedded uci-digits-8x8.bin").expect("embedded data is valid (checked by a test)")
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The samples at `indices`, as features `[n, rows*cols]` scaled to [0, 1] and i64 labels `[n]`.
    pub fn tensors(&self, indices: &[usize], dtype: DType) -> TResult<(Tensor, Tensor)> {
        crate::labelled_tensors(&self.pixels, &self.labels, self.rows * self.cols, 16.0, indices, dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sets_parse() {
        let m = Digits::mnist8x8();
        assert_eq!((m.len(), m.rows, m.cols), (20_000, 8, 8));
        let u = Digits::uci8x8();
        assert_eq!(u.len(), 1797);
        // Class counts from assets/README.md.
        let mut counts = [0usize; 10];
        u.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    }

    #[test]
    fn broken_buffers_are_clear_errors() {
        let good = UCI8X8;
        assert!(Digits::parse(&good[..10], "x").unwrap_err().to_string().contains("too short"));
        let mut bad = good.to_vec();
        bad[0] = b'X';
        assert!(Digits::parse(&bad, "x").unwrap_err().to_string().contains("bad magic"));
        assert!(Digits::parse(&good[..good.len() - 1], "x").unwrap_err().to_string().contains("the buffer has"));
        let mut bad = good.to_vec();
        bad[20] = 12;
        assert!(Digits::parse(&bad, "x").unwrap_err().to_string().contains("label 12 of image 0"));
        let mut bad = good.to_vec();
        let last = bad.len() - 1;
        bad[last] = 17;
        assert!(Digits::parse(&bad, "x").unwrap_err().to_string().contains("pixel value 17"));
    }
}
