//! Parity with scikit-learn 1.9.1. Oracle: `tests/fixtures/sklearn_ml.safetensors`, written by
//! `scripts/fixtures/sklearn_ml.py` (which documents every key). The data sets (iris, 8x8
//! digits) are embedded in the fixture, so these tests need no data files. Each test prints the
//! largest difference it saw.

use std::sync::OnceLock;

use jizen_ml::{select_rows, KnnConfig, KnnWeights, LogisticRegressionConfig, Matrix, PcaConfig, StandardScalerConfig};

mod common;

fn fx() -> &'static common::Fixture {
    static F: OnceLock<common::Fixture> = OnceLock::new();
    F.get_or_init(|| common::Fixture::read("sklearn_ml.safetensors"))
}

fn vector(name: &str) -> Vec<f64> {
    fx().vector(name)
}

fn labels(name: &str) -> Vec<usize> {
    fx().labels(name)
}

fn matrix(name: &str) -> Matrix {
    fx().matrix(name)
}

fn iris() -> (Matrix, Vec<usize>) {
    (matrix("iris.x"), labels("iris.y"))
}

fn digits() -> (Matrix, Vec<usize>) {
    (matrix("digits.x"), labels("digits.y"))
}

/// Largest `|a - b| / max(|b|, floor)` over the pairs.
fn max_rel(a: &[f64], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(floor)).fold(0.0, f64::max)
}

/// Largest `|a - b|` over the pairs.
fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn rows_of(m: &Matrix) -> Vec<f64> {
    (0..m.nrows()).flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)])).collect()
}

/// Largest difference between the columns of `a` and `b` after flipping each column of `a` to
/// the sign that fits `b` best (principal axes are defined up to sign).
fn max_abs_up_to_column_sign(a: &Matrix, b: &Matrix) -> f64 {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()));
    (0..a.ncols())
        .map(|j| {
            let d = |s: f64| (0..a.nrows()).map(|i| (s * a[(i, j)] - b[(i, j)]).abs()).fold(0.0, f64::max);
            d(1.0).min(d(-1.0))
        })
        .fold(0.0, f64::max)
}

fn agreement(a: &[usize], b: &[usize]) -> f64 {
    jizen_ml::accuracy(a, b).unwrap()
}

/// Oracle: `sklearn.preprocessing.StandardScaler().fit(x)`, `mean_` and `scale_`.
#[test]
fn standard_scaler_matches_sklearn() {
    for (name, (x, _)) in [("iris", iris()), ("digits", digits())] {
        let s = StandardScalerConfig::default().fit(&x).unwrap();
        let dm = max_abs(s.mean(), &vector(&format!("scaler.{name}.mean")));
        let ds = max_rel(s.scale(), &vector(&format!("scaler.{name}.scale")), 1e-300);
        println!("StandardScaler {name}: max |mean diff| {dm:.2e}, max rel scale diff {ds:.2e}");
        assert!(dm < 1e-12 && ds < 1e-12);
    }
}

/// Oracle: `sklearn.decomposition.PCA(n_components=10, svd_solver="full").fit(digits)`.
#[test]
fn pca_matches_sklearn_on_digits() {
    let (x, _) = digits();
    let pca = PcaConfig::new(10).fit(&x).unwrap();
    let want = matrix("pca.components");
    // Compare rows up to sign: transpose so rows become columns.
    let dc = max_abs_up_to_column_sign(&pca.components().transpose().to_owned(), &want.transpose().to_owned());
    let same_sign = max_abs(&rows_of(pca.components()), &rows_of(&want));
    let dv = max_rel(pca.explained_variance(), &vector("pca.explained_variance"), 1e-300);
    let dr = max_rel(pca.explained_variance_ratio(), &vector("pca.explained_variance_ratio"), 1e-300);
    let first20 = select_rows(&x, &(0..20).collect::<Vec<_>>());
    let dt = max_abs_up_to_column_sign(&pca.transform(&first20).unwrap(), &matrix("pca.transformed"));
    let white = PcaConfig { whiten: true, ..PcaConfig::new(10) }.fit(&x).unwrap();
    let dw = max_abs_up_to_column_sign(&white.transform(&first20).unwrap(), &matrix("pca.whitened"));
    println!(
        "PCA digits: components up to sign {dc:.2e} (same sign as sklearn's svd_flip: {same_sign:.2e}), \
         explained variance rel {dv:.2e}, ratio rel {dr:.2e}, transform {dt:.2e}, whitened {dw:.2e}"
    );
    assert!(dc < 1e-6, "components differ by {dc}");
    assert!(same_sign < 1e-6, "sign convention differs from svd_flip: {same_sign}");
    assert!(dv < 1e-8 && dr < 1e-8, "explained variance {dv}, ratio {dr}");
    assert!(dt < 1e-6 && dw < 1e-6, "transform {dt}, whitened {dw}");
}

/// Oracle: `KNeighborsClassifier(n_neighbors=5, algorithm="brute", weights=...)` on the digits
/// split `train_test_split(test_size=0.25, random_state=0)` (the indices are in the fixture).
#[test]
fn knn_matches_sklearn_on_digits() {
    let (x, y) = digits();
    let (tr, te) = (labels("knn.train_idx"), labels("knn.test_idx"));
    let (x_tr, x_te) = (select_rows(&x, &tr), select_rows(&x, &te));
    let y_tr: Vec<usize> = tr.iter().map(|&i| y[i]).collect();
    let y_te: Vec<usize> = te.iter().map(|&i| y[i]).collect();
    for (name, weights) in [("uniform", KnnWeights::Uniform), ("distance", KnnWeights::Distance)] {
        let knn = KnnConfig { weights, ..KnnConfig::new(5) }.fit(&x_tr, &y_tr).unwrap();
        let pred = knn.predict(&x_te).unwrap();
        let agree = agreement(&pred, &labels(&format!("knn.{name}.pred")));
        let acc = knn.score(&x_te, &y_te).unwrap();
        let want = vector(&format!("knn.{name}.accuracy"))[0];
        println!("kNN k=5 {name}: agreement {:.2}%, accuracy {acc:.4} vs sklearn {want:.4}", 100.0 * agree);
        assert!(agree >= 0.995, "{name}: only {agree} of predictions agree");
        assert!((acc - want).abs() <= 0.005, "{name}: accuracy {acc} vs {want}");
    }
}

/// Oracle: `LogisticRegression(C=1.0, solver="lbfgs", tol=1e-10, max_iter=100000)` on
/// `StandardScaler`'d iris and digits (fitted and scored on the whole set).
#[test]
fn logistic_regression_matches_sklearn() {
    for (name, (x, y)) in [("iris", iris()), ("digits", digits())] {
        let xs = StandardScalerConfig::default().fit(&x).unwrap().transform(&x).unwrap();
        let cfg = LogisticRegressionConfig { tol: 1e-10, max_iter: 100_000, ..Default::default() };
        let m = cfg.fit(&xs, &y).unwrap();
        let dc = max_abs(&rows_of(m.coef()), &vector(&format!("logreg.{name}.coef")));
        let di = max_abs(m.intercept(), &vector(&format!("logreg.{name}.intercept")));
        let pred = m.predict(&xs).unwrap();
        let agree = agreement(&pred, &labels(&format!("logreg.{name}.pred")));
        let acc = m.score(&xs, &y).unwrap();
        let want = vector(&format!("logreg.{name}.accuracy"))[0];
        println!(
            "LogisticRegression {name}: {} iterations, max |coef diff| {dc:.2e}, max |intercept diff| {di:.2e}, \
             prediction agreement {:.2}%, accuracy {acc:.4} vs sklearn {want:.4}",
            m.n_iter(),
            100.0 * agree
        );
        assert!(dc < 1e-3 && di < 1e-3, "{name}: coef {dc}, intercept {di}");
        assert!((acc - want).abs() <= 0.005, "{name}: accuracy {acc} vs {want}");
    }
}

/// Oracle: the same `LogisticRegression` on standardized iris classes 1 and 2, where
/// scikit-learn fits one sigmoid model (`coef_` of shape `[1, 4]`), as we do.
#[test]
fn binary_logistic_regression_matches_sklearn() {
    let (x, y) = iris();
    let xs = StandardScalerConfig::default().fit(&x).unwrap().transform(&x).unwrap();
    let keep: Vec<usize> = (0..y.len()).filter(|&i| y[i] > 0).collect();
    let (xb, yb): (Matrix, Vec<usize>) = (select_rows(&xs, &keep), keep.iter().map(|&i| y[i]).collect());
    let cfg = LogisticRegressionConfig { tol: 1e-10, max_iter: 100_000, ..Default::default() };
    let m = cfg.fit(&xb, &yb).unwrap();
    assert_eq!((m.coef().nrows(), m.coef().ncols()), (1, 4));
    let dc = max_abs(&rows_of(m.coef()), &vector("logreg.binary.coef"));
    let di = max_abs(m.intercept(), &vector("logreg.binary.intercept"));
    let acc = m.score(&xb, &yb).unwrap();
    let want = vector("logreg.binary.accuracy")[0];
    println!("binary LogisticRegression: max |coef diff| {dc:.2e}, |intercept diff| {di:.2e}, accuracy {acc:.4} vs {want:.4}");
    assert!(dc < 1e-3 && di < 1e-3, "coef {dc}, intercept {di}");
    assert!((acc - want).abs() <= 0.005);
}
