//! Logistic regression (scikit-learn's `LogisticRegression`): a sigmoid model for two classes, a
//! softmax (multinomial) model for more, with an L2, L1 or no penalty, per-class weights, and
//! three solvers: L-BFGS (smooth penalties), FISTA (proximal gradient; any penalty) and seeded
//! mini-batch SGD (smooth penalties).
//!
//! Objective (scikit-learn's), with `sᵢ` the weight of sample `i`'s class:
//!
//! ```text
//! penalty(W) + C Σᵢ sᵢ log-loss(W xᵢ + b, yᵢ),   penalty = ½ ‖W‖² (L2), ‖W‖₁ (L1) or 0
//! ```
//!
//! the intercept `b` unpenalised. Two classes give one weight row (the log-odds of the larger
//! label, scikit-learn's `coef_` of shape `[1, n_features]`); more give one row per class. The
//! solvers minimise the objective divided by `C Σᵢ sᵢ` (the weighted mean log-loss plus
//! `penalty / (C Σᵢ sᵢ)`), as scikit-learn does for L-BFGS, so `tol` means the same in both.
//!
//! ```
//! use jizen_ml::{matrix_from_rows, LogisticRegressionConfig, Penalty, Solver};
//! let x = matrix_from_rows(4, 1, &[0.0, 1.0, 3.0, 4.0]).unwrap();
//! let cfg = LogisticRegressionConfig { penalty: Penalty::L1, solver: Solver::Proximal, ..Default::default() };
//! let m = cfg.fit(&x, &[0, 0, 1, 1]).unwrap();
//! assert_eq!((m.coef().nrows(), m.predict_proba(&x).unwrap().ncols()), (1, 2));
//! assert_eq!(m.predict(&x).unwrap(), vec![0, 0, 1, 1]);
//! ```

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef};
use serde::{Deserialize, Serialize};

use crate::data::{check_features, check_labels, check_n_features, encode_classes, select_rows, Matrix};
use crate::error::{MlError, Result};
use crate::fista::{minimize_l1, FistaConfig};
use crate::lbfgs::{minimize, LbfgsConfig};
use crate::metrics::accuracy;
use crate::persist::{LinearState, Persist, SavedState};
use crate::split::SplitMix64;

/// The penalty on the weights (never on the intercept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Penalty {
    /// No penalty (scikit-learn's `C = inf`): on separable data the weights grow without bound
    /// until the solver stops.
    None,
    /// `½ ‖W‖²` (scikit-learn's default).
    #[default]
    L2,
    /// `‖W‖₁`, which sets weights exactly to zero; needs [`Solver::Proximal`].
    L1,
}

/// The algorithm that minimises the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Solver {
    /// L-BFGS ([`crate::lbfgs`]): smooth objectives only (L2 or no penalty).
    #[default]
    Lbfgs,
    /// FISTA, accelerated proximal gradient with backtracking and restarts ([`crate::fista`]):
    /// every penalty; the solver of the L1 penalty.
    Proximal,
    /// Seeded mini-batch stochastic gradient descent (smooth penalties only), see [`SgdConfig`]:
    /// cheap passes for large data sets, an approximate optimum.
    Sgd,
}

/// How much each class's samples count in the loss (scikit-learn's `class_weight`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum ClassWeight {
    /// Every sample counts once.
    #[default]
    Uniform,
    /// Class `c` weighs `n_samples / (n_classes · count(c))`, so every class carries the same
    /// total weight (scikit-learn's `"balanced"`).
    Balanced,
    /// `(label, weight)` pairs; labels not listed weigh 1. Every listed label must occur in the
    /// training labels and every weight must be finite and non-negative.
    Explicit(Vec<(usize, f64)>),
}

/// Settings of [`Solver::Sgd`]. One epoch is one pass over the shuffled training set in
/// mini-batches; `max_iter` counts epochs.
///
/// The step of epoch `e` is `learning_rate / sqrt(1 + e)`, and the model is the mean of the
/// iterates since the last epoch that is a power of two (Polyak–Ruppert averaging over the later
/// half of the run), which cancels most of the gradient noise. After every epoch the full
/// gradient of the averaged model is checked against `tol`, as L-BFGS does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Samples per gradient step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// The initial step size, on the scaled objective (mean log-loss plus penalty).
    pub learning_rate: f64,
    /// Seeds the order of the samples in every epoch.
    pub seed: u64,
}

impl Default for SgdConfig {
    /// Batches of 32, learning rate 0.5, seed 0.
    fn default() -> Self {
        SgdConfig { batch_size: 32, learning_rate: 0.5, seed: 0 }
    }
}

/// Configuration of a [`LogisticRegression`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegressionConfig {
    /// Inverse regularisation strength (scikit-learn's `C`): larger means a weaker penalty.
    /// Ignored by [`Penalty::None`].
    pub c: f64,
    /// The penalty on the weights.
    pub penalty: Penalty,
    /// The solver; [`validate`](Self::validate) rejects the pairs it cannot solve.
    pub solver: Solver,
    /// Per-class weights of the samples' loss terms.
    pub class_weight: ClassWeight,
    /// Whether to fit an (unpenalised) intercept per weight row.
    pub fit_intercept: bool,
    /// The most iterations: L-BFGS or FISTA steps, or SGD epochs.
    pub max_iter: usize,
    /// Stop when the largest entry of the scaled objective's gradient (for L1: its smallest
    /// subgradient) is at most `tol`.
    pub tol: f64,
    /// L-BFGS history length.
    pub memory: usize,
    /// Settings of [`Solver::Sgd`].
    pub sgd: SgdConfig,
}

impl Default for LogisticRegressionConfig {
    /// scikit-learn's defaults: `C = 1`, L2, L-BFGS, uniform class weights, intercept, 100
    /// iterations, `tol = 1e-4`; memory 10 and the default [`SgdConfig`].
    fn default() -> Self {
        LogisticRegressionConfig {
            c: 1.0,
            penalty: Penalty::L2,
            solver: Solver::Lbfgs,
            class_weight: ClassWeight::Uniform,
            fit_intercept: true,
            max_iter: 100,
            tol: 1e-4,
            memory: 10,
            sgd: SgdConfig::default(),
        }
    }
}

/// A fitted classifier: one weight row and intercept for two classes, one per class for more.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    classes: Vec<usize>,
    /// `[1, n_features]` for two classes, else `[n_classes, n_features]`.
    coef: Matrix,
    intercept: Vec<f64>,
    n_iter: usize,
    converged: bool,
}

/// Row-wise log-sum-exp of `z`, the maximum subtracted first so no exponential overflows.
fn logsumexp(z: &[f64]) -> f64 {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// `ln(1 + eᶻ)` without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// `1 / (1 + e⁻ᶻ)` without overflow.
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The weighted log-loss of one model on a training set; parameters `θ = [W row-major
/// (m x d), b (m, with an intercept)]`, `m = 1` for two classes (sigmoid) else the number of
/// classes (softmax).
struct LogLoss<'a> {
    x: &'a Matrix,
    /// Per sample, the position of its label among the classes.
    y: &'a [usize],
    /// Per sample, the weight of its class.
    sw: &'a [f64],
    m: usize,
    fit_intercept: bool,
}

impl LogLoss<'_> {
    fn d(&self) -> usize {
        self.x.ncols()
    }

    fn n_params(&self) -> usize {
        self.m * self.d() + if self.fit_intercept { self.m } else { 0 }
    }

    fn split(&self, theta: &[f64]) -> (Matrix, Vec<f64>) {
        let (m, d) = (self.m, self.d());
        let coef = Matrix::from_fn(m, d, |r, j| theta[r * d + j]);
        let intercept = if self.fit_intercept { theta[m * d..].to_vec() } else { vec![0.0; m] };
        (coef, intercept)
    }

    /// `scale Σᵢ sᵢ loss(i)` over the rows `rows` (all rows when `None`); writes its gradient
    /// with respect to `θ` into `grad`. `z` is room for the logits, kept by the caller from one
    /// evaluation to the next so that a solver's iterations do not allocate it.
    fn eval(&self, theta: &[f64], rows: Option<&[usize]>, scale: f64, grad: &mut [f64], z: &mut Vec<f64>) -> f64 {
        let (m, d) = (self.m, self.d());
        // θ starts with W, row-major: a view of it is the weight matrix, without a copy.
        let coef = MatRef::from_row_major_slice(&theta[..m * d], m, d);
        let picked;
        let x = match rows {
            Some(r) => {
                picked = select_rows(self.x, r);
                &picked
            }
            None => self.x,
        };
        // Row i of x is training sample pick(i).
        let pick = |i: usize| rows.map_or(i, |r| r[i]);
        // The logits X Wᵀ + b, row-major [n, m] so that every sample's logits are one slice.
        // Every value is overwritten by the product; only a longer batch than before adds zeros.
        z.resize(x.nrows() * m, 0.0);
        let z_mat = MatMut::from_row_major_slice_mut(z, x.nrows(), m);
        matmul(z_mat, Accum::Replace, x, coef.transpose(), 1.0, faer::get_global_parallelism());
        let intercept = &theta[m * d..]; // empty without intercepts
        let mut loss = 0.0;
        let mut exps = vec![0.0; m];
        for (i, zi) in z.chunks_exact_mut(m).enumerate() {
            zi.iter_mut().zip(intercept).for_each(|(v, b)| *v += b);
            let s = pick(i);
            let (yi, wi) = (self.y[s], self.sw[s] * scale);
            if m == 1 {
                // Sigmoid model: loss ln(1 + eᶻ) − t z with t = 1 for the second class.
                let (v, t) = (zi[0], f64::from(u8::from(yi == 1)));
                loss += wi * (softplus(v) - t * v);
                zi[0] = wi * (sigmoid(v) - t);
            } else {
                // One exponential per logit serves both the loss (through the log-sum-exp) and
                // the probabilities; the maximum is subtracted first so none overflows.
                let max = zi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for (e, v) in exps.iter_mut().zip(zi.iter()) {
                    *e = (v - max).exp();
                    sum += *e;
                }
                loss += wi * (max + sum.ln() - zi[yi]);
                // zᵢ becomes the gradient wrt the logits: wᵢ (P − Y).
                for (c, (v, e)) in zi.iter_mut().zip(&exps).enumerate() {
                    *v = wi * (e / sum - f64::from(u8::from(c == yi)));
                }
            }
        }
        // The gradient wrt W is zᵀ X, [m, d], copied into θ's row-major layout of W.
        let z = MatRef::from_row_major_slice(z, x.nrows(), m);
        let gw = z.transpose() * x;
        for (r, g) in grad[..m * d].chunks_exact_mut(d).enumerate() {
            g.iter_mut().zip(gw.row(r).iter()).for_each(|(g, v)| *g = *v);
        }
        if self.fit_intercept {
            let g = &mut grad[m * d..];
            g.fill(0.0);
            for zi in z.row_iter() {
                g.iter_mut().zip(zi.iter()).for_each(|(g, v)| *g += v);
            }
        }
        loss
    }

    /// Adds `½ l2 ‖W‖²` and its gradient to `(f, grad)`.
    fn add_l2(&self, theta: &[f64], l2: f64, f: f64, grad: &mut [f64]) -> f64 {
        let n_w = self.m * self.d();
        let sq: f64 = theta[..n_w].iter().map(|w| w * w).sum();
        grad[..n_w].iter_mut().zip(&theta[..n_w]).for_each(|(g, w)| *g += l2 * w);
        f + 0.5 * l2 * sq
    }
}

impl LogisticRegressionConfig {
    /// A default configuration with inverse regularisation strength `c`.
    pub fn with_c(c: f64) -> Self {
        LogisticRegressionConfig { c, ..Default::default() }
    }

    /// Checks every setting and the penalty/solver pair: L-BFGS and SGD need a smooth objective,
    /// so [`Penalty::L1`] takes [`Solver::Proximal`].
    pub fn validate(&self) -> Result<()> {
        const WHAT: &str = "LogisticRegressionConfig::validate";
        let bad = |detail: String| Err(MlError::InvalidParameter { what: WHAT, detail });
        if self.penalty != Penalty::None && !(self.c.is_finite() && self.c > 0.0) {
            return bad(format!("C must be positive and finite, got {}", self.c));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return bad(format!("tol must be non-negative and finite, got {}", self.tol));
        }
        if self.max_iter == 0 || self.memory == 0 {
            return bad(format!("max_iter ({}) and memory ({}) must be at least 1", self.max_iter, self.memory));
        }
        match (self.penalty, self.solver) {
            (Penalty::L1, Solver::Lbfgs | Solver::Sgd) => {
                return bad(format!(
                    "penalty L1 is not differentiable, which solver {:?} needs; use Solver::Proximal",
                    self.solver
                ))
            }
            (_, Solver::Sgd) => {
                let s = &self.sgd;
                if s.batch_size == 0 {
                    return bad("sgd.batch_size must be at least 1".into());
                }
                if !(s.learning_rate.is_finite() && s.learning_rate > 0.0) {
                    return bad(format!("sgd.learning_rate must be positive and finite, got {}", s.learning_rate));
                }
            }
            _ => {}
        }
        if let ClassWeight::Explicit(pairs) = &self.class_weight {
            if let Some((label, w)) = pairs.iter().find(|(_, w)| !(w.is_finite() && *w >= 0.0)) {
                return bad(format!("the weight of class {label} must be finite and non-negative, got {w}"));
            }
        }
        Ok(())
    }

    /// The weight of every sample (of its class), given the sorted classes and the encoded labels.
    fn sample_weights(&self, what: &'static str, classes: &[usize], y: &[usize]) -> Result<Vec<f64>> {
        let k = classes.len();
        let per_class = match &self.class_weight {
            ClassWeight::Uniform => vec![1.0; k],
            ClassWeight::Balanced => {
                let mut count = vec![0usize; k];
                y.iter().for_each(|&c| count[c] += 1);
                count.iter().map(|&n_c| y.len() as f64 / (k * n_c) as f64).collect()
            }
            ClassWeight::Explicit(pairs) => {
                let mut w = vec![1.0; k];
                for &(label, weight) in pairs {
                    let c = classes.binary_search(&label).map_err(|_| MlError::InvalidParameter {
                        what,
                        detail: format!("class_weight names class {label}, which is not among the labels {classes:?}"),
                    })?;
                    w[c] = weight;
                }
                w
            }
        };
        if per_class.iter().all(|&w| w == 0.0) {
            return Err(MlError::InvalidParameter { what, detail: "every class weight is 0".into() });
        }
        Ok(y.iter().map(|&c| per_class[c]).collect())
    }

    /// Fits the model from zero weights. Errors on invalid settings (see
    /// [`validate`](Self::validate)), non-finite features, mismatched lengths, labels of a
    /// single class and class weights that name an absent class.
    ///
    /// Two classes give scikit-learn's binary model: one weight row, positive for the larger
    /// label. Not reaching `tol` within `max_iter` is not an error (scikit-learn warns):
    /// [`converged`](LogisticRegression::converged) reports it.
    pub fn fit(&self, x: &Matrix, y: &[usize]) -> Result<LogisticRegression> {
        const WHAT: &str = "LogisticRegressionConfig::fit";
        self.validate().map_err(|e| match e {
            MlError::InvalidParameter { detail, .. } => MlError::InvalidParameter { what: WHAT, detail },
            other => other,
        })?;
        check_features(WHAT, x)?;
        check_labels(WHAT, x, y)?;
        let (classes, y) = encode_classes(WHAT, y)?;
        let sw = self.sample_weights(WHAT, &classes, &y)?;
        let k = classes.len();
        let problem = LogLoss { x, y: &y, sw: &sw, m: if k == 2 { 1 } else { k }, fit_intercept: self.fit_intercept };
        let sw_sum: f64 = sw.iter().sum();
        // The penalty's weight in the scaled objective: 1 / (C Σ sᵢ).
        let strength = if self.penalty == Penalty::None { 0.0 } else { 1.0 / (self.c * sw_sum) };
        let l2 = if self.penalty == Penalty::L2 { strength } else { 0.0 };
        let theta0 = vec![0.0; problem.n_params()];
        let mut z = Vec::new();
        let smooth = |theta: &[f64], grad: &mut [f64]| -> f64 {
            let f = problem.eval(theta, None, 1.0 / sw_sum, grad, &mut z);
            problem.add_l2(theta, l2, f, grad)
        };
        let (theta, n_iter, converged) = match self.solver {
            Solver::Lbfgs => {
                let cfg =
                    LbfgsConfig { memory: self.memory, max_iter: self.max_iter, tol: self.tol, ..Default::default() };
                let r = minimize(smooth, theta0, &cfg)?;
                (r.x, r.n_iter, r.converged)
            }
            Solver::Proximal => {
                let l1 = if self.penalty == Penalty::L1 { strength } else { 0.0 };
                let n_w = problem.m * problem.d();
                let penalized: Vec<bool> = (0..theta0.len()).map(|j| j < n_w).collect();
                let cfg = FistaConfig { max_iter: self.max_iter, tol: self.tol };
                let r = minimize_l1(smooth, theta0, l1, &penalized, &cfg)?;
                (r.x, r.n_iter, r.converged)
            }
            Solver::Sgd => sgd(&problem, l2, sw_sum, self),
        };
        if theta.iter().any(|v| !v.is_finite()) {
            return Err(MlError::Numerical { what: WHAT, detail: "the fit produced non-finite weights".into() });
        }
        let (coef, intercept) = problem.split(&theta);
        Ok(LogisticRegression { classes, coef, intercept, n_iter, converged })
    }
}

/// Mini-batch SGD with iterate averaging (see [`SgdConfig`]); returns `(θ, epochs, converged)`.
fn sgd(problem: &LogLoss, l2: f64, sw_sum: f64, cfg: &LogisticRegressionConfig) -> (Vec<f64>, usize, bool) {
    let n = problem.x.nrows();
    let p = problem.n_params();
    let s = cfg.sgd;
    let batch = s.batch_size.min(n);
    let mut rng = SplitMix64(s.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let (mut theta, mut sum, mut avg, mut grad) = (vec![0.0; p], vec![0.0; p], vec![0.0; p], vec![0.0; p]);
    let mut z = Vec::new();
    let mut steps = 0.0;
    for epoch in 0..cfg.max_iter {
        if epoch.is_power_of_two() {
            // The average covers the later half of the run: early iterates are far off.
            sum.iter_mut().for_each(|v| *v = 0.0);
            steps = 0.0;
        }
        rng.shuffle(&mut order);
        let eta = s.learning_rate / (1.0 + epoch as f64).sqrt();
        for rows in order.chunks(batch) {
            // An unbiased estimate of the full gradient: the batch's weighted sum scaled by n / |batch|.
            let scale = n as f64 / (rows.len() as f64 * sw_sum);
            let f = problem.eval(&theta, Some(rows), scale, &mut grad, &mut z);
            problem.add_l2(&theta, l2, f, &mut grad);
            theta.iter_mut().zip(&grad).for_each(|(t, g)| *t -= eta * g);
            sum.iter_mut().zip(&theta).for_each(|(a, t)| *a += t);
            steps += 1.0;
        }
        avg.iter_mut().zip(&sum).for_each(|(a, s)| *a = s / steps);
        // The averaged model is the estimate; stop once its full gradient is small.
        let f = problem.eval(&avg, None, 1.0 / sw_sum, &mut grad, &mut z);
        let f = problem.add_l2(&avg, l2, f, &mut grad);
        let g_max = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        if !f.is_finite() || g_max <= cfg.tol {
            return (avg, epoch + 1, f.is_finite());
        }
    }
    (avg, cfg.max_iter, false)
}

impl LogisticRegression {
    /// The sorted distinct training labels; column `c` of [`predict_proba`](Self::predict_proba)
    /// belongs to `classes()[c]`, and so does row `c` of [`coef`](Self::coef) for three or more
    /// classes.
    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    /// The weights: `[1, n_features]` for two classes (the log-odds of `classes()[1]`), else
    /// `[n_classes, n_features]` (scikit-learn's `coef_`).
    pub fn coef(&self) -> &Matrix {
        &self.coef
    }

    /// The intercepts, one per row of [`coef`](Self::coef) (all 0 without `fit_intercept`).
    pub fn intercept(&self) -> &[f64] {
        &self.intercept
    }

    /// Iterations the fit took: L-BFGS or FISTA steps, or SGD epochs.
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Whether the solver met its tolerance (rather than stopping at `max_iter`).
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// The raw scores `X Wᵀ + b`: `[n, 1]` for two classes (positive favours `classes()[1]`),
    /// else `[n, n_classes]`.
    pub fn decision_function(&self, x: &Matrix) -> Result<Matrix> {
        check_n_features("LogisticRegression::decision_function", x, self.coef.ncols())?;
        Ok(crate::data::affine_scores(x, self.coef.as_ref(), &self.intercept))
    }

    /// Class probabilities, `[n, n_classes]` (two columns for two classes: `1 − σ(z)` and
    /// `σ(z)`); every row sums to 1.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        let z = self.decision_function(x)?;
        if z.ncols() == 1 {
            return Ok(Matrix::from_fn(z.nrows(), 2, |i, c| {
                let p = sigmoid(z[(i, 0)]);
                if c == 1 {
                    p
                } else {
                    sigmoid(-z[(i, 0)])
                }
            }));
        }
        let mut z = z;
        let k = z.ncols();
        let mut row = vec![0.0; k];
        for i in 0..z.nrows() {
            row.iter_mut().enumerate().for_each(|(c, v)| *v = z[(i, c)]);
            let lse = logsumexp(&row);
            for c in 0..k {
                z[(i, c)] = (row[c] - lse).exp();
            }
        }
        Ok(z)
    }

    /// The most probable class of each row (the first, i.e. smallest, label on exact ties).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<usize>> {
        let z = self.decision_function(x)?;
        Ok(crate::data::argmax_labels(&z, &self.classes))
    }

    /// The accuracy of [`predict`](Self::predict) on `(x, y)`, in [0, 1].
    pub fn score(&self, x: &Matrix, y: &[usize]) -> Result<f64> {
        check_labels("LogisticRegression::score", x, y)?;
        accuracy(y, &self.predict(x)?)
    }
}

impl Persist for LogisticRegression {
    const KIND: &'static str = "LogisticRegression";

    fn to_state(&self) -> SavedState {
        LinearState::save(&self.coef, &self.intercept, &self.classes, self.n_iter, self.converged)
    }

    fn from_state(s: &SavedState) -> std::result::Result<Self, String> {
        let LinearState { coef, intercept, classes, n_iter, converged } = LinearState::from_state(s)?;
        Ok(LogisticRegression { coef, intercept, classes, n_iter, converged })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::matrix_from_rows;

    fn blobs() -> (Matrix, Vec<usize>) {
        let pts = [
            (0.0, 0.0),
            (0.5, 0.3),
            (0.2, 0.8),
            (4.0, 0.1),
            (4.5, 0.7),
            (3.8, -0.4),
            (2.0, 4.0),
            (2.3, 4.6),
            (1.7, 3.9),
        ];
        let x = Matrix::from_fn(9, 2, |i, j| if j == 0 { pts[i].0 } else { pts[i].1 });
        (x, vec![0, 0, 0, 1, 1, 1, 2, 2, 2])
    }

    #[test]
    fn separates_blobs_and_satisfies_the_optimality_condition() {
        let (x, y) = blobs();
        let cfg = LogisticRegressionConfig { tol: 1e-12, max_iter: 1000, ..Default::default() };
        let m = cfg.fit(&x, &y).unwrap();
        assert!(m.converged());
        assert_eq!(m.predict(&x).unwrap(), y);
        // At the optimum W = C (Y - P)ᵀ X and Σᵢ (Y - P) = 0.
        let p = m.predict_proba(&x).unwrap();
        for c in 0..3 {
            let resid: Vec<f64> = (0..9).map(|i| f64::from(u8::from(y[i] == c)) - p[(i, c)]).collect();
            let r: f64 = resid.iter().sum();
            // The solver stops on SciPy's relative decrease test (64 eps) before tol = 1e-12.
            assert!(r.abs() < 1e-6, "{r} after {} iterations", m.n_iter());
            for j in 0..2 {
                let w: f64 = (0..9).map(|i| resid[i] * x[(i, j)]).sum();
                assert!((m.coef()[(c, j)] - w).abs() < 1e-6, "{} vs {w}", m.coef()[(c, j)]);
            }
        }
        let row: f64 = (0..3).map(|c| p[(4, c)]).sum();
        assert!((row - 1.0).abs() < 1e-12);
    }

    #[test]
    fn probabilities_survive_huge_scores() {
        let (x, y) = blobs();
        let mut m = LogisticRegressionConfig::default().fit(&x, &y).unwrap();
        m.coef[(0, 0)] = 1e6;
        let p = m.predict_proba(&matrix_from_rows(1, 2, &[1e3, 0.0]).unwrap()).unwrap();
        assert!(p[(0, 0)] == 1.0 && p[(0, 1)].is_finite() && p[(0, 1)] >= 0.0);
    }

    #[test]
    fn two_classes_fit_one_sigmoid_model() {
        let (x, y) = blobs();
        let (xb, yb) = (x.subrows(0, 6).to_owned(), &y[..6]);
        let cfg = LogisticRegressionConfig { tol: 1e-12, max_iter: 1000, ..Default::default() };
        let m = cfg.fit(&xb, yb).unwrap();
        assert_eq!((m.coef().nrows(), m.intercept().len()), (1, 1));
        assert_eq!(m.decision_function(&xb).unwrap().ncols(), 1);
        let p = m.predict_proba(&xb).unwrap();
        assert_eq!(p.ncols(), 2);
        // At the optimum w = C Σᵢ (tᵢ − σ(zᵢ)) xᵢ.
        for j in 0..2 {
            let w: f64 = (0..6).map(|i| (f64::from(u8::from(yb[i] == 1)) - p[(i, 1)]) * xb[(i, j)]).sum();
            assert!((m.coef()[(0, j)] - w).abs() < 1e-6, "{} vs {w}", m.coef()[(0, j)]);
        }
        assert!((0..6).all(|i| (p[(i, 0)] + p[(i, 1)] - 1.0).abs() < 1e-15));
        assert_eq!(m.score(&xb, yb).unwrap(), 1.0);
    }

    #[test]
    fn the_proximal_solver_matches_lbfgs_on_a_smooth_objective() {
        let (x, y) = blobs();
        for k in [2usize, 3] {
            let n = 3 * k;
            let (xs, ys) = (x.subrows(0, n).to_owned(), &y[..n]);
            let base = LogisticRegressionConfig { tol: 1e-10, max_iter: 100_000, c: 0.5, ..Default::default() };
            let a = base.fit(&xs, ys).unwrap();
            let b = LogisticRegressionConfig { solver: Solver::Proximal, ..base }.fit(&xs, ys).unwrap();
            assert!(b.converged(), "{} iterations", b.n_iter());
            for r in 0..a.coef().nrows() {
                for j in 0..2 {
                    assert!((a.coef()[(r, j)] - b.coef()[(r, j)]).abs() < 1e-6);
                }
                assert!((a.intercept()[r] - b.intercept()[r]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn l1_zeroes_an_uninformative_feature() {
        // Feature 1 is noise uncorrelated with the label; a strong L1 penalty drops it exactly.
        let x = matrix_from_rows(
            8,
            2,
            &[0.0, 1.0, 1.0, -1.0, 2.0, 1.0, 3.0, -1.0, 5.0, 1.0, 6.0, -1.0, 7.0, 1.0, 8.0, -1.0],
        )
        .unwrap();
        let y = [0, 0, 0, 0, 1, 1, 1, 1];
        let cfg = LogisticRegressionConfig {
            penalty: Penalty::L1,
            solver: Solver::Proximal,
            c: 0.2,
            tol: 1e-10,
            max_iter: 100_000,
            ..Default::default()
        };
        let m = cfg.fit(&x, &y).unwrap();
        assert!(m.converged());
        assert_eq!(m.coef()[(0, 1)], 0.0);
        assert!(m.coef()[(0, 0)] > 0.0);
    }

    #[test]
    fn class_weights_scale_the_loss_terms() {
        // Weighting a class by 2 is the same objective as listing its samples twice.
        let (x, y) = blobs();
        let cfg = LogisticRegressionConfig {
            class_weight: ClassWeight::Explicit(vec![(1, 2.0)]),
            tol: 1e-12,
            max_iter: 1000,
            ..Default::default()
        };
        let weighted = cfg.fit(&x, &y).unwrap();
        let rows: Vec<usize> = (0..9).chain(3..6).collect();
        let dup_y: Vec<usize> = rows.iter().map(|&i| y[i]).collect();
        let dup = LogisticRegressionConfig { tol: 1e-12, max_iter: 1000, ..Default::default() }
            .fit(&select_rows(&x, &rows), &dup_y)
            .unwrap();
        for c in 0..3 {
            for j in 0..2 {
                assert!((weighted.coef()[(c, j)] - dup.coef()[(c, j)]).abs() < 1e-6);
            }
        }
        // Balanced weights on a balanced set change nothing.
        let bal = LogisticRegressionConfig { class_weight: ClassWeight::Balanced, ..Default::default() };
        assert_eq!(bal.fit(&x, &y).unwrap(), LogisticRegressionConfig::default().fit(&x, &y).unwrap());
    }

    #[test]
    fn sgd_approaches_the_lbfgs_optimum() {
        let (x, y) = blobs();
        let exact = LogisticRegressionConfig { tol: 1e-10, max_iter: 1000, ..Default::default() }.fit(&x, &y).unwrap();
        let cfg = LogisticRegressionConfig {
            solver: Solver::Sgd,
            max_iter: 4000,
            tol: 1e-6,
            sgd: SgdConfig { batch_size: 4, learning_rate: 0.5, seed: 3 },
            ..Default::default()
        };
        let m = cfg.fit(&x, &y).unwrap();
        let diff = (0..3)
            .flat_map(|c| (0..2).map(move |j| (c, j)))
            .fold(0.0f64, |d, (c, j)| d.max((m.coef()[(c, j)] - exact.coef()[(c, j)]).abs()));
        assert!(diff < 1e-2, "max |coef diff| {diff} after {} epochs", m.n_iter());
        assert_eq!(m.predict(&x).unwrap(), y);
        assert_eq!(cfg.fit(&x, &y).unwrap(), m, "the seed fixes the result");
    }

    #[test]
    fn bad_settings_are_errors() {
        let (x, y) = blobs();
        for cfg in [
            LogisticRegressionConfig::with_c(0.0),
            LogisticRegressionConfig::with_c(f64::NAN),
            LogisticRegressionConfig { max_iter: 0, ..Default::default() },
            LogisticRegressionConfig { penalty: Penalty::L1, ..Default::default() },
            LogisticRegressionConfig { penalty: Penalty::L1, solver: Solver::Sgd, ..Default::default() },
            LogisticRegressionConfig {
                solver: Solver::Sgd,
                sgd: SgdConfig { batch_size: 0, ..Default::default() },
                ..Default::default()
            },
            LogisticRegressionConfig { class_weight: ClassWeight::Explicit(vec![(7, 1.0)]), ..Default::default() },
            LogisticRegressionConfig { class_weight: ClassWeight::Explicit(vec![(1, -1.0)]), ..Default::default() },
        ] {
            assert!(matches!(cfg.fit(&x, &y), Err(MlError::InvalidParameter { .. })), "{cfg:?}");
        }
        let e = LogisticRegressionConfig { penalty: Penalty::L1, ..Default::default() }.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "LogisticRegressionConfig::validate: invalid parameter: penalty L1 is not differentiable, which solver \
             Lbfgs needs; use Solver::Proximal"
        );
        // C is irrelevant without a penalty.
        assert!(LogisticRegressionConfig { penalty: Penalty::None, c: 0.0, ..Default::default() }.validate().is_ok());
    }
}
