//! k-means clustering: k-means++ seeding and Lloyd's iterations (scikit-learn's
//! `KMeans(algorithm="lloyd")`).
//!
//! Lloyd's algorithm alternates two steps until the centres stop moving: assign every sample to
//! its nearest centre, then move every centre to the mean of its samples. Each run only finds a
//! local minimum of the inertia (the sum of squared distances of the samples to their centres),
//! so the fit restarts `n_init` times from different seeds and keeps the best run.
//!
//! ```
//! use jizen_ml::{matrix_from_rows, KMeansConfig};
//! let x = matrix_from_rows(4, 1, &[0.0, 0.2, 9.8, 10.0]).unwrap();
//! let km = KMeansConfig { n_init: 3, ..KMeansConfig::new(2) }.fit(&x).unwrap();
//! let l = km.labels();
//! assert!(l[0] == l[1] && l[2] == l[3] && l[0] != l[2]);
//! assert!((km.inertia() - 0.04).abs() < 1e-12);
//! ```

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{check_features, check_n_features, sq_dist, to_row_major, Matrix};
use crate::error::{MlError, Result};
use crate::persist::{check_below, Persist, SavedState};
use crate::split::SplitMix64;

/// How the first centres of a run are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KMeansInit {
    /// k-means++ (Arthur & Vassilvitskii, 2007), greedy variant: each new centre is the best, by
    /// the resulting inertia, of `2 + ln k` candidates drawn with probability proportional to
    /// their squared distance to the nearest centre so far.
    #[default]
    KMeansPlusPlus,
    /// `k` distinct samples drawn uniformly.
    Random,
}

/// Configuration of a [`KMeans`] fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KMeansConfig {
    /// The number of clusters (at least 1, at most the number of samples).
    pub n_clusters: usize,
    /// How each run is seeded.
    pub init: KMeansInit,
    /// Runs from different seeds; the one of lowest inertia is kept.
    pub n_init: usize,
    /// The most Lloyd iterations per run.
    pub max_iter: usize,
    /// A run stops when the summed squared shift of the centres is at most
    /// `tol * mean feature variance` (scikit-learn's scaling of `tol`), or when no label changes.
    pub tol: f64,
    /// Seed of the initialisations; run `r` uses a stream derived from `seed` and `r`.
    pub seed: u64,
}

impl Default for KMeansConfig {
    /// scikit-learn's defaults for 8 clusters: k-means++, one run (`n_init="auto"` with
    /// k-means++), 300 iterations, `tol = 1e-4`; seed 0.
    fn default() -> Self {
        KMeansConfig { n_clusters: 8, init: KMeansInit::KMeansPlusPlus, n_init: 1, max_iter: 300, tol: 1e-4, seed: 0 }
    }
}

/// A fitted k-means model: the centres and what the training run reached.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// `[n_clusters, n_features]`.
    centres: Matrix,
    labels: Vec<usize>,
    inertia: f64,
    n_iter: usize,
    converged: bool,
}

/// Squared Euclidean norm of every row of `x`.
pub(crate) fn row_sq_norms(x: &Matrix) -> Vec<f64> {
    let mut out = vec![0.0; x.nrows()];
    for j in 0..x.ncols() {
        for (o, v) in out.iter_mut().zip(x.col(j).iter()) {
            *o += v * v;
        }
    }
    out
}

/// `x` copied in row-major order.
fn row_major(x: &Matrix) -> Vec<f64> {
    let mut rows = vec![0.0; x.nrows() * x.ncols()];
    to_row_major(x.as_ref(), &mut rows);
    rows
}

/// Squared distances between the rows of `x` and the rows of `c`, `[n, k]`, by
/// `|a|² + |b|² − 2 a·b` with one matrix product, clamped at 0 against rounding.
pub(crate) fn sq_distances(x: &Matrix, x_sq: &[f64], c: &Matrix) -> Matrix {
    let c_sq = row_sq_norms(c);
    let mut d = x * c.transpose(); // [n, k]
    for (k, &cs) in c_sq.iter().enumerate() {
        for (v, &xs) in d.col_mut(k).iter_mut().zip(x_sq) {
            *v = (xs + cs - 2.0 * *v).max(0.0);
        }
    }
    d
}

/// The exact squared distance between row `i` of `x` and row `k` of `c` (no cancellation).
fn exact_sq(x: &Matrix, i: usize, c: &Matrix, k: usize) -> f64 {
    (0..x.ncols()).map(|j| (x[(i, j)] - c[(k, j)]).powi(2)).sum()
}

/// The sum of squared distances of the samples to their assigned centres, computed directly.
fn inertia_of(x: &Matrix, c: &Matrix, labels: &[usize]) -> f64 {
    labels.iter().enumerate().map(|(i, &k)| exact_sq(x, i, c, k)).sum()
}

/// Assigns every row of `x` (a block of samples) to its nearest centre, the first on ties,
/// writing `labels`; `centres_t` is `[d, k]` (the centres as columns), `c_sq` their squared
/// norms and `dots` room for `[rows, k]` products; `par` is the product's parallelism. Returns
/// whether any label changed.
///
/// `|x − c|² = |x|² + (|c|² − 2 x·c)`: the sample's own norm is the same for every centre, so
/// the bracket alone ranks the centres, from one matrix product.
fn assign_block(
    x: MatRef<'_, f64>,
    centres_t: MatRef<'_, f64>,
    c_sq: &[f64],
    dots: &mut [f64],
    labels: &mut [usize],
    par: Par,
) -> bool {
    let k = c_sq.len();
    let dots = &mut dots[..x.nrows() * k];
    matmul(MatMut::from_row_major_slice_mut(dots, x.nrows(), k), Accum::Replace, x, centres_t, 1.0, par);
    let mut changed = false;
    for (label, row) in labels.iter_mut().zip(dots.chunks_exact(k)) {
        let mut best = 0;
        let mut best_key = c_sq[0] - 2.0 * row[0];
        for (c, (&cs, &dot)) in c_sq.iter().zip(row).enumerate().skip(1) {
            let key = cs - 2.0 * dot;
            if key < best_key {
                (best, best_key) = (c, key);
            }
        }
        changed |= *label != best;
        *label = best;
    }
    changed
}

/// The population variance of every column of `x`, averaged: the scale of `tol`.
fn mean_variance(x: &Matrix) -> f64 {
    let n = x.nrows() as f64;
    let total: f64 = (0..x.ncols())
        .map(|j| {
            let m = x.col(j).iter().sum::<f64>() / n;
            x.col(j).iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n
        })
        .sum();
    total / x.ncols() as f64
}

/// Greedy k-means++ seeding: the indices of the `k` training rows chosen as centres.
pub(crate) fn kmeans_plus_plus(x: &Matrix, x_sq: &[f64], k: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let n = x.nrows();
    let n_trials = 2 + (k as f64).ln().floor() as usize;
    let mut chosen = vec![rng.below(n)];
    let row = |i: usize| Matrix::from_fn(1, x.ncols(), |_, j| x[(i, j)]);
    let mut closest: Vec<f64> = sq_distances(x, x_sq, &row(chosen[0])).col(0).iter().copied().collect();
    while chosen.len() < k {
        let pot: f64 = closest.iter().sum();
        // Candidates drawn with probability proportional to `closest` by inverting its running sum.
        let mut cumsum = Vec::with_capacity(n);
        let mut acc = 0.0;
        for &v in &closest {
            acc += v;
            cumsum.push(acc);
        }
        let candidates: Vec<usize> = (0..n_trials)
            .map(|_| {
                let r = rng.uniform() * pot;
                cumsum.partition_point(|&c| c <= r).min(n - 1)
            })
            .collect();
        let cand = Matrix::from_fn(n_trials, x.ncols(), |t, j| x[(candidates[t], j)]);
        let d2 = sq_distances(x, x_sq, &cand); // [n, n_trials]
        let mut best: Option<(f64, usize)> = None;
        for t in 0..n_trials {
            let p: f64 = (0..n).map(|i| closest[i].min(d2[(i, t)])).sum();
            if best.is_none_or(|(bp, _)| p < bp) {
                best = Some((p, t));
            }
        }
        let t = best.expect("at least two trials").1;
        for (i, c) in closest.iter_mut().enumerate() {
            *c = c.min(d2[(i, t)]);
        }
        chosen.push(candidates[t]);
    }
    chosen
}

/// The indices of `k` distinct rows of `x`, uniformly (a partial Fisher–Yates shuffle).
fn random_rows(x: &Matrix, k: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let n = x.nrows();
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

/// Lloyd's steps split the samples into parts of at least this many values (`rows × features`),
/// and into at most [`MAX_PARTS`] parts.
const PART_MIN_VALUES: usize = 1 << 15;

/// The most parts of a Lloyd step. The split depends on the data's shape only, never on the
/// number of threads, and the parts' sums are added in order, so the fit is the same on any
/// number of threads.
const MAX_PARTS: usize = 16;

/// Values per chunk of a part (256 KiB of samples): a chunk stays in cache from the product
/// that assigns its rows to the sums they are added to.
const CHUNK_VALUES: usize = 1 << 15;

/// One part's share of a Lloyd step, kept from step to step so that steps do not allocate.
struct Part {
    /// Per cluster, the sum of the part's samples assigned to it, row-major `[k, d]`.
    sums: Vec<f64>,
    /// Per cluster, how many of the part's samples are assigned to it.
    counts: Vec<usize>,
    /// The products of a chunk's rows with the centres, `[chunk rows, k]`.
    dots: Vec<f64>,
}

/// The assignment and update of Lloyd's iterations, over row-major samples.
struct LloydStep<'a> {
    /// The samples, row-major `[n, d]`.
    x: &'a [f64],
    d: usize,
    rows_per_part: usize,
    parts: Vec<Part>,
    /// The centres' squared norms.
    c_sq: Vec<f64>,
}

impl<'a> LloydStep<'a> {
    fn new(x: &'a [f64], d: usize, k: usize) -> Self {
        let n = x.len() / d;
        let n_parts = (n * d / PART_MIN_VALUES).clamp(1, MAX_PARTS);
        let rows_per_part = n.div_ceil(n_parts);
        let chunk_rows = (CHUNK_VALUES / d).clamp(1, rows_per_part);
        let part = || Part { sums: vec![0.0; k * d], counts: vec![0; k], dots: vec![0.0; chunk_rows * k] };
        LloydStep {
            x,
            d,
            rows_per_part,
            parts: (0..n.div_ceil(rows_per_part)).map(|_| part()).collect(),
            c_sq: vec![0.0; k],
        }
    }

    /// Assigns every sample to its nearest centre (`centres` row-major `[k, d]`), writing
    /// `labels`, and sums the samples of every cluster into `sums` (`[k, d]`) and `counts`.
    /// Returns whether any label changed.
    ///
    /// Both halves of the step read a sample while it is in cache: the samples are read from
    /// memory once per iteration.
    fn run(&mut self, centres: &[f64], labels: &mut [usize], sums: &mut [f64], counts: &mut [usize]) -> bool {
        let d = self.d;
        for (cs, c) in self.c_sq.iter_mut().zip(centres.chunks_exact(d)) {
            *cs = c.iter().map(|v| v * v).sum();
        }
        // The row-major centres, read column-major, are their transpose: `[d, k]`.
        let centres_t = MatRef::from_column_major_slice(centres, d, self.c_sq.len());
        let c_sq = &self.c_sq;
        let part_step = |(part, (x, labels)): (&mut Part, (&[f64], &mut [usize]))| {
            part.sums.fill(0.0);
            part.counts.fill(0);
            let chunk_rows = part.dots.len() / c_sq.len();
            let mut changed = false;
            for (x, labels) in x.chunks(chunk_rows * d).zip(labels.chunks_mut(chunk_rows)) {
                let x_mat = MatRef::from_row_major_slice(x, labels.len(), d);
                changed |= assign_block(x_mat, centres_t, c_sq, &mut part.dots, labels, Par::Seq);
                for (row, &l) in x.chunks_exact(d).zip(labels.iter()) {
                    part.counts[l] += 1;
                    part.sums[l * d..(l + 1) * d].iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
            }
            changed
        };
        let (values, rows) = (self.rows_per_part * d, self.rows_per_part);
        let changed = if self.parts.len() > 1 {
            let pieces = self.x.par_chunks(values).zip(labels.par_chunks_mut(rows));
            crate::parallel::install(|| {
                self.parts.par_iter_mut().zip(pieces).map(part_step).reduce(|| false, |a, b| a | b)
            })
        } else {
            let pieces = self.x.chunks(values).zip(labels.chunks_mut(rows));
            self.parts.iter_mut().zip(pieces).map(part_step).fold(false, |a, b| a | b)
        };
        // Added in part order, whichever thread summed each part.
        sums.fill(0.0);
        counts.fill(0);
        for part in &self.parts {
            sums.iter_mut().zip(&part.sums).for_each(|(s, p)| *s += p);
            counts.iter_mut().zip(&part.counts).for_each(|(c, p)| *c += p);
        }
        changed
    }
}

/// One Lloyd run over the row-major samples `x` (`[n, d]`) from `centres` (row-major
/// `[k, d]`): returns the fitted model.
fn lloyd(x: &[f64], d: usize, mut centres: Vec<f64>, max_iter: usize, tol: f64) -> KMeans {
    let k = centres.len() / d;
    let mut step = LloydStep::new(x, d, k);
    let mut labels = vec![0; x.len() / d];
    let (mut sums, mut counts) = (vec![0.0; k * d], vec![0; k]);
    step.run(&centres, &mut labels, &mut sums, &mut counts);
    let mut n_iter = 0;
    let mut converged = false;
    while n_iter < max_iter {
        n_iter += 1;
        // Update: every centre moves to the mean of its samples.
        relocate_empty(x, &centres, &labels, &mut sums, &mut counts);
        let mut shift = 0.0;
        for ((centre, sum), &count) in centres.chunks_exact_mut(d).zip(sums.chunks_exact(d)).zip(&counts) {
            for (c, s) in centre.iter_mut().zip(sum) {
                let new = s / count as f64;
                shift += (new - *c).powi(2);
                *c = new;
            }
        }
        // Assignment with the moved centres (and the sums of the next update). The labels always
        // belong to the centres returned: they are recomputed after every move.
        if !step.run(&centres, &mut labels, &mut sums, &mut counts) || shift <= tol {
            converged = true;
            break;
        }
    }
    let inertia = x.chunks_exact(d).zip(&labels).map(|(row, &l)| sq_dist(row, &centres[l * d..(l + 1) * d])).sum();
    let centres = MatRef::from_row_major_slice(&centres, k, d).to_owned();
    KMeans { centres, labels, inertia, n_iter, converged }
}

/// Gives every empty cluster a sample of its own: the samples farthest from their current centre
/// (largest first, each used once) are moved to the empty clusters, as in scikit-learn. `x` is
/// row-major `[n, d]`, `centres` and `sums` `[k, d]`.
fn relocate_empty(x: &[f64], centres: &[f64], labels: &[usize], sums: &mut [f64], counts: &mut [usize]) {
    let empty: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] == 0).collect();
    if empty.is_empty() {
        return;
    }
    let d = centres.len() / counts.len();
    let centre = |c: usize| &centres[c * d..(c + 1) * d];
    let rows: Vec<&[f64]> = x.chunks_exact(d).collect();
    let mut far: Vec<(f64, usize)> =
        rows.iter().zip(labels).map(|(row, &l)| sq_dist(row, centre(l))).zip(0..).collect();
    far.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (&c, &(_, i)) in empty.iter().zip(&far) {
        let old = labels[i];
        if counts[old] <= 1 {
            continue; // would empty another cluster; leave this one as it is
        }
        counts[old] -= 1;
        counts[c] += 1;
        for (j, v) in rows[i].iter().enumerate() {
            sums[old * d + j] -= v;
            sums[c * d + j] += v;
        }
    }
    // A cluster still empty (more empty clusters than samples that can move) keeps its centre.
    for c in 0..counts.len() {
        if counts[c] == 0 {
            counts[c] = 1;
            sums[c * d..(c + 1) * d].copy_from_slice(centre(c));
        }
    }
}

/// The model, or an error when squared distances overflowed (values near `f64::MAX`).
fn finite(what: &'static str, model: KMeans) -> Result<KMeans> {
    if model.inertia.is_finite()
        && (0..model.centres.ncols()).all(|j| model.centres.col(j).iter().all(|v| v.is_finite()))
    {
        Ok(model)
    } else {
        Err(MlError::Numerical { what, detail: "squared distances overflow f64; rescale the data first".into() })
    }
}

impl KMeansConfig {
    /// A default configuration with `n_clusters` clusters.
    pub fn new(n_clusters: usize) -> Self {
        KMeansConfig { n_clusters, ..Default::default() }
    }

    fn validate(&self, what: &'static str, x: &Matrix) -> Result<()> {
        check_features(what, x)?;
        let bad = |detail: String| Err(MlError::InvalidParameter { what, detail });
        if self.n_clusters == 0 {
            return bad("n_clusters must be at least 1".into());
        }
        if self.n_clusters > x.nrows() {
            return Err(MlError::TooFew {
                what,
                param: "n_clusters",
                requested: self.n_clusters,
                available: x.nrows(),
                unit: "samples",
            });
        }
        if self.n_init == 0 || self.max_iter == 0 {
            return bad(format!("n_init ({}) and max_iter ({}) must be at least 1", self.n_init, self.max_iter));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return bad(format!("tol must be non-negative and finite, got {}", self.tol));
        }
        Ok(())
    }

    /// Runs `n_init` seeded initialisations followed by Lloyd's iterations and keeps the run of
    /// lowest inertia (the first one on ties). Errors on non-finite or empty input, `n_clusters`
    /// of 0 or above the number of samples, and invalid settings. Stopping at `max_iter` is not
    /// an error: [`KMeans::converged`] reports it.
    pub fn fit(&self, x: &Matrix) -> Result<KMeans> {
        const WHAT: &str = "KMeansConfig::fit";
        self.validate(WHAT, x)?;
        let x_sq = row_sq_norms(x);
        let tol = self.tol * mean_variance(x);
        let (rows, d) = (row_major(x), x.ncols());
        let mut best: Option<KMeans> = None;
        for run in 0..self.n_init {
            let mut rng = SplitMix64(self.seed ^ (run as u64).wrapping_mul(0xA076_1D64_78BD_642F));
            let chosen = match self.init {
                KMeansInit::KMeansPlusPlus => kmeans_plus_plus(x, &x_sq, self.n_clusters, &mut rng),
                KMeansInit::Random => random_rows(x, self.n_clusters, &mut rng),
            };
            let init = chosen.iter().flat_map(|&i| &rows[i * d..(i + 1) * d]).copied().collect();
            let model = lloyd(&rows, d, init, self.max_iter, tol);
            if best.as_ref().is_none_or(|b| model.inertia < b.inertia) {
                best = Some(model);
            }
        }
        finite(WHAT, best.expect("n_init >= 1"))
    }

    /// One Lloyd run from the given initial centres, `[n_clusters, n_features]` (scikit-learn's
    /// `KMeans(init=centres, n_init=1)`); `init` and `n_init` are ignored.
    pub fn fit_from(&self, x: &Matrix, centres: &Matrix) -> Result<KMeans> {
        const WHAT: &str = "KMeansConfig::fit_from";
        self.validate(WHAT, x)?;
        check_features(WHAT, centres)?;
        if centres.nrows() != self.n_clusters || centres.ncols() != x.ncols() {
            return Err(MlError::ShapeMismatch {
                what: WHAT,
                detail: format!(
                    "initial centres are {} x {} but n_clusters is {} and x has {} features",
                    centres.nrows(),
                    centres.ncols(),
                    self.n_clusters,
                    x.ncols()
                ),
            });
        }
        let tol = self.tol * mean_variance(x);
        finite(WHAT, lloyd(&row_major(x), x.ncols(), row_major(centres), self.max_iter, tol))
    }
}

impl KMeans {
    /// The cluster centres, `[n_clusters, n_features]`.
    pub fn centres(&self) -> &Matrix {
        &self.centres
    }

    /// The cluster of every training sample (of the kept run).
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The sum of squared distances of the training samples to their centres.
    pub fn inertia(&self) -> f64 {
        self.inertia
    }

    /// Lloyd iterations (centre updates) of the kept run. scikit-learn counts one more when a
    /// run ends because no label changed: it notices that one iteration later.
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Whether the kept run met its tolerance (or stopped changing labels) before `max_iter`.
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// The Euclidean distance of every row of `x` to every centre, `[n, n_clusters]`.
    pub fn transform(&self, x: &Matrix) -> Result<Matrix> {
        check_n_features("KMeans::transform", x, self.centres.ncols())?;
        let mut d = sq_distances(x, &row_sq_norms(x), &self.centres);
        for k in 0..d.ncols() {
            d.col_mut(k).iter_mut().for_each(|v| *v = v.sqrt());
        }
        Ok(d)
    }

    /// The nearest centre of every row of `x` (the smallest index on ties).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<usize>> {
        check_n_features("KMeans::predict", x, self.centres.ncols())?;
        let k = self.centres.nrows();
        let (mut labels, mut dots) = (vec![0; x.nrows()], vec![0.0; x.nrows() * k]);
        let par = faer::get_global_parallelism();
        assign_block(x.as_ref(), self.centres.transpose(), &row_sq_norms(&self.centres), &mut dots, &mut labels, par);
        Ok(labels)
    }

    /// Minus the inertia of `x` with respect to the centres (larger is better, as
    /// scikit-learn's `score`).
    pub fn score(&self, x: &Matrix) -> Result<f64> {
        let labels = self.predict(x)?;
        Ok(-inertia_of(x, &self.centres, &labels))
    }
}

impl Persist for KMeans {
    const KIND: &'static str = "KMeans";

    fn to_state(&self) -> SavedState {
        let mut s = SavedState::new();
        s.put_matrix("centres", &self.centres);
        s.put_vector("inertia", &[self.inertia]);
        s.put("labels", &self.labels);
        s.put("n_iter", &self.n_iter);
        s.put("converged", &self.converged);
        s
    }

    fn from_state(s: &SavedState) -> std::result::Result<Self, String> {
        let centres = s.matrix("centres")?;
        if centres.nrows() == 0 || centres.ncols() == 0 {
            return Err(format!("centres are [{}, {}]", centres.nrows(), centres.ncols()));
        }
        let labels: Vec<usize> = s.get("labels")?;
        check_below("labels", &labels, centres.nrows())?;
        Ok(KMeans {
            inertia: s.vector_of("inertia", 1)?[0],
            n_iter: s.get("n_iter")?,
            converged: s.get("converged")?,
            centres,
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tight groups of four points around (0, 0), (10, 0) and (0, 10).
    fn blobs() -> Matrix {
        let offs = [(0.1, 0.0), (-0.1, 0.1), (0.0, -0.1), (0.05, 0.05)];
        let centres = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)];
        Matrix::from_fn(12, 2, |i, j| {
            let (c, o) = (centres[i / 4], offs[i % 4]);
            if j == 0 {
                c.0 + o.0
            } else {
                c.1 + o.1
            }
        })
    }

    #[test]
    fn finds_well_separated_groups() {
        let x = blobs();
        let m = KMeansConfig { n_init: 3, ..KMeansConfig::new(3) }.fit(&x).unwrap();
        assert!(m.converged());
        let l = m.labels();
        for g in 0..3 {
            assert!(l[4 * g..4 * g + 4].iter().all(|&v| v == l[4 * g]), "{l:?}");
        }
        assert!(l[0] != l[4] && l[4] != l[8] && l[0] != l[8]);
        let direct: f64 = (0..12).map(|i| exact_sq(&x, i, m.centres(), l[i])).sum();
        assert!((m.inertia() - direct).abs() < 1e-12);
        assert_eq!(m.predict(&x).unwrap(), l);
        let d = m.transform(&x).unwrap();
        assert!((d[(0, l[0])] - exact_sq(&x, 0, m.centres(), l[0]).sqrt()).abs() < 1e-9);
        assert!((m.score(&x).unwrap() + m.inertia()).abs() < 1e-12);
    }

    #[test]
    fn more_restarts_never_increase_the_inertia() {
        let x = Matrix::from_fn(40, 2, |i, j| ((i * 37 + j * 11) % 17) as f64);
        let one = KMeansConfig { n_init: 1, seed: 5, ..KMeansConfig::new(4) }.fit(&x).unwrap();
        let many = KMeansConfig { n_init: 6, seed: 5, ..KMeansConfig::new(4) }.fit(&x).unwrap();
        assert!(many.inertia() <= one.inertia() + 1e-12);
        let random = KMeansConfig { init: KMeansInit::Random, ..KMeansConfig::new(4) }.fit(&x).unwrap();
        assert!(random.inertia().is_finite() && random.centres().nrows() == 4);
    }

    #[test]
    fn empty_clusters_are_refilled() {
        // Two identical initial centres: the second gets no sample and must be relocated.
        let x = blobs();
        let init = Matrix::from_fn(3, 2, |_, _| 0.0);
        let m = KMeansConfig::new(3).fit_from(&x, &init).unwrap();
        let mut seen = m.labels().to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, vec![0, 1, 2]);
    }
}
