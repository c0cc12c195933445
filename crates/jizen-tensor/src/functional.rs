//! Composite functions: activations, softmax family, losses and dropout. Each is written with
//! primitives only, so each is differentiable (to any order) without backward code of its own.

use crate::dtype::DType;
use crate::error::{dtype_err, invalid, shape_err, Result};
use crate::rng::Rng;
use crate::Tensor;

/// How a loss over a batch is reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    #[default]
    Mean,
    Sum,
    /// One loss per element (per sample for cross-entropy).
    None,
}

fn reduce(loss: Tensor, r: Reduction) -> Result<Tensor> {
    match r {
        Reduction::Mean => loss.mean_all(),
        Reduction::Sum => loss.sum_all(),
        Reduction::None => Ok(loss),
    }
}

impl Tensor {
    /// `1 / (1 + e^-x)`, composed as `(1 + tanh(x / 2)) / 2`, whose gradient stays finite for
    /// any input (the `exp` form overflows for very negative `x`).
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.mul_scalar(0.5)?.tanh()?.mul_scalar(0.5)?.add_scalar(0.5)
    }

    /// GELU with the exact erf form, `x * Φ(x)` (PyTorch's default `approximate='none'`).
    pub fn gelu(&self) -> Result<Tensor> {
        let cdf = self.mul_scalar(std::f64::consts::FRAC_1_SQRT_2)?.erf()?.add_scalar(1.0)?.mul_scalar(0.5)?;
        self.mul(&cdf)
    }

    /// GELU with the tanh approximation (PyTorch's `approximate='tanh'`).
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let inner = self.add(&self.powf(3.0)?.mul_scalar(0.044715)?)?.mul_scalar(c)?;
        self.mul(&inner.tanh()?.add_scalar(1.0)?.mul_scalar(0.5)?)
    }

    /// `x` for positive `x`, else `slope * x`.
    pub fn leaky_relu(&self, slope: f64) -> Result<Tensor> {
        let pos = self.gt_scalar(0.0)?;
        Tensor::where_(&pos, self, &self.mul_scalar(slope)?)
    }

    /// `x * sigmoid(x)`.
    pub fn silu(&self) -> Result<Tensor> {
        self.mul(&self.sigmoid()?)
    }

    /// `log(1 + e^x)`, stable for large |x|: `max(x, 0) + log(1 + e^-|x|)`.
    pub fn softplus(&self) -> Result<Tensor> {
        self.relu()?.add(&self.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?)
    }

    /// The row maximum along `axis` (kept), as a constant: subtracting it before `exp` changes
    /// no gradient. A row of -inf gets 0, so that the results below are -inf rather than NaN.
    fn stable_shift(&self, axis: isize) -> Result<Tensor> {
        let m = self.max(&[axis], true)?.detach();
        Tensor::where_(&m.abs()?.lt_scalar(f64::INFINITY)?, &m, &m.zeros_like())
    }

    /// `log(sum(exp(x)))` along `axis`, stable: the maximum is subtracted first.
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let m = self.stable_shift(axis)?;
        let s = self.sub(&m)?.exp()?.sum(&[axis], true)?.log()?.add(&m)?;
        if keepdim {
            Ok(s)
        } else {
            s.squeeze(axis)
        }
    }

    /// Softmax along `axis`, as `exp(log_softmax(x))`: the maximum is subtracted before
    /// exponentiating.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        self.log_softmax(axis)?.exp()
    }

    /// Log-softmax along `axis`: `(x - m) - log(sum(exp(x - m)))` with `m` the maximum, so the
    /// maximum is never added back (which would round large logits) and it is never
    /// `log(softmax(x))`. A fused kernel over the last axis; other axes are moved last and back.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        let a = self.axis("log_softmax", axis)?;
        let last = self.rank().saturating_sub(1);
        if self.rank() == 0 {
            return self.sub(self); // log_softmax of a single element is 0
        }
        if a == last {
            return self.log_softmax_last();
        }
        self.transpose(a as isize, last as isize)?.log_softmax_last()?.transpose(a as isize, last as isize)
    }

    /// Inverted dropout: zeroes each element with probability `p` and scales the rest by
    /// `1 / (1 - p)`. The identity when not `training` or `p == 0`.
    pub fn dropout(&self, p: f64, training: bool, rng: &mut Rng) -> Result<Tensor> {
        if !(0.0..1.0).contains(&p) {
            return Err(invalid("dropout", format!("probability {p} must be in [0, 1)")));
        }
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        self.mul(&dropout_mask(self.shape(), p, self.dtype(), rng))
    }
}

/// A dropout mask: 0 with probability `p`, else `1 / (1 - p)`.
pub fn dropout_mask(shape: &[usize], p: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let keep = 1.0 / (1.0 - p);
    let v = (0..n).map(|_| if rng.uniform() < p { 0.0 } else { keep }).collect();
    Tensor::from_f64_vec(v, shape, dtype)
}

/// Options of [`cross_entropy`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropyOptions {
    /// Mix `label_smoothing` of the uniform distribution into the targets (PyTorch's meaning).
    pub label_smoothing: f64,
    /// Targets equal to this are skipped; the mean is over the others.
    pub ignore_index: Option<i64>,
    pub reduction: Reduction,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions { label_smoothing: 0.0, ignore_index: None, reduction: Reduction::Mean }
    }
}

/// Cross-entropy from `logits` [N, C] (or [N, C, d..]) and i64 class `targets` [N] (or [N, d..]),
/// computed through `log_softmax`, like `torch.nn.functional.cross_entropy`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, o: CrossEntropyOptions) -> Result<Tensor> {
    if targets.dtype() != DType::I64 {
        return Err(dtype_err("cross_entropy", format!("targets must be i64 class indices, got {}", targets.dtype())));
    }
    if logits.rank() < 2 {
        return Err(shape_err("cross_entropy", format!("logits must be [N, C, ...], got {:?}", logits.shape())));
    }
    let c = logits.shape()[1];
    let mut expect = logits.shape().to_vec();
    expect.remove(1);
    if targets.shape() != expect.as_slice() {
        return Err(shape_err(
            "cross_entropy",
            format!("targets {:?} do not match logits {:?} (expected {expect:?})", targets.shape(), logits.shape()),
        ));
    }
    if !(0.0..=1.0).contains(&o.label_smoothing) {
        return Err(invalid("cross_entropy", format!("label_smoothing {} must be in [0, 1]", o.label_smoothing)));
    }
    // Classes last, then flatten to [M, C].
    let logits2 = if logits.rank() > 2 {
        let mut perm: Vec<usize> = (0..logits.rank()).filter(|&d| d != 1).collect();
        perm.push(1);
        logits.permute(&perm)?.reshape(&[targets.numel(), c])?
    } else {
        logits.clone()
    };
    let t: Vec<i64> = targets.to_vec()?;
    let mut valid = Vec::with_capacity(t.len());
    let mut safe = Vec::with_capacity(t.len());
    for &y in &t {
        if Some(y) == o.ignore_index {
            valid.push(0.0);
            safe.push(0);
        } else if y < 0 || y as usize >= c {
            return Err(invalid("cross_entropy", format!("target {y} is out of range for {c} classes")));
        } else {
            valid.push(1.0);
            safe.push(y);
        }
    }
    // The fused primitive (ops/cross_entropy.rs) computes each row's
    // (1 - eps)·(-log p_y) + eps·mean(-log p) without keeping the [M, C] log-probabilities.
    let m = t.len();
    let safe: std::sync::Arc<[usize]> = safe.into_iter().map(|y| y as usize).collect();
    let mut loss = logits2.softmax_cross_entropy_rows(safe, o.label_smoothing)?;
    let has_ignored = valid.contains(&0.0);
    let count = valid.iter().sum::<f64>();
    if has_ignored {
        loss = loss.mul(&Tensor::from_f64_vec(valid, &[m], logits.dtype()))?;
    }
    match o.reduction {
        Reduction::Mean if has_ignored => loss.sum_all()?.div_scalar(count),
        Reduction::None => loss.reshape(targets.shape()),
        r => reduce(loss, r),
    }
}

/// Negative log-likelihood of i64 `targets` [N] under log-probabilities `logp` [N, C].
pub fn nll_loss(logp: &Tensor, targets: &Tensor, reduction: Reduction) -> Result<Tensor> {
    if logp.rank() != 2 || targets.shape() != [logp.shape()[0]] {
        return Err(shape_err(
            "nll_loss",
            format!("expected logp [N, C] and targets [N], got {:?} and {:?}", logp.shape(), targets.shape()),
        ));
    }
    let n = logp.shape()[0];
    let picked = logp.gather(1, &targets.reshape(&[n, 1])?)?.reshape(&[n])?;
    reduce(picked.neg()?, reduction)
}

/// Multi-class hinge loss (`torch.nn.functional.multi_margin_loss`, p = 1): for each sample,
/// `sum over i != y of max(0, margin - x[y] + x[i]) / C`, from `logits` [N, C] and i64
/// `targets` [N]. The `i = y` term of the sum is `margin` (a constant), subtracted again.
pub fn multi_margin_loss(logits: &Tensor, targets: &Tensor, margin: f64, reduction: Reduction) -> Result<Tensor> {
    if logits.rank() != 2 || targets.shape() != [logits.shape()[0]] {
        return Err(shape_err(
            "multi_margin_loss",
            format!("expected logits [N, C] and targets [N], got {:?} and {:?}", logits.shape(), targets.shape()),
        ));
    }
    let (n, c) = (logits.shape()[0], logits.shape()[1]);
    let picked = logits.gather(1, &targets.reshape(&[n, 1])?)?; // [N, 1]
    let hinge = logits.sub(&picked)?.add_scalar(margin)?.relu()?; // [N, C]
    let per_sample = hinge.sum(&[1], false)?.sub_scalar(margin.max(0.0))?.div_scalar(c as f64)?;
    reduce(per_sample, reduction)
}

/// Mean squared error.
pub fn mse_loss(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    if pred.shape() != target.shape() {
        return Err(shape_err(
            "mse_loss",
            format!("prediction {:?} and target {:?} differ", pred.shape(), target.shape()),
        ));
    }
    reduce(pred.sub(target)?.square()?, reduction)
}

/// Binary cross-entropy from logits, in the stable form `max(x, 0) - x*y + log(1 + e^-|x|)`.
pub fn binary_cross_entropy_with_logits(logits: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    if logits.shape() != target.shape() {
        return Err(shape_err(
            "binary_cross_entropy_with_logits",
            format!("logits {:?} and target {:?} differ", logits.shape(), target.shape()),
        ));
    }
    let loss = logits.relu()?.sub(&logits.mul(target)?)?.add(&logits.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?)?;
    reduce(loss, reduction)
}
