//! A least-recently-used cache of kernel-matrix rows with a memory budget, for the SMO solver.
//!
//! Rows are stored by the solver's position (which shrinking permutes, see [`RowCache::swap`]),
//! and a row may hold only a prefix of its values: the solver asks for the first `len` entries,
//! where `len` is the number of active variables, and extends a row when it needs more.

/// Cached rows, each a prefix of one row of the matrix.
#[derive(Debug)]
pub(crate) struct RowCache {
    /// `rows[p]`: the cached prefix of row `p` (empty when not cached).
    rows: Vec<Vec<f64>>,
    /// When row `p` was last asked for (a counter, larger is more recent).
    last_used: Vec<u64>,
    clock: u64,
    /// Values held over all rows.
    used: usize,
    /// The most values held at once.
    budget: usize,
}

impl RowCache {
    /// A cache for the rows of an `l x l` matrix holding at most `bytes` bytes of values, but
    /// never less than two full rows (the solver needs two rows at once).
    pub(crate) fn new(l: usize, bytes: usize) -> Self {
        RowCache {
            rows: vec![Vec::new(); l],
            last_used: vec![0; l],
            clock: 0,
            used: 0,
            budget: (bytes / std::mem::size_of::<f64>()).max(2 * l),
        }
    }

    /// Makes row `p` at least `len` values long, evicting the least recently used rows (never
    /// `p` or `pinned`) to stay within the budget. Returns the index from which the new values
    /// must be filled in (`len` when the row was already long enough).
    pub(crate) fn prepare(&mut self, p: usize, len: usize, pinned: Option<usize>) -> usize {
        self.clock += 1;
        self.last_used[p] = self.clock;
        let have = self.rows[p].len();
        if have >= len {
            return len;
        }
        let need = len - have;
        while self.used + need > self.budget {
            let victim = (0..self.rows.len())
                .filter(|&r| r != p && Some(r) != pinned && !self.rows[r].is_empty())
                .min_by_key(|&r| self.last_used[r]);
            match victim {
                Some(r) => {
                    self.used -= self.rows[r].len();
                    self.rows[r] = Vec::new();
                }
                None => break,
            }
        }
        self.rows[p].resize(len, 0.0);
        self.used += need;
        have
    }

    /// Row `p`, as long as [`prepare`](Self::prepare) made it.
    pub(crate) fn row(&self, p: usize) -> &[f64] {
        &self.rows[p]
    }

    /// Row `p` for filling in.
    pub(crate) fn row_mut(&mut self, p: usize) -> &mut [f64] {
        &mut self.rows[p]
    }

    /// Swaps positions `i` and `j` (the solver swapped two variables): the rows change places and
    /// every cached row swaps its entries `i` and `j`; a row holding only the smaller of the two
    /// is cut back to before it, since its value at the other position is unknown.
    pub(crate) fn swap(&mut self, i: usize, j: usize) {
        if i == j {
            return;
        }
        let (lo, hi) = (i.min(j), i.max(j));
        self.rows.swap(i, j);
        self.last_used.swap(i, j);
        for row in &mut self.rows {
            if row.len() > hi {
                row.swap(lo, hi);
            } else if row.len() > lo {
                self.used -= row.len() - lo;
                row.truncate(lo);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_row_and_never_the_pinned_one() {
        // Budget of 2 full rows of 3 (the minimum), i.e. 6 values.
        let mut c = RowCache::new(3, 0);
        assert_eq!(c.prepare(0, 3, None), 0);
        assert_eq!(c.prepare(1, 3, None), 0);
        assert_eq!(c.prepare(0, 3, None), 3, "row 0 is cached");
        // Row 2 needs room: row 1 is the least recently used.
        assert_eq!(c.prepare(2, 3, Some(0)), 0);
        assert!(c.row(1).is_empty() && c.row(0).len() == 3);
        // Pinning row 2 while asking for row 1 evicts row 0 even though 2 is older.
        assert_eq!(c.prepare(1, 3, Some(2)), 0);
        assert!(c.row(0).is_empty() && c.row(2).len() == 3);
    }

    #[test]
    fn swap_keeps_rows_consistent() {
        let mut c = RowCache::new(4, 1 << 20);
        c.prepare(0, 4, None);
        c.row_mut(0).copy_from_slice(&[0.0, 1.0, 2.0, 3.0]);
        c.prepare(1, 2, None);
        c.row_mut(1).copy_from_slice(&[10.0, 11.0]);
        c.swap(1, 3);
        assert_eq!(c.row(0), &[0.0, 3.0, 2.0, 1.0]);
        assert_eq!(c.row(3), &[10.0], "row 1 moved to 3 and lost the entry it cannot swap");
        assert_eq!(c.used, 5);
        // Extending a cut row asks for the values from where it was cut.
        assert_eq!(c.prepare(3, 4, None), 1);
    }
}
