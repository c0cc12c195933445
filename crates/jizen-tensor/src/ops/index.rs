//! Indexing: index_select / index_add (whole slices by index) and gather / scatter_add (element
//! by element). Each pair is the other's adjoint, which is all their backward rules say.

use crate::dtype::{DType, Element};
use crate::error::{dtype_err, invalid, shape_err, Result};
use crate::op::Op;
use crate::storage::StorageElement;
use crate::tensor::strided_copy;
use crate::Tensor;

/// The index values, checked against `size` (the extent of the indexed dimension).
fn indices(op: &'static str, idx: &Tensor, size: usize) -> Result<Vec<usize>> {
    if idx.dtype() != DType::I64 {
        return Err(dtype_err(op, format!("indices must be i64, got {}", idx.dtype())));
    }
    idx.to_vec::<i64>()?
        .into_iter()
        .map(|i| {
            if i < 0 || i as usize >= size {
                Err(invalid(op, format!("index {i} is out of range for a dimension of size {size}")))
            } else {
                Ok(i as usize)
            }
        })
        .collect()
}

/// `(outer, size of dim, inner)` of a shape split at `dim`.
fn split_at(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    (shape[..dim].iter().product(), shape[dim], shape[dim + 1..].iter().product())
}

fn contiguous_data<T: StorageElement>(t: &Tensor) -> Vec<T> {
    let s = t.storage();
    strided_copy(T::slice(&s), t.layout())
}

/// Visits every position of `shape` in row-major order, with its multi-index.
fn for_each_index(shape: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let n: usize = shape.iter().product();
    let mut idx = vec![0; shape.len()];
    for p in 0..n {
        f(p, &idx);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// For an index with the input's shape outside `dim` (what pooling makes): `(outer, size,
/// index size, inner)`, so that index position `(o, l, i)` (flat `(o * isize + l) * inner + i`)
/// addresses input element `(o * size + index) * inner + i`. `None` for other shapes.
fn aligned(x_shape: &[usize], idx_shape: &[usize], dim: usize) -> Option<(usize, usize, usize, usize)> {
    let same = x_shape.len() == idx_shape.len() && (0..x_shape.len()).all(|q| q == dim || x_shape[q] == idx_shape[q]);
    let (outer, size, inner) = split_at(x_shape, dim);
    same.then_some((outer, size, idx_shape[dim], inner))
}

/// The input offset of every index position (see [`aligned`]), `f(position, offset)` in order.
fn for_each_aligned(
    (outer, size, isize, inner): (usize, usize, usize, usize),
    ids: &[usize],
    mut f: impl FnMut(usize, usize),
) {
    for o in 0..outer {
        for l in 0..isize {
            let p = (o * isize + l) * inner;
            for (i, &id) in ids[p..p + inner].iter().enumerate() {
                f(p + i, (o * size + id) * inner + i);
            }
        }
    }
}

fn check_gather_shapes(op: &'static str, x: &Tensor, dim: usize, idx: &Tensor) -> Result<()> {
    let ok = idx.rank() == x.rank() && (0..x.rank()).all(|d| d == dim || idx.shape()[d] <= x.shape()[d]);
    if !ok {
        return Err(shape_err(
            op,
            format!("index {:?} does not fit input {:?} outside dimension {dim}", idx.shape(), x.shape()),
        ));
    }
    Ok(())
}

/// `out` (the row-major elements of a tensor of `shape`) with `source[..j..]` added at
/// `[..ids[j]..]` along `d`: the kernel of `scatter_add`, which starts from a copy of its input,
/// and of the gather's gradient, which starts from zeros.
fn scatter_add_onto<T: Element + StorageElement>(
    mut out: Vec<T>,
    shape: &[usize],
    d: usize,
    ids: &[usize],
    source: &Tensor,
) -> Result<Vec<T>> {
    source.with_data::<T, _>(|s| {
        if let Some(geometry) = aligned(shape, source.shape(), d) {
            for_each_aligned(geometry, ids, |p, off| out[off] = out[off] + s[p]);
            return out;
        }
        let xs = crate::layout::contiguous_strides(shape);
        for_each_index(source.shape(), |p, at| {
            let off: usize = at.iter().enumerate().map(|(q, &c)| if q == d { ids[p] * xs[q] } else { c * xs[q] }).sum();
            out[off] = out[off] + s[p];
        });
        out
    })
}

/// `out` (the row-major elements of a tensor split `(outer, size, inner)` at the indexed
/// dimension) with the slices of `source` added at `ids`: the kernel of `index_add`, which starts
/// from a copy of its input, and of `index_select`'s gradient, which starts from zeros.
fn index_add_onto<T: Element + StorageElement>(
    mut out: Vec<T>,
    source: &Tensor,
    ids: &[usize],
    (outer, size, inner): (usize, usize, usize),
) -> Result<Vec<T>> {
    source.with_data::<T, _>(|s| {
        for o in 0..outer {
            for (l, &i) in ids.iter().enumerate() {
                let dst = (o * size + i) * inner;
                let from = (o * ids.len() + l) * inner;
                for j in 0..inner {
                    out[dst + j] = out[dst + j] + s[from + j];
                }
            }
        }
        out
    })
}

/// The gradient of `x.index_select(d, idx)` given the output's gradient `g` (as
/// [`gather_backward`] for a gather): outside gradient recording, `g`'s slices are added onto
/// zeros directly; for an embedding table that saves a copy the table's size.
fn index_select_backward(x: &Tensor, d: usize, idx: &Tensor, g: &Tensor) -> Result<Tensor> {
    if crate::autograd::is_grad_enabled() {
        return x.zeros_like().index_add(d as isize, idx, g);
    }
    let ids = indices("index_add", idx, x.shape()[d])?;
    let n = x.numel();
    let geometry = split_at(x.shape(), d);
    let data = crate::with_any!(x.dtype(), |T| {
        T::wrap(index_add_onto(crate::storage::zeroed::<T>(n), g, &ids, geometry)?)
    });
    Ok(Tensor::from_storage(data, x.shape()))
}

/// The gradient of `x.gather(d, idx)` given the output's gradient `g`: zeros of `x`'s shape with
/// `g` scattered onto them. Outside gradient recording (a plain backward pass) the zeros are
/// scattered onto directly, instead of copied first as `scatter_add` copies its input; for a
/// 2×2 max pool of a [64, 32, 28, 28] batch that copy was a 6.4 MB buffer at the peak.
fn gather_backward(x: &Tensor, d: usize, idx: &Tensor, g: &Tensor) -> Result<Tensor> {
    if crate::autograd::is_grad_enabled() {
        return x.zeros_like().scatter_add(d as isize, idx, g);
    }
    let ids = indices("scatter_add", idx, x.shape()[d])?;
    let n = x.numel();
    let data = crate::with_any!(x.dtype(), |T| {
        T::wrap(scatter_add_onto(crate::storage::zeroed::<T>(n), x.shape(), d, &ids, g)?)
    });
    Ok(Tensor::from_storage(data, x.shape()))
}

impl Tensor {
    /// Slices of `self` along `dim` picked by a 1-D i64 `index`.
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = self.axis("index_select", dim)?;
        if index.rank() != 1 {
            return Err(shape_err("index_select", format!("index must be 1-D, got {:?}", index.shape())));
        }
        let ids = indices("index_select", index, self.shape()[d])?;
        let (outer, size, inner) = split_at(self.shape(), d);
        let mut shape = self.shape().to_vec();
        shape[d] = ids.len();
        fn k<T: StorageElement>(x: &Tensor, ids: &[usize], outer: usize, size: usize, inner: usize) -> Result<Vec<T>> {
            x.with_data::<T, _>(|src| {
                let mut out = Vec::with_capacity(outer * ids.len() * inner);
                for o in 0..outer {
                    for &i in ids {
                        let at = (o * size + i) * inner;
                        out.extend_from_slice(&src[at..at + inner]);
                    }
                }
                out
            })
        }
        let data = crate::with_any!(self.dtype(), |T| T::wrap(k::<T>(self, &ids, outer, size, inner)?));
        Ok(Tensor::from_op(data, &shape, || Op::IndexSelect(self.clone(), d, index.clone())))
    }

    /// `self` with the slices of `source` added at `index` along `dim` (repeated indices add up).
    pub fn index_add(&self, dim: isize, index: &Tensor, source: &Tensor) -> Result<Tensor> {
        let d = self.axis("index_add", dim)?;
        if self.dtype() != source.dtype() {
            return Err(dtype_err("index_add", format!("input is {} and source is {}", self.dtype(), source.dtype())));
        }
        let ids = indices("index_add", index, self.shape()[d])?;
        let mut expect = self.shape().to_vec();
        expect[d] = ids.len();
        if index.rank() != 1 || source.shape() != expect.as_slice() {
            return Err(shape_err(
                "index_add",
                format!(
                    "source {:?} does not match input {:?} with {} indices along {d}",
                    source.shape(),
                    self.shape(),
                    ids.len()
                ),
            ));
        }
        let (outer, size, inner) = split_at(self.shape(), d);
        let data = crate::with_any!(self.dtype(), |T| {
            T::wrap(index_add_onto(contiguous_data::<T>(self), source, &ids, (outer, size, inner))?)
        });
        Ok(Tensor::from_op(data, self.shape(), || Op::IndexAdd(self.clone(), d, index.clone(), source.clone())))
    }

    /// `out[..j..] = self[..index[..j..]..]` along `dim` (like `torch.gather`).
    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = self.axis("gather", dim)?;
        check_gather_shapes("gather", self, d, index)?;
        let ids = indices("gather", index, self.shape()[d])?;
        let xs = crate::layout::contiguous_strides(self.shape());
        fn k<T: StorageElement>(
            x: &Tensor,
            xs: &[usize],
            d: usize,
            idx_shape: &[usize],
            ids: &[usize],
        ) -> Result<Vec<T>> {
            x.with_data::<T, _>(|src| {
                if let Some(geometry) = aligned(x.shape(), idx_shape, d) {
                    let mut out = crate::storage::zeroed::<T>(ids.len());
                    for_each_aligned(geometry, ids, |p, off| out[p] = src[off]);
                    return out;
                }
                let mut out = Vec::with_capacity(ids.len());
                for_each_index(idx_shape, |p, at| {
                    let off: usize =
                        at.iter().enumerate().map(|(q, &c)| if q == d { ids[p] * xs[q] } else { c * xs[q] }).sum();
                    out.push(src[off]);
                });
                out
            })
        }
        let data = crate::with_any!(self.dtype(), |T| T::wrap(k::<T>(self, &xs, d, index.shape(), &ids)?));
        Ok(Tensor::from_op(data, index.shape(), || Op::Gather(self.clone(), d, index.clone())))
    }

    /// `self` with `source[..j..]` added at `[..index[..j..]..]` along `dim` (like
    /// `torch.scatter_add`); `index` and `source` have one shape.
    pub fn scatter_add(&self, dim: isize, index: &Tensor, source: &Tensor) -> Result<Tensor> {
        let d = self.axis("scatter_add", dim)?;
        if self.dtype() != source.dtype() {
            return Err(dtype_err(
                "scatter_add",
                format!("input is {} and source is {}", self.dtype(), source.dtype()),
            ));
        }
        if index.shape() != source.shape() {
            return Err(shape_err(
                "scatter_add",
                format!("index {:?} and source {:?} differ", index.shape(), source.shape()),
            ));
        }
        check_gather_shapes("scatter_add", self, d, index)?;
        let ids = indices("scatter_add", index, self.shape()[d])?;
        let data = crate::with_any!(self.dtype(), |T| {
            T::wrap(scatter_add_onto(contiguous_data::<T>(self), self.shape(), d, &ids, source)?)
        });
        Ok(Tensor::from_op(data, self.shape(), || Op::ScatterAdd(self.clone(), d, index.clone(), source.clone())))
    }

    /// Embedding lookup: rows of this `[num, dim]` table for i64 `ids` of any shape; the result
    /// has shape `ids.shape + [dim]`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(shape_err("embedding", format!("table must be [num, dim], got {:?}", self.shape())));
        }
        let flat = ids.reshape(&[ids.numel()])?;
        let rows = self.index_select(0, &flat)?;
        let mut shape = ids.shape().to_vec();
        shape.push(self.shape()[1]);
        rows.reshape(&shape)
    }
}

/// Gradients of the index ops (one per input, in [`Op::inputs`] order).
pub(crate) fn backward(op: &Op, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let need = |t: &Tensor| t.requires_grad();
    Ok(match op {
        Op::IndexSelect(x, d, idx) => vec![Some(index_select_backward(x, *d, idx, g)?)],
        Op::IndexAdd(base, d, idx, src) => {
            vec![need(base).then(|| g.clone()), if need(src) { Some(g.index_select(*d as isize, idx)?) } else { None }]
        }
        Op::Gather(x, d, idx) => vec![Some(gather_backward(x, *d, idx, g)?)],
        Op::ScatterAdd(base, d, idx, src) => {
            vec![need(base).then(|| g.clone()), if need(src) { Some(g.gather(*d as isize, idx)?) } else { None }]
        }
        _ => unreachable!("not an index op: {}", op.name()),
    })
}
