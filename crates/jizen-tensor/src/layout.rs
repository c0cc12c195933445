//! Layout: how a tensor's logical elements map onto its storage (shape, strides, offset).
//!
//! Reshape (of contiguous data), permute, narrow and expand only build a new layout; they never
//! copy. Expanded dimensions have stride 0.

use crate::error::{shape_err, Result};

/// Shape, strides (in elements) and offset of a tensor view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

/// Row-major strides of a contiguous tensor of this shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i].max(1);
    }
    strides
}

impl Layout {
    /// The layout of freshly allocated, row-major data.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: 0 }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the elements lie row-major and without gaps, so the data is
    /// `storage[offset .. offset + numel]`.
    pub fn is_contiguous(&self) -> bool {
        if self.numel() == 0 {
            return true;
        }
        let mut acc = 1;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 && self.strides[i] != acc {
                return false;
            }
            acc *= self.shape[i];
        }
        true
    }

    /// The contiguous range of storage this layout reads, when it is contiguous.
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous().then(|| self.offset..self.offset + self.numel())
    }

    /// One past the largest storage index this layout can touch (0 when empty).
    pub fn max_extent(&self) -> usize {
        if self.numel() == 0 {
            return self.offset;
        }
        self.offset + self.shape.iter().zip(&self.strides).map(|(&d, &s)| (d - 1) * s).sum::<usize>() + 1
    }

    /// Reorders dimensions: dimension `i` of the result is dimension `perm[i]` of `self`.
    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if perm.len() != r || perm.iter().any(|&p| p >= r || std::mem::replace(&mut seen[p], true)) {
            return Err(shape_err(
                "permute",
                format!("{perm:?} is not a permutation of the {r} dimensions of {:?}", self.shape),
            ));
        }
        Ok(Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    /// Keeps `len` elements of dimension `dim`, starting at `start`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        if dim >= self.rank() || start + len > self.shape[dim] {
            return Err(shape_err(
                "narrow",
                format!("cannot take {len} elements from {start} along dimension {dim} of {:?}", self.shape),
            ));
        }
        let mut shape = self.shape.clone();
        shape[dim] = len;
        Ok(Layout { shape, strides: self.strides.clone(), offset: self.offset + start * self.strides[dim] })
    }

    /// Broadcasts to `shape` (NumPy rules: align on the right; size-1 dimensions stretch with
    /// stride 0; new leading dimensions are added).
    pub fn expand(&self, shape: &[usize]) -> Result<Layout> {
        if shape.len() < self.rank() {
            return Err(shape_err("expand", format!("cannot expand {:?} to fewer dimensions {:?}", self.shape, shape)));
        }
        let lead = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for (i, &target) in shape.iter().enumerate() {
            if i < lead {
                continue;
            }
            let (d, s) = (self.shape[i - lead], self.strides[i - lead]);
            if d == target {
                strides[i] = s;
            } else if d == 1 {
                strides[i] = 0;
            } else {
                return Err(shape_err("expand", format!("cannot expand {:?} to {:?}", self.shape, shape)));
            }
        }
        Ok(Layout { shape: shape.to_vec(), strides, offset: self.offset })
    }

    /// A view with a new shape over the same elements, when the strides allow it without a copy.
    pub fn reshape_view(&self, shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: self.offset });
        }
        None
    }
}

/// NumPy broadcasting of two shapes.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(shape_err(op, format!("shapes {a:?} and {b:?} cannot be broadcast together"))),
        };
    }
    Ok(out)
}

/// Joint iteration over the rows of several strided operands of the same shape.
///
/// Dimensions of size 1 are dropped and neighbouring dimensions that are contiguous in every
/// operand are merged, so that the innermost loop is as long as possible. Kernels then loop over
/// `rows()` rows, each `inner` elements long, with per-operand `inner_strides`.
pub(crate) struct Rows<const N: usize> {
    pub inner: usize,
    pub inner_strides: [usize; N],
    outer_shape: Vec<usize>,
    outer_strides: [Vec<usize>; N],
    base: [usize; N],
}

impl<const N: usize> Rows<N> {
    pub fn new(shape: &[usize], layouts: [&Layout; N]) -> Self {
        // Collect (size, strides) without size-1 dims.
        let mut dims: Vec<(usize, [usize; N])> = Vec::with_capacity(shape.len());
        for (i, &d) in shape.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let s: [usize; N] = std::array::from_fn(|k| layouts[k].strides()[i]);
            if let Some(last) = dims.last_mut() {
                // Merge when the previous dim steps exactly over this whole dim in every operand.
                if (0..N).all(|k| last.1[k] == s[k] * d) {
                    last.0 *= d;
                    last.1 = s;
                    continue;
                }
            }
            dims.push((d, s));
        }
        let base = std::array::from_fn(|k| layouts[k].offset());
        match dims.pop() {
            None => Rows {
                inner: 1,
                inner_strides: [0; N],
                outer_shape: vec![],
                outer_strides: std::array::from_fn(|_| vec![]),
                base,
            },
            Some((inner, inner_strides)) => Rows {
                inner,
                inner_strides,
                outer_shape: dims.iter().map(|d| d.0).collect(),
                outer_strides: std::array::from_fn(|k| dims.iter().map(|d| d.1[k]).collect()),
                base,
            },
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.outer_shape.iter().product()
    }

    /// Calls `f(row, offsets)` for rows `range`, where `offsets[k]` is where row `row` starts in
    /// operand `k`'s storage.
    pub fn for_each(&self, range: std::ops::Range<usize>, mut f: impl FnMut(usize, [usize; N])) {
        if range.is_empty() {
            return;
        }
        let nd = self.outer_shape.len();
        let mut idx = vec![0; nd];
        let mut rem = range.start;
        for d in (0..nd).rev() {
            idx[d] = rem % self.outer_shape[d];
            rem /= self.outer_shape[d];
        }
        let mut off: [usize; N] =
            std::array::from_fn(|k| self.base[k] + (0..nd).map(|d| idx[d] * self.outer_strides[k][d]).sum::<usize>());
        for row in range {
            f(row, off);
            // Advance the odometer.
            for d in (0..nd).rev() {
                idx[d] += 1;
                for (o, s) in off.iter_mut().zip(&self.outer_strides) {
                    *o += s[d];
                }
                if idx[d] < self.outer_shape[d] {
                    break;
                }
                for (o, s) in off.iter_mut().zip(&self.outer_strides) {
                    *o -= s[d] * idx[d];
                }
                idx[d] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_merge_contiguous_dims() {
        let l = Layout::contiguous(&[2, 3, 4]);
        let r = Rows::new(l.shape(), [&l]);
        assert_eq!((r.rows(), r.inner), (1, 24));
        let t = l.permute(&[0, 2, 1]).unwrap();
        let r = Rows::new(t.shape(), [&t]);
        assert_eq!((r.rows(), r.inner, r.inner_strides[0]), (8, 3, 4));
        let mut offs = vec![];
        r.for_each(0..8, |_, o| offs.push(o[0]));
        assert_eq!(offs, vec![0, 1, 2, 3, 12, 13, 14, 15]);
    }

    #[test]
    fn expand_and_broadcast() {
        let l = Layout::contiguous(&[3, 1]);
        let e = l.expand(&[2, 3, 4]).unwrap();
        assert_eq!(e.strides(), &[0, 1, 0]);
        assert_eq!(broadcast_shapes("t", &[3, 1], &[4]).unwrap(), vec![3, 4]);
        assert!(broadcast_shapes("t", &[3], &[4]).is_err());
    }
}
