//! Movement: reshape, permute, expand and narrow are views (no copy); cat, contiguous and dtype
//! conversion copy. Backward rules move the gradient back the other way.

use crate::dtype::DType;
use crate::error::{dtype_err, invalid, shape_err, Result};
use crate::op::Op;
use crate::storage::StorageElement;
use crate::tensor::strided_copy;
use crate::Tensor;

impl Tensor {
    /// The same elements in a new shape; for `-1` use
    /// [`Tensor::reshape_infer`]. A view when the data is contiguous, else a copy.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(shape_err(
                "reshape",
                format!("cannot reshape {:?} ({} elements) to {shape:?} ({n} elements)", self.shape(), self.numel()),
            ));
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let src = if self.is_contiguous() { self.clone() } else { self.contiguous()? };
        let layout = src.layout().reshape_view(shape).expect("contiguous data reshapes as a view");
        Ok(src.view(layout, || Op::Reshape(src.clone())))
    }

    /// Reshape where one dimension may be `-1` (inferred), like PyTorch's `view(-1, n)`.
    pub fn reshape_infer(&self, shape: &[isize]) -> Result<Tensor> {
        let known: usize = shape.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
        let holes = shape.iter().filter(|&&d| d == -1).count();
        if holes > 1 || shape.iter().any(|&d| d < -1) {
            return Err(shape_err(
                "reshape",
                format!("invalid shape {shape:?}: at most one -1 and no other negative sizes"),
            ));
        }
        let fill = if holes == 1 {
            if known == 0 || !self.numel().is_multiple_of(known) {
                return Err(shape_err("reshape", format!("cannot reshape {:?} to {shape:?}", self.shape())));
            }
            self.numel() / known
        } else {
            0
        };
        let dims: Vec<usize> = shape.iter().map(|&d| if d == -1 { fill } else { d as usize }).collect();
        self.reshape(&dims)
    }

    /// Reorders the dimensions (a view).
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let layout = self.layout().permute(perm)?;
        Ok(self.view(layout, || Op::Permute(self.clone(), perm.to_vec())))
    }

    /// Swaps two dimensions (a view); negative dimensions count from the end.
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let (a, b) = (self.axis("transpose", d0)?, self.axis("transpose", d1)?);
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// The transpose of a matrix (a view).
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() != 2 {
            return Err(shape_err("t", format!("expected a matrix, got shape {:?}", self.shape())));
        }
        self.transpose(0, 1)
    }

    /// Broadcasts to `shape` with NumPy rules (a view with stride 0 where stretched).
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let layout = self.layout().expand(shape)?;
        Ok(self.view(layout, || Op::Expand(self.clone())))
    }

    /// Elements `start .. start + len` along `dim` (a view).
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = self.axis("narrow", dim)?;
        if start == 0 && len == self.shape()[d] {
            return Ok(self.clone());
        }
        let layout = self.layout().narrow(d, start, len)?;
        Ok(self.view(layout, || Op::Narrow(self.clone(), d, start)))
    }

    /// Inserts a dimension of size 1 at `dim`.
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let r = self.rank() as isize;
        let d = if dim < 0 { dim + r + 1 } else { dim };
        if d < 0 || d > r {
            return Err(invalid("unsqueeze", format!("dimension {dim} out of range for shape {:?}", self.shape())));
        }
        let mut shape = self.shape().to_vec();
        shape.insert(d as usize, 1);
        self.reshape(&shape)
    }

    /// Removes dimension `dim`, which must have size 1.
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = self.axis("squeeze", dim)?;
        if self.shape()[d] != 1 {
            return Err(shape_err("squeeze", format!("dimension {d} of {:?} is not 1", self.shape())));
        }
        let mut shape = self.shape().to_vec();
        shape.remove(d);
        self.reshape(&shape)
    }

    /// Merges dimensions `start..=end` into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape(&[1]);
        }
        let (s, e) = (self.axis("flatten", start)?, self.axis("flatten", end)?);
        if s > e {
            return Err(invalid("flatten", format!("start {s} after end {e}")));
        }
        let mut shape = self.shape()[..s].to_vec();
        shape.push(self.shape()[s..=e].iter().product());
        shape.extend_from_slice(&self.shape()[e + 1..]);
        self.reshape(&shape)
    }

    /// A contiguous copy if this is a strided view; otherwise this tensor.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let data = crate::with_any!(self.dtype(), |T| {
            let s = self.storage();
            T::wrap(strided_copy(T::slice(&s), self.layout()))
        });
        Ok(Tensor::from_op(data, self.shape(), || Op::Copy(self.clone())))
    }

    /// Converts to another dtype. Float-to-float conversions are differentiable.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let v = self.to_f64_vec();
        let t = Tensor::from_f64_vec(v, self.shape(), dtype);
        if self.dtype().is_float() && dtype.is_float() {
            Ok(t.with_op(|| Op::Cast(self.clone())))
        } else {
            Ok(t)
        }
    }

    /// Sums a broadcast gradient back to `shape` (the adjoint of [`Tensor::expand`]).
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self.rank().checked_sub(shape.len()).ok_or_else(|| {
            shape_err("sum_to_shape", format!("cannot sum {:?} to the larger rank of {shape:?}", self.shape()))
        })?;
        let mut axes: Vec<isize> = (0..lead as isize).collect();
        for (i, &d) in shape.iter().enumerate() {
            let src = self.shape()[lead + i];
            if d == 1 && src != 1 {
                axes.push((lead + i) as isize);
            } else if d != src {
                return Err(shape_err("sum_to_shape", format!("cannot sum {:?} to {shape:?}", self.shape())));
            }
        }
        self.sum(&axes, true)?.reshape(shape)
    }

    /// Concatenates along `dim`; all other dimensions must agree.
    pub fn cat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors.first().ok_or_else(|| invalid("cat", "no tensors given"))?;
        let d = first.axis("cat", dim)?;
        for t in tensors {
            if t.dtype() != first.dtype() {
                return Err(dtype_err("cat", format!("mixed dtypes {} and {}", first.dtype(), t.dtype())));
            }
            let ok = t.rank() == first.rank() && (0..t.rank()).all(|i| i == d || t.shape()[i] == first.shape()[i]);
            if !ok {
                return Err(shape_err(
                    "cat",
                    format!("shapes {:?} and {:?} differ outside dimension {d}", first.shape(), t.shape()),
                ));
            }
        }
        if tensors.len() == 1 {
            return Ok((*first).clone());
        }
        let mut shape = first.shape().to_vec();
        shape[d] = tensors.iter().map(|t| t.shape()[d]).sum();
        let outer: usize = shape[..d].iter().product();
        let inner: usize = shape[d + 1..].iter().product();
        let row = shape[d] * inner;
        fn k<T: StorageElement + Default>(
            tensors: &[&Tensor],
            d: usize,
            outer: usize,
            inner: usize,
            row: usize,
        ) -> Vec<T> {
            // Every element is written below.
            let mut out = crate::storage::zeroed::<T>(outer * row);
            let mut col = 0;
            for t in tensors {
                let w = t.shape()[d] * inner;
                let s = t.storage();
                let copy_from = |out: &mut [T], src: &[T]| {
                    for o in 0..outer {
                        out[o * row + col..o * row + col + w].copy_from_slice(&src[o * w..(o + 1) * w]);
                    }
                };
                // A contiguous part is read in place; a view is gathered first.
                match t.layout().contiguous_range() {
                    Some(r) => copy_from(&mut out, &T::slice(&s)[r]),
                    None => copy_from(&mut out, &strided_copy(T::slice(&s), t.layout())),
                }
                col += w;
            }
            out
        }
        let data = crate::with_any!(first.dtype(), |T| T::wrap(k::<T>(tensors, d, outer, inner, row)));
        let owned: Vec<Tensor> = tensors.iter().map(|t| (*t).clone()).collect();
        Ok(Tensor::from_op(data, &shape, || Op::Cat(owned, d)))
    }

    /// Stacks equally shaped tensors along a new dimension `dim`.
    pub fn stack(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors.first().ok_or_else(|| invalid("stack", "no tensors given"))?;
        for t in tensors {
            if t.shape() != first.shape() {
                return Err(shape_err("stack", format!("shapes {:?} and {:?} differ", first.shape(), t.shape())));
            }
        }
        let parts = tensors.iter().map(|t| t.unsqueeze(dim)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = parts.iter().collect();
        Tensor::cat(&refs, dim)
    }

    /// Splits into pieces of `size` along `dim` (the last may be smaller); views.
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = self.axis("split", dim)?;
        if size == 0 {
            return Err(invalid("split", "piece size 0"));
        }
        let n = self.shape()[d];
        (0..n).step_by(size).map(|s| self.narrow(d as isize, s, size.min(n - s))).collect()
    }

    /// Pads the last two dimensions with a constant (`[left, right, top, bottom]`), like
    /// `F.pad(x, (l, r, t, b))`. Composite: concatenation with constant blocks.
    pub fn pad2d(&self, pad: [usize; 4], value: f64) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(shape_err("pad2d", format!("needs at least 2 dimensions, got {:?}", self.shape())));
        }
        let [l, r, t, b] = pad;
        let r_ = self.rank();
        let block = |dim: usize, n: usize, base: &Tensor| -> Tensor {
            let mut s = base.shape().to_vec();
            s[dim] = n;
            Tensor::full(&s, value, base.dtype())
        };
        let mut x = self.clone();
        if l + r > 0 {
            let (bl, br) = (block(r_ - 1, l, &x), block(r_ - 1, r, &x));
            x = Tensor::cat(&[&bl, &x, &br], -1)?;
        }
        if t + b > 0 {
            let (bt, bb) = (block(r_ - 2, t, &x), block(r_ - 2, b, &x));
            x = Tensor::cat(&[&bt, &x, &bb], -2)?;
        }
        Ok(x)
    }
}

/// Gradients of the movement ops (one per input, in [`Op::inputs`] order).
pub(crate) fn backward(op: &Op, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    Ok(match op {
        Op::Reshape(x) => vec![Some(g.reshape(x.shape())?)],
        Op::Permute(_, perm) => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            vec![Some(g.permute(&inv)?)]
        }
        Op::Expand(x) => vec![Some(g.sum_to_shape(x.shape())?)],
        Op::Narrow(x, d, start) => {
            // Put the gradient back in place, zeros around it.
            let len = g.shape()[*d];
            let after = x.shape()[*d] - start - len;
            let zeros = |n: usize| {
                let mut s = x.shape().to_vec();
                s[*d] = n;
                Tensor::zeros(&s, g.dtype())
            };
            let (z0, z1) = (zeros(*start), zeros(after));
            let mut parts: Vec<&Tensor> = Vec::with_capacity(3);
            if *start > 0 {
                parts.push(&z0);
            }
            parts.push(g);
            if after > 0 {
                parts.push(&z1);
            }
            vec![Some(Tensor::cat(&parts, *d as isize)?)]
        }
        Op::Cat(xs, d) => {
            let mut at = 0;
            let mut out = Vec::with_capacity(xs.len());
            for x in xs {
                let n = x.shape()[*d];
                out.push(Some(g.narrow(*d as isize, at, n)?));
                at += n;
            }
            out
        }
        Op::Copy(_) => vec![Some(g.clone())],
        Op::Cast(x) => vec![Some(g.to_dtype(x.dtype())?)],
        _ => unreachable!("not a movement op: {}", op.name()),
    })
}
