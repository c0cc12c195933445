//! Reductions (sum, max, min over any set of axes) and arg-reductions.

use rayon::prelude::*;

use crate::dtype::{Element, Float};
use crate::error::{invalid, Result};
use crate::layout::Layout;
use crate::op::{Op, ReduceOp};
use crate::parallel::{num_threads, pool, worth_parallel};
use crate::storage::StorageElement;
use crate::tensor::strided_copy;
use crate::Tensor;

/// Sums a slice with 8 independent accumulators: vectorizes, and is more accurate than one
/// running sum.
#[inline(always)]
pub(crate) fn sum_slice<T: Float>(x: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    let mut s = T::zero();
    for &r in rest {
        s += r;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s
}

/// Max or min of a slice, in 32 independent lanes (four vectors of eight, so that the chains of
/// compare-and-select overlap); NaN propagates.
#[inline(always)]
pub(crate) fn extreme_slice<T: Float>(x: &[T], max: bool) -> T {
    let init = if max { T::NEG_INFINITY } else { T::INFINITY };
    let pick = |a: T, b: T| if max { a.max(b) } else { a.min(b) };
    let mut acc = [init; 32];
    let chunks = x.chunks_exact(32);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..32 {
            acc[k] = pick(acc[k], c[k]);
        }
    }
    let mut m = rest.iter().fold(init, |m, &v| pick(m, v));
    for a in acc {
        m = pick(m, a);
    }
    m
}

/// The shift and log-normaliser of a row for softmax and cross-entropy: `(m, log Σ e^(x − m))`
/// with `m` the row's maximum. A row without a finite maximum comes out NaN, as in PyTorch: all
/// `-inf` is shifted by 0 (the log of the sum is then `-inf`), a NaN or `+inf` maximum by itself
/// (NaN in the sum). Two passes, each in 32 lanes, nothing stored. With a finite maximum every
/// argument `x − m` is `≤ 0` (or `-inf`), so the cheaper [`Float::exp_nonpos`] serves;
/// otherwise the full `exp`.
#[inline(always)]
pub(crate) fn shift_and_log_sum<T: Float>(x: &[T]) -> (T, T) {
    let m = extreme_slice(x, true);
    if m.to_f64().is_finite() {
        return (m, sum_mapped(x, |v| (v - m).exp_nonpos()).ln());
    }
    let m = if m == T::NEG_INFINITY { T::zero() } else { m };
    (m, sum_mapped(x, |v| (v - m).exp()).ln())
}

/// `Σ f(x)` over a slice in 32 lanes.
#[inline(always)]
fn sum_mapped<T: Float>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); 32];
    let chunks = x.chunks_exact(32);
    let rest = chunks.remainder().iter().fold(T::zero(), |s, &v| s + f(v));
    for c in chunks {
        for k in 0..32 {
            acc[k] += f(c[k]);
        }
    }
    sum_slice(&acc) + rest
}

fn fold_slice<T: Float>(op: ReduceOp, x: &[T]) -> T {
    match op {
        ReduceOp::Sum => sum_slice(x),
        ReduceOp::Max => extreme_slice(x, true),
        ReduceOp::Min => extreme_slice(x, false),
    }
}

fn combine<T: Float>(op: ReduceOp, a: T, b: T) -> T {
    match op {
        ReduceOp::Sum => a + b,
        ReduceOp::Max => a.max(b),
        ReduceOp::Min => a.min(b),
    }
}

/// Normalises and checks a list of (possibly negative) axes; empty means all axes.
pub(crate) fn resolve_axes(t: &Tensor, op: &'static str, axes: &[isize]) -> Result<Vec<usize>> {
    if axes.is_empty() {
        return Ok((0..t.rank()).collect());
    }
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let a = t.axis(op, a)?;
        if out.contains(&a) {
            return Err(invalid(op, format!("axis {a} listed twice")));
        }
        out.push(a);
    }
    out.sort_unstable();
    Ok(out)
}

/// Reduces `x` over `axes` (sorted, unique), keeping them as size 1.
fn reduce_kernel<T: Float + StorageElement>(op: ReduceOp, x: &Tensor, axes: &[usize]) -> Vec<T> {
    let shape = x.shape();
    let kept: Vec<usize> = (0..shape.len()).filter(|d| !axes.contains(d)).collect();
    let outer: usize = kept.iter().map(|&d| shape[d]).product();
    let inner: usize = axes.iter().map(|&d| shape[d]).product();
    let s = x.storage();
    let src = T::slice(&s);
    if inner == 0 {
        return vec![fold_slice::<T>(op, &[]); outer];
    }
    // Fast path: a contiguous tensor reduced over leading axes, e.g. a bias gradient summed over
    // the batch. Accumulate whole rows, no transpose.
    let leading = axes.iter().enumerate().all(|(i, &a)| a == i);
    if leading && x.is_contiguous() && !axes.is_empty() {
        let data = &src[x.layout().contiguous_range().expect("contiguous")];
        if outer == 0 {
            return Vec::new();
        }
        if outer == 1 {
            return vec![fold_slice(op, data)];
        }
        let mut acc = data[..outer].to_vec();
        // Each task folds every row into its own run of columns.
        let fold = |first: usize, acc: &mut [T]| {
            for row in data.chunks_exact(outer).skip(1) {
                for (a, &v) in acc.iter_mut().zip(&row[first..]) {
                    *a = combine(op, *a, v);
                }
            }
        };
        if worth_parallel(data.len()) && outer >= 64 {
            // Whole cache lines per task: 16 columns of f32.
            let cols = outer.div_ceil(num_threads()).next_multiple_of(16);
            pool().install(|| acc.par_chunks_mut(cols).enumerate().for_each(|(i, a)| fold(i * cols, a)));
        } else {
            fold(0, &mut acc);
        }
        return acc;
    }
    // A contiguous tensor whose kept axes are one run with reduced axes on either side, e.g. a
    // convolution's bias gradient (the sum over N, H and W of [N, C, H, W]): each kept position
    // owns one contiguous run of `after` elements per leading index. Fold the runs in place
    // instead of copying the tensor into the general path's order.
    if let (Some(&first), Some(&last)) = (kept.first(), kept.last()) {
        let after: usize = shape[last + 1..].iter().product();
        if x.is_contiguous() && last - first + 1 == kept.len() && outer > 0 && after > 1 {
            let data = &src[x.layout().contiguous_range().expect("contiguous")];
            let mut acc = vec![fold_slice::<T>(op, &[]); outer];
            for (a, block) in data.chunks_exact(outer * after).enumerate() {
                for (k, run) in block.chunks_exact(after).enumerate() {
                    let v = fold_slice(op, run);
                    acc[k] = if a == 0 { v } else { combine(op, acc[k], v) };
                }
            }
            return acc;
        }
    }
    // General path: bring the reduced axes last (a view), copy if that is not contiguous, then
    // fold contiguous runs of `inner` elements.
    let perm: Vec<usize> = kept.iter().chain(axes.iter()).copied().collect();
    let permuted = x.layout().permute(&perm).expect("valid permutation");
    let owned;
    let data: &[T] = match permuted.contiguous_range() {
        Some(r) => &src[r],
        None => {
            owned = strided_copy(src, &permuted);
            &owned
        }
    };
    if worth_parallel(data.len()) && outer > 1 {
        let mut out = Vec::with_capacity(outer);
        pool().install(|| data.par_chunks(inner).map(|c| fold_slice(op, c)).collect_into_vec(&mut out));
        out
    } else {
        data.chunks(inner).map(|c| fold_slice(op, c)).collect()
    }
}

fn keepdim_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().map(|(d, &n)| if axes.contains(&d) { 1 } else { n }).collect()
}

fn squeeze_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape.iter().enumerate().filter(|(d, _)| !axes.contains(d)).map(|(_, &n)| n).collect()
}

impl Tensor {
    fn reduce(&self, op: ReduceOp, axes: &[isize], keepdim: bool, name: &'static str) -> Result<Tensor> {
        let axes = resolve_axes(self, name, axes)?;
        if op != ReduceOp::Sum && axes.iter().any(|&a| self.shape()[a] == 0) {
            return Err(invalid(name, format!("cannot take the {name} of an empty dimension of {:?}", self.shape())));
        }
        let out_shape = keepdim_shape(self.shape(), &axes);
        let out = crate::with_float!(self.dtype(), name, |T| {
            let data = reduce_kernel::<T>(op, self, &axes);
            Ok(Tensor::from_op(T::wrap(data), &out_shape, || Op::Reduce(op, self.clone(), axes.clone())))
        })?;
        if keepdim {
            Ok(out)
        } else {
            out.reshape(&squeeze_shape(self.shape(), &axes))
        }
    }

    /// Sum over `axes` (empty: all axes).
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axes, keepdim, "sum")
    }

    /// Sum of all elements, as a 0-d tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }

    /// Mean over `axes` (empty: all axes).
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let resolved = resolve_axes(self, "mean", axes)?;
        let n: usize = resolved.iter().map(|&a| self.shape()[a]).product();
        self.sum(axes, keepdim)?.div_scalar(n as f64)
    }

    /// Mean of all elements, as a 0-d tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[], false)
    }

    /// Maximum over `axes`; the gradient is shared equally among tied maxima.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, axes, keepdim, "max")
    }

    /// Minimum over `axes`; the gradient is shared equally among tied minima.
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, axes, keepdim, "min")
    }

    pub fn max_all(&self) -> Result<Tensor> {
        self.max(&[], false)
    }

    pub fn min_all(&self) -> Result<Tensor> {
        self.min(&[], false)
    }

    /// Variance over `axes` with `correction` (1: unbiased, like `torch.var`; 0: population).
    pub fn var(&self, axes: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        let resolved = resolve_axes(self, "var", axes)?;
        let n: usize = resolved.iter().map(|&a| self.shape()[a]).product();
        if n <= correction {
            return Err(invalid("var", format!("{n} elements are too few for correction {correction}")));
        }
        let centred = self.sub(&self.mean(axes, true)?)?;
        centred.square()?.sum(axes, keepdim)?.div_scalar((n - correction) as f64)
    }

    /// Standard deviation over `axes` with `correction` (see [`Tensor::var`]).
    pub fn std(&self, axes: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        self.var(axes, correction, keepdim)?.sqrt()
    }

    fn arg_reduce(&self, axis: isize, keepdim: bool, want_max: bool, name: &'static str) -> Result<Tensor> {
        let a = self.axis(name, axis)?;
        let n = self.shape()[a];
        if n == 0 {
            return Err(invalid(name, format!("empty dimension {a} of {:?}", self.shape())));
        }
        // Move the axis last and scan contiguous runs; the first extreme wins (as in PyTorch).
        let mut perm: Vec<usize> = (0..self.rank()).filter(|&d| d != a).collect();
        perm.push(a);
        let permuted: Layout = self.layout().permute(&perm)?;
        let idx: Vec<i64> = crate::with_any!(self.dtype(), |T| {
            let s = self.storage();
            let data: Vec<T> = strided_copy(T::slice(&s), &permuted);
            data.chunks(n)
                .map(|c| {
                    let mut best = 0;
                    for (i, &v) in c.iter().enumerate() {
                        let better = if want_max { v > c[best] } else { v < c[best] };
                        // NaN counts as the extreme, as in PyTorch.
                        if better || (v.to_f64().is_nan() && !c[best].to_f64().is_nan()) {
                            best = i;
                        }
                    }
                    best as i64
                })
                .collect()
        });
        let out = Tensor::from_vec(idx, &keepdim_shape(self.shape(), &[a]))?;
        if keepdim {
            Ok(out)
        } else {
            out.reshape(&squeeze_shape(self.shape(), &[a]))
        }
    }

    /// Index of the largest element along `axis` (i64).
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce(axis, keepdim, true, "argmax")
    }

    /// Index of the smallest element along `axis` (i64).
    pub fn argmin(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce(axis, keepdim, false, "argmin")
    }
}

/// Gradient of a keepdim reduction `out` of `x` over `axes`.
pub(crate) fn backward(op: ReduceOp, x: &Tensor, _axes: &[usize], out: &Tensor, g: &Tensor) -> Result<Tensor> {
    match op {
        ReduceOp::Sum => g.expand(x.shape()),
        ReduceOp::Max | ReduceOp::Min => {
            // The extremes share the gradient equally.
            let mask = x.eq(&out.detach())?;
            let count = mask.sum(&_axes.iter().map(|&a| a as isize).collect::<Vec<_>>(), true)?;
            g.div(&count)?.mul(&mask)
        }
    }
}
