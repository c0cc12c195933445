//! What the scikit-learn parity tests share: reading a committed fixture file and its arrays
//! as f64 vectors, integer labels and matrices.

#![allow(dead_code)] // each test file uses the accessors it needs

use jizen_ml::Matrix;
use safetensors::{Dtype, SafeTensors};

/// A fixture file's bytes.
pub struct Fixture {
    path: String,
    bytes: Vec<u8>,
}

impl Fixture {
    /// Reads `tests/fixtures/<file>` of the repository.
    pub fn read(file: &str) -> Fixture {
        let path = format!("{}/../../tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        Fixture { path, bytes }
    }

    /// The raw file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Array `name` as f64 (from f64, f32, i64 or u8 storage) and its shape.
    pub fn load(&self, name: &str) -> (Vec<f64>, Vec<usize>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap_or_else(|e| panic!("{}: {e}", self.path));
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{} has no {name}: {e}", self.path));
        let d = t.data();
        let v = match t.dtype() {
            Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
            Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
            Dtype::F32 => d.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap()))).collect(),
            Dtype::U8 => d.iter().map(|&b| f64::from(b)).collect(),
            other => panic!("{name}: unexpected dtype {other:?}"),
        };
        (v, t.shape().to_vec())
    }

    /// Array `name` flattened.
    pub fn vector(&self, name: &str) -> Vec<f64> {
        self.load(name).0
    }

    /// Array `name` as class labels.
    pub fn labels(&self, name: &str) -> Vec<usize> {
        self.vector(name).into_iter().map(|v| v as usize).collect()
    }

    /// Array `name` as a matrix (a vector becomes one column).
    pub fn matrix(&self, name: &str) -> Matrix {
        let (v, s) = self.load(name);
        let cols = if s.len() == 2 { s[1] } else { 1 };
        jizen_ml::matrix_from_rows(s[0], cols, &v).unwrap()
    }
}
