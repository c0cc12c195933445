//! Fit + predict time of the SVMs, the counterpart of `scripts/bench/sklearn_svm_timing.py`.
//!
//! ```sh
//! cargo run --release -p jizen-ml --example svm_timing
//! JIZEN_DATA=../shared/data cargo run --release -p jizen-ml --example svm_timing   # + Fashion-MNIST
//! ```
//!
//! Cases (each run 3 times, the median printed):
//! - digits: the 1,797 8x8 digits (embedded in `tests/fixtures/sklearn_ml.safetensors`),
//!   standardised; fit on all of them, predict all of them; `LinearSvc` and `Svc` (RBF) with
//!   scikit-learn's defaults.
//! - Fashion-MNIST (only when `JIZEN_DATA` is set): the first 5,000 training images and the
//!   first 2,000 test images of `$JIZEN_DATA/fashion-mnist`, pixels / 255; `Svc` (RBF, defaults).
//!   The gzip'd IDX files are read through the `gzip` program (this crate has no gzip decoder).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use jizen_ml::{LinearSvcConfig, Matrix, StandardScalerConfig, SvcConfig};
use safetensors::SafeTensors;

const REPEATS: usize = 3;

fn digits() -> (Matrix, Vec<usize>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/sklearn_ml.safetensors");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let x = st.tensor("digits.x").expect("digits.x");
    let y = st.tensor("digits.y").expect("digits.y");
    let pixels: Vec<f64> = x.data().iter().map(|&b| f64::from(b)).collect();
    let labels = y.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize).collect();
    let x = jizen_ml::matrix_from_rows(x.shape()[0], x.shape()[1], &pixels).unwrap();
    let scaled = StandardScalerConfig::default().fit(&x).unwrap().transform(&x).unwrap();
    (scaled, labels)
}

/// The first `n` items of a gzip'd IDX file: images as rows of pixels / 255, or labels.
fn idx(path: &Path, n: usize) -> (Vec<f64>, usize) {
    let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap_or_else(|e| panic!("gzip {path:?}: {e}"));
    assert!(out.status.success(), "gzip -dc {path:?} failed");
    let b = out.stdout;
    let dims = usize::from(b[3]);
    let shape: Vec<usize> =
        (0..dims).map(|k| u32::from_be_bytes(b[4 + 4 * k..8 + 4 * k].try_into().unwrap()) as usize).collect();
    let per_item: usize = shape[1..].iter().product();
    let start = 4 + 4 * dims;
    let data = b[start..start + n * per_item].iter().map(|&v| f64::from(v) / 255.0).collect();
    (data, per_item)
}

fn fashion(dir: &Path, split: &str, n: usize) -> (Matrix, Vec<usize>) {
    let (x, d) = idx(&dir.join(format!("{split}-images-idx3-ubyte.gz")), n);
    let (y, _) = idx(&dir.join(format!("{split}-labels-idx1-ubyte.gz")), n);
    (jizen_ml::matrix_from_rows(n, d, &x).unwrap(), y.iter().map(|v| (v * 255.0).round() as usize).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `fit` then `predict` `REPEATS` times; prints the median times and the last accuracy.
fn time<M>(label: &str, fit: impl Fn() -> M, predict: impl Fn(&M) -> Vec<usize>, y_test: &[usize]) {
    let (mut fits, mut preds, mut acc) = (Vec::new(), Vec::new(), 0.0);
    for _ in 0..REPEATS {
        let t = Instant::now();
        let m = fit();
        fits.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let p = predict(&m);
        preds.push(t.elapsed().as_secs_f64());
        acc = jizen_ml::accuracy(y_test, &p).unwrap();
    }
    let (f, p) = (median(fits), median(preds));
    println!("{label:<32} fit {f:8.4} s  predict {p:8.4} s  total {:8.4} s  accuracy {acc:.4}", f + p);
}

fn main() {
    let (x, y) = digits();
    println!("median of {REPEATS} runs");
    time(
        "digits LinearSvc (sq. hinge)",
        || LinearSvcConfig::default().fit(&x, &y).unwrap(),
        |m| m.predict(&x).unwrap(),
        &y,
    );
    time("digits Svc rbf", || SvcConfig::default().fit(&x, &y).unwrap(), |m| m.predict(&x).unwrap(), &y);
    match std::env::var_os("JIZEN_DATA") {
        Some(root) => {
            let dir = Path::new(&root).join("fashion-mnist");
            let (x_train, y_train) = fashion(&dir, "train", 5000);
            let (x_test, y_test) = fashion(&dir, "t10k", 2000);
            time(
                "fashion 5000/2000 Svc rbf",
                || SvcConfig::default().fit(&x_train, &y_train).unwrap(),
                |m| m.predict(&x_test).unwrap(),
                &y_test,
            );
        }
        None => println!("Fashion-MNIST skipped: set JIZEN_DATA to the shared data folder"),
    }
}
