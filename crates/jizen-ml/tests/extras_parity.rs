//! Parity with scikit-learn 1.9.1 for standardised and randomized PCA, per-class metrics, kNN
//! regression and kNN with a k-d tree. Oracles: `tests/fixtures/sklearn_extras.safetensors`
//! (written by `scripts/fixtures/sklearn_extras.py`, which documents every key) and, for the
//! digits, iris and full-solver PCA, `tests/fixtures/sklearn_ml.safetensors`. Each test prints
//! the largest difference it saw.

use std::collections::HashMap;
use std::sync::OnceLock;

use jizen_ml::{
    classification_report, f1_score, select_rows, Average, KnnAlgorithm, KnnConfig, KnnRegressorConfig, KnnWeights,
    Matrix, PcaConfig, SvdSolver,
};
use safetensors::{Dtype, SafeTensors};

fn bytes(file: &'static str) -> &'static [u8] {
    static B: OnceLock<HashMap<&'static str, Vec<u8>>> = OnceLock::new();
    let all = B.get_or_init(|| {
        ["sklearn_ml", "sklearn_extras"]
            .into_iter()
            .map(|f| {
                let path = format!("{}/../../tests/fixtures/{f}.safetensors", env!("CARGO_MANIFEST_DIR"));
                (f, std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}")))
            })
            .collect()
    });
    &all[file]
}

/// A fixture array as f64 (from f64, i64 or u8 storage) and its shape.
fn load(file: &'static str, name: &str) -> (Vec<f64>, Vec<usize>) {
    let st = SafeTensors::deserialize(bytes(file)).expect("valid safetensors");
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{file} has no {name}: {e}"));
    let d = t.data();
    let v = match t.dtype() {
        Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        Dtype::U8 => d.iter().map(|&b| f64::from(b)).collect(),
        other => panic!("{name}: unexpected dtype {other:?}"),
    };
    (v, t.shape().to_vec())
}

fn vector(name: &str) -> Vec<f64> {
    load("sklearn_extras", name).0
}

fn labels(name: &str) -> Vec<usize> {
    vector(name).into_iter().map(|v| v as usize).collect()
}

fn matrix_in(file: &'static str, name: &str) -> Matrix {
    let (v, s) = load(file, name);
    let cols = if s.len() == 2 { s[1] } else { 1 };
    jizen_ml::matrix_from_rows(s[0], cols, &v).unwrap()
}

fn matrix(name: &str) -> Matrix {
    matrix_in("sklearn_extras", name)
}

/// Largest `|a - b|` over the pairs.
fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Largest `|a - b| / |b|` over the pairs.
fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs()).fold(0.0, f64::max)
}

fn rows_of(m: &Matrix) -> Vec<f64> {
    (0..m.nrows()).flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)])).collect()
}

/// Per row of `a` (a component), the largest difference to the same row of `b` after flipping
/// the row to the sign that fits `b` best.
fn row_diffs_up_to_sign(a: &Matrix, b: &Matrix) -> Vec<f64> {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()));
    (0..a.nrows())
        .map(|i| {
            let d = |s: f64| (0..a.ncols()).map(|j| (s * a[(i, j)] - b[(i, j)]).abs()).fold(0.0, f64::max);
            d(1.0).min(d(-1.0))
        })
        .collect()
}

fn digits() -> Matrix {
    matrix_in("sklearn_ml", "digits.x")
}

/// Oracle: `StandardScaler()` then `PCA(n_components=10, svd_solver="full", whiten=False/True)`
/// on the digits.
#[test]
fn standardized_and_whitened_pca_match_sklearn() {
    let x = digits();
    let first20 = select_rows(&x, &(0..20).collect::<Vec<_>>());
    let cfg = PcaConfig { standardize: true, svd_solver: SvdSolver::Full, ..PcaConfig::new(10) };
    let pca = cfg.fit(&x).unwrap();
    let dc = max_abs(&rows_of(pca.components()), &rows_of(&matrix("pca_std.components")));
    let dv = max_rel(pca.explained_variance(), &vector("pca_std.explained_variance"));
    let dr = max_rel(pca.explained_variance_ratio(), &vector("pca_std.explained_variance_ratio"));
    let dt = max_abs(&rows_of(&pca.transform(&first20).unwrap()), &rows_of(&matrix("pca_std.transformed")));
    let white = PcaConfig { whiten: true, ..cfg }.fit(&x).unwrap();
    let dw = max_abs(&rows_of(&white.transform(&first20).unwrap()), &rows_of(&matrix("pca_std.whitened")));
    let back = white.inverse_transform(&white.transform(&first20).unwrap()).unwrap();
    let full = PcaConfig { standardize: true, ..PcaConfig::new(64) }.fit(&x).unwrap();
    let exact_back = full.inverse_transform(&full.transform(&first20).unwrap()).unwrap();
    let dinv = max_abs(&rows_of(&exact_back), &rows_of(&first20));
    println!(
        "standardized PCA digits: components {dc:.2e} (same signs as sklearn), explained variance rel {dv:.2e}, \
         ratio rel {dr:.2e}, transform {dt:.2e}, whitened {dw:.2e}, 64-component round trip {dinv:.2e}"
    );
    assert!(dc < 1e-8 && dv < 1e-10 && dr < 1e-10, "components {dc}, variance {dv}, ratio {dr}");
    assert!(dt < 1e-8 && dw < 1e-8, "transform {dt}, whitened {dw}");
    assert!(dinv < 1e-10, "inverse_transform of all components: {dinv}");
    assert_eq!((back.nrows(), back.ncols()), (20, 64));
}

/// Oracle: sklearn's exact `PCA(n_components=10, svd_solver="full")` on the raw digits, against
/// our randomized solver (10 oversamples, 4 power iterations by the automatic rule, QR
/// normalisation) with eight seeds.
#[test]
fn randomized_pca_matches_the_exact_components() {
    let x = digits();
    let want = matrix_in("sklearn_ml", "pca.components");
    let want_var = load("sklearn_ml", "pca.explained_variance").0;
    let want_ratio = load("sklearn_ml", "pca.explained_variance_ratio").0;
    for seed in [0, 1, 2, 3, 4, 5, 6, 7] {
        let cfg = PcaConfig { svd_solver: SvdSolver::Randomized, seed, ..PcaConfig::new(10) };
        let pca = cfg.fit(&x).unwrap();
        assert_eq!(pca.solver(), SvdSolver::Randomized);
        let diffs = row_diffs_up_to_sign(pca.components(), &want);
        let dv = max_rel(pca.explained_variance(), &want_var);
        let dr = max_rel(pca.explained_variance_ratio(), &want_ratio);
        let top3 = diffs[..3].iter().copied().fold(0.0, f64::max);
        let top5 = diffs[..5].iter().copied().fold(0.0, f64::max);
        let all10 = diffs.iter().copied().fold(0.0, f64::max);
        println!(
            "randomized PCA digits seed {seed}: components 1-3 {top3:.2e}, 1-5 {top5:.2e}, 1-10 {all10:.2e} (per component \
             {}), explained variance rel {dv:.2e}, ratio rel {dr:.2e}",
            diffs.iter().map(|d| format!("{d:.1e}")).collect::<Vec<_>>().join(" ")
        );
        assert!(top3 < TOP3_TOL, "seed {seed}: top-3 components differ by {top3}");
        assert!(top5 < TOP5_TOL, "seed {seed}: top-5 components differ by {top5}");
        assert!(all10 < ALL10_TOL, "seed {seed}: components differ by {all10}");
        assert!(dv < VAR_TOL && dr < VAR_TOL, "seed {seed}: variance {dv}, ratio {dr}");
    }
}

// The digits spectrum decays slowly, so the randomized axes are accurate for the leading
// components and less so towards the 10th. Worst over seeds 0-7: components 1-3 3.2e-6, 1-5
// 1.3e-4, 1-10 2.4e-3, explained variance 5.5e-5 relative. The bounds keep a margin of about 3-4x.
const TOP3_TOL: f64 = 1e-5;
const TOP5_TOL: f64 = 5e-4;
const ALL10_TOL: f64 = 1e-2;
const VAR_TOL: f64 = 2e-4;

/// Oracle: `precision_recall_fscore_support` with `average=None`, `"macro"`, `"micro"` and
/// `"weighted"` on labels where one class is never predicted and one only predicted.
#[test]
fn precision_recall_f1_match_sklearn() {
    let (t, p) = (labels("metrics.y_true"), labels("metrics.y_pred"));
    let r = classification_report(&t, &p).unwrap();
    assert_eq!(r.labels, (0..7).collect::<Vec<_>>());
    assert_eq!(r.support, labels("metrics.support"));
    let dp = max_abs(&r.precision, &vector("metrics.precision"));
    let dr = max_abs(&r.recall, &vector("metrics.recall"));
    let df = max_abs(&r.f1, &vector("metrics.f1"));
    let mut davg = 0.0f64;
    for (name, avg) in [("macro", Average::Macro), ("micro", Average::Micro), ("weighted", Average::Weighted)] {
        let (ap, ar, af) = r.average(avg);
        davg = davg.max(max_abs(&[ap, ar, af], &vector(&format!("metrics.{name}"))));
        assert_eq!(f1_score(&t, &p, avg).unwrap(), af);
    }
    println!("metrics: per-class precision {dp:.2e}, recall {dr:.2e}, f1 {df:.2e}; averages {davg:.2e}");
    assert!(dp < 1e-15 && dr < 1e-15 && df < 1e-15 && davg < 1e-15);
}

/// Oracle: `KNeighborsRegressor(n_neighbors=5, weights=..., algorithm="brute")` on the diabetes
/// split `train_test_split(test_size=0.25, random_state=0)`; ours runs both searches.
#[test]
fn knn_regressor_matches_sklearn_on_diabetes() {
    let (x, y) = (matrix("diabetes.x"), vector("diabetes.y"));
    let (tr, te) = (labels("diabetes.train_idx"), labels("diabetes.test_idx"));
    let (x_tr, x_te) = (select_rows(&x, &tr), select_rows(&x, &te));
    let y_tr: Vec<f64> = tr.iter().map(|&i| y[i]).collect();
    for (name, weights) in [("uniform", KnnWeights::Uniform), ("distance", KnnWeights::Distance)] {
        let want = vector(&format!("knnreg.{name}.pred"));
        for algorithm in [KnnAlgorithm::Brute, KnnAlgorithm::KdTree] {
            let m = KnnRegressorConfig { weights, algorithm, ..KnnRegressorConfig::new(5) }.fit(&x_tr, &y_tr).unwrap();
            let d = max_rel(&m.predict(&x_te).unwrap(), &want);
            println!("kNN regressor {name} {algorithm:?}: max rel prediction diff {d:.2e}");
            assert!(d < 1e-12, "{name} {algorithm:?}: {d}");
        }
    }
}

/// Oracle: `KNeighborsClassifier(n_neighbors=7, weights="distance", algorithm="kd_tree",
/// leaf_size=5)` fitted on the even rows of iris, predicting every row.
#[test]
fn kd_tree_classifier_matches_sklearn_on_iris() {
    let (x, y) = (matrix_in("sklearn_ml", "iris.x"), load("sklearn_ml", "iris.y").0);
    let even: Vec<usize> = (0..150).step_by(2).collect();
    let y_even: Vec<usize> = even.iter().map(|&i| y[i] as usize).collect();
    let cfg = KnnConfig { weights: KnnWeights::Distance, algorithm: KnnAlgorithm::KdTree, ..KnnConfig::new(7) };
    let m = cfg.fit(&select_rows(&x, &even), &y_even).unwrap();
    let pred = m.predict(&x).unwrap();
    let dp = max_abs(&rows_of(&m.predict_proba(&x).unwrap()), &rows_of(&matrix("knn_kd.iris.proba")));
    let want = labels("knn_kd.iris.pred");
    let agree = pred.iter().zip(&want).filter(|(a, b)| a == b).count();
    println!("kNN k-d tree iris: {agree}/150 predictions equal, max |proba diff| {dp:.2e}");
    assert_eq!(pred, want);
    assert!(dp < 1e-12, "{dp}");
}
