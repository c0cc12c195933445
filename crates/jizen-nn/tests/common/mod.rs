//! What the PyTorch parity tests of this crate share: loading a fixture file and comparing a
//! tensor with PyTorch's elementwise, `|a - b| <= atol + rtol |b|`, reporting the worst element.

use std::collections::BTreeMap;

use jizen_tensor::Tensor;

/// A fixture file's tensors by name.
pub type Fixtures = BTreeMap<String, Tensor>;

/// The tensors of the fixture at `path` (a missing file names the script that writes it).
pub fn load(path: &str, script: &str) -> Fixtures {
    jizen_tensor::safetensors::load(path)
        .unwrap_or_else(|e| panic!("cannot load {path}: {e} (regenerate with {script})"))
}

/// Entry `key` of `fx` (read from `path`).
pub fn get<'a>(fx: &'a Fixtures, path: &str, key: &str) -> &'a Tensor {
    fx.get(key).unwrap_or_else(|| panic!("{key} is not in {path}"))
}

/// Largest `|a - b|` and, if any element is outside `atol + rtol |b|`, a description of the worst.
pub fn compare(key: &str, actual: &Tensor, expected: &Tensor, atol: f64, rtol: f64) -> (f64, Option<String>) {
    if actual.shape() != expected.shape() {
        return (f64::INFINITY, Some(format!("{key}: jizen {:?}, torch {:?}", actual.shape(), expected.shape())));
    }
    let (a, b) = (actual.to_f64_vec(), expected.to_f64_vec());
    let (mut max_abs, mut worst) = (0.0f64, (0.0f64, 0usize));
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        let diff = if x == y { 0.0 } else { (x - y).abs() };
        let diff = if diff.is_nan() { f64::INFINITY } else { diff };
        max_abs = max_abs.max(diff);
        let ratio = diff / (atol + rtol * y.abs());
        if ratio > worst.0 {
            worst = (ratio, i);
        }
    }
    let failure = (worst.0 > 1.0).then(|| {
        let i = worst.1;
        format!(
            "{key}: max |jizen - torch| = {max_abs:.3e}; worst at flat index {i}: jizen {:.8e}, torch {:.8e} \
             ({:.1}x the tolerance)",
            a[i], b[i], worst.0
        )
    });
    (max_abs, failure)
}
