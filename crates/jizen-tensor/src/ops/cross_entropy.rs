//! Fused softmax cross-entropy: the loss of each row of logits `[M, C]` against an integer
//! target, with optional label smoothing `ε`,
//!
//! ```text
//! loss_i = (1 − ε)·(−log p_i,y_i) + ε·mean_j(−log p_ij),   log p_i = log_softmax(x_i)
//!        = log Σ_j e^(x_ij − m_i) − ((1 − ε)·(x_i,y_i − m_i) + ε·mean_j(x_ij − m_i))
//! ```
//!
//! with `m_i` the row maximum. The composite (`log_softmax`, `gather`, `mean`) keeps the
//! `[M, C]` log-probabilities for its backward pass and allocates four more `[M, C]` tensors
//! there (the scattered gradient, `exp`, a product and a difference). This primitive keeps two
//! numbers per row (`m_i` and the log of the sum) and writes its gradient in one pass:
//!
//! ```text
//! ∂loss_i/∂x_ij = softmax(x_i)_j − (1 − ε)·[j = y_i] − ε/C
//! ```
//!
//! When the backward pass is itself recorded (`create_graph`), the same gradient is composed of
//! differentiable ops instead, so second derivatives stay exact. `tests/fused.rs` checks both
//! against the composite; the parity fixtures check `cross_entropy` against PyTorch.

use std::mem::MaybeUninit;
use std::sync::Arc;

use rayon::prelude::*;

use crate::autograd::is_grad_enabled;
use crate::dtype::Float;
use crate::error::{shape_err, Result};
use crate::op::Op;
use crate::ops::reduce::shift_and_log_sum;
use crate::parallel::{num_threads, pool, worth_parallel};
use crate::storage::{assume_init, uninit, StorageElement};
use crate::Tensor;

/// Forward of a block of rows: the losses and the per-row `(m, log-sum)`.
#[inline(always)]
fn forward_rows<T: Float>(x: &[T], y: &[usize], eps: f64, loss: &mut [T], stats: &mut [T]) {
    let c = x.len() / y.len();
    let (keep, spread) = (T::from_f64(1.0 - eps), T::from_f64(eps / c as f64));
    for (i, (row, &target)) in x.chunks_exact(c).zip(y).enumerate() {
        let (m, log_sum) = shift_and_log_sum(row);
        let mut picked = keep * (row[target] - m);
        if eps > 0.0 {
            let mut shifted_sum = T::zero();
            row.iter().for_each(|&v| shifted_sum += v - m);
            picked += spread * shifted_sum;
        }
        loss[i] = log_sum - picked;
        stats[2 * i] = m;
        stats[2 * i + 1] = log_sum;
    }
}

/// Backward of a block of rows: `dx = g_i · (softmax − target distribution)`. Writes every
/// element of `dx` (which need not be initialised).
#[inline(always)]
fn backward_rows<T: Float>(x: &[T], y: &[usize], stats: &[T], g: &[T], eps: f64, dx: &mut [MaybeUninit<T>]) {
    let c = x.len() / y.len();
    let (keep, spread) = (T::from_f64(1.0 - eps), T::from_f64(eps / c as f64));
    for (i, ((row, out), &target)) in x.chunks_exact(c).zip(dx.chunks_exact_mut(c)).zip(y).enumerate() {
        let (m, log_sum, gi) = (stats[2 * i], stats[2 * i + 1], g[i]);
        // With a finite shift and normaliser, `(v − m) − log_sum ≤ 0` for every element.
        if (m + log_sum).to_f64().is_finite() {
            gradient_row(row, out, target, |v| gi * (((v - m) - log_sum).exp_nonpos() - spread), gi * keep);
        } else {
            gradient_row(row, out, target, |v| gi * (((v - m) - log_sum).exp() - spread), gi * keep);
        }
    }
}

/// One row of the gradient: `d(v)` for every logit, less `picked` at the target.
#[inline(always)]
fn gradient_row<T: Float>(row: &[T], out: &mut [MaybeUninit<T>], target: usize, d: impl Fn(T) -> T, picked: T) {
    for (o, &v) in out.iter_mut().zip(row) {
        o.write(d(v));
    }
    out[target].write(d(row[target]) - picked);
}

crate::simd::multiversion! {
    /// [`forward_rows`], compiled for the widest vector extension the CPU has.
    fn forward_rows_wide<T: Float>(x: &[T], y: &[usize], eps: f64, loss: &mut [T], stats: &mut [T]) => forward_rows
}

crate::simd::multiversion! {
    /// [`backward_rows`], compiled for the widest vector extension the CPU has.
    fn backward_rows_wide<T: Float>(
        x: &[T],
        y: &[usize],
        stats: &[T],
        g: &[T],
        eps: f64,
        dx: &mut [MaybeUninit<T>],
    ) => backward_rows
}

/// Rows per parallel task for `m` rows of `c` classes (0: run on this thread).
fn rows_per_task(m: usize, c: usize) -> usize {
    if worth_parallel(m * c) && m > 1 {
        (m / (4 * num_threads())).max(1)
    } else {
        0
    }
}

fn forward_kernel<T: Float>(x: &[T], y: &[usize], eps: f64) -> (Vec<T>, Vec<T>) {
    let m = y.len();
    let c = x.len() / m.max(1);
    let (mut loss, mut stats) = (vec![T::zero(); m], vec![T::zero(); 2 * m]);
    let run = |x: &[T], y: &[usize], l: &mut [T], s: &mut [T]| forward_rows_wide(x, y, eps, l, s);
    match rows_per_task(m, c) {
        0 if m > 0 => run(x, y, &mut loss, &mut stats),
        0 => {}
        r => pool().install(|| {
            x.par_chunks(r * c)
                .zip(y.par_chunks(r))
                .zip(loss.par_chunks_mut(r))
                .zip(stats.par_chunks_mut(2 * r))
                .for_each(|(((x, y), l), s)| run(x, y, l, s))
        }),
    }
    (loss, stats)
}

fn backward_kernel<T: Float>(x: &[T], y: &[usize], stats: &[T], g: &[T], eps: f64) -> Vec<T> {
    let m = y.len();
    let c = x.len() / m.max(1);
    let mut dx = uninit::<T>(x.len());
    let run = |x: &[T], y: &[usize], s: &[T], g: &[T], d: &mut [MaybeUninit<T>]| backward_rows_wide(x, y, s, g, eps, d);
    match rows_per_task(m, c) {
        0 if m > 0 => run(x, y, stats, g, &mut dx),
        0 => {}
        r => pool().install(|| {
            x.par_chunks(r * c)
                .zip(y.par_chunks(r))
                .zip(stats.par_chunks(2 * r))
                .zip(g.par_chunks(r))
                .zip(dx.par_chunks_mut(r * c))
                .for_each(|((((x, y), s), g), d)| run(x, y, s, g, d))
        }),
    }
    // SAFETY: the tasks cover the gradient (m rows of c) and the kernel writes every element.
    unsafe { assume_init(dx) }
}

impl Tensor {
    /// The primitive: per-row softmax cross-entropy of logits `[M, C]` (made contiguous first)
    /// against class indices `targets` (each below `C`, checked by the caller), with label
    /// smoothing `eps`. Returns the `[M]` losses.
    pub(crate) fn softmax_cross_entropy_rows(&self, targets: Arc<[usize]>, eps: f64) -> Result<Tensor> {
        if self.rank() != 2 || self.shape()[0] != targets.len() {
            return Err(shape_err(
                "softmax_cross_entropy",
                format!("logits {:?} must be [M, C] with M = {} targets", self.shape(), targets.len()),
            ));
        }
        let x = self.contiguous()?;
        let m = targets.len();
        crate::with_float!(x.dtype(), "softmax_cross_entropy", |T| {
            let (loss, stats) = x.with_data::<T, _>(|v| forward_kernel::<T>(v, &targets, eps))?;
            let stats = Tensor::from_storage(T::wrap(stats), &[m, 2]);
            Ok(Tensor::from_op(T::wrap(loss), &[m], || Op::SoftmaxCrossEntropy {
                logits: x.clone(),
                targets: targets.clone(),
                smoothing: eps,
                stats,
            }))
        })
    }
}

/// Gradient of the per-row losses in the logits, for the upstream gradient `g` `[M]`.
pub(crate) fn backward(logits: &Tensor, targets: &[usize], eps: f64, stats: &Tensor, g: &Tensor) -> Result<Tensor> {
    let (m, c) = (logits.shape()[0], logits.shape()[1]);
    if is_grad_enabled() {
        // Recorded backward: softmax through the differentiable log-softmax primitive.
        let mut dist = vec![eps / c as f64; m * c];
        for (i, &t) in targets.iter().enumerate() {
            dist[i * c + t] += 1.0 - eps;
        }
        let dist = Tensor::from_f64_vec(dist, &[m, c], logits.dtype());
        return logits.log_softmax(1)?.exp()?.sub(&dist)?.mul(&g.unsqueeze(1)?);
    }
    let g = g.contiguous()?;
    crate::with_float!(logits.dtype(), "softmax_cross_entropy backward", |T| {
        let (ls, ss, gs) = (logits.storage(), stats.storage(), g.storage());
        let (x, s, gv) = (T::slice(&ls), T::slice(&ss), T::slice(&gs));
        let (x, gv) = (&x[logits.layout().offset()..][..m * c], &gv[g.layout().offset()..][..m]);
        let dx = backward_kernel::<T>(x, targets, s, gv, eps);
        Ok(Tensor::from_storage(T::wrap(dx), &[m, c]))
    })
}
