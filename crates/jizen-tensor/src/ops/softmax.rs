//! Fused log-softmax over the last axis: one pass for the maximum, one for the sum of
//! exponentials (not stored), one to write — instead of the composite's eight. It computes the
//! composite `(x - m) - log(sum(exp(x - m)))` (never adding the maximum back, never
//! `log(softmax)`), summed in another order and, in f32, with exponentials below `2^-126` taken
//! as 0 (`reduce::shift_and_log_sum`); `tests/fused.rs` checks the two against each other, and
//! the parity fixtures against PyTorch.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::dtype::Float;
use crate::error::Result;
use crate::op::Op;
use crate::ops::reduce::shift_and_log_sum;
use crate::parallel::{pool, worth_parallel};
use crate::storage::{assume_init, fill_uninit, uninit, StorageElement};
use crate::Tensor;

crate::simd::multiversion! {
    /// Log-softmax of one row, compiled for the widest vector extension the CPU has.
    fn row<T: Float>(x: &[T], out: &mut [T]) => row_body
}

#[inline(always)]
fn row_body<T: Float>(x: &[T], out: &mut [T]) {
    // A row without a finite maximum comes out NaN, as in PyTorch, and does not disturb the
    // other rows (see `shift_and_log_sum`).
    let (m, log_sum) = shift_and_log_sum(x);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v - m) - log_sum;
    }
}

fn kernel<T: Float>(x: &[T], n: usize) -> Vec<T> {
    if n == 0 || x.is_empty() {
        return Vec::new();
    }
    // Each output row is zero-filled just before its kernel writes it (in cache), not the whole
    // output first.
    let mut out = uninit::<T>(x.len());
    let rows = |o: &mut [MaybeUninit<T>], x: &[T]| {
        o.chunks_mut(n).zip(x.chunks(n)).for_each(|(o, x)| row(x, fill_uninit(o, T::zero())));
    };
    if worth_parallel(x.len()) && x.len() / n > 1 {
        let rows_per_task = (x.len() / n / (4 * crate::parallel::num_threads())).max(1);
        pool().install(|| {
            out.par_chunks_mut(n * rows_per_task).zip(x.par_chunks(n * rows_per_task)).for_each(|(o, x)| rows(o, x))
        });
    } else {
        rows(&mut out, x);
    }
    // SAFETY: the rows cover the output and each was filled before its kernel ran.
    unsafe { assume_init(out) }
}

impl Tensor {
    /// The primitive: log-softmax over the last axis (the input is made contiguous first).
    pub(crate) fn log_softmax_last(&self) -> Result<Tensor> {
        let x = self.contiguous()?;
        let n = *x.shape().last().unwrap_or(&1);
        crate::with_float!(x.dtype(), "log_softmax", |T| {
            let data = x.with_data::<T, _>(|v| kernel::<T>(v, n))?;
            Ok(Tensor::from_op(T::wrap(data), x.shape(), || Op::LogSoftmax(x.clone())))
        })
    }
}

/// Gradient of `out = log_softmax(x)` over the last axis: `g - exp(out) * sum(g)`, in tensor ops.
pub(crate) fn log_softmax_backward(out: &Tensor, g: &Tensor) -> Result<Tensor> {
    g.sub(&out.exp()?.mul(&g.sum(&[-1], true)?)?)
}
