//! k-nearest neighbours: classification and regression (scikit-learn's
//! `KNeighborsClassifier` and `KNeighborsRegressor`, Euclidean metric), by brute force or with a
//! k-d tree.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{check_features, check_labels, check_n_features, encode_classes, sq_dist, to_row_major, Matrix};
use crate::error::{MlError, Result};
use crate::kdtree::KdTree;
use crate::metrics::accuracy;
use crate::persist::{check_below, check_classes, Persist, SavedState};

/// How the k neighbours' votes (or targets) are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KnnWeights {
    /// Every neighbour has one vote.
    #[default]
    Uniform,
    /// A neighbour's vote is `1 / distance`; when some neighbours coincide with the query
    /// (distance 0), only they vote, with equal weight (scikit-learn's rule).
    Distance,
}

/// How neighbours are searched. Every choice returns the same neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KnnAlgorithm {
    /// A k-d tree for at most [`KD_TREE_MAX_FEATURES`] features when `k` is below half the
    /// training set (where pruning pays), brute force otherwise.
    #[default]
    Auto,
    /// Distances to every training row, by one matrix product per block of queries.
    Brute,
    /// A [`KdTree`] built at fit time.
    KdTree,
}

/// The most features for which [`KnnAlgorithm::Auto`] builds a k-d tree (scikit-learn's rule):
/// beyond that, boxes rarely prune and brute force is faster.
pub const KD_TREE_MAX_FEATURES: usize = 15;

/// Configuration of a k-nearest-neighbour classifier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KnnConfig {
    /// How many neighbours vote (at least 1, at most the number of training samples).
    pub k: usize,
    /// How the votes are weighted.
    pub weights: KnnWeights,
    /// How neighbours are searched.
    pub algorithm: KnnAlgorithm,
}

/// Configuration of a k-nearest-neighbour regressor (the prediction is the, possibly
/// distance-weighted, mean of the neighbours' targets).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KnnRegressorConfig {
    /// How many neighbours are averaged (at least 1, at most the number of training samples).
    pub k: usize,
    /// How the targets are weighted.
    pub weights: KnnWeights,
    /// How neighbours are searched.
    pub algorithm: KnnAlgorithm,
}

/// The training rows and the search structure shared by the classifier and the regressor.
#[derive(Debug, Clone, PartialEq)]
struct NeighbourIndex {
    k: usize,
    n_features: usize,
    /// The training rows, row-major `[n_train, n_features]`: an exact distance reads one
    /// contiguous row, and the brute-force product reads them as a row-major matrix.
    rows: Vec<f64>,
    /// Squared norm of every training row, for the brute-force matrix-product distances.
    x_sq: Vec<f64>,
    /// The training rows in f32, for brute force when every value is within [`F32_RANGE`] and
    /// the f32 rounding bound is below [`F32_MAX_SLACK`]: the product then runs at twice the
    /// f64 rate, and the exact re-ranking keeps the answer identical.
    rows32: Option<Vec<f32>>,
    tree: Option<KdTree>,
}

/// Magnitudes within which every nonzero value of the f32 shortlist's operands must lie: their
/// products (at least 1e-30, at most 1e30) and the sums of `d` of them stay normal f32 numbers,
/// so the rounding bound of [`NeighbourIndex::nearest`] holds.
const F32_RANGE: (f64, f64) = (1e-15, 1e15);

/// The largest relative slack `4 (d + 2) ε` (see [`slack_factor`]) for which the f32 shortlist
/// is used; beyond it (more than about 20,000 features) the shortlist would hold too many candidates to pay.
const F32_MAX_SLACK: f64 = 1e-2;

/// Whether `v` converts to f32 and multiplies within [`F32_RANGE`].
fn f32_safe(v: f64) -> bool {
    let a = v.abs();
    a == 0.0 || (F32_RANGE.0..=F32_RANGE.1).contains(&a)
}

/// The rounding slack factor `8 (d + 2) u = 4 (d + 2) ε` of keys from `d`-term dot products in
/// a precision with machine epsilon `eps` (see [`NeighbourIndex::nearest`]).
fn slack_factor(d: usize, eps: f64) -> f64 {
    4.0 * (d as f64 + 2.0) * eps
}

/// Queries are spread over threads in runs of at least this many queries.
const PAR_MIN_QUERIES: usize = 16;

/// k-d tree queries run in parallel only when `queries × training rows × features` reaches this.
const PAR_MIN_WORK: usize = 1 << 20;

/// A brute-force block's shortlists are built in parallel only when `queries × training rows`
/// (the keys scanned) reaches this: each key costs a few instructions.
const PAR_MIN_KEYS: usize = 1 << 16;

/// Queries per brute-force block: one matrix product makes the block's `[n_train, BLOCK]` dot
/// products, which are then scanned one contiguous column per query. Large enough that the
/// product is not bound by reading the training rows (once per block), small enough that the
/// block stays in the last-level cache between the product and the scan.
const BLOCK: usize = 256;

/// Validates `k` and builds the search structure over `x`, already checked by
/// [`check_features`].
fn index(what: &'static str, x: &Matrix, k: usize, algorithm: KnnAlgorithm) -> Result<NeighbourIndex> {
    if k == 0 {
        return Err(MlError::InvalidParameter { what, detail: "k must be at least 1".into() });
    }
    if k > x.nrows() {
        return Err(MlError::TooFew { what, param: "k", requested: k, available: x.nrows(), unit: "samples" });
    }
    let use_tree = match algorithm {
        KnnAlgorithm::Brute => false,
        KnnAlgorithm::KdTree => true,
        KnnAlgorithm::Auto => x.ncols() <= KD_TREE_MAX_FEATURES && 2 * k < x.nrows(),
    };
    let (n, d) = (x.nrows(), x.ncols());
    let want32 = !use_tree && slack_factor(d, f64::from(f32::EPSILON)) <= F32_MAX_SLACK;
    let (mut rows, mut x_sq) = (vec![0.0; n * d], vec![0.0; n]);
    let mut rows32 = vec![0.0f32; if want32 { n * d } else { 0 }];
    // Blocks of rows in parallel: each is transposed from the column-major input, squared and
    // (for brute force) rounded to f32, in one pass while it is in cache.
    const ROWS: usize = 64;
    let one_block = |b: usize, block: &mut [f64], sq: &mut [f64], block32: &mut [f32]| -> bool {
        let rows = sq.len();
        to_row_major(x.subrows(b * ROWS, rows), block);
        for (s, r) in sq.iter_mut().zip(block.chunks_exact(d)) {
            *s = r.iter().map(|v| v * v).sum();
        }
        block32.iter_mut().zip(block.iter()).for_each(|(o, &v)| *o = v as f32);
        block32.is_empty() || block.iter().all(|&v| f32_safe(v))
    };
    // `reduce`, not `all`: every block must be written, so nothing may stop early.
    let blocks = rows.par_chunks_mut(ROWS * d).zip(x_sq.par_chunks_mut(ROWS)).enumerate();
    let and = |a: bool, b: bool| a && b;
    let in_range = if n * d >= PAR_MIN_WORK {
        crate::parallel::install(|| {
            if want32 {
                let with32 = blocks.zip(rows32.par_chunks_mut(ROWS * d));
                with32.map(|((b, (r, q)), r32)| one_block(b, r, q, r32)).reduce(|| true, and)
            } else {
                blocks.map(|(b, (r, q))| one_block(b, r, q, &mut [])).reduce(|| true, and)
            }
        })
    } else {
        let mut ok = true;
        for (b, (r, q)) in rows.chunks_mut(ROWS * d).zip(x_sq.chunks_mut(ROWS)).enumerate() {
            let r32 = if want32 { &mut rows32[b * ROWS * d..b * ROWS * d + r.len()] } else { &mut [][..] };
            ok &= one_block(b, r, q, r32);
        }
        ok
    };
    let rows32 = (want32 && in_range).then_some(rows32);
    Ok(NeighbourIndex { k, n_features: d, rows, x_sq, rows32, tree: use_tree.then(|| KdTree::build(x)) })
}

/// Products with fewer multiply-adds than this run on one thread.
const PAR_MIN_PRODUCT: usize = 1 << 20;

/// `dst = lhs × rhs`, with the rows of `dst` and `lhs` split between the threads, each part a
/// one-threaded product (faer would keep a product of digits' size on one thread).
fn split_product<T: faer::traits::ComplexField>(dst: MatMut<'_, T>, lhs: MatRef<'_, T>, rhs: MatRef<'_, T>) {
    fn go<T: faer::traits::ComplexField>(dst: MatMut<'_, T>, lhs: MatRef<'_, T>, rhs: MatRef<'_, T>, parts: usize) {
        let m = dst.nrows();
        if parts <= 1 || m < 64 {
            return matmul(dst, Accum::Replace, lhs, rhs, T::one_impl(), faer::Par::Seq);
        }
        // Halves at a multiple of 16 rows, a whole number of SIMD registers.
        let mid = (m / 2).next_multiple_of(16).min(m);
        let ((top, bottom), (l_top, l_bottom)) = (dst.split_at_row_mut(mid), lhs.split_at_row(mid));
        rayon::join(|| go(top, l_top, rhs, parts / 2), || go(bottom, l_bottom, rhs, parts - parts / 2));
    }
    let parts =
        if dst.nrows() * dst.ncols() * lhs.ncols() >= PAR_MIN_PRODUCT { crate::parallel::num_threads() } else { 1 };
    crate::parallel::install(|| go(dst, lhs, rhs, parts));
}

/// Keys per run in the scans of [`kth_smallest`] and [`NeighbourIndex::nearest`].
const RUN: usize = 16;

/// The smallest of `run`, NaN ignored (infinity when all are NaN, so never NaN itself). Eight independent lanes of
/// selects, which vectorise (one running minimum would be a serial chain).
#[inline]
fn run_min(run: &[f64]) -> f64 {
    let pick = |m: f64, v: f64| if v < m { v } else { m };
    let mut lanes = [f64::INFINITY; 8];
    let mut groups = run.chunks_exact(8);
    for g in &mut groups {
        for (m, &v) in lanes.iter_mut().zip(g) {
            *m = pick(*m, v);
        }
    }
    groups.remainder().iter().chain(&lanes).fold(f64::INFINITY, |m, &v| pick(m, v))
}

/// The `k`-th smallest of `keys` (`k` ≥ 1), or infinity when fewer than `k` are below infinity
/// (NaN never counts), by one pass that keeps the `k` smallest so far in a max-heap.
fn kth_smallest(keys: &[f64], k: usize) -> f64 {
    /// A key ordered by `total_cmp`, which `BinaryHeap` needs.
    struct Key(f64);
    impl PartialEq for Key {
        fn eq(&self, other: &Self) -> bool {
            self.0.total_cmp(&other.0).is_eq()
        }
    }
    impl Eq for Key {}
    impl PartialOrd for Key {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Key {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&other.0)
        }
    }
    let mut heap = std::collections::BinaryHeap::with_capacity(k + 1);
    // The heap's top once it holds k keys: only a smaller key changes it, which is rare once the
    // heap holds near neighbours. A run of keys whose minimum is not below it is skipped whole,
    // so most keys cost one vectorised comparison.
    let mut worst = f64::INFINITY;
    for run in keys.chunks(RUN) {
        if run_min(run) >= worst {
            continue;
        }
        for &key in run {
            if key < worst {
                heap.push(Key(key));
                if heap.len() > k {
                    heap.pop();
                }
                if heap.len() == k {
                    worst = heap.peek().expect("k >= 1").0;
                }
            }
        }
    }
    worst
}

impl NeighbourIndex {
    fn n_train(&self) -> usize {
        self.x_sq.len()
    }

    /// Training row `t`.
    fn row(&self, t: usize) -> &[f64] {
        &self.rows[t * self.n_features..(t + 1) * self.n_features]
    }

    /// The training rows as a matrix (what the index was built from).
    fn matrix(&self) -> Matrix {
        MatRef::from_row_major_slice(&self.rows, self.n_train(), self.n_features).to_owned()
    }

    /// See [`Knn::kneighbors`].
    fn kneighbors(&self, what: &'static str, x: &Matrix) -> Result<Vec<Vec<(usize, f64)>>> {
        check_n_features(what, x, self.n_features)?;
        let k = self.k;
        let Some(tree) = &self.tree else { return Ok(self.brute_kneighbors(x)) };
        // One row-major copy of the queries: each query then reads a contiguous row.
        let d = x.ncols();
        let mut rows = vec![0.0; x.nrows() * d];
        to_row_major(x.as_ref(), &mut rows);
        let one = |q: &[f64]| tree.query(q, k).into_iter().map(|(t, d2)| (t, d2.sqrt())).collect::<Vec<_>>();
        // Queries are independent and each is answered the same way on any thread, so the
        // parallel results equal the serial ones; small batches stay on this thread.
        if x.nrows() >= 2 * PAR_MIN_QUERIES && x.nrows() * self.n_train() * d >= PAR_MIN_WORK {
            return Ok(crate::parallel::install(|| {
                rows.par_chunks_exact(d).with_min_len(PAR_MIN_QUERIES).map(one).collect()
            }));
        }
        Ok(rows.chunks_exact(d).map(one).collect())
    }

    /// Brute force: per block of queries, one matrix product gives every query's dot products
    /// with all training rows, from which each query shortlists its candidates. The product is
    /// in f32 when the index holds f32 rows and the block's values are in [`F32_RANGE`].
    fn brute_kneighbors(&self, x: &Matrix) -> Vec<Vec<(usize, f64)>> {
        let (n_train, d) = (self.n_train(), self.n_features);
        let x_sq_max = self.x_sq.iter().copied().fold(0.0, f64::max);
        let block = BLOCK.min(x.nrows());
        // Reused by every block: the block's queries, row-major, and their dot products,
        // column-major `[n_train, block]` (a query's products are one contiguous column), in f32
        // when the index has f32 rows; the f64 products (turned into keys in place) are
        // allocated only when a block needs them.
        let mut queries = vec![0.0; block * d];
        let mut dots: Vec<f64> = Vec::new();
        let len32 = |len: usize| if self.rows32.is_some() { len } else { 0 };
        let (mut queries32, mut dots32) = (vec![0.0f32; len32(block * d)], vec![0.0f32; len32(n_train * block)]);
        let mut out = Vec::with_capacity(x.nrows());
        for start in (0..x.nrows()).step_by(BLOCK) {
            let rows = BLOCK.min(x.nrows() - start);
            let q = &mut queries[..rows * d];
            to_row_major(x.subrows(start, rows), q);
            // The queries' row-major copy is, read column-major, the block transposed: [d, rows].
            let train32 = self.rows32.as_deref().filter(|_| q.iter().all(|&v| f32_safe(v)));
            if let Some(train32) = train32 {
                let (q32, g32) = (&mut queries32[..rows * d], &mut dots32[..n_train * rows]);
                q32.iter_mut().zip(q.iter()).for_each(|(o, &v)| *o = v as f32);
                let train = MatRef::from_row_major_slice(train32, n_train, d);
                let q_t = MatRef::from_column_major_slice(q32, d, rows);
                split_product(MatMut::from_column_major_slice_mut(g32, n_train, rows), train, q_t);
                let eps = f64::from(f32::EPSILON);
                // Each query's keys go to a scratch column of its thread.
                let one = |keys: &mut Vec<f64>, (q, g32): (&[f64], &[f32])| {
                    keys.clear();
                    keys.extend(g32.iter().zip(&self.x_sq).map(|(&g, s)| s - 2.0 * f64::from(g)));
                    self.nearest(q, keys, x_sq_max, eps)
                };
                let g32 = &dots32[..n_train * rows];
                // Queries are independent, so the parallel results equal the serial ones.
                if rows >= 2 * PAR_MIN_QUERIES && rows * n_train >= PAR_MIN_KEYS {
                    crate::parallel::install(|| {
                        let items = q.par_chunks_exact(d).zip(g32.par_chunks_exact(n_train));
                        let scratch = || Vec::with_capacity(n_train);
                        out.par_extend(items.with_min_len(PAR_MIN_QUERIES).map_init(scratch, one));
                    });
                } else {
                    let mut keys = Vec::with_capacity(n_train);
                    out.extend(q.chunks_exact(d).zip(g32.chunks_exact(n_train)).map(|item| one(&mut keys, item)));
                }
            } else {
                dots.resize(n_train * block, 0.0);
                let g = &mut dots[..n_train * rows];
                let train = MatRef::from_row_major_slice(&self.rows, n_train, d);
                let q_t = MatRef::from_column_major_slice(q, d, rows);
                split_product(MatMut::from_column_major_slice_mut(g, n_train, rows), train, q_t);
                let one = |(q, keys): (&[f64], &mut [f64])| {
                    keys.iter_mut().zip(&self.x_sq).for_each(|(g, s)| *g = s - 2.0 * *g);
                    self.nearest(q, keys, x_sq_max, f64::EPSILON)
                };
                if rows >= 2 * PAR_MIN_QUERIES && rows * n_train >= PAR_MIN_KEYS {
                    crate::parallel::install(|| {
                        let pairs = q.par_chunks_exact(d).zip(g.par_chunks_exact_mut(n_train));
                        out.par_extend(pairs.with_min_len(PAR_MIN_QUERIES).map(one));
                    });
                } else {
                    out.extend(q.chunks_exact(d).zip(g.chunks_exact_mut(n_train)).map(one));
                }
            }
        }
        out
    }

    /// The `k` nearest training rows of the query `q` as `(index, distance)`, given its `keys`
    /// (below) for every training row, from dot products computed in a precision with machine
    /// epsilon `eps` (unit roundoff `u = ε/2`).
    ///
    /// `|q − xₜ|² = |q|² + keyₜ` with `keyₜ = |xₜ|² − 2 q·xₜ`, so the keys rank the rows as the
    /// distances do, without the query's constant. They are fast but rounded: rounding the
    /// operands and summing `d` products in any order errs by at most `(d + 2) u Σ|qᵢ xᵢ|`
    /// (while no value overflows or underflows, which [`F32_RANGE`] ensures for f32), and
    /// `Σ|qᵢ xᵢ| ≤ (|q|² + |xₜ|²) / 2`; with the rounding of `|xₜ|²` (in f64, at most
    /// `d u |xₜ|²`) and of the subtraction, each key errs by at most `(2d + 4) u (|q|² + |xₜ|²)`.
    /// `slack` is `8 (d + 2) u (|q|² + max |xₜ|²)`, four times that bound. The k-th smallest key
    /// is then at least the exact k-th smallest less `slack`, so every row of the true k nearest
    /// has a key at most `2 slack` above it. Those candidates are ranked by their exact
    /// distances, so the result equals the k-d tree's bit for bit, whichever precision made the
    /// keys.
    fn nearest(&self, q: &[f64], keys: &[f64], x_sq_max: f64, eps: f64) -> Vec<(usize, f64)> {
        let q_sq: f64 = q.iter().map(|v| v * v).sum();
        let slack = slack_factor(q.len(), eps) * (q_sq + x_sq_max);
        let bound = kth_smallest(keys, self.k) + 2.0 * slack;
        let exact = |t: usize| (t, sq_dist(q, self.row(t)));
        let mut cand: Vec<(usize, f64)> = if bound.is_finite() {
            // Runs whose minimum is above the bound hold no candidate.
            let mut cand = Vec::new();
            for (r, run) in keys.chunks(RUN).enumerate() {
                if run_min(run) <= bound {
                    let hits = run.iter().enumerate().filter(|&(_, &key)| key <= bound);
                    cand.extend(hits.map(|(i, _)| exact(r * RUN + i)));
                }
            }
            cand
        } else {
            // Squares overflow f64 (values near its limit): no shortlist is safe, rank every row.
            (0..self.n_train()).map(exact).collect()
        };
        cand.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        cand.truncate(self.k);
        cand.into_iter().map(|(t, d2)| (t, d2.sqrt())).collect()
    }
}

/// The weight of every neighbour of one query under `weights` (see [`KnnWeights`]).
fn neighbour_weights(weights: KnnWeights, nb: &[(usize, f64)]) -> Vec<f64> {
    let exact = nb.iter().any(|&(_, d)| d == 0.0);
    nb.iter()
        .map(|&(_, d)| match weights {
            KnnWeights::Uniform => 1.0,
            KnnWeights::Distance if exact => f64::from(u8::from(d == 0.0)),
            KnnWeights::Distance => 1.0 / d,
        })
        .collect()
}

/// A fitted classifier: the training set itself and its search structure.
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    index: NeighbourIndex,
    weights: KnnWeights,
    classes: Vec<usize>,
    /// Per training row, the index of its label in `classes`.
    y: Vec<usize>,
}

impl KnnConfig {
    /// A configuration with `k` neighbours, uniform weights and automatic search.
    pub fn new(k: usize) -> Self {
        KnnConfig { k, weights: KnnWeights::Uniform, algorithm: KnnAlgorithm::Auto }
    }

    /// Stores the training data (and builds a k-d tree when chosen). Errors when `k` is 0 or
    /// exceeds the number of samples, on non-finite features, and when `y` has a different
    /// length or a single class.
    pub fn fit(&self, x: &Matrix, y: &[usize]) -> Result<Knn> {
        const WHAT: &str = "KnnConfig::fit";
        check_features(WHAT, x)?;
        check_labels(WHAT, x, y)?;
        let index = index(WHAT, x, self.k, self.algorithm)?;
        let (classes, y) = encode_classes(WHAT, y)?;
        Ok(Knn { index, weights: self.weights, classes, y })
    }
}

impl Knn {
    /// The sorted distinct training labels; column `c` of [`predict_proba`](Self::predict_proba)
    /// belongs to `classes()[c]`.
    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    /// Whether the fit built a k-d tree (rather than searching by brute force).
    pub fn uses_kd_tree(&self) -> bool {
        self.index.tree.is_some()
    }

    /// For each row of `x`, the indices (into the training set) and Euclidean distances of its
    /// `k` nearest training rows, nearest first, equal distances ordered by training index
    /// (scikit-learn leaves that order unspecified, so on exact ties the k-th neighbour may
    /// differ). Brute force shortlists candidates by `|a|² + |b|² − 2 a·b` with one matrix
    /// product per block of rows, then ranks them by exact distances; the k-d tree computes the
    /// same exact distances, so both return identical neighbours.
    pub fn kneighbors(&self, x: &Matrix) -> Result<Vec<Vec<(usize, f64)>>> {
        self.index.kneighbors("Knn::kneighbors", x)
    }

    /// For each row of `x`, the weighted share of each class among its neighbours,
    /// `[n, n_classes]` with columns in the order of [`classes`](Self::classes).
    pub fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        let nbrs = self.kneighbors(x)?;
        let mut p = Matrix::zeros(x.nrows(), self.classes.len());
        for (i, nb) in nbrs.iter().enumerate() {
            for (&(t, _), w) in nb.iter().zip(neighbour_weights(self.weights, nb)) {
                p[(i, self.y[t])] += w;
            }
            let total: f64 = (0..self.classes.len()).map(|c| p[(i, c)]).sum();
            for c in 0..self.classes.len() {
                p[(i, c)] /= total;
            }
        }
        Ok(p)
    }

    /// The class with the largest (weighted) vote among each row's neighbours. A tie goes to the
    /// smallest label, as in scikit-learn (its `predict` takes the first maximum of the class
    /// votes, whose columns are the sorted labels).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<usize>> {
        let p = self.predict_proba(x)?;
        Ok((0..p.nrows())
            .map(|i| {
                let mut best = 0;
                for c in 1..p.ncols() {
                    if p[(i, c)] > p[(i, best)] {
                        best = c;
                    }
                }
                self.classes[best]
            })
            .collect())
    }

    /// The accuracy of [`predict`](Self::predict) on `(x, y)`, in [0, 1].
    pub fn score(&self, x: &Matrix, y: &[usize]) -> Result<f64> {
        check_labels("Knn::score", x, y)?;
        accuracy(y, &self.predict(x)?)
    }
}

/// A fitted k-nearest-neighbour regressor.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnRegressor {
    index: NeighbourIndex,
    weights: KnnWeights,
    y: Vec<f64>,
}

impl KnnRegressorConfig {
    /// A configuration with `k` neighbours, uniform weights and automatic search.
    pub fn new(k: usize) -> Self {
        KnnRegressorConfig { k, weights: KnnWeights::Uniform, algorithm: KnnAlgorithm::Auto }
    }

    /// Stores the training data. Errors when `k` is 0 or exceeds the number of samples, on
    /// non-finite features or targets, and when `y` has a different length.
    pub fn fit(&self, x: &Matrix, y: &[f64]) -> Result<KnnRegressor> {
        const WHAT: &str = "KnnRegressorConfig::fit";
        check_features(WHAT, x)?;
        check_targets(WHAT, x, y)?;
        let index = index(WHAT, x, self.k, self.algorithm)?;
        Ok(KnnRegressor { index, weights: self.weights, y: y.to_vec() })
    }
}

/// Checks that there is one finite target per row of `x`.
fn check_targets(what: &'static str, x: &Matrix, y: &[f64]) -> Result<()> {
    if x.nrows() != y.len() {
        return Err(MlError::ShapeMismatch {
            what,
            detail: format!("x has {} rows but y has {} targets", x.nrows(), y.len()),
        });
    }
    if let Some(row) = y.iter().position(|v| !v.is_finite()) {
        return Err(MlError::NonFinite { what, row, col: 0, value: y[row] });
    }
    Ok(())
}

impl KnnRegressor {
    /// Like [`Knn::kneighbors`].
    pub fn kneighbors(&self, x: &Matrix) -> Result<Vec<Vec<(usize, f64)>>> {
        self.index.kneighbors("KnnRegressor::kneighbors", x)
    }

    /// Whether the fit built a k-d tree (rather than searching by brute force).
    pub fn uses_kd_tree(&self) -> bool {
        self.index.tree.is_some()
    }

    /// The (weighted) mean target of each row's neighbours.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f64>> {
        Ok(self
            .kneighbors(x)?
            .iter()
            .map(|nb| {
                let w = neighbour_weights(self.weights, nb);
                let total: f64 = w.iter().sum();
                nb.iter().zip(&w).map(|(&(t, _), w)| w * self.y[t]).sum::<f64>() / total
            })
            .collect())
    }

    /// The coefficient of determination `R² = 1 − Σ (y − ŷ)² / Σ (y − ȳ)²` of
    /// [`predict`](Self::predict) on `(x, y)` (scikit-learn's `score`; 1 is perfect, and for
    /// constant `y` it is 1 when the predictions are exact, else 0).
    pub fn score(&self, x: &Matrix, y: &[f64]) -> Result<f64> {
        check_targets("KnnRegressor::score", x, y)?;
        let pred = self.predict(x)?;
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        let ss_res: f64 = y.iter().zip(&pred).map(|(a, b)| (a - b).powi(2)).sum();
        let ss_tot: f64 = y.iter().map(|a| (a - mean).powi(2)).sum();
        Ok(if ss_tot > 0.0 {
            1.0 - ss_res / ss_tot
        } else if ss_res == 0.0 {
            1.0
        } else {
            0.0
        })
    }
}

/// Writes the training rows and the search choice of `index` into `s` (the k-d tree and the
/// squared norms are rebuilt on loading, by the same deterministic code).
fn put_index(s: &mut SavedState, index: &NeighbourIndex) {
    s.put_matrix("x", &index.matrix());
    s.put("k", &index.k);
    s.put("kd_tree", &index.tree.is_some());
}

/// Rebuilds the index saved by [`put_index`].
fn get_index(s: &SavedState) -> std::result::Result<NeighbourIndex, String> {
    let x = s.matrix("x")?;
    check_features("Persist::load", &x).map_err(|e| e.to_string())?;
    let algorithm = if s.get::<bool>("kd_tree")? { KnnAlgorithm::KdTree } else { KnnAlgorithm::Brute };
    index("Persist::load", &x, s.get("k")?, algorithm).map_err(|e| e.to_string())
}

impl Persist for Knn {
    const KIND: &'static str = "Knn";

    fn to_state(&self) -> SavedState {
        let mut s = SavedState::new();
        put_index(&mut s, &self.index);
        s.put("weights", &self.weights);
        s.put("classes", &self.classes);
        s.put("y", &self.y);
        s
    }

    fn from_state(s: &SavedState) -> std::result::Result<Self, String> {
        let index = get_index(s)?;
        let (classes, y): (Vec<usize>, Vec<usize>) = (s.get("classes")?, s.get("y")?);
        check_classes(&classes)?;
        check_below("y", &y, classes.len())?;
        if y.len() != index.n_train() {
            return Err(format!("y has {} labels but x has {} rows", y.len(), index.n_train()));
        }
        Ok(Knn { index, weights: s.get("weights")?, classes, y })
    }
}

impl Persist for KnnRegressor {
    const KIND: &'static str = "KnnRegressor";

    fn to_state(&self) -> SavedState {
        let mut s = SavedState::new();
        put_index(&mut s, &self.index);
        s.put("weights", &self.weights);
        s.put_vector("y", &self.y);
        s
    }

    fn from_state(s: &SavedState) -> std::result::Result<Self, String> {
        let index = get_index(s)?;
        let y = s.vector_of("y", index.n_train())?;
        Ok(KnnRegressor { index, weights: s.get("weights")?, y })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::matrix_from_rows;

    fn line() -> (Matrix, Vec<usize>) {
        (matrix_from_rows(6, 1, &[0.0, 1.0, 2.0, 10.0, 11.0, 12.0]).unwrap(), vec![3, 3, 3, 8, 8, 8])
    }

    #[test]
    fn neighbours_are_sorted_and_exact() {
        let (x, y) = line();
        let knn = KnnConfig::new(3).fit(&x, &y).unwrap();
        let q = matrix_from_rows(1, 1, &[10.4]).unwrap();
        let nb = knn.kneighbors(&q).unwrap();
        assert_eq!(nb[0].iter().map(|p| p.0).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert!((nb[0][0].1 - 0.4).abs() < 1e-12);
        assert_eq!(knn.predict(&matrix_from_rows(2, 1, &[1.5, 9.0]).unwrap()).unwrap(), vec![3, 8]);
        assert_eq!(knn.score(&x, &y).unwrap(), 1.0);
    }

    #[test]
    fn ties_go_to_the_smallest_label_and_distance_weights_break_them() {
        let (x, y) = line();
        // k = 2 at 6.0: nearest are 2.0 (label 3, d 4) and 10.0 (label 8, d 4): a tie.
        let q = matrix_from_rows(1, 1, &[6.0]).unwrap();
        assert_eq!(KnnConfig::new(2).fit(&x, &y).unwrap().predict(&q).unwrap(), vec![3]);
        // k = 4 at 6.5: 10.0 (8, d 3.5), 2.0 (3, d 4.5), 11.0 (8, d 4.5), then 1.0 and 12.0 tie
        // at 5.5 and the smaller index, 1.0 (3), wins. Uniform: 2-2 -> 3; distance -> 8.
        let q = matrix_from_rows(1, 1, &[6.5]).unwrap();
        assert_eq!(KnnConfig::new(4).fit(&x, &y).unwrap().predict(&q).unwrap(), vec![3]);
        let cfg = KnnConfig { weights: KnnWeights::Distance, ..KnnConfig::new(4) };
        assert_eq!(cfg.fit(&x, &y).unwrap().predict(&q).unwrap(), vec![8]);
    }

    #[test]
    fn exact_matches_outvote_everything_with_distance_weights() {
        let x = matrix_from_rows(3, 1, &[0.0, 0.1, 0.2]).unwrap();
        let knn = KnnConfig { weights: KnnWeights::Distance, ..KnnConfig::new(3) }.fit(&x, &[1, 2, 2]).unwrap();
        let p = knn.predict_proba(&matrix_from_rows(1, 1, &[0.0]).unwrap()).unwrap();
        assert_eq!((p[(0, 0)], p[(0, 1)]), (1.0, 0.0));
    }

    /// Random points on a coarse grid (many exact distance ties), in `d` dimensions.
    fn grid_points(n: usize, d: usize, seed: u64) -> Matrix {
        let mut rng = crate::split::SplitMix64(seed);
        Matrix::from_fn(n, d, |_, _| rng.below(5) as f64)
    }

    #[test]
    fn kd_tree_returns_exactly_the_brute_force_neighbours() {
        for (d, seed) in [(1, 1), (2, 2), (3, 3), (8, 4)] {
            let x = grid_points(300, d, seed);
            // 600 queries: brute force's blocks of 256 (shortlisted in parallel) and a last,
            // smaller one (shortlisted on this thread).
            let q = grid_points(600, d, seed + 100);
            let y: Vec<usize> = (0..300).map(|i| i % 3).collect();
            for k in [1, 4, 17] {
                let brute = KnnConfig { algorithm: KnnAlgorithm::Brute, ..KnnConfig::new(k) }.fit(&x, &y).unwrap();
                let tree = KnnConfig { algorithm: KnnAlgorithm::KdTree, ..KnnConfig::new(k) }.fit(&x, &y).unwrap();
                assert!(tree.uses_kd_tree() && !brute.uses_kd_tree());
                assert_eq!(tree.kneighbors(&q).unwrap(), brute.kneighbors(&q).unwrap(), "d {d}, k {k}");
            }
        }
        // Continuous data too, where ties are rare and pruning does the work.
        let mut rng = crate::split::SplitMix64(7);
        let x = Matrix::from_fn(500, 4, |_, _| rng.normal());
        let q = Matrix::from_fn(50, 4, |_, _| rng.normal());
        let t: Vec<f64> = (0..500).map(|i| i as f64).collect();
        let brute = KnnRegressorConfig { algorithm: KnnAlgorithm::Brute, ..KnnRegressorConfig::new(6) };
        let tree = KnnRegressorConfig { algorithm: KnnAlgorithm::KdTree, ..brute };
        assert_eq!(
            brute.fit(&x, &t).unwrap().kneighbors(&q).unwrap(),
            tree.fit(&x, &t).unwrap().kneighbors(&q).unwrap()
        );
    }

    #[test]
    fn brute_force_ranks_exactly_when_squares_overflow() {
        // |x|² overflows f64 for the last two rows, so the product's keys are no shortlist.
        let x = matrix_from_rows(4, 1, &[0.0, 1e154, 2e154, 3e154]).unwrap();
        let q = matrix_from_rows(1, 1, &[2.9e154]).unwrap();
        let t = [0.0, 1.0, 2.0, 3.0];
        for algorithm in [KnnAlgorithm::Brute, KnnAlgorithm::KdTree] {
            let m = KnnRegressorConfig { algorithm, ..KnnRegressorConfig::new(2) }.fit(&x, &t).unwrap();
            let nb = m.kneighbors(&q).unwrap();
            assert_eq!(nb[0].iter().map(|p| p.0).collect::<Vec<_>>(), vec![3, 2], "{algorithm:?}");
        }
    }

    #[test]
    fn f32_shortlists_rank_exactly_where_f32_cannot_tell_rows_apart() {
        // Rows 1000 + offsets of 1e-6..1e-4: their f32 values coincide or nearly so, so the
        // f32 keys are nearly all tied and only the exact re-ranking orders the neighbours.
        let mut rng = crate::split::SplitMix64(11);
        let (n, d) = (300, 20);
        let x = Matrix::from_fn(n, d, |_, _| 1000.0 + 1e-4 * rng.normal());
        let q = Matrix::from_fn(40, d, |_, _| 1000.0 + 1e-4 * rng.normal());
        let t: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let brute = KnnRegressorConfig { algorithm: KnnAlgorithm::Brute, ..KnnRegressorConfig::new(5) };
        let tree = KnnRegressorConfig { algorithm: KnnAlgorithm::KdTree, ..brute };
        let fitted = brute.fit(&x, &t).unwrap();
        assert!(fitted.index.rows32.is_some(), "values in range take the f32 product");
        assert_eq!(fitted.kneighbors(&q).unwrap(), tree.fit(&x, &t).unwrap().kneighbors(&q).unwrap());

        // Training rows out of f32's safe range keep the f64 product; so do queries out of it
        // (their block falls back even though the index holds f32 rows).
        let tiny = Matrix::from_fn(n, d, |i, j| 1e-20 * x[(i, j)]);
        let tiny_q = Matrix::from_fn(40, d, |i, j| 1e-20 * q[(i, j)]);
        let fitted_tiny = brute.fit(&tiny, &t).unwrap();
        assert!(fitted_tiny.index.rows32.is_none());
        let want = tree.fit(&tiny, &t).unwrap().kneighbors(&tiny_q).unwrap();
        assert_eq!(fitted_tiny.kneighbors(&tiny_q).unwrap(), want);
        let huge_q = Matrix::from_fn(40, d, |i, j| if j == 0 { 1e16 } else { q[(i, j)] });
        let want = tree.fit(&x, &t).unwrap().kneighbors(&huge_q).unwrap();
        assert_eq!(fitted.kneighbors(&huge_q).unwrap(), want);
    }

    #[test]
    fn auto_picks_the_tree_for_few_features_only() {
        let y: Vec<usize> = (0..100).map(|i| i % 2).collect();
        assert!(KnnConfig::new(5).fit(&grid_points(100, 15, 1), &y).unwrap().uses_kd_tree());
        assert!(!KnnConfig::new(5).fit(&grid_points(100, 16, 1), &y).unwrap().uses_kd_tree());
        assert!(!KnnConfig::new(60).fit(&grid_points(100, 2, 1), &y).unwrap().uses_kd_tree());
    }

    #[test]
    fn regressor_averages_neighbour_targets() {
        let (x, _) = line();
        let t = [0.0, 1.0, 2.0, 10.0, 20.0, 30.0];
        let q = matrix_from_rows(2, 1, &[0.9, 11.0]).unwrap();
        let uniform = KnnRegressorConfig::new(2).fit(&x, &t).unwrap();
        // 11.0: itself (target 20), then 10.0 and 12.0 tie at distance 1 and the smaller index wins.
        assert_eq!(uniform.predict(&q).unwrap(), vec![0.5, 15.0]);
        let cfg = KnnRegressorConfig { weights: KnnWeights::Distance, ..KnnRegressorConfig::new(2) };
        let weighted = cfg.fit(&x, &t).unwrap();
        // 0.9: neighbours 1.0 (d 0.1, target 1) and 0.0 (d 0.9, target 0): (10 * 1 + 0) / (10 + 1/0.9).
        let want = 10.0 / (10.0 + 1.0 / 0.9);
        let got = weighted.predict(&q).unwrap();
        assert!((got[0] - want).abs() < 1e-12, "{got:?}");
        assert_eq!(got[1], 20.0, "an exact match takes all the weight");
        assert_eq!(weighted.score(&x, &t).unwrap(), 1.0);
        assert!(uniform.score(&x, &t).unwrap() < 1.0);
    }
}
