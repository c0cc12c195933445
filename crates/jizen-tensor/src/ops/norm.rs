//! Fused batch normalisation with batch statistics (training mode), `Op::BatchNorm`.
//!
//! For `x` `[N, C, d…]` and each channel `c`, with `M = N·d…` values per channel:
//!
//! ```text
//! μ = Σ x / M,   σ² = Σ (x − μ)² / M   (biased),   r = 1 / √(σ² + eps),
//! x̂ = (x − μ)·r,   y = x̂·w + b
//! ```
//!
//! As a composite (mean, sub, square, mean, add, sqrt, div, mul, add) every intermediate is an
//! activation-sized tensor that the graph keeps until backward ends. The fused primitive keeps
//! the input, the output and two `[C]` vectors (`μ` and `r`), and makes two passes over the
//! input for the statistics (sum, then the sum of squared deviations: accurate even when
//! `|μ| ≫ σ`, which a one-pass `E[x²] − μ²` is not) plus one to write; the sums are
//! accumulated in f64.
//!
//! Backward, with `g = ∂L/∂y`, per channel (sums over the channel's `M` values):
//!
//! ```text
//! ∂L/∂b = Σ g,   ∂L/∂w = Σ g·x̂,
//! ∂L/∂x = w·r/M · (M·g − Σ g − x̂·Σ g·x̂)
//! ```
//!
//! (`x̂` depends on every value of its channel through `μ` and `r`: `∂x̂ᵢ/∂xⱼ = r(δᵢⱼ − 1/M −
//! x̂ᵢx̂ⱼ/M)`, which contracted with `w·g` gives the last line.) Without `create_graph` this is a
//! fused kernel (one pass for the two sums, one to write); with it, the same formula in tensor
//! operations of `x`, `w` and `g`, recomputing `μ` and `r` from `x`, so that the gradient can be
//! differentiated again. `tests/batch_norm.rs` checks both against the composite.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::autograd::is_grad_enabled;
use crate::dtype::{Element, Float};
use crate::error::{dtype_err, invalid, shape_err, Result};
use crate::op::Op;
use crate::parallel::{num_threads, pool, worth_parallel};
use crate::storage::{assume_init, uninit, StorageElement};
use crate::Tensor;

/// A contiguous `[N, C, S]` view of `[N, C, d…]` (`S` = the product of `d…`, 1 for rank 2).
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    c: usize,
    s: usize,
}

impl Dims {
    fn of(shape: &[usize]) -> Dims {
        Dims { n: shape[0], c: shape[1], s: shape[2..].iter().product() }
    }

    /// Values per channel.
    fn m(&self) -> usize {
        self.n * self.s
    }

    /// The `N` runs of channel `c` (each `S` long) in a contiguous buffer.
    fn runs<'a, T>(&self, x: &'a [T], c: usize) -> impl Iterator<Item = &'a [T]> + 'a {
        let (cs, s) = (self.c * self.s, self.s);
        (0..self.n).map(move |i| &x[i * cs + c * s..i * cs + (c + 1) * s])
    }
}

/// `Σ f(xᵢ)` in f64 with eight independent accumulators (vectorises; more accurate than one).
#[inline(always)]
fn sum_f64<T: Float>(x: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|v| f(v.to_f64())).sum();
    for ch in chunks {
        for k in 0..8 {
            acc[k] += f(ch[k].to_f64());
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + rest
}

/// `Σ f(xᵢ, gᵢ)` over two slices of one length, like [`sum_f64`].
#[inline(always)]
fn sum2_f64<T: Float>(x: &[T], g: &[T], f: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let (cx, cg) = (x.chunks_exact(8), g.chunks_exact(8));
    let rest: f64 = cx.remainder().iter().zip(cg.remainder()).map(|(a, b)| f(a.to_f64(), b.to_f64())).sum();
    for (a, b) in cx.zip(cg) {
        for k in 0..8 {
            acc[k] += f(a[k].to_f64(), b[k].to_f64());
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + rest
}

/// `f(c)` for every channel, in parallel when the tensor is large.
fn per_channel<R: Send>(d: Dims, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if worth_parallel(d.n * d.c * d.s) && d.c > 1 {
        pool().install(|| (0..d.c).into_par_iter().map(&f).collect())
    } else {
        (0..d.c).map(f).collect()
    }
}

/// Writes every `S`-long run of a `[N, C, S]` output with `f(channel, out_run, run_index)`, in
/// parallel chunks of runs when the output is large. `f` must write every slot of its run (the
/// output is not filled first).
fn write_runs<T: Float>(d: Dims, f: impl Fn(usize, &mut [MaybeUninit<T>], usize) + Sync + Send) -> Vec<T> {
    let len = d.n * d.c * d.s;
    let mut out = uninit::<T>(len);
    if len > 0 {
        let runs = d.n * d.c;
        if worth_parallel(len) && runs > 1 {
            let per_task = (runs / (4 * num_threads())).max(1);
            pool().install(|| {
                out.par_chunks_mut(per_task * d.s).enumerate().for_each(|(t, o)| {
                    for (j, run) in o.chunks_mut(d.s).enumerate() {
                        let r = t * per_task + j;
                        f(r % d.c, run, r);
                    }
                })
            });
        } else {
            for (r, run) in out.chunks_mut(d.s).enumerate() {
                f(r % d.c, run, r);
            }
        }
    }
    // SAFETY: the runs cover the output (len = runs · S) and `f` writes every slot of each.
    unsafe { assume_init(out) }
}

/// Per-channel mean and biased variance (two passes, f64 sums).
fn stats_kernel<T: Float>(x: &[T], d: Dims) -> Vec<(f64, f64)> {
    let m = d.m() as f64;
    per_channel(d, |c| {
        let mean = d.runs(x, c).map(|run| sum_f64(run, |v| v)).sum::<f64>() / m;
        let var = d.runs(x, c).map(|run| sum_f64(run, |v| (v - mean) * (v - mean))).sum::<f64>() / m;
        (mean, var)
    })
}

/// `y = (x − μ)·(r·w) + b`, per channel.
fn forward_kernel<T: Float>(x: &[T], d: Dims, mean: &[T], scale: &[T], shift: &[T]) -> Vec<T> {
    write_runs(d, |c, y, r| {
        let (mu, k, b) = (mean[c], scale[c], shift[c]);
        for (o, &v) in y.iter_mut().zip(&x[r * d.s..(r + 1) * d.s]) {
            o.write((v - mu) * k + b);
        }
    })
}

/// The fused backward: per channel `(Σ g, Σ g·x̂)` in one pass, then
/// `dx = w·r·(g − Σg/M) − w·r²·(Σ g·x̂)/M · (x − μ)` in another. Returns `(dx, Σ g·x̂, Σ g)`;
/// `dx` only when `want_dx`.
fn backward_kernel<T: Float>(
    x: &[T],
    g: &[T],
    d: Dims,
    mean: &[T],
    invstd: &[T],
    weight: Option<&[T]>,
    want_dx: bool,
) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
    let sums = per_channel(d, |c| {
        let (mu, r) = (mean[c].to_f64(), invstd[c].to_f64());
        let mut sg = 0.0;
        let mut sgx = 0.0;
        for (xs, gs) in d.runs(x, c).zip(d.runs(g, c)) {
            sg += sum_f64(gs, |v| v);
            sgx += sum2_f64(xs, gs, |xv, gv| gv * (xv - mu));
        }
        (sg, sgx * r)
    });
    let dx = want_dx.then(|| {
        let m = d.m() as f64;
        // Per channel: dx = k·g − a − q·(x − μ), k = w·r, a = k·Σg/M, q = k·r·(Σ g·x̂)/M.
        let consts: Vec<(T, T, T, T)> = (0..d.c)
            .map(|c| {
                let (r, (sg, sgx)) = (invstd[c].to_f64(), sums[c]);
                let k = weight.map_or(1.0, |w| w[c].to_f64()) * r;
                (mean[c], T::from_f64(k), T::from_f64(k * sg / m), T::from_f64(k * r * sgx / m))
            })
            .collect();
        write_runs(d, |c, out, run| {
            let (mu, k, a, q) = consts[c];
            let span = run * d.s..(run + 1) * d.s;
            for ((o, &xv), &gv) in out.iter_mut().zip(&x[span.clone()]).zip(&g[span]) {
                o.write(k * gv - a - q * (xv - mu));
            }
        })
    });
    let dw = sums.iter().map(|&(_, sgx)| T::from_f64(sgx)).collect();
    let db = sums.iter().map(|&(sg, _)| T::from_f64(sg)).collect();
    (dx, dw, db)
}

/// Checks a per-channel parameter: shape `[C]` and the input's dtype.
fn check_param(what: &str, p: Option<&Tensor>, x: &Tensor) -> Result<()> {
    let Some(p) = p else { return Ok(()) };
    let c = x.shape()[1];
    if p.shape() != [c] {
        return Err(shape_err(
            "batch_norm",
            format!("{what} must be [{c}] (one value per channel of input {:?}), got {:?}", x.shape(), p.shape()),
        ));
    }
    if p.dtype() != x.dtype() {
        return Err(dtype_err("batch_norm", format!("input is {} but {what} is {}", x.dtype(), p.dtype())));
    }
    Ok(())
}

/// Batch normalisation with batch statistics (training mode) of `x` `[N, C, d…]` (rank ≥ 2, f32
/// or f64) over every axis but the channel axis 1, as one fused primitive:
/// `y = (x − μ) / √(σ² + eps) · weight + bias`, with `μ` and the **biased** variance `σ²` of
/// each channel over its `N·d…` values. `weight` and `bias` are `[C]` and optional (an absent
/// weight is 1, an absent bias 0).
///
/// Returns `(y, μ, σ²)`, the statistics as `[C]` tensors in `x`'s dtype, for updating running
/// estimates. They are computed outside autograd: gradients flow from `y` to `x`, `weight` and
/// `bias` (also twice, through `create_graph`), never through the returned `μ` and `σ²`.
///
/// Errors: rank below 2, a single value per channel, a `weight` or `bias` that is not `[C]` or
/// not of `x`'s dtype, a negative or NaN `eps`, an i64 input.
///
/// ```
/// use jizen_tensor::{batch_norm_train, DType, Rng, Tensor};
/// let x = Tensor::randn(&[8, 3, 4, 4], DType::F32, &mut Rng::new(0));
/// let (y, mean, var) = batch_norm_train(&x, None, None, 1e-5)?;
/// assert_eq!((y.shape(), mean.shape(), var.shape()), (&[8, 3, 4, 4][..], &[3][..], &[3][..]));
/// assert!(y.mean(&[0, 2, 3], false)?.to_f64_vec().iter().all(|m| m.abs() < 1e-5));
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub fn batch_norm_train(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    if x.rank() < 2 {
        return Err(shape_err("batch_norm", format!("input must be [N, C, ...], got {:?}", x.shape())));
    }
    let d = Dims::of(x.shape());
    if d.c == 0 || d.m() <= 1 {
        return Err(invalid(
            "batch_norm",
            format!("expected more than 1 value per channel when training, got input {:?}", x.shape()),
        ));
    }
    check_param("weight", weight, x)?;
    check_param("bias", bias, x)?;
    if eps.is_nan() || eps < 0.0 {
        return Err(invalid("batch_norm", format!("eps must be >= 0, got {eps}")));
    }
    let x = x.contiguous()?;
    crate::with_float!(x.dtype(), "batch_norm", |T| {
        let stats = x.with_data::<T, _>(|v| stats_kernel::<T>(v, d))?;
        let invstd: Vec<f64> = stats.iter().map(|&(_, var)| 1.0 / (var + eps).sqrt()).collect();
        let mean_t: Vec<T> = stats.iter().map(|&(m, _)| T::from_f64(m)).collect();
        let var_t: Vec<T> = stats.iter().map(|&(_, v)| T::from_f64(v)).collect();
        let invstd_t: Vec<T> = invstd.iter().map(|&r| T::from_f64(r)).collect();
        let w: Option<Vec<T>> = weight.map(|w| w.to_vec::<T>()).transpose()?;
        let scale: Vec<T> = match &w {
            Some(w) => invstd.iter().zip(w).map(|(&r, &w)| T::from_f64(r * w.to_f64())).collect(),
            None => invstd_t.clone(),
        };
        let shift: Vec<T> = match bias {
            Some(b) => b.to_vec::<T>()?,
            None => vec![T::zero(); d.c],
        };
        let y = x.with_data::<T, _>(|v| forward_kernel::<T>(v, d, &mean_t, &scale, &shift))?;
        let mean = Tensor::from_vec(mean_t, &[d.c])?;
        let var = Tensor::from_vec(var_t, &[d.c])?;
        let saved_invstd = Tensor::from_vec(invstd_t, &[d.c])?;
        let y = Tensor::from_op(T::wrap(y), x.shape(), || Op::BatchNorm {
            x: x.clone(),
            weight: weight.cloned(),
            bias: bias.cloned(),
            mean: mean.clone(),
            invstd: saved_invstd,
            eps,
        });
        Ok((y, mean, var))
    })
}

/// `[1, C, 1, …]`: a `[C]` vector shaped to broadcast against a rank-`rank` input.
fn channel_shaped(v: &Tensor, rank: usize) -> Result<Tensor> {
    let mut shape = vec![1; rank];
    shape[1] = v.numel();
    v.reshape(&shape)
}

/// The gradients of `Op::BatchNorm`, one per input in the order of [`Op::inputs`] (`x`, then
/// `weight` and `bias` when present). With grad mode on (a backward pass recorded with
/// `create_graph`) they are tensor operations of `x`, `weight` and `g`; otherwise the fused
/// kernel computes them.
pub(crate) fn backward(op: &Op, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::BatchNorm { x, weight, bias, mean, invstd, eps } = op else {
        unreachable!("norm::backward called for {}", op.name())
    };
    let need = |t: &Option<Tensor>| t.as_ref().is_some_and(|t| t.requires_grad());
    let (dx, dw, db) = if is_grad_enabled() {
        differentiable_backward(x, weight.as_ref(), *eps, g)?
    } else {
        let d = Dims::of(x.shape());
        crate::with_float!(x.dtype(), "batch_norm", |T| {
            let w: Option<Vec<T>> = weight.as_ref().map(|w| w.to_vec::<T>()).transpose()?;
            let (mu, r) = (mean.to_vec::<T>()?, invstd.to_vec::<T>()?);
            let (dx, dw, db) = x.with_data::<T, _>(|xv| {
                g.with_data::<T, _>(|gv| backward_kernel::<T>(xv, gv, d, &mu, &r, w.as_deref(), x.requires_grad()))
            })??;
            let dx = dx.map(|v| Tensor::from_vec(v, x.shape())).transpose()?;
            Ok::<_, crate::Error>((dx, Tensor::from_vec(dw, &[d.c])?, Tensor::from_vec(db, &[d.c])?))
        })?
    };
    let mut out = vec![dx];
    if weight.is_some() {
        out.push(need(weight).then_some(dw));
    }
    if bias.is_some() {
        out.push(need(bias).then_some(db));
    }
    Ok(out)
}

/// The backward formula in tensor operations (differentiable in `x`, `weight` and `g`):
/// returns `(dx, dw [C], db [C])`.
fn differentiable_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    eps: f64,
    g: &Tensor,
) -> Result<(Option<Tensor>, Tensor, Tensor)> {
    let rank = x.rank();
    let axes: Vec<isize> = (0..rank as isize).filter(|&a| a != 1).collect();
    let m = (x.numel() / x.shape()[1]) as f64;
    let centred = x.sub(&x.mean(&axes, true)?)?;
    let invstd = centred.square()?.mean(&axes, true)?.add_scalar(eps)?.sqrt()?.recip()?;
    let xhat = centred.mul(&invstd)?;
    let db = g.sum(&axes, true)?;
    let dw = g.mul(&xhat)?.sum(&axes, true)?;
    let dx = if x.requires_grad() {
        // w·r·(g − Σg/M − x̂·Σ g·x̂/M)
        let k = match weight {
            Some(w) => channel_shaped(w, rank)?.mul(&invstd)?,
            None => invstd,
        };
        Some(k.mul(&g.sub(&db.div_scalar(m)?)?.sub(&xhat.mul(&dw.div_scalar(m)?)?)?)?)
    } else {
        None
    };
    let c = x.shape()[1];
    Ok((dx, dw.reshape(&[c])?, db.reshape(&[c])?))
}
