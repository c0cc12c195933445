//! A k-d tree for exact k-nearest-neighbour queries in few dimensions (Friedman, Bentley &
//! Finkel, 1977).
//!
//! Every node owns a contiguous range of a permutation of the training rows and their bounding
//! box; a node is split at the median of its widest dimension until it holds at most
//! [`LEAF_SIZE`] rows. A query walks the tree nearer child first and skips every node whose box
//! is farther than the current k-th neighbour. Distances are computed by `sq_dist`, the same
//! function the brute-force search uses for its final ranking, and ties are ordered by training
//! index, so the tree returns exactly what brute force returns.

use crate::data::Matrix;

/// The most rows a leaf holds.
pub const LEAF_SIZE: usize = 16;

/// The exact squared Euclidean distance between `q` and row `i` of `x`, summed in feature order.
pub(crate) fn sq_dist(q: &[f64], x: &Matrix, i: usize) -> f64 {
    q.iter().enumerate().map(|(j, v)| (v - x[(i, j)]).powi(2)).sum()
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    /// The rows `perm[start..end]` belong to this node.
    start: usize,
    end: usize,
    /// Per-feature bounds of those rows.
    lo: Vec<f64>,
    hi: Vec<f64>,
    /// Child node indices, `None` for a leaf.
    children: Option<(usize, usize)>,
}

/// A k-d tree over the rows of a matrix (which the caller keeps and passes to queries).
#[derive(Debug, Clone, PartialEq)]
pub struct KdTree {
    perm: Vec<usize>,
    nodes: Vec<Node>,
}

impl KdTree {
    /// Builds the tree over the rows of `x` (at least one row).
    pub fn build(x: &Matrix) -> KdTree {
        let mut tree = KdTree { perm: (0..x.nrows()).collect(), nodes: Vec::new() };
        tree.build_node(x, 0, x.nrows());
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
        self.nodes.push(Node { start, end, lo, hi, children: None });
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

    /// A lower bound of the squared distance from `q` to any row in node `n`'s box, summed in
    /// feature order with the same rounding as [`sq_dist`] (so it never exceeds the distance of
    /// a row inside: rounding is monotone).
    fn box_sq_dist(&self, q: &[f64], n: usize) -> f64 {
        let node = &self.nodes[n];
        q.iter()
            .enumerate()
            .map(|(j, &v)| {
                if v < node.lo[j] {
                    (node.lo[j] - v).powi(2)
                } else if v > node.hi[j] {
                    (v - node.hi[j]).powi(2)
                } else {
                    0.0
                }
            })
            .sum()
    }

    /// The `k` rows of `x` nearest to `q` as `(index, squared distance)`, ordered by distance
    /// then index. `x` must be the matrix the tree was built on.
    pub fn query(&self, x: &Matrix, q: &[f64], k: usize) -> Vec<(usize, f64)> {
        let mut best: Vec<(usize, f64)> = Vec::with_capacity(k + 1);
        self.search(x, q, k, 0, &mut best);
        best
    }

    fn search(&self, x: &Matrix, q: &[f64], k: usize, n: usize, best: &mut Vec<(usize, f64)>) {
        let node = &self.nodes[n];
        match node.children {
            None => {
                for &i in &self.perm[node.start..node.end] {
                    let d2 = sq_dist(q, x, i);
                    let worse = |b: &(usize, f64)| b.1.total_cmp(&d2).then(b.0.cmp(&i)).is_gt();
                    if best.len() < k || worse(best.last().expect("k >= 1")) {
                        let pos = best.partition_point(|b| !worse(b));
                        best.insert(pos, (i, d2));
                        best.truncate(k);
                    }
                }
            }
            Some((l, r)) => {
                let (dl, dr) = (self.box_sq_dist(q, l), self.box_sq_dist(q, r));
                let order = if dl <= dr { [(l, dl), (r, dr)] } else { [(r, dr), (l, dl)] };
                for (c, dc) in order {
                    // A box at exactly the k-th distance may hold a tie of smaller index: visit it.
                    if best.len() < k || dc <= best.last().expect("k >= 1").1 {
                        self.search(x, q, k, c, best);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let q = [3.0, 4.0, 5.0];
        let got = t.query(&x, &q, 5);
        let mut all: Vec<(usize, f64)> = (0..100).map(|i| (i, sq_dist(&q, &x, i))).collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        assert_eq!(got, all[..5].to_vec());
    }
}
