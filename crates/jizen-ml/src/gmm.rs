//! Gaussian mixture models fitted by expectation–maximisation (scikit-learn's
//! `GaussianMixture`).
//!
//! The density is `p(x) = Σ_k w_k N(x; μ_k, Σ_k)`. Every Gaussian is evaluated through the
//! Cholesky factor `U_k` of its precision (`Σ_k⁻¹ = U_k U_kᵀ`):
//! `log N(x) = −½ (d log 2π + ‖(x − μ_k) U_k‖²) + Σ log diag(U_k)`, so no covariance is ever
//! inverted and the log-determinant is a sum of logs. Responsibilities are normalised with
//! log-sum-exp, so far-away samples give `−∞`-free, finite results.
//!
//! EM stops when the mean log-likelihood of the training data (computed in the E-step, i.e. with
//! the parameters before the last M-step, scikit-learn's `lower_bound_` convention) changes by
//! less than `tol` between iterations.
//!
//! ```
//! use jizen_ml::{CovarianceType, GaussianMixtureConfig, Matrix};
//! // Two groups on a line, around 0 and around 10.
//! let x = Matrix::from_fn(20, 1, |i, _| if i < 10 { 0.0 } else { 10.0 } + (i % 5) as f64 * 0.1);
//! let gm = GaussianMixtureConfig::new(2, CovarianceType::Diag).fit(&x).unwrap();
//! let labels = gm.predict(&x).unwrap();
//! assert!(labels[0] != labels[19]);
//! assert!((gm.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
//! let (samples, _) = gm.sample(5, 42).unwrap();
//! assert_eq!(samples.nrows(), 5);
//! ```

use serde::{Deserialize, Serialize};

use crate::data::{check_features, check_n_features, Matrix};
use crate::error::{MlError, Result};
use crate::kmeans::{kmeans_plus_plus, row_sq_norms, KMeansConfig};
use crate::persist::{Persist, SavedState};
use crate::split::SplitMix64;

/// The shape of the components' covariance matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CovarianceType {
    /// Each component has its own general covariance matrix.
    #[default]
    Full,
    /// All components share one general covariance matrix.
    Tied,
    /// Each component has its own diagonal covariance matrix.
    Diag,
    /// Each component has its own variance, the same in every direction.
    Spherical,
}

/// How EM's first parameters are found (when not given with [`GaussianMixtureConfig::fit_from`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum GmmInit {
    /// Responsibilities from a seeded k-means fit (one-hot on its labels): scikit-learn's default.
    #[default]
    KMeans,
    /// Responsibilities one-hot on `n_components` samples chosen by k-means++; every other sample
    /// starts with no responsibility (scikit-learn's `"k-means++"`).
    KMeansPlusPlus,
    /// Uniformly random responsibilities, normalised per sample (scikit-learn's `"random"`).
    Random,
}

/// Per-component matrices (covariances, precisions or precision Cholesky factors) in the layout
/// of a [`CovarianceType`] (scikit-learn's shapes).
#[derive(Debug, Clone, PartialEq)]
pub enum Covariances {
    /// One `[d, d]` matrix per component.
    Full(Vec<Matrix>),
    /// One `[d, d]` matrix shared by all components.
    Tied(Matrix),
    /// `[k, d]`: the diagonal of each component's matrix, one row per component.
    Diag(Matrix),
    /// One value per component: the matrix is that value times the identity.
    Spherical(Vec<f64>),
}

impl Covariances {
    /// The covariance type this layout belongs to.
    pub fn covariance_type(&self) -> CovarianceType {
        match self {
            Covariances::Full(_) => CovarianceType::Full,
            Covariances::Tied(_) => CovarianceType::Tied,
            Covariances::Diag(_) => CovarianceType::Diag,
            Covariances::Spherical(_) => CovarianceType::Spherical,
        }
    }

    /// The full `[d, d]` matrix of component `k` (for any layout).
    pub fn dense(&self, k: usize, d: usize) -> Matrix {
        match self {
            Covariances::Full(m) => m[k].clone(),
            Covariances::Tied(m) => m.clone(),
            Covariances::Diag(m) => Matrix::from_fn(d, d, |i, j| if i == j { m[(k, i)] } else { 0.0 }),
            Covariances::Spherical(v) => Matrix::from_fn(d, d, |i, j| if i == j { v[k] } else { 0.0 }),
        }
    }
}

/// Initial parameters for [`GaussianMixtureConfig::fit_from`] (scikit-learn's `weights_init`,
/// `means_init` and `precisions_init`); those left `None` come from the configured
/// initialisation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GmmParams {
    /// Mixing weights: `n_components` non-negative values summing to 1.
    pub weights: Option<Vec<f64>>,
    /// `[n_components, n_features]`.
    pub means: Option<Matrix>,
    /// Precision matrices (inverse covariances) in the layout of the configured covariance type.
    pub precisions: Option<Covariances>,
}

/// Configuration of a [`GaussianMixture`] fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaussianMixtureConfig {
    /// The number of mixture components (at least 1, at most the number of samples).
    pub n_components: usize,
    /// The shape of the covariances.
    pub covariance_type: CovarianceType,
    /// EM stops when the mean log-likelihood changes by less than `tol`.
    pub tol: f64,
    /// Added to the diagonal of every covariance so that it stays positive definite; must be
    /// positive.
    pub reg_covar: f64,
    /// The most EM iterations per run.
    pub max_iter: usize,
    /// Runs from different seeds; the one of highest final mean log-likelihood is kept.
    pub n_init: usize,
    /// How each run starts.
    pub init: GmmInit,
    /// Seed of the initialisations; run `r` uses a stream derived from `seed` and `r`.
    pub seed: u64,
}

impl Default for GaussianMixtureConfig {
    /// scikit-learn's defaults for one component: full covariances, `tol = 1e-3`,
    /// `reg_covar = 1e-6`, 100 iterations, one run, k-means initialisation; seed 0.
    fn default() -> Self {
        GaussianMixtureConfig {
            n_components: 1,
            covariance_type: CovarianceType::Full,
            tol: 1e-3,
            reg_covar: 1e-6,
            max_iter: 100,
            n_init: 1,
            init: GmmInit::KMeans,
            seed: 0,
        }
    }
}

/// A fitted Gaussian mixture.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    weights: Vec<f64>,
    /// `[k, d]`.
    means: Matrix,
    covariances: Covariances,
    /// Cholesky factors `U` of the precisions, `Σ⁻¹ = U Uᵀ` (full/tied: `[d, d]`; diag: `[k, d]`
    /// of `1 / σ`; spherical: `1 / σ` per component).
    prec_chol: Covariances,
    converged: bool,
    n_iter: usize,
    lower_bound: f64,
}

const LN_2PI: f64 = 1.837_877_066_409_345_5; // ln(2π)

/// The lower Cholesky factor `L` of a symmetric matrix (`a = L Lᵀ`), or `None` when `a` is not
/// numerically positive definite.
fn cholesky_lower(a: &Matrix) -> Option<Matrix> {
    let d = a.nrows();
    let mut l = Matrix::zeros(d, d);
    for j in 0..d {
        let s = a[(j, j)] - (0..j).map(|p| l[(j, p)] * l[(j, p)]).sum::<f64>();
        if !(s > 0.0 && s.is_finite()) {
            return None;
        }
        let ljj = s.sqrt();
        l[(j, j)] = ljj;
        for i in j + 1..d {
            let s = a[(i, j)] - (0..j).map(|p| l[(i, p)] * l[(j, p)]).sum::<f64>();
            l[(i, j)] = s / ljj;
        }
    }
    Some(l)
}

/// `L⁻¹` of a lower-triangular `L` with a positive diagonal, by forward substitution.
fn lower_inverse(l: &Matrix) -> Matrix {
    let d = l.nrows();
    let mut inv = Matrix::zeros(d, d);
    for c in 0..d {
        for i in c..d {
            let rhs = if i == c { 1.0 } else { 0.0 };
            let s = rhs - (c..i).map(|p| l[(i, p)] * inv[(p, c)]).sum::<f64>();
            inv[(i, c)] = s / l[(i, i)];
        }
    }
    inv
}

/// `U = L⁻ᵀ` for `cov = L Lᵀ`, so that `cov⁻¹ = U Uᵀ`.
fn precision_chol_of_cov(what: &'static str, cov: &Matrix, k: Option<usize>) -> Result<Matrix> {
    let l = cholesky_lower(cov).ok_or_else(|| MlError::Numerical {
        what,
        detail: format!(
            "the covariance of {} is not positive definite (a collapsed component or collinear \
             features); increase reg_covar or reduce n_components",
            k.map_or("the mixture".to_string(), |k| format!("component {k}"))
        ),
    })?;
    Ok(lower_inverse(&l).transpose().to_owned())
}

/// Cholesky factors of the precisions from covariances.
fn prec_chol_from_cov(what: &'static str, cov: &Covariances) -> Result<Covariances> {
    let positive = |v: f64, k: usize| {
        if v > 0.0 && v.is_finite() {
            Ok(1.0 / v.sqrt())
        } else {
            Err(MlError::Numerical {
                what,
                detail: format!("component {k} has variance {v}; increase reg_covar or reduce n_components"),
            })
        }
    };
    Ok(match cov {
        Covariances::Full(m) => Covariances::Full(
            m.iter().enumerate().map(|(k, c)| precision_chol_of_cov(what, c, Some(k))).collect::<Result<_>>()?,
        ),
        Covariances::Tied(c) => Covariances::Tied(precision_chol_of_cov(what, c, None)?),
        Covariances::Diag(m) => {
            let mut out = Matrix::zeros(m.nrows(), m.ncols());
            for k in 0..m.nrows() {
                for j in 0..m.ncols() {
                    out[(k, j)] = positive(m[(k, j)], k)?;
                }
            }
            Covariances::Diag(out)
        }
        Covariances::Spherical(v) => {
            Covariances::Spherical(v.iter().enumerate().map(|(k, &v)| positive(v, k)).collect::<Result<_>>()?)
        }
    })
}

/// Cholesky factors of user-given precisions (`P = L Lᵀ` with `L` lower: `U = L`).
fn prec_chol_from_prec(what: &'static str, prec: &Covariances) -> Result<Covariances> {
    let not_pd = |k: String| MlError::InvalidParameter {
        what,
        detail: format!("the initial precision of {k} is not symmetric positive definite"),
    };
    let chol = |p: &Matrix, k: String| -> Result<Matrix> {
        let sym = (0..p.nrows())
            .all(|i| (0..i).all(|j| (p[(i, j)] - p[(j, i)]).abs() <= 1e-10 * (p[(i, j)].abs() + p[(j, i)].abs())));
        if !sym {
            return Err(not_pd(k));
        }
        cholesky_lower(p).ok_or_else(|| not_pd(k))
    };
    let positive =
        |v: f64, k: usize| if v > 0.0 && v.is_finite() { Ok(v.sqrt()) } else { Err(not_pd(format!("component {k}"))) };
    Ok(match prec {
        Covariances::Full(m) => Covariances::Full(
            m.iter().enumerate().map(|(k, p)| chol(p, format!("component {k}"))).collect::<Result<_>>()?,
        ),
        Covariances::Tied(p) => Covariances::Tied(chol(p, "the mixture".into())?),
        Covariances::Diag(m) => {
            let mut out = Matrix::zeros(m.nrows(), m.ncols());
            for k in 0..m.nrows() {
                for j in 0..m.ncols() {
                    out[(k, j)] = positive(m[(k, j)], k)?;
                }
            }
            Covariances::Diag(out)
        }
        Covariances::Spherical(v) => {
            Covariances::Spherical(v.iter().enumerate().map(|(k, &v)| positive(v, k)).collect::<Result<_>>()?)
        }
    })
}

/// `log N(xᵢ; μ_k, Σ_k)` for every sample and component, `[n, k]`.
///
/// For the diagonal and spherical models the squared Mahalanobis distance expands, with
/// precisions `π_kj = 1/σ²_kj` (the squared Cholesky factors), into
///
/// ```text
/// Σ_j π_kj (x_ij − μ_kj)² = Σ_j μ_kj² π_kj − 2 Σ_j x_ij (μ_kj π_kj) + Σ_j x_ij² π_kj
/// ```
///
/// a per-component constant and two `[n, d] × [d, k]` matrix products, `x (μ∘π)ᵀ` and
/// `(x∘x) πᵀ`, as in scikit-learn (for the spherical model `π_kj = π_k` and the last product
/// is the outer product of the rows' squared norms with the precisions).
fn log_gaussian_prob(x: &Matrix, means: &Matrix, prec_chol: &Covariances) -> Matrix {
    let (n, d, k) = (x.nrows(), x.ncols(), means.nrows());
    let base = d as f64 * LN_2PI;
    let mut out = Matrix::zeros(n, k);
    match prec_chol {
        Covariances::Full(_) | Covariances::Tied(_) => {
            for c in 0..k {
                let u = match prec_chol {
                    Covariances::Full(m) => &m[c],
                    Covariances::Tied(m) => m,
                    _ => unreachable!(),
                };
                let centred = Matrix::from_fn(n, d, |i, j| x[(i, j)] - means[(c, j)]);
                let y = &centred * u; // [n, d]
                let log_det: f64 = (0..d).map(|j| u[(j, j)].ln()).sum();
                for (o, m) in out.col_mut(c).iter_mut().zip(&row_sq_norms(&y)) {
                    *o = -0.5 * (base + m) + log_det;
                }
            }
        }
        Covariances::Diag(p) => {
            let prec = Matrix::from_fn(k, d, |c, j| p[(c, j)] * p[(c, j)]); // [k, d]
            let mean_prec = Matrix::from_fn(k, d, |c, j| means[(c, j)] * prec[(c, j)]);
            let x_sq = Matrix::from_fn(n, d, |i, j| x[(i, j)] * x[(i, j)]);
            let cross = x * mean_prec.transpose(); // [n, k]
            let sq = &x_sq * prec.transpose(); // [n, k]
            for c in 0..k {
                let mu_term: f64 = (0..d).map(|j| means[(c, j)] * mean_prec[(c, j)]).sum();
                let log_det: f64 = (0..d).map(|j| p[(c, j)].ln()).sum();
                let (cross, sq) = (cross.col(c), sq.col(c));
                for (i, o) in out.col_mut(c).iter_mut().enumerate() {
                    let maha = mu_term - 2.0 * cross[i] + sq[i];
                    *o = -0.5 * (base + maha) + log_det;
                }
            }
        }
        Covariances::Spherical(p) => {
            let cross = x * means.transpose(); // [n, k]
            let x_sq = row_sq_norms(x);
            for (c, &pc) in p.iter().enumerate() {
                let prec = pc * pc;
                let mu_sq: f64 = (0..d).map(|j| means[(c, j)] * means[(c, j)]).sum();
                let log_det = d as f64 * pc.ln();
                let cross = cross.col(c);
                for (i, o) in out.col_mut(c).iter_mut().enumerate() {
                    let maha = (mu_sq - 2.0 * cross[i] + x_sq[i]) * prec;
                    *o = -0.5 * (base + maha) + log_det;
                }
            }
        }
    }
    out
}

/// The mixture's weighted log densities `log w_k + log N(xᵢ; μ_k, Σ_k)`, `[n, k]`.
fn weighted_log_prob(x: &Matrix, weights: &[f64], means: &Matrix, prec_chol: &Covariances) -> Matrix {
    let mut lp = log_gaussian_prob(x, means, prec_chol);
    for (c, w) in weights.iter().enumerate() {
        let lw = w.ln();
        lp.col_mut(c).iter_mut().for_each(|v| *v += lw);
    }
    lp
}

/// Row-wise log-sum-exp of `z`, `[n]`, the maximum subtracted first. Walks the columns (the
/// matrix is column-major) with per-row accumulators, summing each row in column order.
fn logsumexp_rows(z: &Matrix) -> Vec<f64> {
    let mut m = vec![f64::NEG_INFINITY; z.nrows()];
    for c in 0..z.ncols() {
        m.iter_mut().zip(z.col(c).iter()).for_each(|(m, &v)| *m = m.max(v));
    }
    let mut s = vec![0.0; z.nrows()];
    for c in 0..z.ncols() {
        for ((s, &m), &v) in s.iter_mut().zip(&m).zip(z.col(c).iter()) {
            if m != f64::NEG_INFINITY {
                *s += (v - m).exp();
            }
        }
    }
    m.iter().zip(&s).map(|(&m, s)| if m == f64::NEG_INFINITY { m } else { m + s.ln() }).collect()
}

/// The M-step: weights, means and regularised covariances from responsibilities `resp`, `[n, k]`.
fn estimate_parameters(x: &Matrix, resp: &Matrix, reg: f64, ct: CovarianceType) -> (Vec<f64>, Matrix, Covariances) {
    let (n, d, k) = (x.nrows(), x.ncols(), resp.ncols());
    // 10 ε keeps an empty component's weight and divisions finite, as in scikit-learn.
    let nk: Vec<f64> = (0..k).map(|c| resp.col(c).iter().sum::<f64>() + 10.0 * f64::EPSILON).collect();
    let sum_x = resp.transpose() * x; // [k, d], Σᵢ r_ic xᵢ
    let means = Matrix::from_fn(k, d, |c, j| sum_x[(c, j)] / nk[c]);
    // Responsibility-weighted scatter of component c: Σᵢ r_ic (xᵢ − μ_c)(xᵢ − μ_c)ᵀ.
    let scatter = |c: usize| {
        let diff = Matrix::from_fn(n, d, |i, j| x[(i, j)] - means[(c, j)]);
        let weighted = Matrix::from_fn(n, d, |i, j| resp[(i, c)] * diff[(i, j)]);
        weighted.transpose() * &diff
    };
    // Per-component variances along each feature, Σᵢ r_ic (x_ij − μ_cj)² / n_c, expanded as in
    // scikit-learn into (Σᵢ r_ic x_ij²)/n_c − 2 μ_cj (Σᵢ r_ic x_ij)/n_c + μ_cj²: one matrix
    // product `respᵀ (x∘x)` besides the `respᵀ x` of the means, `[k, d]`.
    let diag_var = || {
        let x_sq = Matrix::from_fn(n, d, |i, j| x[(i, j)] * x[(i, j)]);
        let sum_x_sq = resp.transpose() * &x_sq; // [k, d]
        Matrix::from_fn(k, d, |c, j| {
            let mu = means[(c, j)];
            sum_x_sq[(c, j)] / nk[c] - 2.0 * mu * sum_x[(c, j)] / nk[c] + mu * mu
        })
    };
    let cov = match ct {
        CovarianceType::Full => Covariances::Full(
            (0..k)
                .map(|c| {
                    let mut s = scatter(c);
                    for a in 0..d {
                        for b in 0..d {
                            s[(a, b)] /= nk[c];
                        }
                        s[(a, a)] += reg;
                    }
                    s
                })
                .collect(),
        ),
        CovarianceType::Tied => {
            let mut s = Matrix::zeros(d, d);
            for c in 0..k {
                s += scatter(c);
            }
            let total: f64 = nk.iter().sum();
            for a in 0..d {
                for b in 0..d {
                    s[(a, b)] /= total;
                }
                s[(a, a)] += reg;
            }
            Covariances::Tied(s)
        }
        CovarianceType::Diag => {
            let v = diag_var();
            Covariances::Diag(Matrix::from_fn(k, d, |c, j| v[(c, j)] + reg))
        }
        CovarianceType::Spherical => {
            let v = diag_var();
            Covariances::Spherical((0..k).map(|c| (0..d).map(|j| v[(c, j)]).sum::<f64>() / d as f64 + reg).collect())
        }
    };
    let total: f64 = nk.iter().sum();
    (nk.iter().map(|v| v / total).collect(), means, cov)
}

/// The parameters EM iterates on.
struct State {
    weights: Vec<f64>,
    means: Matrix,
    covariances: Option<Covariances>,
    prec_chol: Covariances,
}

impl GaussianMixtureConfig {
    /// A default configuration with `n_components` components and the given covariance type.
    pub fn new(n_components: usize, covariance_type: CovarianceType) -> Self {
        GaussianMixtureConfig { n_components, covariance_type, ..Default::default() }
    }

    fn validate(&self, what: &'static str, x: &Matrix) -> Result<()> {
        check_features(what, x)?;
        let bad = |detail: String| Err(MlError::InvalidParameter { what, detail });
        if self.n_components == 0 {
            return bad("n_components must be at least 1".into());
        }
        if self.n_components > x.nrows() {
            return Err(MlError::TooFew {
                what,
                param: "n_components",
                requested: self.n_components,
                available: x.nrows(),
                unit: "samples",
            });
        }
        if !(self.reg_covar.is_finite() && self.reg_covar > 0.0) {
            return bad(format!("reg_covar must be positive and finite, got {}", self.reg_covar));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return bad(format!("tol must be non-negative and finite, got {}", self.tol));
        }
        if self.max_iter == 0 || self.n_init == 0 {
            return bad(format!("max_iter ({}) and n_init ({}) must be at least 1", self.max_iter, self.n_init));
        }
        Ok(())
    }

    /// Runs EM `n_init` times from seeded initialisations and keeps the run of highest final
    /// mean log-likelihood. Errors on bad input or settings and when a covariance stops being
    /// positive definite (the message suggests a larger `reg_covar`). Not converging within
    /// `max_iter` is not an error: [`GaussianMixture::converged`] reports it.
    pub fn fit(&self, x: &Matrix) -> Result<GaussianMixture> {
        self.fit_runs("GaussianMixtureConfig::fit", x, &GmmParams::default())
    }

    /// Like [`fit`](Self::fit), but starting from the given parameters (scikit-learn's
    /// `weights_init`, `means_init`, `precisions_init`). Each run first computes all parameters
    /// from its initial responsibilities, as `fit` does, then replaces those given; so when all
    /// three are given, every run is the same and only one is made. Errors when the given shapes
    /// disagree with the data and configuration, when the weights are negative or do not sum to 1
    /// (within 1e-6), and when a precision is not symmetric positive definite.
    pub fn fit_from(&self, x: &Matrix, init: &GmmParams) -> Result<GaussianMixture> {
        self.fit_runs("GaussianMixtureConfig::fit_from", x, init)
    }

    fn fit_runs(&self, what: &'static str, x: &Matrix, init: &GmmParams) -> Result<GaussianMixture> {
        self.validate(what, x)?;
        let given_chol = self.check_init(what, x, init)?;
        let all_given = init.weights.is_some() && init.means.is_some() && given_chol.is_some();
        let runs = if all_given { 1 } else { self.n_init };
        let mut best: Option<GaussianMixture> = None;
        for run in 0..runs {
            let state = if all_given {
                State {
                    weights: init.weights.clone().expect("given"),
                    means: init.means.clone().expect("given"),
                    covariances: None,
                    prec_chol: given_chol.clone().expect("given"),
                }
            } else {
                let seed = self.seed ^ (run as u64).wrapping_mul(0xA076_1D64_78BD_642F);
                let resp = self.initial_resp(x, seed)?;
                let (weights, means, cov) = estimate_parameters(x, &resp, self.reg_covar, self.covariance_type);
                let prec_chol = match &given_chol {
                    Some(p) => p.clone(),
                    None => prec_chol_from_cov(what, &cov)?,
                };
                State {
                    weights: init.weights.clone().unwrap_or(weights),
                    means: init.means.clone().unwrap_or(means),
                    covariances: Some(cov),
                    prec_chol,
                }
            };
            let model = self.em(what, x, state)?;
            if best.as_ref().is_none_or(|b| model.lower_bound > b.lower_bound) {
                best = Some(model);
            }
        }
        Ok(best.expect("at least one run"))
    }

    /// Validates the given initial parameters; returns the Cholesky factors of the given
    /// precisions.
    fn check_init(&self, what: &'static str, x: &Matrix, init: &GmmParams) -> Result<Option<Covariances>> {
        let (k, d) = (self.n_components, x.ncols());
        let shape = |detail: String| Err(MlError::ShapeMismatch { what, detail });
        if let Some(weights) = &init.weights {
            if weights.len() != k {
                return shape(format!("{} initial weights for {k} components", weights.len()));
            }
            let sum: f64 = weights.iter().sum();
            if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) || (sum - 1.0).abs() > 1e-6 {
                return Err(MlError::InvalidParameter {
                    what,
                    detail: format!("initial weights must be non-negative and sum to 1, got {weights:?}"),
                });
            }
        }
        if let Some(means) = &init.means {
            check_features(what, means)?;
            if means.nrows() != k || means.ncols() != d {
                return shape(format!("initial means are {} x {}, expected {k} x {d}", means.nrows(), means.ncols()));
            }
        }
        let Some(precisions) = &init.precisions else { return Ok(None) };
        if precisions.covariance_type() != self.covariance_type {
            return Err(MlError::InvalidParameter {
                what,
                detail: format!(
                    "initial precisions are {:?} but covariance_type is {:?}",
                    precisions.covariance_type(),
                    self.covariance_type
                ),
            });
        }
        let ok = match precisions {
            Covariances::Full(m) => m.len() == k && m.iter().all(|p| p.nrows() == d && p.ncols() == d),
            Covariances::Tied(p) => p.nrows() == d && p.ncols() == d,
            Covariances::Diag(p) => p.nrows() == k && p.ncols() == d,
            Covariances::Spherical(v) => v.len() == k,
        };
        if !ok {
            return shape(format!("initial precisions do not fit {k} components of {d} features"));
        }
        Ok(Some(prec_chol_from_prec(what, precisions)?))
    }

    /// Initial responsibilities `[n, k]` of one run.
    fn initial_resp(&self, x: &Matrix, seed: u64) -> Result<Matrix> {
        let (n, k) = (x.nrows(), self.n_components);
        let mut resp = Matrix::zeros(n, k);
        let mut rng = SplitMix64(seed);
        match self.init {
            GmmInit::KMeans => {
                let km = KMeansConfig { n_init: 1, seed, ..KMeansConfig::new(k) }.fit(x)?;
                for (i, &l) in km.labels().iter().enumerate() {
                    resp[(i, l)] = 1.0;
                }
            }
            GmmInit::KMeansPlusPlus => {
                for (c, i) in kmeans_plus_plus(x, &row_sq_norms(x), k, &mut rng).into_iter().enumerate() {
                    resp[(i, c)] = 1.0;
                }
            }
            GmmInit::Random => {
                for i in 0..n {
                    let row: Vec<f64> = (0..k).map(|_| rng.uniform()).collect();
                    let s: f64 = row.iter().sum();
                    for (c, v) in row.iter().enumerate() {
                        resp[(i, c)] = v / s;
                    }
                }
            }
        }
        Ok(resp)
    }

    /// EM from `state` until the mean log-likelihood changes by less than `tol` or `max_iter`.
    fn em(&self, what: &'static str, x: &Matrix, mut state: State) -> Result<GaussianMixture> {
        let mut lower_bound = f64::NEG_INFINITY;
        let mut converged = false;
        let mut n_iter = 0;
        while n_iter < self.max_iter {
            n_iter += 1;
            let prev = lower_bound;
            // E-step: log responsibilities and the mean log-likelihood under the current state.
            let mut log_resp = weighted_log_prob(x, &state.weights, &state.means, &state.prec_chol);
            let lse = logsumexp_rows(&log_resp);
            lower_bound = lse.iter().sum::<f64>() / x.nrows() as f64;
            if !lower_bound.is_finite() {
                return Err(MlError::Numerical {
                    what,
                    detail: format!("the log-likelihood became {lower_bound} at iteration {n_iter}"),
                });
            }
            for c in 0..log_resp.ncols() {
                for (v, l) in log_resp.col_mut(c).iter_mut().zip(&lse) {
                    *v = (*v - l).exp();
                }
            }
            // M-step.
            let (weights, means, cov) = estimate_parameters(x, &log_resp, self.reg_covar, self.covariance_type);
            state.prec_chol = prec_chol_from_cov(what, &cov)?;
            state.weights = weights;
            state.means = means;
            state.covariances = Some(cov);
            if (lower_bound - prev).abs() < self.tol {
                converged = true;
                break;
            }
        }
        Ok(GaussianMixture {
            weights: state.weights,
            means: state.means,
            covariances: state.covariances.expect("max_iter >= 1 runs an M-step"),
            prec_chol: state.prec_chol,
            converged,
            n_iter,
            lower_bound,
        })
    }
}

impl GaussianMixture {
    /// The mixing weights, summing to 1.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The component means, `[n_components, n_features]`.
    pub fn means(&self) -> &Matrix {
        &self.means
    }

    /// The covariances (with `reg_covar` added), in the layout of the covariance type.
    pub fn covariances(&self) -> &Covariances {
        &self.covariances
    }

    /// The precisions (inverse covariances), in the layout of the covariance type.
    pub fn precisions(&self) -> Covariances {
        let outer = |u: &Matrix| u * u.transpose();
        match &self.prec_chol {
            Covariances::Full(m) => Covariances::Full(m.iter().map(outer).collect()),
            Covariances::Tied(u) => Covariances::Tied(outer(u)),
            Covariances::Diag(p) => Covariances::Diag(Matrix::from_fn(p.nrows(), p.ncols(), |c, j| p[(c, j)].powi(2))),
            Covariances::Spherical(p) => Covariances::Spherical(p.iter().map(|v| v * v).collect()),
        }
    }

    /// Whether EM met `tol` before `max_iter`.
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// EM iterations of the kept run.
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// The mean training log-likelihood at the last E-step (scikit-learn's `lower_bound_`: it
    /// belongs to the parameters before the last M-step; [`score`](Self::score) on the training
    /// data gives the value for the final ones).
    pub fn lower_bound(&self) -> f64 {
        self.lower_bound
    }

    fn weighted(&self, what: &'static str, x: &Matrix) -> Result<Matrix> {
        check_n_features(what, x, self.means.ncols())?;
        Ok(weighted_log_prob(x, &self.weights, &self.means, &self.prec_chol))
    }

    /// The log density `log p(xᵢ)` of every row of `x`.
    pub fn score_samples(&self, x: &Matrix) -> Result<Vec<f64>> {
        Ok(logsumexp_rows(&self.weighted("GaussianMixture::score_samples", x)?))
    }

    /// The mean log density of the rows of `x`.
    pub fn score(&self, x: &Matrix) -> Result<f64> {
        let s = self.score_samples(x)?;
        Ok(s.iter().sum::<f64>() / s.len() as f64)
    }

    /// The posterior probability of every component for every row of `x`, `[n, n_components]`;
    /// rows sum to 1.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        let mut w = self.weighted("GaussianMixture::predict_proba", x)?;
        let lse = logsumexp_rows(&w);
        for c in 0..w.ncols() {
            for (v, l) in w.col_mut(c).iter_mut().zip(&lse) {
                *v = (*v - l).exp();
            }
        }
        Ok(w)
    }

    /// The most probable component of every row of `x` (the smallest index on ties).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<usize>> {
        let w = self.weighted("GaussianMixture::predict", x)?;
        Ok((0..w.nrows()).map(|i| (1..w.ncols()).fold(0, |b, c| if w[(i, c)] > w[(i, b)] { c } else { b })).collect())
    }

    /// The number of free parameters: means, covariances and `k − 1` weights.
    pub fn n_parameters(&self) -> usize {
        let (k, d) = (self.means.nrows(), self.means.ncols());
        let cov = match self.covariances {
            Covariances::Full(_) => k * d * (d + 1) / 2,
            Covariances::Tied(_) => d * (d + 1) / 2,
            Covariances::Diag(_) => k * d,
            Covariances::Spherical(_) => k,
        };
        cov + k * d + k - 1
    }

    /// The Bayesian information criterion on `x`: `−2 n score(x) + n_parameters ln n` (lower is
    /// better).
    pub fn bic(&self, x: &Matrix) -> Result<f64> {
        let n = x.nrows() as f64;
        Ok(-2.0 * self.score(x)? * n + self.n_parameters() as f64 * n.ln())
    }

    /// Akaike's information criterion on `x`: `−2 n score(x) + 2 n_parameters` (lower is better).
    pub fn aic(&self, x: &Matrix) -> Result<f64> {
        Ok(-2.0 * self.score(x)? * x.nrows() as f64 + 2.0 * self.n_parameters() as f64)
    }

    /// Draws `n` samples from the mixture with a seeded generator: returns the samples
    /// `[n, n_features]` and the component each came from, grouped by component in increasing
    /// order (as scikit-learn's `sample`). Errors when `n` is 0.
    pub fn sample(&self, n: usize, seed: u64) -> Result<(Matrix, Vec<usize>)> {
        const WHAT: &str = "GaussianMixture::sample";
        if n == 0 {
            return Err(MlError::InvalidParameter { what: WHAT, detail: "n must be at least 1".into() });
        }
        let (k, d) = (self.means.nrows(), self.means.ncols());
        let mut rng = SplitMix64(seed);
        let mut comps: Vec<usize> = (0..n)
            .map(|_| {
                let r = rng.uniform();
                let mut acc = 0.0;
                for (c, w) in self.weights.iter().enumerate() {
                    acc += w;
                    if r < acc {
                        return c;
                    }
                }
                k - 1
            })
            .collect();
        comps.sort_unstable();
        // x = μ + L z with L the lower Cholesky factor of the covariance.
        let factors: Vec<Matrix> = (0..k)
            .map(|c| {
                cholesky_lower(&self.covariances.dense(c, d)).ok_or_else(|| MlError::Numerical {
                    what: WHAT,
                    detail: format!("the covariance of component {c} is not positive definite"),
                })
            })
            .collect::<Result<_>>()?;
        let mut out = Matrix::zeros(n, d);
        for (i, &c) in comps.iter().enumerate() {
            let z: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
            for a in 0..d {
                out[(i, a)] = self.means[(c, a)] + (0..=a).map(|b| factors[c][(a, b)] * z[b]).sum::<f64>();
            }
        }
        Ok((out, comps))
    }
}

/// Stores `c` under `name`: `[k, d, d]` (full), `[d, d]` (tied), `[k, d]` (diag) or `[k]`
/// (spherical).
fn put_covariances(s: &mut SavedState, name: &str, c: &Covariances) {
    let flat = |m: &Matrix| (0..m.nrows()).flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)])).collect::<Vec<_>>();
    match c {
        Covariances::Full(ms) => {
            let d = ms.first().map_or(0, |m| m.nrows());
            s.put_array(name, vec![ms.len(), d, d], ms.iter().flat_map(flat).collect());
        }
        Covariances::Tied(m) | Covariances::Diag(m) => s.put_matrix(name, m),
        Covariances::Spherical(v) => s.put_vector(name, v),
    }
}

/// Reads what [`put_covariances`] stored, checking the shape for `k` components in `d` dimensions.
fn get_covariances(
    s: &SavedState,
    name: &str,
    kind: CovarianceType,
    k: usize,
    d: usize,
) -> std::result::Result<Covariances, String> {
    Ok(match kind {
        CovarianceType::Full => {
            let (shape, v) = s.array(name)?;
            if shape != [k, d, d] {
                return Err(format!("tensor {name} has shape {shape:?}, expected [{k}, {d}, {d}]"));
            }
            Covariances::Full((0..k).map(|c| Matrix::from_fn(d, d, |i, j| v[(c * d + i) * d + j])).collect())
        }
        CovarianceType::Tied => Covariances::Tied(s.matrix_of(name, d, d)?),
        CovarianceType::Diag => Covariances::Diag(s.matrix_of(name, k, d)?),
        CovarianceType::Spherical => Covariances::Spherical(s.vector_of(name, k)?),
    })
}

impl Persist for GaussianMixture {
    const KIND: &'static str = "GaussianMixture";

    fn to_state(&self) -> SavedState {
        let mut s = SavedState::new();
        s.put_vector("weights", &self.weights);
        s.put_matrix("means", &self.means);
        put_covariances(&mut s, "covariances", &self.covariances);
        put_covariances(&mut s, "precisions_cholesky", &self.prec_chol);
        s.put_vector("lower_bound", &[self.lower_bound]);
        s.put("covariance_type", &self.covariances.covariance_type());
        s.put("n_iter", &self.n_iter);
        s.put("converged", &self.converged);
        s
    }

    fn from_state(s: &SavedState) -> std::result::Result<Self, String> {
        let means = s.matrix("means")?;
        let (k, d) = (means.nrows(), means.ncols());
        if k == 0 || d == 0 {
            return Err(format!("means are [{k}, {d}]"));
        }
        let kind: CovarianceType = s.get("covariance_type")?;
        Ok(GaussianMixture {
            weights: s.vector_of("weights", k)?,
            covariances: get_covariances(s, "covariances", kind, k, d)?,
            prec_chol: get_covariances(s, "precisions_cholesky", kind, k, d)?,
            lower_bound: s.vector_of("lower_bound", 1)?[0],
            n_iter: s.get("n_iter")?,
            converged: s.get("converged")?,
            means,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: [CovarianceType; 4] =
        [CovarianceType::Full, CovarianceType::Tied, CovarianceType::Diag, CovarianceType::Spherical];

    #[test]
    fn cholesky_and_inverse_agree() {
        let a = Matrix::from_fn(3, 3, |i, j| if i == j { 4.0 } else { 1.0 / (1.0 + (i + j) as f64) });
        let l = cholesky_lower(&a).unwrap();
        let back = &l * l.transpose();
        let inv = lower_inverse(&l);
        let eye = &l * &inv;
        for i in 0..3 {
            for j in 0..3 {
                assert!((back[(i, j)] - a[(i, j)]).abs() < 1e-14);
                assert!((eye[(i, j)] - f64::from(u8::from(i == j))).abs() < 1e-14);
            }
        }
        assert!(cholesky_lower(&Matrix::from_fn(2, 2, |_, _| 1.0)).is_none());
    }

    #[test]
    fn one_component_is_the_sample_gaussian() {
        // A single full Gaussian: EM is exact in one step (mean and population covariance).
        let x =
            Matrix::from_fn(50, 2, |i, j| ((i * 7 + j * 3) % 11) as f64 + if j == 1 { 0.5 * i as f64 } else { 0.0 });
        let m = GaussianMixtureConfig { reg_covar: 1e-9, ..GaussianMixtureConfig::new(1, CovarianceType::Full) }
            .fit(&x)
            .unwrap();
        let mean: Vec<f64> = (0..2).map(|j| x.col(j).iter().sum::<f64>() / 50.0).collect();
        let cov01 = (0..50).map(|i| (x[(i, 0)] - mean[0]) * (x[(i, 1)] - mean[1])).sum::<f64>() / 50.0;
        assert!((m.means()[(0, 1)] - mean[1]).abs() < 1e-12);
        match m.covariances() {
            Covariances::Full(c) => assert!((c[0][(0, 1)] - cov01).abs() < 1e-10),
            other => panic!("{other:?}"),
        }
        // The log density integrates the same Gaussian: compare with the closed form at the mean.
        let c = m.covariances().dense(0, 2);
        let det = c[(0, 0)] * c[(1, 1)] - c[(0, 1)] * c[(1, 0)];
        let at_mean = Matrix::from_fn(1, 2, |_, j| mean[j]);
        let want = -LN_2PI - 0.5 * det.ln();
        assert!((m.score_samples(&at_mean).unwrap()[0] - want).abs() < 1e-9);
        assert!(m.converged());
    }

    #[test]
    fn separates_two_clusters_with_every_covariance_type() {
        let mut rng = SplitMix64(11);
        let x = Matrix::from_fn(40, 2, |i, _| if i < 20 { 0.0 } else { 8.0 } + rng.normal());
        for ct in TYPES {
            for init in [GmmInit::KMeans, GmmInit::KMeansPlusPlus, GmmInit::Random] {
                let cfg = GaussianMixtureConfig { init, n_init: 2, ..GaussianMixtureConfig::new(2, ct) };
                let m = cfg.fit(&x).unwrap();
                let l = m.predict(&x).unwrap();
                // Random responsibilities start near the symmetric saddle, from which EM may settle
                // in another local optimum (overlapping components): only the seeded
                // initialisations are required to find the two groups.
                if init != GmmInit::Random {
                    let (a, b) = (&l[..20], &l[20..]);
                    assert!(a.iter().all(|&v| v == l[0]) && b.iter().all(|&v| v == l[20]), "{ct:?} {init:?}: {l:?}");
                    assert_ne!(l[0], l[20]);
                }
                let p = m.predict_proba(&x).unwrap();
                assert!(((0..2).map(|c| p[(3, c)]).sum::<f64>() - 1.0).abs() < 1e-12);
                assert!((m.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
                let s = m.score(&x).unwrap();
                assert!((m.bic(&x).unwrap() - (-80.0 * s + m.n_parameters() as f64 * 40f64.ln())).abs() < 1e-9);
                assert!(m.aic(&x).unwrap() < m.bic(&x).unwrap());
            }
        }
    }

    #[test]
    fn samples_follow_the_mixture() {
        let x = Matrix::from_fn(60, 2, |i, j| if i < 30 { -5.0 } else { 5.0 } + ((i * 7 + j) % 6) as f64 * 0.2);
        let m = GaussianMixtureConfig::new(2, CovarianceType::Full).fit(&x).unwrap();
        let (s, comps) = m.sample(4000, 3).unwrap();
        assert!(comps.windows(2).all(|w| w[0] <= w[1]));
        for c in 0..2 {
            let rows: Vec<usize> = (0..4000).filter(|&i| comps[i] == c).collect();
            let share = rows.len() as f64 / 4000.0;
            assert!((share - m.weights()[c]).abs() < 0.05, "{share} vs {}", m.weights()[c]);
            let mean0 = rows.iter().map(|&i| s[(i, 0)]).sum::<f64>() / rows.len() as f64;
            assert!((mean0 - m.means()[(c, 0)]).abs() < 0.05, "{mean0} vs {}", m.means()[(c, 0)]);
        }
        assert_eq!(m.sample(10, 3).unwrap(), m.sample(10, 3).unwrap());
    }
}
