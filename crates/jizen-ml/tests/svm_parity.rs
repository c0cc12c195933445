//! Parity of the SVMs with scikit-learn 1.9.1. Oracle: `tests/fixtures/sklearn_svm.safetensors`,
//! written by `scripts/fixtures/sklearn_svm.py` (which documents every key): digits, iris, wine
//! and breast cancer, split and standardised by the script and embedded in the file, so these
//! tests need no data files. Each test prints what it measured.

use std::sync::OnceLock;

use jizen_ml::{Gamma, Kernel, LinearSvcConfig, Matrix, SvcConfig, SvmLoss};

const SETS: [&str; 4] = ["digits", "iris", "wine", "cancer"];

mod common;

fn fx() -> &'static common::Fixture {
    static F: OnceLock<common::Fixture> = OnceLock::new();
    F.get_or_init(|| common::Fixture::read("sklearn_svm.safetensors"))
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

fn has(name: &str) -> bool {
    safetensors::SafeTensors::deserialize(fx().bytes()).expect("valid safetensors").tensor(name).is_ok()
}

struct Data {
    x_train: Matrix,
    y_train: Vec<usize>,
    x_test: Matrix,
    y_test: Vec<usize>,
}

fn data(name: &str) -> Data {
    Data {
        x_train: matrix(&format!("{name}.x_train")),
        y_train: labels(&format!("{name}.y_train")),
        x_test: matrix(&format!("{name}.x_test")),
        y_test: labels(&format!("{name}.y_test")),
    }
}

fn agreement(a: &[usize], b: &[usize]) -> f64 {
    jizen_ml::accuracy(a, b).unwrap()
}

/// Largest `|a - b|` over all entries, `a` negated when `flip` (scikit-learn's binary sign).
fn max_abs(a: &Matrix, b: &Matrix, flip: bool) -> f64 {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()));
    let s = if flip { -1.0 } else { 1.0 };
    let mut m: f64 = 0.0;
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            m = m.max((s * a[(i, j)] - b[(i, j)]).abs());
        }
    }
    m
}

/// Oracle: `LinearSVC(loss=..., dual=True, random_state=0)`, other settings at their defaults
/// (C=1, tol=1e-4, max_iter=1000), on each data set's test split, plus runs with
/// `max_iter=100000` on digits (`*_long`), where the defaults stop before converging.
/// liblinear visits the coordinates in another random order, so an unconverged model agrees
/// only roughly; predictions and accuracies must agree everywhere, and the decision values of
/// converged runs must agree to `1e-3` for the squared hinge and `1e-2` for the hinge (both
/// sides stop at a projected-gradient spread of `tol = 1e-4`, not at the exact optimum, and the
/// hinge's dual is only positive semi-definite, so its iterates wander further).
#[test]
fn linear_svc_matches_sklearn() {
    for name in SETS {
        let d = data(name);
        for (key, loss, max_iter, decision_tol) in [
            ("sqhinge", SvmLoss::SquaredHinge, 1000, 1e-3),
            ("hinge", SvmLoss::Hinge, 1000, 1e-2),
            ("sqhinge_long", SvmLoss::SquaredHinge, 100_000, 1e-3),
            ("hinge_long", SvmLoss::Hinge, 100_000, 1e-2),
        ] {
            let p = format!("{name}.linear_svc.{key}");
            if !has(&format!("{p}.pred")) {
                continue;
            }
            let m = LinearSvcConfig { loss, max_iter, ..Default::default() }.fit(&d.x_train, &d.y_train).unwrap();
            let pred = m.predict(&d.x_test).unwrap();
            let agree = agreement(&pred, &labels(&format!("{p}.pred")));
            let acc = m.score(&d.x_test, &d.y_test).unwrap();
            let want = vector(&format!("{p}.accuracy"))[0];
            let dd = max_abs(&m.decision_function(&d.x_test).unwrap(), &matrix(&format!("{p}.decision")), false);
            let sk_iter = vector(&format!("{p}.n_iter"))[0] as usize;
            println!(
                "LinearSVC {name} {key}: {} passes (sklearn {sk_iter}), agreement {:.2}%, accuracy {acc:.4} vs \
                 sklearn {want:.4}, max |decision diff| {dd:.2e}",
                m.n_iter(),
                100.0 * agree
            );
            assert!(agree >= 0.995, "{p}: only {agree} of predictions agree");
            assert!((acc - want).abs() <= 0.005, "{p}: accuracy {acc} vs {want}");
            if m.converged() && sk_iter < max_iter {
                assert!(dd < decision_tol, "{p}: decision values differ by {dd}");
            }
        }
    }
}

/// Oracle: `SVC(kernel=..., gamma="scale", decision_function_shape="ovo")` with the defaults
/// (C=1, tol=1e-3, shrinking), degree 3 and coef0 1 for the polynomial kernel. Decision values
/// are compared pair by pair (scikit-learn flips the sign for two classes).
#[test]
fn svc_matches_sklearn() {
    for name in SETS {
        let d = data(name);
        for (key, kernel) in [
            ("rbf", Kernel::Rbf { gamma: Gamma::Scale }),
            ("poly", Kernel::Poly { degree: 3, gamma: Gamma::Scale, coef0: 1.0 }),
            ("linear", Kernel::Linear),
        ] {
            let p = format!("{name}.svc.{key}");
            if !has(&format!("{p}.pred")) {
                continue;
            }
            let m = SvcConfig::with_kernel(kernel).fit(&d.x_train, &d.y_train).unwrap();
            assert!(m.converged());
            let pred = m.predict(&d.x_test).unwrap();
            let agree = agreement(&pred, &labels(&format!("{p}.pred")));
            let acc = m.score(&d.x_test, &d.y_test).unwrap();
            let want = vector(&format!("{p}.accuracy"))[0];
            let flip = m.classes().len() == 2;
            let dd = max_abs(&m.decision_function(&d.x_test).unwrap(), &matrix(&format!("{p}.decision")), flip);
            println!(
                "SVC {name} {key}: n_SV {:?}, agreement {:.2}%, accuracy {acc:.4} vs sklearn {want:.4}, \
                 max |decision diff| {dd:.2e}",
                m.n_support(),
                100.0 * agree
            );
            assert!(agree >= 0.995, "{p}: only {agree} of predictions agree");
            assert!((acc - want).abs() <= 0.005, "{p}: accuracy {acc} vs {want}");
            assert!(dd < 1e-2, "{p}: decision values differ by {dd}");
        }
    }
}

/// Oracle: `SVC(kernel="rbf", gamma="scale", tol=...)` on the (binary) breast-cancer training
/// split: the dual objective `½ αᵀQα − Σα` (computed by the script from `dual_coef_`), the
/// intercept, the support set and the dual coefficients, at the default tol 1e-3 and at 1e-8.
#[test]
fn binary_svc_dual_matches_sklearn() {
    let d = data("cancer");
    for (key, tol, obj_tol, b_tol, coef_tol) in
        [("rbf_tol3", 1e-3, 1e-4, 1e-3, 1e-2), ("rbf_tol8", 1e-8, 1e-9, 1e-6, 1e-6)]
    {
        let p = format!("cancer.svc.{key}");
        let m = SvcConfig { tol, ..Default::default() }.fit(&d.x_train, &d.y_train).unwrap();
        let obj = m.dual_objective()[0];
        let want_obj = vector(&format!("{p}.dual_objective"))[0];
        let rel = (obj - want_obj).abs() / want_obj.abs();
        // scikit-learn negates intercept_ and dual_coef_ for two classes.
        let db = (-m.intercept()[0] - vector(&format!("{p}.intercept"))[0]).abs();
        let same_support = m.support() == labels(&format!("{p}.support")).as_slice();
        let want_coef = vector(&format!("{p}.dual_coef"));
        let dc = if same_support {
            (0..want_coef.len()).map(|s| (-m.dual_coef()[(0, s)] - want_coef[s]).abs()).fold(0.0, f64::max)
        } else {
            f64::INFINITY
        };
        println!(
            "SVC cancer rbf tol {tol:e}: dual objective {obj:.10} vs sklearn {want_obj:.10} (rel {rel:.2e}), \
             |intercept diff| {db:.2e}, same support set: {same_support}, max |dual coef diff| {dc:.2e}, {} iterations",
            m.n_iter()[0]
        );
        assert!(rel < obj_tol, "{key}: dual objective {obj} vs {want_obj}");
        assert!(db < b_tol, "{key}: intercept differs by {db}");
        assert!(same_support, "{key}: support sets differ");
        assert!(dc < coef_tol, "{key}: dual coefficients differ by {dc}");
    }
}

/// Shrinking only sets variables aside and the cache only decides which kernel rows are
/// recomputed, so neither may change the model: with and without shrinking the predictions
/// must agree and the objectives within `1e-5` relative (here they agree to rounding, since a
/// variable is only set aside when it cannot be selected, and none of them came back to
/// change the path; that shrinking does set variables aside is checked in `smo.rs`'s unit
/// tests), and a cache too small to hold more than two rows gives bit-for-bit the same model.
#[test]
fn shrinking_and_cache_size_do_not_change_the_svc() {
    // Problems with enough iterations for shrinking to act (it runs every min(l, 1000)
    // iterations): digits as even against odd (one problem of 1,347 samples), and breast cancer
    // with a weak penalty.
    let digits = data("digits");
    let parity: Vec<usize> = digits.y_train.iter().map(|y| y % 2).collect();
    let cancer = data("cancer");
    for (name, x, y, x_test, c) in [
        ("digits even/odd", &digits.x_train, &parity, &digits.x_test, 10.0),
        ("cancer", &cancer.x_train, &cancer.y_train, &cancer.x_test, 1000.0),
    ] {
        let cfg = SvcConfig { c, ..Default::default() };
        let base = cfg.fit(x, y).unwrap();
        let no_shrink = SvcConfig { shrinking: false, ..cfg }.fit(x, y).unwrap();
        let tiny_cache = SvcConfig { cache_size_mb: 0.0, ..cfg }.fit(x, y).unwrap();
        let rel = base
            .dual_objective()
            .iter()
            .zip(no_shrink.dual_objective())
            .map(|(a, b)| (a - b).abs() / a.abs())
            .fold(0.0, f64::max);
        let db = base.intercept().iter().zip(no_shrink.intercept()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let it = |m: &jizen_ml::Svc| m.n_iter().iter().sum::<usize>();
        println!(
            "SVC {name}: shrinking off vs on: max rel objective diff {rel:.2e}, max |intercept diff| {db:.2e}, \
             iterations {} vs {}",
            it(&no_shrink),
            it(&base)
        );
        assert!(rel < 1e-5, "{name}: objectives differ by {rel}");
        assert!(db < 1e-2, "{name}: intercepts differ by {db}");
        assert_eq!(base.predict(x_test).unwrap(), no_shrink.predict(x_test).unwrap());
        assert_eq!(base, tiny_cache, "{name}: a tiny cache changed the model");
    }
}

/// The coordinate order is drawn from the seed: the same seed gives the same model, bit for
/// bit; another seed reaches the same (converged) optimum up to the tolerance.
#[test]
fn linear_svc_is_fixed_by_its_seed() {
    let d = data("digits");
    let cfg = LinearSvcConfig { max_iter: 100_000, ..Default::default() };
    let a = cfg.fit(&d.x_train, &d.y_train).unwrap();
    assert_eq!(a, cfg.fit(&d.x_train, &d.y_train).unwrap());
    let b = LinearSvcConfig { seed: 7, ..cfg }.fit(&d.x_train, &d.y_train).unwrap();
    assert!(a.converged() && b.converged());
    assert_ne!(a.coef(), b.coef(), "the seed should change the coordinate order");
    let dd = max_abs(&a.decision_function(&d.x_test).unwrap(), &b.decision_function(&d.x_test).unwrap(), false);
    println!("LinearSVC digits: seeds 0 and 7 differ by {dd:.2e} in decision values");
    assert!(dd < 1e-3, "seeds 0 and 7 differ by {dd}");
}
