//! Fit and predict times of every jizen-ml estimator: the Rust side of
//! `scripts/bench/compare_ml.py`, whose scikit-learn side is `scripts/bench/sklearn_timing.py`
//! (same cases, same data, same hyper-parameters, same JSON).
//!
//! ```sh
//! cargo run --release -p jizen-ml --example ml_timing                      # digits only
//! JIZEN_DATA=/work/shared/data cargo run --release -p jizen-ml --example ml_timing   # + Fashion-MNIST
//! cargo run --release -p jizen-ml --example ml_timing -- --only svc --only digits/knn --repeats 5
//! cargo run --release -p jizen-ml --example ml_timing -- --quick          # tiny sizes: pipeline check
//! ```
//!
//! Prints one JSON line per case on stdout:
//! `{"case", "data", "n_train", "n_test", "fit_ms" (median), "fit_ms_min", "fit_ms_max",
//! "predict_ms" (median of `predict_op` on the test part), "predict_op", "quality",
//! "quality_kind", "n_iter" (null when the estimator has none), "repeats", "threads"}`;
//! notes go to stderr. `--only SUBSTRING` (repeatable) keeps the cases whose `data/case` contains
//! one of the substrings; `--repeats R` (default 3; 1 with `--quick`) fits and predicts R times;
//! `--list` prints the selected cases' `data/case` names, one a line, and runs nothing.
//!
//! Data (features standardised by a `StandardScaler` fit on the training part, outside the
//! timings):
//! - digits: the 1,797 8x8 digits embedded in `tests/fixtures/sklearn_ml.safetensors`; a fixed
//!   75/25 split: sample `i` is a test sample when `i % 4 == 3` (1,348 train, 449 test).
//! - fashion (only when `JIZEN_DATA` is set): `$JIZEN_DATA/fashion-mnist`, pixels / 255; the first
//!   10,000 training and the first 2,000 test images (the first 5,000 training images for
//!   `svc-rbf`). `gmm-diag-pca50` fits on the 50-component projection of the standardised data
//!   (full-SVD PCA fit on the training part, outside the timings). The gzip'd IDX files are read
//!   through the `gzip` program (this crate has no gzip decoder).
//!
//! Threads: k-d tree queries split over `JIZEN_THREADS` threads ("threads" in the JSON is
//! `jizen_ml::num_threads()`); faer's products and factorisations run on rayon's global pool
//! (`RAYON_NUM_THREADS`, else every core: 2 here); the solvers' own loops (SMO, coordinate
//! descent, L-BFGS steps) run on one thread. scikit-learn's side runs with 2.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use jizen_ml::{
    CovarianceType, GaussianMixtureConfig, GmmInit, KMeansConfig, KMeansInit, KnnAlgorithm, KnnConfig, LinearSvcConfig,
    LogisticRegressionConfig, Matrix, PcaConfig, StandardScalerConfig, SvcConfig, SvdSolver,
};
use safetensors::SafeTensors;
use serde_json::json;

/// One train/test data set, features already standardised.
struct Data {
    name: &'static str,
    x_train: Matrix,
    y_train: Vec<usize>,
    x_test: Matrix,
    y_test: Vec<usize>,
}

struct Args {
    only: Vec<String>,
    repeats: usize,
    quick: bool,
    list: bool,
}

/// The cases, in the order they run (`data/case` names them).
const DIGITS_CASES: [&str; 10] = [
    "logreg",
    "linear-svm",
    "svc-rbf",
    "knn-brute",
    "knn-kdtree",
    "pca-full",
    "pca-rand20",
    "gmm-full",
    "gmm-diag",
    "kmeans",
];
const FASHION_CASES: [&str; 8] =
    ["logreg", "linear-svm", "svc-rbf", "knn-brute", "pca-full50", "pca-rand50", "gmm-diag-pca50", "kmeans"];

fn parse_args() -> Args {
    let mut args = Args { only: Vec::new(), repeats: 0, quick: false, list: false };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => args.only.push(it.next().expect("--only needs a substring")),
            "--repeats" => {
                let r = it.next().expect("--repeats needs a number");
                args.repeats = r.parse().ok().filter(|&r| r > 0).expect("--repeats needs a positive integer");
            }
            "--quick" => args.quick = true,
            "--list" => args.list = true,
            "-h" | "--help" => {
                eprintln!("usage: ml_timing [--only SUBSTRING]... [--repeats R] [--quick] [--list]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    if args.repeats == 0 {
        args.repeats = if args.quick { 1 } else { 3 };
    }
    args
}

fn matrix(rows: usize, cols: usize, values: &[f64]) -> Matrix {
    jizen_ml::matrix_from_rows(rows, cols, values).expect("consistent shape")
}

/// Scales train and test by a scaler fit on the train part.
fn standardise(x_train: &Matrix, x_test: &Matrix) -> (Matrix, Matrix) {
    let s = StandardScalerConfig::default().fit(x_train).expect("scaler fit");
    (s.transform(x_train).unwrap(), s.transform(x_test).unwrap())
}

/// The digits, the first `n` of them (all with `None`), split `i % 4 == 3` → test.
fn digits(n: Option<usize>) -> Data {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/sklearn_ml.safetensors");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let x = st.tensor("digits.x").expect("digits.x"); // u8 [1797, 64]
    let y = st.tensor("digits.y").expect("digits.y"); // i64 [1797]
    let d = x.shape()[1];
    let n = n.unwrap_or(x.shape()[0]).min(x.shape()[0]);
    let labels = y.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize);
    let rows = x.data().chunks_exact(d).map(|r| r.iter().map(|&b| f64::from(b)));
    let (mut tr, mut te, mut ytr, mut yte) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, (row, label)) in rows.zip(labels).take(n).enumerate() {
        if i % 4 == 3 {
            te.extend(row);
            yte.push(label);
        } else {
            tr.extend(row);
            ytr.push(label);
        }
    }
    let (x_train, x_test) = standardise(&matrix(ytr.len(), d, &tr), &matrix(yte.len(), d, &te));
    Data { name: "digits", x_train, y_train: ytr, x_test, y_test: yte }
}

/// The first `n` items of a gzip'd unsigned-byte IDX file, and the size of one item.
fn idx(path: &Path, n: usize) -> (Vec<u8>, usize) {
    let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap_or_else(|e| panic!("gzip {path:?}: {e}"));
    assert!(out.status.success(), "gzip -dc {path:?} failed");
    let b = out.stdout;
    assert!(b.len() >= 4 && b[2] == 0x08, "{path:?} is not an unsigned-byte IDX file");
    let dims = usize::from(b[3]);
    let shape: Vec<usize> =
        (0..dims).map(|k| u32::from_be_bytes(b[4 + 4 * k..8 + 4 * k].try_into().unwrap()) as usize).collect();
    assert!(n <= shape[0], "{path:?} holds {} items, {n} wanted", shape[0]);
    let per_item: usize = shape[1..].iter().product();
    let start = 4 + 4 * dims;
    (b[start..start + n * per_item].to_vec(), per_item)
}

/// The first `n_train` training and `n_test` test images of Fashion-MNIST, pixels / 255,
/// standardised.
fn fashion(dir: &Path, n_train: usize, n_test: usize) -> Data {
    let load = |split: &str, n: usize| {
        let (px, d) = idx(&dir.join(format!("{split}-images-idx3-ubyte.gz")), n);
        let (labels, _) = idx(&dir.join(format!("{split}-labels-idx1-ubyte.gz")), n);
        let x: Vec<f64> = px.iter().map(|&v| f64::from(v) / 255.0).collect();
        (matrix(n, d, &x), labels.iter().map(|&v| usize::from(v)).collect::<Vec<_>>())
    };
    let (x_train, y_train) = load("train", n_train);
    let (x_test, y_test) = load("t10k", n_test);
    let (x_train, x_test) = standardise(&x_train, &x_test);
    Data { name: "fashion", x_train, y_train, x_test, y_test }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// What a case measures after its fit: the name of the timed test-set operation and the kind of
/// its quality number.
struct Measure {
    predict_op: &'static str,
    quality_kind: &'static str,
}

const CLASSIFY: Measure = Measure { predict_op: "predict", quality_kind: "accuracy" };

struct Runner {
    args: Args,
}

impl Runner {
    fn wanted(&self, data: &str, case: &str) -> bool {
        let name = format!("{data}/{case}");
        self.args.only.is_empty() || self.args.only.iter().any(|s| name.contains(s.as_str()))
    }

    /// Times `fit` then `predict` `repeats` times and prints the case's JSON line; `quality`
    /// (untimed) turns the last model and prediction into the quality number and the iteration
    /// count.
    #[allow(clippy::too_many_arguments)]
    fn case<M, P>(
        &self,
        data: &Data,
        case: &str,
        n_train: usize,
        measure: Measure,
        fit: impl Fn() -> M,
        predict: impl Fn(&M) -> P,
        quality: impl Fn(&M, &P) -> (f64, Option<usize>),
    ) {
        if !self.wanted(data.name, case) {
            return;
        }
        let (mut fits, mut preds, mut last) = (Vec::new(), Vec::new(), (f64::NAN, None));
        for _ in 0..self.args.repeats {
            let t = Instant::now();
            let m = fit();
            fits.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let p = predict(&m);
            preds.push(t.elapsed().as_secs_f64() * 1e3);
            last = quality(&m, &p);
        }
        let line = json!({
            "case": case,
            "data": data.name,
            "n_train": n_train,
            "n_test": data.x_test.nrows(),
            "fit_ms": median(&fits),
            "fit_ms_min": fits.iter().copied().fold(f64::INFINITY, f64::min),
            "fit_ms_max": fits.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            "predict_ms": median(&preds),
            "predict_op": measure.predict_op,
            "quality": last.0,
            "quality_kind": measure.quality_kind,
            "n_iter": last.1,
            "repeats": self.args.repeats,
            "threads": jizen_ml::num_threads(),
        });
        println!("{line}");
    }
}

fn acc(y: &[usize], p: &[usize]) -> f64 {
    jizen_ml::accuracy(y, p).expect("same lengths")
}

fn logreg(r: &Runner, d: &Data) {
    // L-BFGS on the multinomial loss, C = 1, 100 iterations, tol 1e-4: scikit-learn's defaults.
    let cfg = LogisticRegressionConfig::default();
    r.case(
        d,
        "logreg",
        d.x_train.nrows(),
        CLASSIFY,
        || cfg.fit(&d.x_train, &d.y_train).unwrap(),
        |m| m.predict(&d.x_test).unwrap(),
        |m, p| (acc(&d.y_test, p), Some(m.n_iter())),
    );
}

fn linear_svm(r: &Runner, d: &Data) {
    // Dual coordinate descent, squared hinge, C = 1, tol 1e-4, 1000 passes, one-vs-rest
    // (scikit-learn: LinearSVC(dual=True); its default dual="auto" would pick the primal here).
    let cfg = LinearSvcConfig::default();
    r.case(
        d,
        "linear-svm",
        d.x_train.nrows(),
        CLASSIFY,
        || cfg.fit(&d.x_train, &d.y_train).unwrap(),
        |m| m.predict(&d.x_test).unwrap(),
        |m, p| (acc(&d.y_test, p), Some(m.n_iter())),
    );
}

fn svc(r: &Runner, d: &Data, n_train: usize) {
    // SMO, RBF with gamma = "scale", C = 1, tol 1e-3, shrinking, 200 MB cache: SVC()'s defaults.
    let cfg = SvcConfig::default();
    let x = d.x_train.subrows(0, n_train).to_owned();
    let y = &d.y_train[..n_train];
    r.case(
        d,
        "svc-rbf",
        n_train,
        CLASSIFY,
        || cfg.fit(&x, y).unwrap(),
        |m| m.predict(&d.x_test).unwrap(),
        |m, p| (acc(&d.y_test, p), Some(m.n_iter().iter().sum())),
    );
}

fn knn(r: &Runner, d: &Data, algorithm: KnnAlgorithm, case: &str) {
    // k = 5, uniform weights, Euclidean.
    let cfg = KnnConfig { algorithm, ..KnnConfig::new(5) };
    r.case(
        d,
        case,
        d.x_train.nrows(),
        CLASSIFY,
        || cfg.fit(&d.x_train, &d.y_train).unwrap(),
        |m| m.predict(&d.x_test).unwrap(),
        |_, p| (acc(&d.y_test, p), None),
    );
}

fn pca(r: &Runner, d: &Data, case: &str, n_components: usize, svd_solver: SvdSolver) {
    // Randomized: 10 oversamples, "auto" power iterations, QR after every product (scikit-learn
    // is given power_iteration_normalizer="QR" to match; its default there is LU).
    let cfg = PcaConfig { svd_solver, ..PcaConfig::new(n_components) };
    let measure = Measure { predict_op: "transform", quality_kind: "explained variance ratio sum" };
    r.case(
        d,
        case,
        d.x_train.nrows(),
        measure,
        || cfg.fit(&d.x_train).unwrap(),
        |m| m.transform(&d.x_test).unwrap(),
        |m, _| (m.explained_variance_ratio().iter().sum(), None),
    );
}

fn gmm(r: &Runner, d: &Data, case: &str, covariance_type: CovarianceType) {
    // 10 components, k-means initialisation (one k-means run), one EM run, tol 1e-3,
    // reg_covar 1e-6, 100 iterations: scikit-learn's defaults with n_init = 1.
    let cfg = GaussianMixtureConfig {
        n_components: 10,
        covariance_type,
        init: GmmInit::KMeans,
        n_init: 1,
        tol: 1e-3,
        reg_covar: 1e-6,
        max_iter: 100,
        seed: 0,
    };
    // The quality is the training data's mean log-likelihood, the objective EM climbs: the test
    // score is dominated by the few test images that are non-zero in a pixel almost always zero
    // in training, where a component's variance is near reg_covar.
    let measure = Measure { predict_op: "score", quality_kind: "mean log-likelihood (train)" };
    r.case(
        d,
        case,
        d.x_train.nrows(),
        measure,
        || cfg.fit(&d.x_train).unwrap(),
        |m| m.score(&d.x_test).unwrap(),
        |m, _| (m.score(&d.x_train).unwrap(), Some(m.n_iter())),
    );
}

fn kmeans(r: &Runner, d: &Data) {
    // k = 10, greedy k-means++ (2 + ln k candidates), one run, Lloyd, 300 iterations, tol 1e-4.
    let cfg =
        KMeansConfig { n_clusters: 10, init: KMeansInit::KMeansPlusPlus, n_init: 1, max_iter: 300, tol: 1e-4, seed: 0 };
    let measure = Measure { predict_op: "predict", quality_kind: "-inertia per test sample" };
    r.case(
        d,
        "kmeans",
        d.x_train.nrows(),
        measure,
        || cfg.fit(&d.x_train).unwrap(),
        |m| m.predict(&d.x_test).unwrap(),
        |m, _| (m.score(&d.x_test).unwrap() / d.x_test.nrows() as f64, Some(m.n_iter())),
    );
}

fn main() {
    let r = Runner { args: parse_args() };
    let quick = r.args.quick;
    let data_root = std::env::var_os("JIZEN_DATA");
    let want_fashion = FASHION_CASES.iter().any(|c| r.wanted("fashion", c));
    if want_fashion && data_root.is_none() {
        eprintln!("note: Fashion-MNIST cases skipped: set JIZEN_DATA to the shared data folder");
    }
    if r.args.list {
        let fashion = if data_root.is_some() { &FASHION_CASES[..] } else { &[] };
        let all = DIGITS_CASES.iter().map(|c| ("digits", c)).chain(fashion.iter().map(|c| ("fashion", c)));
        for (data, case) in all.filter(|(data, case)| r.wanted(data, case)) {
            println!("{data}/{case}");
        }
        return;
    }

    if DIGITS_CASES.iter().any(|c| r.wanted("digits", c)) {
        let d = digits(quick.then_some(400));
        logreg(&r, &d);
        linear_svm(&r, &d);
        svc(&r, &d, d.x_train.nrows());
        knn(&r, &d, KnnAlgorithm::Brute, "knn-brute");
        knn(&r, &d, KnnAlgorithm::KdTree, "knn-kdtree");
        pca(&r, &d, "pca-full", d.x_train.ncols(), SvdSolver::Full);
        pca(&r, &d, "pca-rand20", 20, SvdSolver::Randomized);
        gmm(&r, &d, "gmm-full", CovarianceType::Full);
        gmm(&r, &d, "gmm-diag", CovarianceType::Diag);
        kmeans(&r, &d);
    }

    let (Some(root), true) = (data_root, want_fashion) else { return };
    let (n_train, n_test, n_svc) = if quick { (1000, 200, 500) } else { (10_000, 2000, 5000) };
    let d = fashion(&Path::new(&root).join("fashion-mnist"), n_train, n_test);
    logreg(&r, &d);
    linear_svm(&r, &d);
    svc(&r, &d, n_svc);
    knn(&r, &d, KnnAlgorithm::Brute, "knn-brute");
    pca(&r, &d, "pca-full50", 50, SvdSolver::Full);
    pca(&r, &d, "pca-rand50", 50, SvdSolver::Randomized);
    if r.wanted(d.name, "gmm-diag-pca50") {
        // The projection is data preparation, outside the timings (the same on both sides).
        let proj = PcaConfig { svd_solver: SvdSolver::Full, ..PcaConfig::new(50) }.fit(&d.x_train).unwrap();
        let projected = Data {
            name: d.name,
            x_train: proj.transform(&d.x_train).unwrap(),
            y_train: d.y_train.clone(),
            x_test: proj.transform(&d.x_test).unwrap(),
            y_test: d.y_test.clone(),
        };
        gmm(&r, &projected, "gmm-diag-pca50", CovarianceType::Diag);
    }
    kmeans(&r, &d);
}
