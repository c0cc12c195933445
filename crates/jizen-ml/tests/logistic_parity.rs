//! Parity of the logistic-regression extensions with scikit-learn 1.9.1: binary problems, class
//! weights, the L1 penalty (against `saga`) and the SGD solver (against our L-BFGS optimum and
//! scikit-learn's accuracy). Oracle: `tests/fixtures/sklearn_logistic.safetensors`, written by
//! `scripts/fixtures/sklearn_logistic.py` (which documents every key; the standardised data
//! sets are embedded). Each test prints the largest difference it saw.

use std::sync::OnceLock;

use jizen_ml::{
    select_rows, ClassWeight, LogisticRegression, LogisticRegressionConfig, Matrix, Penalty, SgdConfig, Solver,
};

mod common;

fn fx() -> &'static common::Fixture {
    static F: OnceLock<common::Fixture> = OnceLock::new();
    F.get_or_init(|| common::Fixture::read("sklearn_logistic.safetensors"))
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

fn rows_of(m: &Matrix) -> Vec<f64> {
    (0..m.nrows()).flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)])).collect()
}

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// The data set `name` (`iris`, `cancer`, or `imb`, the imbalanced iris subset).
fn data(name: &str) -> (Matrix, Vec<usize>) {
    if name == "imb" {
        let (x, y) = data("iris");
        let idx = labels("imb.idx");
        return (select_rows(&x, &idx), idx.iter().map(|&i| y[i]).collect());
    }
    (matrix(&format!("{name}.x")), labels(&format!("{name}.y")))
}

/// Tight settings, so that both sides reach the optimum.
fn tight() -> LogisticRegressionConfig {
    LogisticRegressionConfig { tol: 1e-10, max_iter: 100_000, ..Default::default() }
}

/// Compares a fitted model with the fixture case `p`: coefficients and intercepts within 1e-3,
/// predictions agreeing on at least 99.5% of the rows, accuracy within half a point, the
/// probabilities of the first 20 rows within 1e-4. Returns the largest coefficient difference.
fn check(p: &str, m: &LogisticRegression, x: &Matrix, y: &[usize]) -> f64 {
    let (want_coef, shape) = fx().load(&format!("{p}.coef"));
    assert_eq!(vec![m.coef().nrows(), m.coef().ncols()], shape, "{p}: coef shape");
    let dc = max_abs(&rows_of(m.coef()), &want_coef);
    let di = max_abs(m.intercept(), &vector(&format!("{p}.intercept")));
    let pred = m.predict(x).unwrap();
    let agree = jizen_ml::accuracy(&pred, &labels(&format!("{p}.pred"))).unwrap();
    let acc = m.score(x, y).unwrap();
    let want_acc = vector(&format!("{p}.accuracy"))[0];
    let proba = m.predict_proba(&select_rows(x, &(0..20).collect::<Vec<_>>())).unwrap();
    let dp = max_abs(&rows_of(&proba), &rows_of(&matrix(&format!("{p}.proba"))));
    println!(
        "{p}: {} iterations, max |coef diff| {dc:.2e}, max |intercept diff| {di:.2e}, max |proba diff| {dp:.2e}, \
         agreement {:.2}%, accuracy {acc:.4} vs sklearn {want_acc:.4}",
        m.n_iter(),
        100.0 * agree
    );
    assert!(dc < 1e-3 && di < 1e-3, "{p}: coef {dc}, intercept {di}");
    assert!(dp < 1e-4, "{p}: probabilities differ by {dp}");
    assert!(agree >= 0.995, "{p}: only {agree} of the predictions agree");
    assert!((acc - want_acc).abs() <= 0.005, "{p}: accuracy {acc} vs {want_acc}");
    dc
}

/// Oracle: `LogisticRegression(C, solver="lbfgs", tol=1e-10)` on the (binary) breast-cancer
/// data: one coefficient row, two probability columns.
#[test]
fn binary_problems_match_sklearn() {
    let (x, y) = data("cancer");
    for (p, c) in [("bin.cancer", 1.0), ("bin.cancer_c01", 0.1)] {
        let m = LogisticRegressionConfig { c, ..tight() }.fit(&x, &y).unwrap();
        assert!(m.converged(), "{p}");
        assert_eq!(m.predict_proba(&x).unwrap().ncols(), 2);
        check(p, &m, &x, &y);
    }
}

/// Oracle: `class_weight="balanced"` and explicit dictionaries, lbfgs, on binary and
/// three-class problems.
#[test]
fn class_weights_match_sklearn() {
    let cases = [
        ("cw.balanced.cancer", "cancer", ClassWeight::Balanced),
        ("cw.balanced.imb", "imb", ClassWeight::Balanced),
        ("cw.dict.iris", "iris", ClassWeight::Explicit(vec![(0, 1.0), (1, 3.0), (2, 0.5)])),
        ("cw.dict.cancer", "cancer", ClassWeight::Explicit(vec![(0, 2.5), (1, 0.7)])),
    ];
    for (p, set, class_weight) in cases {
        let (x, y) = data(set);
        let m = LogisticRegressionConfig { class_weight, ..tight() }.fit(&x, &y).unwrap();
        check(p, &m, &x, &y);
    }
}

/// Oracle: `LogisticRegression(l1_ratio=1, solver="saga", tol=1e-12, max_iter=10⁶)` (the L1
/// penalty), against our FISTA solver: the same coefficients, and exactly the same ones zero.
#[test]
fn l1_penalty_matches_sklearn_saga() {
    for (p, set, c) in [("l1.iris", "iris", 0.1), ("l1.cancer", "cancer", 0.05), ("l1.cancer_c1", "cancer", 1.0)] {
        let (x, y) = data(set);
        let cfg = LogisticRegressionConfig { c, penalty: Penalty::L1, solver: Solver::Proximal, ..tight() };
        let m = cfg.fit(&x, &y).unwrap();
        assert!(m.converged(), "{p}: {} iterations", m.n_iter());
        check(p, &m, &x, &y);
        let want = vector(&format!("{p}.coef"));
        let ours = rows_of(m.coef());
        let zeros = want.iter().filter(|v| **v == 0.0).count();
        let mismatched: Vec<usize> = (0..want.len()).filter(|&j| (want[j] == 0.0) != (ours[j] == 0.0)).collect();
        println!("{p}: {zeros} of {} coefficients zero in both", want.len());
        assert!(zeros > 0, "{p}: the case should be sparse");
        assert!(mismatched.is_empty(), "{p}: zero pattern differs at {mismatched:?}");
    }
}

/// Oracle: our L-BFGS optimum of the same objective (coefficients within 1e-2: SGD's averaged
/// iterate after 5000 epochs of batch 16 is about 4e-3 away) and scikit-learn's lbfgs accuracy
/// and predictions (`l2.iris`, `bin.cancer`).
#[test]
fn sgd_reaches_the_lbfgs_optimum() {
    for (p, set) in [("l2.iris", "iris"), ("bin.cancer", "cancer")] {
        let (x, y) = data(set);
        let exact = tight().fit(&x, &y).unwrap();
        let cfg = LogisticRegressionConfig {
            solver: Solver::Sgd,
            max_iter: 5000,
            tol: 1e-6,
            sgd: SgdConfig { batch_size: 16, learning_rate: 0.5, seed: 0 },
            ..Default::default()
        };
        let m = cfg.fit(&x, &y).unwrap();
        let dc = max_abs(&rows_of(m.coef()), &rows_of(exact.coef()));
        let di = max_abs(m.intercept(), exact.intercept());
        let acc = m.score(&x, &y).unwrap();
        let want = vector(&format!("{p}.accuracy"))[0];
        let agree = jizen_ml::accuracy(&m.predict(&x).unwrap(), &labels(&format!("{p}.pred"))).unwrap();
        println!(
            "SGD {set}: {} epochs (converged {}), max |coef diff| to L-BFGS {dc:.2e}, intercept {di:.2e}, \
             agreement with sklearn {:.2}%, accuracy {acc:.4} vs sklearn {want:.4}",
            m.n_iter(),
            m.converged(),
            100.0 * agree
        );
        assert!(dc < 1e-2 && di < 1e-2, "{set}: coef {dc}, intercept {di}");
        assert!((acc - want).abs() <= 0.005, "{set}: accuracy {acc} vs {want}");
    }
}
