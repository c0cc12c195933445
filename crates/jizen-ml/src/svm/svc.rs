//! Kernel support vector classification (scikit-learn's `SVC`, libsvm's C-SVC): one binary
//! soft-margin SVM per pair of classes, trained by SMO (`smo.rs`), and prediction by
//! a vote of the pairs.

use serde::{Deserialize, Serialize};

use crate::data::{check_features, check_labels, check_n_features, encode_classes, select_rows, Matrix};
use crate::error::{MlError, Result};
use crate::metrics::accuracy;
use crate::persist::{check_classes, Persist, SavedState};
use crate::svm::kernel::{row_norms, Kernel, KernelFn};
use crate::svm::smo::{solve, SmoConfig};

/// Configuration of an [`Svc`]. Defaults are scikit-learn's `SVC()`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SvcConfig {
    /// The penalty on margin violations (scikit-learn's `C`): the upper bound of every dual
    /// variable. Must be positive.
    pub c: f64,
    /// The kernel.
    pub kernel: Kernel,
    /// Stop SMO when the maximal violation of the optimality conditions is below `tol`.
    pub tol: f64,
    /// Set aside variables that are unlikely to move (shrinking); faster, same solution.
    pub shrinking: bool,
    /// The kernel-row cache budget of each binary solve, in megabytes.
    pub cache_size_mb: f64,
    /// The most SMO iterations per binary problem; `None` for scikit-learn's `-1`, which still
    /// stops after `max(10⁷, 100 n)` iterations (libsvm's own safeguard).
    pub max_iter: Option<usize>,
}

impl Default for SvcConfig {
    /// `C = 1`, RBF with `gamma = "scale"`, `tol = 1e-3`, shrinking, 200 MB cache,
    /// `max_iter = None`.
    fn default() -> Self {
        SvcConfig {
            c: 1.0,
            kernel: Kernel::default(),
            tol: 1e-3,
            shrinking: true,
            cache_size_mb: 200.0,
            max_iter: None,
        }
    }
}

/// A fitted classifier: the support vectors of all pairs and, per pair, their coefficients and
/// the intercept.
///
/// Pairs are the class positions `(a, b)`, `a < b`, in the order `(0, 1), (0, 2), …, (1, 2), …`;
/// the decision value of a pair is positive for class `a` (libsvm's convention; scikit-learn
/// uses it for `decision_function_shape="ovo"` with three or more classes, and flips the sign
/// for two classes).
#[derive(Debug, Clone, PartialEq)]
pub struct Svc {
    classes: Vec<usize>,
    kernel: KernelFn,
    /// Training indices of the support vectors, grouped by class, increasing within a class.
    support: Vec<usize>,
    /// `[n_sv, n_features]`.
    support_vectors: Matrix,
    support_sq: Vec<f64>,
    n_support: Vec<usize>,
    /// libsvm's layout `[n_classes - 1, n_sv]`, see [`Svc::dual_coef`].
    dual_coef: Matrix,
    /// One per pair: `-rho`.
    intercept: Vec<f64>,
    /// One per pair: the dual objective `½ αᵀQα − eᵀα` at the solution.
    objective: Vec<f64>,
    n_iter: Vec<usize>,
    converged: bool,
}

/// Test rows per kernel block: bounds the `[block, n_sv]` kernel matrix in memory.
const BLOCK: usize = 1024;

impl SvcConfig {
    /// A default configuration with the given kernel.
    pub fn with_kernel(kernel: Kernel) -> Self {
        SvcConfig { kernel, ..Default::default() }
    }

    fn validate(&self, what: &'static str) -> Result<()> {
        let bad = |detail: String| Err(MlError::InvalidParameter { what, detail });
        if !(self.c.is_finite() && self.c > 0.0) {
            return bad(format!("C must be positive and finite, got {}", self.c));
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return bad(format!("tol must be positive and finite, got {}", self.tol));
        }
        if !(self.cache_size_mb.is_finite() && self.cache_size_mb >= 0.0) {
            return bad(format!("cache_size_mb must be non-negative and finite, got {}", self.cache_size_mb));
        }
        if self.max_iter == Some(0) {
            return bad("max_iter must be at least 1 (or None for no limit)".into());
        }
        Ok(())
    }

    /// Trains one binary SVM per pair of classes. Errors on invalid settings (`C`, `tol`,
    /// `gamma`, `degree`), non-finite features, mismatched lengths and a single class.
    ///
    /// Not reaching `tol` within `max_iter` is not an error (scikit-learn warns):
    /// [`converged`](Svc::converged) reports it.
    pub fn fit(&self, x: &Matrix, y: &[usize]) -> Result<Svc> {
        const WHAT: &str = "SvcConfig::fit";
        self.validate(WHAT)?;
        check_features(WHAT, x)?;
        check_labels(WHAT, x, y)?;
        let (classes, y) = encode_classes(WHAT, y)?;
        let kernel = self.kernel.resolve(WHAT, x)?;
        let (k, d) = (classes.len(), x.ncols());
        let members: Vec<Vec<usize>> = (0..k).map(|c| (0..y.len()).filter(|&i| y[i] == c).collect()).collect();
        let smo = SmoConfig {
            c: self.c,
            tol: self.tol,
            shrinking: self.shrinking,
            cache_bytes: (self.cache_size_mb * 1024.0 * 1024.0) as usize,
            max_iter: self.max_iter,
        };
        // Per pair: the coefficient yₜαₜ of every member of the two classes.
        let mut pair_coef: Vec<Vec<f64>> = Vec::with_capacity(k * (k - 1) / 2);
        let (mut intercept, mut objective, mut n_iter) = (Vec::new(), Vec::new(), Vec::new());
        let mut converged = true;
        for a in 0..k {
            for b in a + 1..k {
                let idx: Vec<usize> = members[a].iter().chain(&members[b]).copied().collect();
                let mut rows = Vec::with_capacity(idx.len() * d);
                for &i in &idx {
                    rows.extend((0..d).map(|j| x[(i, j)]));
                }
                let labels: Vec<f64> = idx.iter().map(|&i| if y[i] == a { 1.0 } else { -1.0 }).collect();
                let sol = solve(rows, d, labels.clone(), kernel, &smo);
                if !(sol.rho.is_finite() && sol.alpha.iter().all(|v| v.is_finite())) {
                    return Err(MlError::Numerical {
                        what: WHAT,
                        detail: format!(
                            "the solve for classes {} and {} gave non-finite values",
                            classes[a], classes[b]
                        ),
                    });
                }
                pair_coef.push(sol.alpha.iter().zip(&labels).map(|(al, yl)| al * yl).collect());
                intercept.push(-sol.rho);
                objective.push(sol.objective);
                n_iter.push(sol.n_iter);
                converged &= sol.converged;
            }
        }
        // A sample is a support vector when its coefficient is non-zero in any of its pairs.
        let mut is_sv = vec![false; y.len()];
        let mut p = 0;
        for a in 0..k {
            for b in a + 1..k {
                for (t, &i) in members[a].iter().chain(&members[b]).enumerate() {
                    is_sv[i] |= pair_coef[p][t] != 0.0;
                }
                p += 1;
            }
        }
        let mut support = Vec::new();
        let mut n_support = vec![0; k];
        for c in 0..k {
            for &i in &members[c] {
                if is_sv[i] {
                    support.push(i);
                    n_support[c] += 1;
                }
            }
        }
        // Column of each support vector, by training index.
        let mut column = vec![usize::MAX; y.len()];
        for (s, &i) in support.iter().enumerate() {
            column[i] = s;
        }
        // libsvm's layout: the coefficient of a class-c vector in pair (c, o) lives in row
        // o - 1 when o > c, else in row o.
        let mut dual_coef = Matrix::zeros(k - 1, support.len());
        let mut p = 0;
        for a in 0..k {
            for b in a + 1..k {
                for (t, &i) in members[a].iter().chain(&members[b]).enumerate() {
                    if is_sv[i] {
                        let row = if y[i] == a { b - 1 } else { a };
                        dual_coef[(row, column[i])] = pair_coef[p][t];
                    }
                }
                p += 1;
            }
        }
        let support_vectors = select_rows(x, &support);
        let support_sq = row_norms(&support_vectors);
        Ok(Svc {
            classes,
            kernel,
            support,
            support_vectors,
            support_sq,
            n_support,
            dual_coef,
            intercept,
            objective,
            n_iter,
            converged,
        })
    }
}

impl Svc {
    /// The sorted distinct training labels.
    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    /// Training indices of the support vectors, grouped by class (in the order of
    /// [`classes`](Self::classes)), increasing within a class (scikit-learn's `support_`).
    pub fn support(&self) -> &[usize] {
        &self.support
    }

    /// The support vectors, `[n_sv, n_features]`, in the order of [`support`](Self::support).
    pub fn support_vectors(&self) -> &Matrix {
        &self.support_vectors
    }

    /// How many support vectors each class has (scikit-learn's `n_support_`).
    pub fn n_support(&self) -> &[usize] {
        &self.n_support
    }

    /// The coefficients `yₜαₜ` of the support vectors, `[n_classes - 1, n_sv]`, in libsvm's and
    /// scikit-learn's `dual_coef_` layout: the coefficient of a vector of class `c` in the pair
    /// with class `o` is in row `o - 1` when `o > c` and in row `o` otherwise. Within a pair
    /// `(a, b)` class `a` has label +1. (With two classes scikit-learn negates `dual_coef_`
    /// and `intercept_`.)
    pub fn dual_coef(&self) -> &Matrix {
        &self.dual_coef
    }

    /// The intercept of each pair (`-rho` in libsvm's terms), in pair order.
    pub fn intercept(&self) -> &[f64] {
        &self.intercept
    }

    /// The dual objective `½ αᵀQα − Σα` each pair's solve reached, in pair order.
    pub fn dual_objective(&self) -> &[f64] {
        &self.objective
    }

    /// SMO iterations of each pair, in pair order.
    pub fn n_iter(&self) -> &[usize] {
        &self.n_iter
    }

    /// Whether every pair met `tol` (rather than stopping at `max_iter`).
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// The value of `gamma` the kernel uses (resolved from the data for `Scale` and `Auto`; 1
    /// for the linear kernel).
    pub fn gamma(&self) -> f64 {
        self.kernel.gamma()
    }

    /// The pairwise decision values, `[n, n_classes (n_classes - 1) / 2]`, columns in pair order;
    /// a positive value votes for the first class of the pair. The kernel values against all
    /// support vectors come from one matrix product per block of rows.
    pub fn decision_function(&self, x: &Matrix) -> Result<Matrix> {
        check_n_features("Svc::decision_function", x, self.support_vectors.ncols())?;
        let k = self.classes.len();
        let mut start = vec![0; k + 1];
        for c in 0..k {
            start[c + 1] = start[c] + self.n_support[c];
        }
        let mut out = Matrix::zeros(x.nrows(), k * (k - 1) / 2);
        let mut acc = Vec::with_capacity(BLOCK);
        for first in (0..x.nrows()).step_by(BLOCK) {
            let rows = BLOCK.min(x.nrows() - first);
            let block = x.subrows(first, rows).to_owned();
            let kb = self.kernel.block(&block, &self.support_vectors, &self.support_sq); // [rows, n_sv]
            let mut p = 0;
            for a in 0..k {
                for b in a + 1..k {
                    // Column by column, so the reads of the kernel block are contiguous.
                    acc.clear();
                    acc.resize(rows, self.intercept[p]);
                    let terms = (start[a]..start[a + 1])
                        .map(|s| (s, self.dual_coef[(b - 1, s)]))
                        .chain((start[b]..start[b + 1]).map(|s| (s, self.dual_coef[(a, s)])));
                    for (s, coef) in terms {
                        for (v, kv) in acc.iter_mut().zip(kb.col(s).iter()) {
                            *v += coef * kv;
                        }
                    }
                    for (i, v) in acc.iter().enumerate() {
                        out[(first + i, p)] = *v;
                    }
                    p += 1;
                }
            }
        }
        Ok(out)
    }

    /// The class with the most pairwise votes; ties go to the smallest label (libsvm's rule).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<usize>> {
        let dec = self.decision_function(x)?;
        let k = self.classes.len();
        let mut votes = vec![0usize; k];
        Ok((0..dec.nrows())
            .map(|i| {
                votes.iter_mut().for_each(|v| *v = 0);
                let mut p = 0;
                for a in 0..k {
                    for b in a + 1..k {
                        votes[if dec[(i, p)] > 0.0 { a } else { b }] += 1;
                        p += 1;
                    }
                }
                let mut best = 0;
                for c in 1..k {
                    if votes[c] > votes[best] {
                        best = c;
                    }
                }
                self.classes[best]
            })
            .collect())
    }

    /// The accuracy of [`predict`](Self::predict) on `(x, y)`, in [0, 1].
    pub fn score(&self, x: &Matrix, y: &[usize]) -> Result<f64> {
        check_labels("Svc::score", x, y)?;
        accuracy(y, &self.predict(x)?)
    }
}

impl Persist for Svc {
    const KIND: &'static str = "Svc";

    fn to_state(&self) -> SavedState {
        let mut s = SavedState::new();
        // The kernel: its kind and degree as JSON, its floats (gamma, coef0) as a tensor.
        let (name, degree, params) = match self.kernel {
            KernelFn::Rbf { gamma } => ("rbf", 0, [gamma, 0.0]),
            KernelFn::Poly { degree, gamma, coef0 } => ("poly", degree, [gamma, coef0]),
            KernelFn::Linear => ("linear", 0, [1.0, 0.0]),
        };
        s.put("kernel", &name);
        s.put("degree", &degree);
        s.put_vector("kernel_params", &params);
        s.put_matrix("support_vectors", &self.support_vectors);
        s.put_matrix("dual_coef", &self.dual_coef);
        s.put_vector("intercept", &self.intercept);
        s.put_vector("objective", &self.objective);
        s.put("classes", &self.classes);
        s.put("support", &self.support);
        s.put("n_support", &self.n_support);
        s.put("n_iter", &self.n_iter);
        s.put("converged", &self.converged);
        s
    }

    fn from_state(s: &SavedState) -> std::result::Result<Self, String> {
        let classes: Vec<usize> = s.get("classes")?;
        check_classes(&classes)?;
        let k = classes.len();
        let pairs = k * (k - 1) / 2;
        let p = s.vector_of("kernel_params", 2)?;
        let kernel = match s.get::<String>("kernel")?.as_str() {
            "rbf" => KernelFn::Rbf { gamma: p[0] },
            "poly" => KernelFn::Poly { degree: s.get("degree")?, gamma: p[0], coef0: p[1] },
            "linear" => KernelFn::Linear,
            other => return Err(format!("unknown kernel {other}")),
        };
        let (support, n_support): (Vec<usize>, Vec<usize>) = (s.get("support")?, s.get("n_support")?);
        if n_support.len() != k || n_support.iter().sum::<usize>() != support.len() {
            return Err(format!(
                "n_support {n_support:?} does not fit {k} classes and {} support vectors",
                support.len()
            ));
        }
        let support_vectors = s.matrix("support_vectors")?;
        if support_vectors.nrows() != support.len() || support_vectors.ncols() == 0 {
            return Err(format!(
                "support_vectors is [{}, {}] for {} support vectors",
                support_vectors.nrows(),
                support_vectors.ncols(),
                support.len()
            ));
        }
        let n_iter: Vec<usize> = s.get("n_iter")?;
        if n_iter.len() != pairs {
            return Err(format!("n_iter has {} entries, expected {pairs}", n_iter.len()));
        }
        Ok(Svc {
            kernel,
            support_sq: row_norms(&support_vectors),
            dual_coef: s.matrix_of("dual_coef", k - 1, support.len())?,
            intercept: s.vector_of("intercept", pairs)?,
            objective: s.vector_of("objective", pairs)?,
            converged: s.get("converged")?,
            classes,
            support,
            support_vectors,
            n_support,
            n_iter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::matrix_from_rows;
    use crate::svm::kernel::Gamma;
    use crate::svm::linear_svc::LinearSvcConfig;

    fn small() -> (Matrix, Vec<usize>) {
        (matrix_from_rows(4, 2, &[0.0, 1.0, 1.0, 0.0, 5.0, 5.0, 6.0, 5.0]).unwrap(), vec![0, 0, 1, 1])
    }

    #[test]
    fn bad_input_is_an_error() {
        let (x, y) = small();
        let svc = SvcConfig::default();
        let lin = LinearSvcConfig::default();
        // A single class.
        let e = svc.fit(&x, &[2, 2, 2, 2]).unwrap_err();
        assert!(matches!(e, MlError::SingleClass { class: 2, .. }), "{e:?}");
        assert_eq!(e.to_string(), "SvcConfig::fit: needs samples of at least two classes, but every label is 2");
        assert!(matches!(lin.fit(&x, &[2, 2, 2, 2]), Err(MlError::SingleClass { class: 2, .. })));
        // NaN features, in fit and in predict.
        let mut bad = x.clone();
        bad[(1, 1)] = f64::NAN;
        for e in [svc.fit(&bad, &y).unwrap_err(), lin.fit(&bad, &y).unwrap_err()] {
            assert!(matches!(e, MlError::NonFinite { row: 1, col: 1, .. }), "{e:?}");
        }
        assert!(matches!(svc.fit(&x, &y).unwrap().predict(&bad), Err(MlError::NonFinite { .. })));
        assert!(matches!(lin.fit(&x, &y).unwrap().predict(&bad), Err(MlError::NonFinite { .. })));
        // Mismatched lengths and feature counts.
        assert!(matches!(svc.fit(&x, &y[..3]), Err(MlError::ShapeMismatch { .. })));
        assert!(matches!(lin.fit(&x, &y[..3]), Err(MlError::ShapeMismatch { .. })));
        let e = svc.fit(&x, &y).unwrap().predict(&Matrix::zeros(1, 3)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Svc::decision_function: shape mismatch: x has 3 features but the model was fitted on 2"
        );
        assert!(matches!(lin.fit(&x, &y).unwrap().score(&x, &y[..2]), Err(MlError::ShapeMismatch { .. })));
        assert!(matches!(svc.fit(&Matrix::zeros(0, 2), &[]), Err(MlError::Empty { .. })));
    }

    #[test]
    fn bad_settings_are_errors() {
        let (x, y) = small();
        let rbf = |g| Kernel::Rbf { gamma: Gamma::Value(g) };
        for cfg in [
            SvcConfig::with_kernel(rbf(0.0)),
            SvcConfig::with_kernel(rbf(-1.0)),
            SvcConfig::with_kernel(rbf(f64::NAN)),
            SvcConfig::with_kernel(Kernel::Poly { degree: 3, gamma: Gamma::Value(-0.5), coef0: 0.0 }),
            SvcConfig::with_kernel(Kernel::Poly { degree: 0, gamma: Gamma::Scale, coef0: 0.0 }),
            SvcConfig { c: 0.0, ..Default::default() },
            SvcConfig { c: -1.0, ..Default::default() },
            SvcConfig { c: f64::INFINITY, ..Default::default() },
            SvcConfig { tol: 0.0, ..Default::default() },
            SvcConfig { cache_size_mb: f64::NAN, ..Default::default() },
            SvcConfig { max_iter: Some(0), ..Default::default() },
        ] {
            let e = cfg.fit(&x, &y).unwrap_err();
            assert!(matches!(e, MlError::InvalidParameter { .. }), "{cfg:?}: {e:?}");
        }
        let e = SvcConfig::with_kernel(rbf(0.0)).fit(&x, &y).unwrap_err();
        assert_eq!(e.to_string(), "SvcConfig::fit: invalid parameter: gamma must be positive and finite, got 0");
        for cfg in [
            LinearSvcConfig { c: 0.0, ..Default::default() },
            LinearSvcConfig { c: -2.0, ..Default::default() },
            LinearSvcConfig { tol: -1.0, ..Default::default() },
            LinearSvcConfig { max_iter: 0, ..Default::default() },
            LinearSvcConfig { intercept_scaling: 0.0, ..Default::default() },
        ] {
            assert!(matches!(cfg.fit(&x, &y), Err(MlError::InvalidParameter { .. })), "{cfg:?}");
        }
    }

    #[test]
    fn huge_features_give_a_finite_model_or_an_error() {
        // Kernel values and margins overflow f64: no panic, no hang, no NaN model.
        let x = matrix_from_rows(4, 1, &[-1e300, -1e300, 1e300, 1e300]).unwrap();
        let y = [0, 0, 1, 1];
        let fits = [
            SvcConfig::with_kernel(Kernel::Linear).fit(&x, &y).map(|m| m.intercept()[0]),
            SvcConfig::with_kernel(Kernel::Poly { degree: 3, gamma: Gamma::Value(1.0), coef0: 0.0 })
                .fit(&x, &y)
                .map(|m| m.intercept()[0]),
            LinearSvcConfig::default().fit(&x, &y).map(|m| m.coef()[(0, 0)]),
        ];
        for fit in fits {
            match fit {
                Ok(v) => assert!(v.is_finite()),
                Err(e) => assert!(matches!(e, MlError::Numerical { .. }), "{e:?}"),
            }
        }
    }

    #[test]
    fn binary_problem_has_the_textbook_solution() {
        // Two points per class, linear kernel, C large (a hard margin). The closest points of
        // the two convex hulls are (5, 5) and the midpoint (0.5, 0.5) of the segment from (0, 1)
        // to (1, 0): three support vectors, w ∝ (1, 1), margin 2 / ‖w‖ = 9 / √2.
        let (x, y) = small();
        let m = SvcConfig { c: 1e6, tol: 1e-10, ..SvcConfig::with_kernel(Kernel::Linear) }.fit(&x, &y).unwrap();
        assert!(m.converged());
        assert_eq!(m.support(), &[0, 1, 2]);
        assert_eq!(m.n_support(), &[2, 1]);
        let sv = m.support_vectors();
        let w: Vec<f64> = (0..2).map(|j| (0..3).map(|s| m.dual_coef()[(0, s)] * sv[(s, j)]).sum()).collect();
        assert!((w[0] - w[1]).abs() < 1e-9 && (w[0] * w[0] + w[1] * w[1] - 8.0 / 81.0).abs() < 1e-9, "{w:?}");
        // Class 0 is the pair's positive side: its support vectors sit at decision value +1.
        let dec = m.decision_function(&x).unwrap();
        for (i, want) in [(0, 1.0), (1, 1.0), (2, -1.0)] {
            assert!((dec[(i, 0)] - want).abs() < 1e-9, "row {i}: {}", dec[(i, 0)]);
        }
        assert_eq!(m.predict(&x).unwrap(), y);
        assert_eq!(m.score(&x, &y).unwrap(), 1.0);
    }

    #[test]
    fn a_three_way_vote_tie_goes_to_the_smallest_label() {
        let (x, _) = small();
        let mut m = SvcConfig::default().fit(&x.subrows(0, 3).to_owned(), &[4, 7, 9]).unwrap();
        // Zero coefficients: the decision values are the intercepts. Pair (4, 7) votes 4,
        // (4, 9) votes 9, (7, 9) votes 7: one vote each.
        m.dual_coef.fill(0.0);
        m.intercept = vec![1.0, -1.0, 1.0];
        assert_eq!(m.predict(&x).unwrap(), vec![4; 4]);
        m.intercept = vec![-1.0, -1.0, 1.0];
        assert_eq!(m.predict(&x).unwrap(), vec![7; 4]);
    }
}
