//! Linear support vector classification by dual coordinate descent (scikit-learn's
//! `LinearSVC(dual=True)`, liblinear's L2-regularised L1- and L2-loss SVC).
//!
//! Each binary problem (one per class, one-vs-rest; a single one for two classes) minimises
//!
//! ```text
//! ½ ‖w‖² + C Σᵢ ξ(yᵢ wᵀx̄ᵢ),   ξ(m) = max(0, 1 − m) (hinge) or max(0, 1 − m)² (squared hinge)
//! ```
//!
//! where `x̄ᵢ = [xᵢ, intercept_scaling]`: the intercept is the last weight times
//! `intercept_scaling`, and it is regularised like the others (liblinear's convention). The
//! solver is the dual coordinate descent of Hsieh, Chang, Lin, Keerthi & Sundararajan, "A dual
//! coordinate descent method for large-scale linear SVM" (ICML 2008), algorithm 1 with the
//! shrinking of its §3.2: the dual is `min ½ αᵀ(Q + D)α − eᵀα` over `0 ≤ αᵢ ≤ U`, with
//! `U = C, D = 0` for the hinge and `U = ∞, D = 1/(2C)` for the squared hinge; `w = Σ αᵢ yᵢ x̄ᵢ`
//! is kept up to date so each coordinate step costs one pass over a sample.

use serde::{Deserialize, Serialize};

use crate::data::{check_features, check_labels, check_n_features, encode_classes, Matrix};
use crate::error::{MlError, Result};
use crate::metrics::accuracy;
use crate::persist::{LinearState, Persist, SavedState};
use crate::svm::kernel::dot;

/// The loss on the margin of a [`LinearSvc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SvmLoss {
    /// `max(0, 1 − m)`, the classic soft-margin SVM.
    Hinge,
    /// `max(0, 1 − m)²`, differentiable (scikit-learn's default).
    #[default]
    SquaredHinge,
}

/// Configuration of a [`LinearSvc`]. Defaults are scikit-learn's `LinearSVC(dual=True)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearSvcConfig {
    /// The weight of the loss against `½ ‖w‖²` (scikit-learn's `C`); must be positive.
    pub c: f64,
    /// The loss.
    pub loss: SvmLoss,
    /// Stop when the spread of the projected gradient over a pass, `max PG − min PG`, is at most
    /// `tol` (on all variables, not only the unshrunk ones).
    pub tol: f64,
    /// The most passes over the data per binary problem.
    pub max_iter: usize,
    /// Whether to learn an intercept (as a weight on an extra constant feature).
    pub fit_intercept: bool,
    /// The value of that constant feature; larger values regularise the intercept less.
    pub intercept_scaling: f64,
    /// Seeds the random order of the coordinates in each pass.
    pub seed: u64,
}

impl Default for LinearSvcConfig {
    /// `C = 1`, squared hinge, `tol = 1e-4`, 1000 passes, intercept with scaling 1, seed 0.
    fn default() -> Self {
        LinearSvcConfig {
            c: 1.0,
            loss: SvmLoss::SquaredHinge,
            tol: 1e-4,
            max_iter: 1000,
            fit_intercept: true,
            intercept_scaling: 1.0,
            seed: 0,
        }
    }
}

/// A fitted linear classifier: one weight row and intercept per binary problem.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearSvc {
    classes: Vec<usize>,
    /// `[n_models, n_features]`; `n_models` is 1 for two classes, else the number of classes.
    coef: Matrix,
    intercept: Vec<f64>,
    n_iter: usize,
    converged: bool,
}

/// SplitMix64: a small seeded generator, identical on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift).
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// The result of one binary problem: `w̄` (with the intercept weight last), passes, convergence.
struct Binary {
    w: Vec<f64>,
    n_iter: usize,
    converged: bool,
}

/// Dual coordinate descent on rows `x̄` (row-major `[n, dim]`) with labels `y` in {+1, −1}.
fn dual_cd(xbar: &[f64], dim: usize, y: &[f64], cfg: &LinearSvcConfig, rng: &mut SplitMix64) -> Binary {
    let n = y.len();
    let (upper, diag) = match cfg.loss {
        SvmLoss::Hinge => (cfg.c, 0.0),
        SvmLoss::SquaredHinge => (f64::INFINITY, 0.5 / cfg.c),
    };
    let row = |i: usize| &xbar[i * dim..(i + 1) * dim];
    let qd: Vec<f64> = (0..n).map(|i| dot(row(i), row(i)) + diag).collect();
    let mut alpha = vec![0.0; n];
    let mut w = vec![0.0; dim];
    let mut active: Vec<usize> = (0..n).collect();
    let mut n_active = n;
    // Bounds on the projected gradient from the previous pass, for shrinking.
    let (mut pg_max_old, mut pg_min_old) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut iter = 0;
    while iter < cfg.max_iter {
        for s in 0..n_active {
            let r = s + rng.below(n_active - s);
            active.swap(s, r);
        }
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        let mut s = 0;
        while s < n_active {
            let i = active[s];
            let g = y[i] * dot(&w, row(i)) - 1.0 + diag * alpha[i];
            let mut pg = 0.0;
            if alpha[i] == 0.0 {
                if g > pg_max_old {
                    // At the lower bound with a gradient pushing it further: shrink.
                    n_active -= 1;
                    active.swap(s, n_active);
                    continue;
                } else if g < 0.0 {
                    pg = g;
                }
            } else if alpha[i] == upper {
                if g < pg_min_old {
                    n_active -= 1;
                    active.swap(s, n_active);
                    continue;
                } else if g > 0.0 {
                    pg = g;
                }
            } else {
                pg = g;
            }
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).clamp(0.0, upper);
                let step = (alpha[i] - old) * y[i];
                for (wj, xj) in w.iter_mut().zip(row(i)) {
                    *wj += step * xj;
                }
            }
            s += 1;
        }
        iter += 1;
        if pg_max - pg_min <= cfg.tol {
            if n_active == n {
                return Binary { w, n_iter: iter, converged: true };
            }
            // Converged on the active set: check again on every variable.
            n_active = n;
            (pg_max_old, pg_min_old) = (f64::INFINITY, f64::NEG_INFINITY);
            continue;
        }
        pg_max_old = if pg_max > 0.0 { pg_max } else { f64::INFINITY };
        pg_min_old = if pg_min < 0.0 { pg_min } else { f64::NEG_INFINITY };
    }
    Binary { w, n_iter: iter, converged: false }
}

impl LinearSvcConfig {
    fn validate(&self, what: &'static str) -> Result<()> {
        let bad = |detail: String| Err(MlError::InvalidParameter { what, detail });
        if !(self.c.is_finite() && self.c > 0.0) {
            return bad(format!("C must be positive and finite, got {}", self.c));
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return bad(format!("tol must be positive and finite, got {}", self.tol));
        }
        if self.max_iter == 0 {
            return bad("max_iter must be at least 1".into());
        }
        if self.fit_intercept && !(self.intercept_scaling.is_finite() && self.intercept_scaling > 0.0) {
            return bad(format!("intercept_scaling must be positive and finite, got {}", self.intercept_scaling));
        }
        Ok(())
    }

    /// Fits one binary SVM per class against the rest (one in all for two classes, whose
    /// positive side is the larger label). Errors on invalid settings, non-finite features,
    /// mismatched lengths and labels of a single class.
    ///
    /// Not meeting `tol` within `max_iter` passes is not an error (scikit-learn warns):
    /// [`converged`](LinearSvc::converged) reports it.
    pub fn fit(&self, x: &Matrix, y: &[usize]) -> Result<LinearSvc> {
        const WHAT: &str = "LinearSvcConfig::fit";
        self.validate(WHAT)?;
        check_features(WHAT, x)?;
        check_labels(WHAT, x, y)?;
        let (classes, y) = encode_classes(WHAT, y)?;
        let (n, d) = (x.nrows(), x.ncols());
        let dim = d + usize::from(self.fit_intercept);
        // Row-major copy with the constant feature appended: every coordinate step reads a row.
        let mut xbar = vec![0.0; n * dim];
        for j in 0..d {
            for (i, v) in x.col(j).iter().enumerate() {
                xbar[i * dim + j] = *v;
            }
        }
        if self.fit_intercept {
            for i in 0..n {
                xbar[i * dim + d] = self.intercept_scaling;
            }
        }
        let positives: Vec<usize> = if classes.len() == 2 { vec![1] } else { (0..classes.len()).collect() };
        let mut rng = SplitMix64(self.seed);
        let mut coef = Matrix::zeros(positives.len(), d);
        let mut intercept = vec![0.0; positives.len()];
        let (mut n_iter, mut converged) = (0, true);
        for (m, &pos) in positives.iter().enumerate() {
            let labels: Vec<f64> = y.iter().map(|&c| if c == pos { 1.0 } else { -1.0 }).collect();
            let fit = dual_cd(&xbar, dim, &labels, self, &mut rng);
            if fit.w.iter().any(|v| !v.is_finite()) {
                return Err(MlError::Numerical { what: WHAT, detail: "the fit produced non-finite weights".into() });
            }
            for j in 0..d {
                coef[(m, j)] = fit.w[j];
            }
            if self.fit_intercept {
                intercept[m] = self.intercept_scaling * fit.w[d];
            }
            n_iter = n_iter.max(fit.n_iter);
            converged &= fit.converged;
        }
        Ok(LinearSvc { classes, coef, intercept, n_iter, converged })
    }
}

impl LinearSvc {
    /// The sorted distinct training labels.
    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    /// The weights, `[n_models, n_features]`: one row per class, or a single row for two
    /// classes (positive for `classes()[1]`), as scikit-learn's `coef_`.
    pub fn coef(&self) -> &Matrix {
        &self.coef
    }

    /// The intercepts, one per row of [`coef`](Self::coef) (all 0 without `fit_intercept`).
    pub fn intercept(&self) -> &[f64] {
        &self.intercept
    }

    /// The most passes any binary problem took (scikit-learn's `n_iter_`).
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Whether every binary problem met `tol` (rather than stopping at `max_iter`).
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// The scores `X Wᵀ + b`, `[n, n_models]`.
    pub fn decision_function(&self, x: &Matrix) -> Result<Matrix> {
        check_n_features("LinearSvc::decision_function", x, self.coef.ncols())?;
        Ok(crate::data::affine_scores(x, self.coef.as_ref(), &self.intercept))
    }

    /// The class with the largest score (for two classes: `classes()[1]` when the score is
    /// positive); the smallest label on exact ties.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<usize>> {
        let z = self.decision_function(x)?;
        Ok(crate::data::argmax_labels(&z, &self.classes))
    }

    /// The accuracy of [`predict`](Self::predict) on `(x, y)`, in [0, 1].
    pub fn score(&self, x: &Matrix, y: &[usize]) -> Result<f64> {
        check_labels("LinearSvc::score", x, y)?;
        accuracy(y, &self.predict(x)?)
    }
}

impl Persist for LinearSvc {
    const KIND: &'static str = "LinearSvc";

    fn to_state(&self) -> SavedState {
        LinearState::save(&self.coef, &self.intercept, &self.classes, self.n_iter, self.converged)
    }

    fn from_state(s: &SavedState) -> std::result::Result<Self, String> {
        let LinearState { coef, intercept, classes, n_iter, converged } = LinearState::from_state(s)?;
        Ok(LinearSvc { coef, intercept, classes, n_iter, converged })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::matrix_from_rows;

    /// The primal objective `½‖w̄‖² + C Σ ξ` of a binary model.
    fn primal(m: &LinearSvc, x: &Matrix, y: &[usize], cfg: &LinearSvcConfig) -> f64 {
        let z = m.decision_function(x).unwrap();
        let b = m.intercept()[0] / cfg.intercept_scaling;
        let norm: f64 = (0..x.ncols()).map(|j| m.coef()[(0, j)].powi(2)).sum::<f64>() + b * b;
        let loss: f64 = (0..x.nrows())
            .map(|i| {
                let yi = if y[i] == m.classes()[1] { 1.0 } else { -1.0 };
                let h = (1.0 - yi * z[(i, 0)]).max(0.0);
                if cfg.loss == SvmLoss::Hinge {
                    h
                } else {
                    h * h
                }
            })
            .sum();
        0.5 * norm + cfg.c * loss
    }

    #[test]
    fn reaches_the_primal_minimum() {
        let x = matrix_from_rows(6, 2, &[0.0, 0.0, 1.0, 0.2, 0.3, 1.0, 2.0, 2.0, 2.5, 1.4, 1.1, 2.2]).unwrap();
        let y = [0, 0, 0, 1, 1, 1];
        for loss in [SvmLoss::Hinge, SvmLoss::SquaredHinge] {
            let cfg = LinearSvcConfig { loss, tol: 1e-10, max_iter: 100_000, ..Default::default() };
            let m = cfg.fit(&x, &y).unwrap();
            assert!(m.converged());
            assert_eq!(m.predict(&x).unwrap(), y);
            // Any perturbation of (w, b) raises the primal objective.
            let best = primal(&m, &x, &y, &cfg);
            for (j, eps) in [(0, 1e-4), (1, -1e-4), (2, 1e-4)] {
                let mut p = m.clone();
                if j < 2 {
                    p.coef[(0, j)] += eps;
                } else {
                    p.intercept[0] += eps;
                }
                assert!(primal(&p, &x, &y, &cfg) >= best - 1e-9, "{loss:?}: moving {j} lowers the objective");
            }
        }
    }

    #[test]
    fn the_seed_fixes_the_model() {
        let x = Matrix::from_fn(30, 3, |i, j| ((i * 7 + j * 13) % 17) as f64 / 8.0 - 1.0);
        let y: Vec<usize> = (0..30).map(|i| i % 3).collect();
        let cfg = LinearSvcConfig { max_iter: 50, ..Default::default() };
        assert_eq!(cfg.fit(&x, &y).unwrap(), cfg.fit(&x, &y).unwrap());
        let other = LinearSvcConfig { seed: 1, ..cfg }.fit(&x, &y).unwrap();
        assert_eq!(other.classes(), &[0, 1, 2]);
    }
}
