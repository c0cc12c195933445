//! A k-d tree for exact k-nearest-neighbour queries in few dimensions (Friedman, Bentley &
//! Finkel, 1977).
//!
//! Every node owns a contiguous range of a permutation of the training rows and their bounding
//! box; a node is split at the median of its widest dimension until it holds at most
//! [`LEAF_SIZE`] rows. A query walks the tree nearer child first and skips every node whose box
//! is farther than the current k-th neighbour. Ties are ordered by training index, so the tree
//! returns exactly what brute force returns.
//!
//! The tree keeps its own row-major copy of the points in tree order (a leaf is one contiguous
//! block of memory) and its node boxes in one flat array, so a query reads memory in sweeps.
//! Every squared distance is summed in feature order, `((q₀ − p₀)² + (q₁ − p₁)²) + …`, exactly
//! as [`sq_dist`] (the brute-force search's final ranking) does, so the distances agree bit for
//! bit. A sequential sum is one long chain of dependent additions; the leaf scan therefore
//! computes four points at once, four independent chains that the processor overlaps, each
//! still summed in feature order.

use crate::data::{sq_dist, Matrix};

/// The most rows a leaf holds (measured on 64 standardised features: 40 beats 16 and 30, as
/// a leaf scan of contiguous rows is cheap next to the box tests it saves).
pub const LEAF_SIZE: usize = 40;

/// Features summed between two checks of the partial distance against the current k-th best.
const PRUNE_CHUNK: usize = 16;

/// The squared distances from `q` to the four rows of `p` (row-major `[4, q.len()]`), each summed
/// in feature order like [`sq_dist`].
///
/// Every `PRUNE_CHUNK` features, if all four partial sums exceed `bound` the sums stop early:
/// adding non-negative terms with round-to-nearest never decreases a sum, so a partial sum above
/// `bound` proves the full one is too. The result is then four values above `bound` (not
/// distances); otherwise it is the four exact distances.
#[inline]
fn sq_dist4(q: &[f64], p: &[f64], bound: f64) -> [f64; 4] {
    let d = q.len();
    let (p0, rest) = p.split_at(d);
    let (p1, rest) = rest.split_at(d);
    let (p2, p3) = rest.split_at(d);
    let mut acc = [0.0f64; 4];
    let mut start = 0;
    while start < d {
        let end = (start + PRUNE_CHUNK).min(d);
        for j in start..end {
            let v = q[j];
            acc[0] += (v - p0[j]) * (v - p0[j]);
            acc[1] += (v - p1[j]) * (v - p1[j]);
            acc[2] += (v - p2[j]) * (v - p2[j]);
            acc[3] += (v - p3[j]) * (v - p3[j]);
        }
        if acc.iter().all(|&a| a > bound) {
            break;
        }
        start = end;
    }
    acc
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    /// The rows `start..end` in tree order (`perm[start..end]` in the caller's order).
    start: usize,
    end: usize,
    /// Child node indices, `None` for a leaf.
    children: Option<(usize, usize)>,
}

/// A k-d tree over the rows of a matrix; it keeps its own copy of the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct KdTree {
    /// The number of features.
    d: usize,
    /// Tree position → row of the matrix the tree was built on.
    perm: Vec<usize>,
    /// Row-major `[n, d]`: position `r` holds row `perm[r]` of that matrix.
    points: Vec<f64>,
    /// Node `n`'s box: lower bounds at `[2nd, 2nd + d)`, upper bounds at `[2nd + d, 2nd + 2d)`.
    bounds: Vec<f64>,
    nodes: Vec<Node>,
}

/// The running state of one query: the `k` best `(index, squared distance)` so far, sorted by
/// distance then index.
struct Search<'a> {
    q: &'a [f64],
    k: usize,
    best: Vec<(usize, f64)>,
}

impl Search<'_> {
    /// The current k-th best squared distance, or infinity while fewer than `k` are known: a
    /// candidate can only enter the list at a distance up to this.
    #[inline]
    fn bound(&self) -> f64 {
        if self.best.len() < self.k {
            f64::INFINITY
        } else {
            self.best[self.k - 1].1
        }
    }

    /// Offers training row `i` at squared distance `d2`; it is kept if it beats the k-th best by
    /// distance, or ties it with a smaller index.
    #[inline]
    fn offer(&mut self, i: usize, d2: f64) {
        let worse = |b: &(usize, f64)| b.1.total_cmp(&d2).then(b.0.cmp(&i)).is_gt();
        if self.best.len() < self.k || worse(self.best.last().expect("k >= 1")) {
            let pos = self.best.partition_point(|b| !worse(b));
            self.best.insert(pos, (i, d2));
            self.best.truncate(self.k);
        }
    }
}

impl KdTree {
    /// Builds the tree over the rows of `x` (at least one row).
    pub fn build(x: &Matrix) -> KdTree {
        let (n, d) = (x.nrows(), x.ncols());
        let mut tree = KdTree { d, perm: (0..n).collect(), points: Vec::new(), bounds: Vec::new(), nodes: Vec::new() };
        tree.build_node(x, 0, n);
        let mut points = vec![0.0; n * d];
        for j in 0..d {
            let col = x.col(j);
            for (r, &i) in tree.perm.iter().enumerate() {
                points[r * d + j] = col[i];
            }
        }
        tree.points = points;
        tree
    }

    /// Builds the node over `perm[start..end]` and its subtree; returns its index.
    fn build_node(&mut self, x: &Matrix, start: usize, end: usize) -> usize {
        let d = x.ncols();
        let mut lo = vec![f64::INFINITY; d];
        let mut hi = vec![f64::NEG_INFINITY; d];
        for &i in &self.perm[start..end] {
            for j in 0..d {
                lo[j] = lo[j].min(x[(i, j)]);
                hi[j] = hi[j].max(x[(i, j)]);
            }
        }
        let id = self.nodes.len();
        let widest = (0..d).max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b]))).unwrap_or(0);
        let spread = hi[widest] - lo[widest];
        self.bounds.extend_from_slice(&lo);
        self.bounds.extend_from_slice(&hi);
        self.nodes.push(Node { start, end, children: None });
        if end - start <= LEAF_SIZE || spread <= 0.0 {
            return id; // small, or all rows equal: a leaf
        }
        let mid = start + (end - start) / 2;
        self.perm[start..end]
            .select_nth_unstable_by(mid - start, |&a, &b| x[(a, widest)].total_cmp(&x[(b, widest)]).then(a.cmp(&b)));
        let left = self.build_node(x, start, mid);
        let right = self.build_node(x, mid, end);
        self.nodes[id].children = Some((left, right));
        id
    }

    /// Lower bounds of the squared distance from `q` to any row in the boxes of nodes `a` and
    /// `b`. Per feature the term is the squared gap to the box, `(lo − v)²` below it, `(v − hi)²`
    /// above it, 0 inside: never more than the term of a row inside (rounding is monotone).
    /// Summed in feature order with the same rounding as [`sq_dist`], each bound never exceeds
    /// the distance of a row inside. The two sums are independent chains, computed together.
    #[inline]
    fn box_sq_dist2(&self, q: &[f64], a: usize, b: usize) -> (f64, f64) {
        let d = self.d;
        let (alo, ahi) = self.bounds[2 * a * d..2 * (a + 1) * d].split_at(d);
        let (blo, bhi) = self.bounds[2 * b * d..2 * (b + 1) * d].split_at(d);
        let (mut da, mut db) = (0.0f64, 0.0f64);
        for j in 0..d {
            let v = q[j];
            // At most one of the two gaps is positive; the other adds an exact 0.
            let ga = (alo[j] - v).max(0.0) + (v - ahi[j]).max(0.0);
            let gb = (blo[j] - v).max(0.0) + (v - bhi[j]).max(0.0);
            da += ga * ga;
            db += gb * gb;
        }
        (da, db)
    }

    /// The `k` rows nearest to `q` as `(row index, squared distance)`, ordered by distance then
    /// row index (row indices of the matrix the tree was built on).
    pub fn query(&self, q: &[f64], k: usize) -> Vec<(usize, f64)> {
        assert_eq!(q.len(), self.d, "the query has {} features, the tree {}", q.len(), self.d);
        let mut s = Search { q, k, best: Vec::with_capacity(k + 1) };
        if k > 0 {
            self.search(&mut s, 0);
        }
        s.best
    }

    fn search(&self, s: &mut Search, n: usize) {
        let node = &self.nodes[n];
        match node.children {
            None => self.scan_leaf(s, node.start, node.end),
            Some((l, r)) => {
                let (dl, dr) = self.box_sq_dist2(s.q, l, r);
                let order = if dl <= dr { [(l, dl), (r, dr)] } else { [(r, dr), (l, dl)] };
                for (c, dc) in order {
                    // A box at exactly the k-th distance may hold a tie of smaller index: visit it.
                    if dc <= s.bound() {
                        self.search(s, c);
                    }
                }
            }
        }
    }

    /// Offers every row at tree positions `start..end` (contiguous in `points`), four at a time.
    fn scan_leaf(&self, s: &mut Search, start: usize, end: usize) {
        let d = self.d;
        if end - start < 4 {
            for r in start..end {
                let d2 = sq_dist(s.q, &self.points[r * d..(r + 1) * d]);
                s.offer(self.perm[r], d2);
            }
            return;
        }
        let mut r = start;
        while r < end {
            // The last block overlaps the one before it; its rows already offered are skipped.
            let block = r.min(end - 4);
            let acc = sq_dist4(s.q, &self.points[block * d..(block + 4) * d], s.bound());
            for (l, &d2) in acc.iter().enumerate().skip(r - block) {
                s.offer(self.perm[block + l], d2);
            }
            r = block + 4;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(x: &Matrix, i: usize) -> Vec<f64> {
        (0..x.ncols()).map(|j| x[(i, j)]).collect()
    }

    #[test]
    fn leaves_partition_the_rows() {
        let x = Matrix::from_fn(100, 3, |i, j| ((i * 31 + j * 17) % 23) as f64);
        let t = KdTree::build(&x);
        let mut p = t.perm.clone();
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
        let leaf_rows: usize = t.nodes.iter().filter(|n| n.children.is_none()).map(|n| n.end - n.start).sum();
        assert_eq!(leaf_rows, 100);
        assert!(t.nodes.len() > 1);
        for (r, &i) in t.perm.iter().enumerate() {
            assert!((0..3).all(|j| t.points[r * 3 + j] == x[(i, j)]));
        }
        for q in [[3.0, 4.0, 5.0], [0.0, 22.0, 11.5]] {
            for k in [1, 5, 37, 100] {
                let got = t.query(&q, k);
                let mut all: Vec<(usize, f64)> = (0..100).map(|i| (i, sq_dist(&q, &row(&x, i)))).collect();
                all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                assert_eq!(got, all[..k].to_vec());
            }
        }
    }

    #[test]
    fn many_features_and_tiny_trees_agree_with_brute_force() {
        for (n, d) in [(1, 2), (3, 5), (7, 40), (300, 64)] {
            let x = Matrix::from_fn(n, d, |i, j| (((i * 7919 + j * 104_729) % 1009) as f64 / 97.0).sin());
            let t = KdTree::build(&x);
            let q: Vec<f64> = (0..d).map(|j| (j as f64 * 0.37).cos()).collect();
            for k in 1..=n.min(6) {
                let mut all: Vec<(usize, f64)> = (0..n).map(|i| (i, sq_dist(&q, &row(&x, i)))).collect();
                all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                assert_eq!(t.query(&q, k), all[..k].to_vec());
            }
        }
    }
}
