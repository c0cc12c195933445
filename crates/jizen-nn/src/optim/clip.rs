//! Gradient clipping, as in `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`: both rewrite
//! the accumulated gradients of the parameters, between `backward` and the optimizer's `step`.

use jizen_tensor::{Float, Result, Tensor};

/// Scales the gradients of `params` so that their global L2 norm (over all of them, as if they
/// were one vector) is at most `max_norm`, and returns the norm before clipping. As in PyTorch,
/// the factor is `max_norm / (total + 1e-6)` clamped to 1, applied to every gradient. Parameters
/// without a gradient are skipped. The norm is accumulated in f64 whatever the dtype.
///
/// ```
/// use jizen_nn::optim::clip_grad_norm;
/// use jizen_tensor::Tensor;
/// let p = Tensor::from_vec(vec![1.0f64, 2.0], &[2])?.requires_grad_(true);
/// p.mul_scalar(3.0)?.add(&p.mul_scalar(4.0)?)?.sum_all()?.backward()?; // grad = [7, 7]
/// let total = clip_grad_norm(&[p.clone()], 1.0)?;
/// assert!((total - 98f64.sqrt()).abs() < 1e-12);
/// let g = p.grad().unwrap().to_vec::<f64>()?;
/// assert!((g[0].hypot(g[1]) - 1.0).abs() < 1e-5);
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Result<f64> {
    let mut squares = 0f64;
    for g in params.iter().filter_map(|p| p.grad()) {
        // torch: the norm of the per-tensor norms.
        let n = jizen_tensor::with_float!(g.dtype(), "clip_grad_norm", |T| {
            g.with_data::<T, _>(|d| sum_of_squares(d).sqrt())
        })?;
        squares += n * n;
    }
    let total = squares.sqrt();
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    // A factor of 1 would change nothing (x · 1 = x exactly): no pass over the gradients then.
    if coef < 1.0 {
        let _guard = jizen_tensor::NoGradGuard::new();
        for p in params {
            if let Some(g) = p.grad() {
                // As torch: the factor rounded to the gradient's dtype, one product per element.
                p.replace_grad(g.mul_scalar(coef)?)?;
            }
        }
    }
    Ok(total)
}

/// `Σ x²` of one gradient in f64, on jizen's threads for large ones. Eight partial sums per part
/// (a serial f64 sum waits on each addition: for the 20 million parameters of the medium PTB
/// model, 7% of a training step's time under `perf`).
fn sum_of_squares<T: Float>(d: &[T]) -> f64 {
    jizen_tensor::parallel::par_sum(d, |part| {
        let mut acc = [0f64; 8];
        let mut blocks = part.chunks_exact(8);
        for b in &mut blocks {
            for (a, &x) in acc.iter_mut().zip(b) {
                let x = x.to_f64();
                *a += x * x;
            }
        }
        let tail: f64 = blocks.remainder().iter().map(|&x| x.to_f64() * x.to_f64()).sum();
        acc.iter().sum::<f64>() + tail
    })
}

/// Clamps every element of the gradients of `params` to `[-clip, clip]`.
pub fn clip_grad_value(params: &[Tensor], clip: f64) -> Result<()> {
    for p in params {
        map_grad(p, "clip_grad_value", |x| x.max(-clip).min(clip))?;
    }
    Ok(())
}

/// Replaces the gradient of `p` (if it has one) by `f` applied to each element (in f64, rounded
/// to the gradient's dtype). The gradient may be a view shared with other tensors, so it is
/// replaced, not updated in place.
fn map_grad(p: &Tensor, op: &'static str, f: impl Fn(f64) -> f64) -> Result<()> {
    let Some(g) = p.grad() else { return Ok(()) };
    let new = jizen_tensor::with_float!(g.dtype(), op, |T| {
        let data: Vec<T> = g.with_data::<T, _>(|d| d.iter().map(|&x| apply::<T>(x, &f)).collect())?;
        Tensor::from_vec(data, g.shape())
    })?;
    p.replace_grad(new)
}

fn apply<T: Float>(x: T, f: &impl Fn(f64) -> f64) -> T {
    T::from_f64(f(x.to_f64()))
}
