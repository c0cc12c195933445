//! Saving and loading fitted estimators: safetensors files with the arrays as f64 tensors and
//! everything else as JSON in the file's metadata.
//!
//! A file's metadata holds `format` (`jizen-ml/1`), `kind` (the estimator's type, e.g. `Pca`)
//! and `state` (a JSON object: settings, labels, counts, flags). Every floating-point value is a
//! tensor, never JSON, so a loaded model computes bit for bit what the saved one did. Writing is
//! atomic: a temporary file in the same folder is written, flushed to disk and renamed over the
//! target, so a crash leaves the old file or the new one, never half of one.
//!
//! ```
//! use jizen_ml::{matrix_from_rows, Persist, StandardScaler, StandardScalerConfig};
//! let x = matrix_from_rows(3, 1, &[1.0, 2.0, 4.0]).unwrap();
//! let scaler = StandardScalerConfig::default().fit(&x).unwrap();
//! let path = std::env::temp_dir().join(format!("jizen-doc-scaler-{}.safetensors", std::process::id()));
//! scaler.save(&path).unwrap();
//! assert_eq!(StandardScaler::load(&path).unwrap(), scaler);
//! # std::fs::remove_file(&path).unwrap();
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, View};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::data::Matrix;
use crate::error::{MlError, Result};

/// The value of the `format` metadata entry of every file this module writes.
pub const FORMAT: &str = "jizen-ml/1";

/// A fitted estimator that can be written to and read from a safetensors file.
///
/// Implementors describe their state with [`to_state`](Self::to_state) and rebuild themselves
/// with [`from_state`](Self::from_state); [`save`](Self::save) and [`load`](Self::load) do the
/// file handling. Loading checks the `kind` tag, so a file of another estimator is an error.
pub trait Persist: Sized {
    /// The tag stored as `kind`, the type's name (`"LogisticRegression"`).
    const KIND: &'static str;

    /// The arrays and the JSON state that describe the model completely.
    fn to_state(&self) -> SavedState;

    /// Rebuilds the model, checking that the arrays agree in shape with each other and with
    /// the JSON state. The error is a description; [`load`](Self::load) adds the path.
    fn from_state(state: &SavedState) -> std::result::Result<Self, String>;

    /// Writes the model to `path` atomically (a temporary file, fsync, rename).
    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_state(path.as_ref(), Self::KIND, &self.to_state())
    }

    /// Reads a model written by [`save`](Self::save). Errors (naming the file) when it cannot be
    /// read, is not a safetensors file, holds another estimator or is inconsistent.
    fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let state = read_state(path, Self::KIND)?;
        Self::from_state(&state).map_err(|detail| load_error(path, detail))
    }
}

/// The contents of a saved estimator: named f64 arrays and a JSON object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SavedState {
    /// Name → (shape, row-major values).
    tensors: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
    json: Map<String, Value>,
}

impl SavedState {
    /// An empty state.
    pub fn new() -> Self {
        SavedState::default()
    }

    /// Stores an array of any shape (`values` row-major, `shape` multiplying to its length).
    pub fn put_array(&mut self, name: &str, shape: Vec<usize>, values: Vec<f64>) {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        self.tensors.insert(name.to_owned(), (shape, values));
    }

    /// Stores a vector as a 1-D tensor.
    pub fn put_vector(&mut self, name: &str, v: &[f64]) {
        self.put_array(name, vec![v.len()], v.to_vec());
    }

    /// Stores a matrix as a 2-D tensor (row-major, as safetensors and NumPy lay it out).
    pub fn put_matrix(&mut self, name: &str, m: &Matrix) {
        let values = (0..m.nrows()).flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)])).collect();
        self.put_array(name, vec![m.nrows(), m.ncols()], values);
    }

    /// Stores a serialisable value (settings, labels, counts; no floats) in the JSON state.
    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) {
        let v = serde_json::to_value(value).expect("plain data serialises to JSON");
        self.json.insert(key.to_owned(), v);
    }

    /// The array `name`: its shape and row-major values.
    pub fn array(&self, name: &str) -> std::result::Result<(&[usize], &[f64]), String> {
        self.tensors
            .get(name)
            .map(|(s, v)| (s.as_slice(), v.as_slice()))
            .ok_or_else(|| format!("tensor {name} is missing"))
    }

    /// The 1-D array `name`.
    pub fn vector(&self, name: &str) -> std::result::Result<Vec<f64>, String> {
        match self.array(name)? {
            ([_], v) => Ok(v.to_vec()),
            (s, _) => Err(format!("tensor {name} has shape {s:?}, expected one dimension")),
        }
    }

    /// The 1-D array `name`, checked to hold `len` values.
    pub fn vector_of(&self, name: &str, len: usize) -> std::result::Result<Vec<f64>, String> {
        let v = self.vector(name)?;
        if v.len() != len {
            return Err(format!("tensor {name} has {} values, expected {len}", v.len()));
        }
        Ok(v)
    }

    /// The 2-D array `name` as a matrix.
    pub fn matrix(&self, name: &str) -> std::result::Result<Matrix, String> {
        match self.array(name)? {
            ([r, c], v) => Ok(Matrix::from_fn(*r, *c, |i, j| v[i * c + j])),
            (s, _) => Err(format!("tensor {name} has shape {s:?}, expected two dimensions")),
        }
    }

    /// The 2-D array `name`, checked to be `rows x cols`.
    pub fn matrix_of(&self, name: &str, rows: usize, cols: usize) -> std::result::Result<Matrix, String> {
        let m = self.matrix(name)?;
        if (m.nrows(), m.ncols()) != (rows, cols) {
            return Err(format!("tensor {name} is [{}, {}], expected [{rows}, {cols}]", m.nrows(), m.ncols()));
        }
        Ok(m)
    }

    /// The JSON value `key`, deserialised.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> std::result::Result<T, String> {
        let v = self.json.get(key).ok_or_else(|| format!("state entry {key} is missing"))?;
        serde_json::from_value(v.clone()).map_err(|e| format!("state entry {key} is invalid: {e}"))
    }
}

/// Checks that every entry of `labels` is below `bound` (indices into a list of that length).
pub(crate) fn check_below(name: &str, labels: &[usize], bound: usize) -> std::result::Result<(), String> {
    match labels.iter().find(|&&l| l >= bound) {
        Some(l) => Err(format!("{name} holds {l}, expected values below {bound}")),
        None => Ok(()),
    }
}

/// Checks that `classes` is strictly increasing with at least two entries, as a fit leaves it.
pub(crate) fn check_classes(classes: &[usize]) -> std::result::Result<(), String> {
    if classes.len() < 2 || classes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("classes {classes:?} are not at least two increasing labels"));
    }
    Ok(())
}

/// The saved state of a linear classifier (logistic regression, linear SVM): one weight row per
/// class (a single row for two classes), an intercept per row, the class labels and the solver's
/// iteration count and convergence.
pub(crate) struct LinearState {
    pub coef: Matrix,
    pub intercept: Vec<f64>,
    pub classes: Vec<usize>,
    pub n_iter: usize,
    pub converged: bool,
}

impl LinearState {
    /// The state of a fitted linear classifier, read from its fields.
    pub(crate) fn save(
        coef: &Matrix,
        intercept: &[f64],
        classes: &[usize],
        n_iter: usize,
        converged: bool,
    ) -> SavedState {
        let mut s = SavedState::new();
        s.put_matrix("coef", coef);
        s.put_vector("intercept", intercept);
        s.put("classes", &classes);
        s.put("n_iter", &n_iter);
        s.put("converged", &converged);
        s
    }

    /// Reads and checks the state: increasing labels, `[rows, features]` weights with one row
    /// for two classes and one per class otherwise, an intercept per row.
    pub(crate) fn from_state(s: &SavedState) -> std::result::Result<Self, String> {
        let classes: Vec<usize> = s.get("classes")?;
        check_classes(&classes)?;
        let coef = s.matrix("coef")?;
        let rows = if classes.len() == 2 { 1 } else { classes.len() };
        if coef.nrows() != rows || coef.ncols() == 0 {
            return Err(format!("coef is [{}, {}] for {} classes", coef.nrows(), coef.ncols(), classes.len()));
        }
        Ok(LinearState {
            intercept: s.vector_of("intercept", rows)?,
            n_iter: s.get("n_iter")?,
            converged: s.get("converged")?,
            classes,
            coef,
        })
    }
}

/// An f64 tensor borrowed for serialisation.
struct F64View<'a> {
    shape: &'a [usize],
    bytes: Vec<u8>,
}

impl View for &F64View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F64
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn save_error(path: &Path, detail: String) -> MlError {
    MlError::Persist { what: "Persist::save", path: path.display().to_string(), detail }
}

fn load_error(path: &Path, detail: String) -> MlError {
    MlError::Persist { what: "Persist::load", path: path.display().to_string(), detail }
}

/// Serialises `state` and writes it to `path` through a temporary file in the same folder.
fn write_state(path: &Path, kind: &str, state: &SavedState) -> Result<()> {
    let views: Vec<(String, F64View)> = state
        .tensors
        .iter()
        .map(|(name, (shape, values))| {
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), F64View { shape, bytes })
        })
        .collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_owned(), FORMAT.to_owned());
    meta.insert("kind".to_owned(), kind.to_owned());
    meta.insert("state".to_owned(), Value::Object(state.json.clone()).to_string());
    let bytes = safetensors::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), Some(meta))
        .map_err(|e| save_error(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes).map_err(|e| save_error(path, format!("cannot write: {e}")))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename over `path`,
/// then fsync of the directory so the rename survives a crash. On failure the temporary file is
/// removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file"))?;
    let tmp = path.with_file_name(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable (a directory can be opened and synced on Unix).
        #[cfg(unix)]
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Reads `path`, checks its format and kind, and collects its tensors and JSON state.
fn read_state(path: &Path, kind: &str) -> Result<SavedState> {
    let err = |detail: String| load_error(path, detail);
    let bytes = fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| err(format!("not a valid safetensors file ({e}); truncated or corrupt?")))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| err(format!("not a valid safetensors file ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(err(format!("not a jizen-ml estimator file (no format = {FORMAT} in its metadata)")));
    }
    match meta.get("kind") {
        Some(k) if k == kind => {}
        Some(k) => return Err(err(format!("holds a {k}, not a {kind}"))),
        None => return Err(err("has no kind in its metadata".into())),
    }
    let json = match meta.get("state").map(|s| serde_json::from_str::<Value>(s)) {
        Some(Ok(Value::Object(m))) => m,
        Some(Ok(_)) => return Err(err("its state metadata is not a JSON object".into())),
        Some(Err(e)) => return Err(err(format!("its state metadata is not valid JSON: {e}"))),
        None => return Err(err("has no state in its metadata".into())),
    };
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F64 {
            return Err(err(format!("tensor {name} is {:?}, expected F64", view.dtype())));
        }
        let values = view.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        tensors.insert(name, (view.shape().to_vec(), values));
    }
    Ok(SavedState { tensors, json })
}
