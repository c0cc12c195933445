//! Normalisation layers: batch norm (`BatchNorm1d`, `BatchNorm2d`) and `LayerNorm`, matching
//! `torch.nn`, with their functional forms ([`batch_norm_train`], [`batch_norm_eval`],
//! [`layer_norm`]). Training-mode batch norm is the engine's fused primitive
//! ([`jizen_tensor::batch_norm_train`]); the others are composed from primitives. None has
//! backward code here.

use std::sync::atomic::{AtomicBool, Ordering};

use jizen_tensor::{no_grad, DType, Error, Result, Tensor};

use crate::module::{join, Module};

fn shape_error(op: &'static str, msg: String) -> Error {
    Error::Shape { op, msg }
}

/// `[1, C, 1, ...]`: a per-channel vector shaped to broadcast against `x` `[N, C, ...]`.
fn per_channel(v: &Tensor, rank: usize) -> Result<Tensor> {
    let mut shape = vec![1; rank];
    shape[1] = v.numel();
    v.reshape(&shape)
}

// Batch norm with batch statistics (training mode) is one fused primitive of the engine: the
// graph keeps the input, the output and two `[C]` vectors, not a composite's five
// activation-sized intermediates.
pub use jizen_tensor::batch_norm_train;

/// Batch norm with given statistics (evaluation mode): `(x - mean) / sqrt(var + eps) * weight
/// + bias`, per channel of `x` `[N, C, ...]`.
///
/// Computed as the per-channel affine map `x * scale + shift`, with `scale = weight /
/// sqrt(var + eps)` and `shift = bias - mean * scale` worked out on the `[C]` vectors first (as
/// PyTorch's CPU inference kernel does): two passes over `x` instead of four, and two
/// activation-sized tensors in the graph. Differentiable in `x`, `weight` and `bias` (and in
/// `mean` and `var`, should they require gradients).
pub fn batch_norm_eval(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    if x.rank() < 2 {
        return Err(shape_error("batch_norm", format!("input must be [N, C, ...], got {:?}", x.shape())));
    }
    let c = x.shape()[1];
    for (what, t) in [("mean", Some(mean)), ("var", Some(var)), ("weight", weight), ("bias", bias)] {
        if let Some(t) = t {
            if t.numel() != c {
                return Err(shape_error(
                    "batch_norm",
                    format!("{what} {:?} does not have one value per channel of input {:?}", t.shape(), x.shape()),
                ));
            }
        }
    }
    let rank = x.rank();
    let invstd = var.reshape(&[c])?.add_scalar(eps)?.sqrt()?.recip()?;
    let scale = match weight {
        Some(w) => w.reshape(&[c])?.mul(&invstd)?,
        None => invstd,
    };
    let shift = mean.reshape(&[c])?.mul(&scale)?.neg()?;
    let shift = match bias {
        Some(b) => shift.add(&b.reshape(&[c])?)?,
        None => shift,
    };
    x.mul(&per_channel(&scale, rank)?)?.add(&per_channel(&shift, rank)?)
}

/// Settings of [`BatchNorm`] (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Weight of the new batch in the running averages: `r = (1 - momentum) r + momentum b`.
    pub momentum: f64,
    /// Learn a per-channel scale `weight` and shift `bias`.
    pub affine: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig { eps: 1e-5, momentum: 0.1, affine: true }
    }
}

/// Batch normalisation over the channel axis 1, like `torch.nn.BatchNorm1d` (`D = 1`: input
/// `[N, C]` or `[N, C, L]`) and `torch.nn.BatchNorm2d` (`D = 2`: `[N, C, H, W]`); use the aliases
/// [`BatchNorm1d`] and [`BatchNorm2d`].
///
/// In training mode (the initial mode, as in PyTorch) it normalises with the batch's mean and
/// biased variance and updates the buffers `running_mean` and `running_var` (the latter with the
/// **unbiased** batch variance) and counts `num_batches_tracked`, outside autograd. In evaluation
/// mode it normalises with the running statistics.
///
/// ```
/// use jizen_nn::{BatchNorm2d, Module};
/// use jizen_tensor::{DType, Rng, Tensor};
/// let bn = BatchNorm2d::new(3, DType::F32);
/// let x = Tensor::randn(&[4, 3, 5, 5], DType::F32, &mut Rng::new(0));
/// let y = bn.forward(&x)?; // batch statistics; running stats move 10% towards them
/// bn.set_training(false);
/// let z = bn.forward(&x)?; // running statistics
/// assert_eq!(y.shape(), z.shape());
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct BatchNorm<const D: usize> {
    /// Per-channel scale `[C]` (ones at first); `None` without `affine`.
    pub weight: Option<Tensor>,
    /// Per-channel shift `[C]` (zeros at first); `None` without `affine`.
    pub bias: Option<Tensor>,
    /// Buffer `[C]`, zeros at first.
    pub running_mean: Tensor,
    /// Buffer `[C]`, ones at first.
    pub running_var: Tensor,
    /// Buffer: a 0-d i64 count of training batches (kept for state-dict compatibility).
    pub num_batches_tracked: Tensor,
    /// eps, momentum and whether the layer is affine.
    pub config: BatchNormConfig,
    training: AtomicBool,
}

/// Batch norm over `[N, C]` or `[N, C, L]`, like `torch.nn.BatchNorm1d`.
pub type BatchNorm1d = BatchNorm<1>;
/// Batch norm over `[N, C, H, W]`, like `torch.nn.BatchNorm2d`.
pub type BatchNorm2d = BatchNorm<2>;

impl<const D: usize> BatchNorm<D> {
    /// A layer over `channels` channels with PyTorch's defaults (eps 1e-5, momentum 0.1, affine).
    pub fn new(channels: usize, dtype: DType) -> Self {
        Self::with_config(channels, BatchNormConfig::default(), dtype)
    }

    /// A layer with explicit settings.
    pub fn with_config(channels: usize, config: BatchNormConfig, dtype: DType) -> Self {
        let param = |v: f64| Tensor::full(&[channels], v, dtype).requires_grad_(true);
        BatchNorm {
            weight: config.affine.then(|| param(1.0)),
            bias: config.affine.then(|| param(0.0)),
            running_mean: Tensor::zeros(&[channels], dtype),
            running_var: Tensor::ones(&[channels], dtype),
            num_batches_tracked: Tensor::zeros(&[], DType::I64),
            config,
            training: AtomicBool::new(true),
        }
    }

    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let ranks: &[usize] = if D == 1 { &[2, 3] } else { &[D + 2] };
        let c = self.running_mean.numel();
        if !ranks.contains(&x.rank()) || x.shape()[1] != c {
            let name = if D == 1 { "BatchNorm1d" } else { "BatchNorm2d" };
            let want = match D {
                1 => format!("[N, {c}] or [N, {c}, L]"),
                _ => format!("[N, {c}, H, W]"),
            };
            return Err(shape_error(name, format!("expected input {want}, got {:?}", x.shape())));
        }
        Ok(())
    }

    /// `running = (1 - m) running + m batch`, in place and outside autograd; the variance is
    /// made unbiased first (`var * n / (n - 1)`), as PyTorch does.
    fn update_running(&self, mean: &Tensor, var: &Tensor, n: usize) -> Result<()> {
        no_grad(|| {
            let m = self.config.momentum;
            let unbiased = var.detach().mul_scalar(n as f64 / (n - 1) as f64)?;
            let new_mean = self.running_mean.mul_scalar(1.0 - m)?.add(&mean.detach().mul_scalar(m)?)?;
            let new_var = self.running_var.mul_scalar(1.0 - m)?.add(&unbiased.mul_scalar(m)?)?;
            self.running_mean.copy_from_(&new_mean)?;
            self.running_var.copy_from_(&new_var)?;
            self.num_batches_tracked.update_::<i64>(|v| v.iter_mut().for_each(|c| *c += 1))
        })
    }
}

impl<const D: usize> Module for BatchNorm<D> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let (w, b, eps) = (self.weight.as_ref(), self.bias.as_ref(), self.config.eps);
        if !self.is_training() {
            return batch_norm_eval(x, &self.running_mean, &self.running_var, w, b, eps);
        }
        let (y, mean, var) = batch_norm_train(x, w, b, eps)?;
        self.update_running(&mean, &var, x.numel() / x.shape()[1])?;
        Ok(y)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        if let Some(w) = &self.weight {
            f(join(prefix, "weight"), w);
        }
        if let Some(b) = &self.bias {
            f(join(prefix, "bias"), b);
        }
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join(prefix, "running_mean"), &self.running_mean);
        f(join(prefix, "running_var"), &self.running_var);
        f(join(prefix, "num_batches_tracked"), &self.num_batches_tracked);
    }

    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}

/// Layer norm over the last `normalized_shape.len()` dimensions of `x`: `(x - mean) /
/// sqrt(var + eps) * weight + bias`, with the biased variance, like
/// `torch.nn.functional.layer_norm`. `weight` and `bias` have shape `normalized_shape`.
pub fn layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let k = normalized_shape.len();
    if k == 0 || x.rank() < k || x.shape()[x.rank() - k..] != *normalized_shape {
        return Err(shape_error(
            "layer_norm",
            format!("input {:?} does not end in normalized_shape {normalized_shape:?}", x.shape()),
        ));
    }
    let axes: Vec<isize> = (-(k as isize)..0).collect();
    let centred = x.sub(&x.mean(&axes, true)?)?;
    let var = centred.square()?.mean(&axes, true)?;
    let y = centred.div(&var.add_scalar(eps)?.sqrt()?)?;
    let y = match weight {
        Some(w) => y.mul(w)?,
        None => y,
    };
    match bias {
        Some(b) => y.add(b),
        None => Ok(y),
    }
}

/// Layer normalisation over the trailing `normalized_shape` dimensions, like
/// `torch.nn.LayerNorm` with `elementwise_affine=True`: `weight` (ones) and `bias` (zeros) of
/// shape `normalized_shape`, eps 1e-5.
///
/// ```
/// use jizen_nn::{LayerNorm, Module};
/// use jizen_tensor::{DType, Tensor};
/// let ln = LayerNorm::new(&[4], DType::F32);
/// let y = ln.forward(&Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 4])?)?;
/// assert!(y.mean_all()?.item()?.abs() < 1e-6);
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct LayerNorm {
    /// The trailing dimensions normalised over.
    pub normalized_shape: Vec<usize>,
    /// Elementwise scale of shape `normalized_shape` (ones at first).
    pub weight: Tensor,
    /// Elementwise shift of shape `normalized_shape` (zeros at first).
    pub bias: Tensor,
    /// Added to the variance before the square root.
    pub eps: f64,
}

impl LayerNorm {
    /// A layer over the trailing dimensions `normalized_shape`, with eps 1e-5.
    pub fn new(normalized_shape: &[usize], dtype: DType) -> Self {
        LayerNorm {
            normalized_shape: normalized_shape.to_vec(),
            weight: Tensor::ones(normalized_shape, dtype).requires_grad_(true),
            bias: Tensor::zeros(normalized_shape, dtype).requires_grad_(true),
            eps: 1e-5,
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.normalized_shape, Some(&self.weight), Some(&self.bias), self.eps)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join(prefix, "weight"), &self.weight);
        f(join(prefix, "bias"), &self.bias);
    }
}
