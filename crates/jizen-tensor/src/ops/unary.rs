//! Elementwise functions of one tensor: forward kernels and backward rules.

use crate::dtype::{Element, Float};
use crate::error::Result;
use crate::op::{Op, UnaryOp};
use crate::storage::StorageElement;
use crate::Tensor;

use super::{map1, map2};

/// A contiguous operand through `slice_fn` (compiled for the widest vectors the CPU has), split
/// across threads when large; a strided one element by element with `f`.
fn vectorised<T: Float + StorageElement>(
    x: &[T],
    l: &crate::Layout,
    slice_fn: fn(&[T], &mut [T]),
    f: impl Fn(T) -> T + Sync + Send,
) -> Vec<T> {
    let Some(r) = l.contiguous_range() else {
        return map1(x, l, f);
    };
    let src = &x[r];
    // Chunk by chunk, each zero-filled just before its kernel writes it (in cache), not the
    // whole output first.
    const CHUNK: usize = 1 << 14;
    let mut out = crate::storage::uninit::<T>(src.len());
    let run = |o: &mut [std::mem::MaybeUninit<T>], s: &[T]| slice_fn(s, crate::storage::fill_uninit(o, T::zero()));
    if crate::parallel::worth_parallel(src.len()) {
        use rayon::prelude::*;
        crate::parallel::pool()
            .install(|| out.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(o, s)| run(o, s)));
    } else {
        out.chunks_mut(CHUNK).zip(src.chunks(CHUNK)).for_each(|(o, s)| run(o, s));
    }
    // SAFETY: the chunks cover the output and each was filled before its kernel ran.
    unsafe { crate::storage::assume_init(out) }
}

fn kernel<T: Float + StorageElement>(op: UnaryOp, x: &[T], l: &crate::Layout) -> Vec<T> {
    match op {
        UnaryOp::Neg => map1(x, l, |v: T| -v),
        // The hot cases (softmax, cross-entropy, recurrent cells): vectorised loops.
        UnaryOp::Exp => vectorised(x, l, crate::fastmath::exp_slice, |v: T| v.exp()),
        UnaryOp::Log => map1(x, l, |v: T| v.ln()),
        UnaryOp::Sqrt => map1(x, l, |v: T| v.sqrt()),
        UnaryOp::Abs => map1(x, l, |v: T| v.abs()),
        UnaryOp::Tanh => vectorised(x, l, crate::fastmath::tanh_slice, |v: T| v.tanh()),
        // `<=` keeps NaN (as PyTorch does), so a diverged activation is not silently zeroed.
        UnaryOp::Relu => map1(x, l, |v: T| if v <= T::zero() { T::zero() } else { v }),
        UnaryOp::Erf => map1(x, l, |v: T| v.erf()),
    }
}

impl Tensor {
    fn unary(&self, op: UnaryOp, name: &'static str) -> Result<Tensor> {
        crate::with_float!(self.dtype(), name, |T| {
            let data = {
                let s = self.storage();
                kernel::<T>(op, T::slice(&s), self.layout())
            };
            Ok(Tensor::from_op(T::wrap(data), self.shape(), || Op::Unary(op, self.clone())))
        })
    }

    /// `-x`.
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg, "neg")
    }

    /// `e^x`.
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp, "exp")
    }

    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log, "log")
    }

    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt, "sqrt")
    }

    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs, "abs")
    }

    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh, "tanh")
    }

    /// `max(x, 0)`; its gradient at 0 is 0, as in PyTorch.
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu, "relu")
    }

    /// The error function.
    pub fn erf(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Erf, "erf")
    }
}

/// Gradient of `out = op(x)` given the gradient `g` of `out`.
pub(crate) fn backward(op: UnaryOp, x: &Tensor, out: &Tensor, g: &Tensor) -> Result<Tensor> {
    match op {
        UnaryOp::Neg => g.neg(),
        UnaryOp::Exp => g.mul(out),
        UnaryOp::Log => g.div(x),
        // d sqrt(x) = 1 / (2 sqrt(x))
        UnaryOp::Sqrt => g.div(&out.mul_scalar(2.0)?),
        UnaryOp::Abs => g.mul(&x.sign()?),
        // d tanh(x) = 1 - tanh(x)^2
        UnaryOp::Tanh => g.mul(&out.mul(out)?.neg()?.add_scalar(1.0)?),
        UnaryOp::Relu if crate::autograd::is_grad_enabled() => g.mul(&x.gt_scalar(0.0)?),
        // Outside gradient recording, the same product in one pass, without the mask as a
        // tensor of its own (at the first ReLU of a small CNN, 6.4 MB at the peak).
        UnaryOp::Relu => crate::with_float!(x.dtype(), "relu", |T| {
            let (sx, sg) = (x.storage(), g.storage());
            let data = map2(T::slice(&sx), x.layout(), T::slice(&sg), g.layout(), |v: T, d: T| {
                d * if v > T::zero() { T::one() } else { T::zero() }
            });
            Ok(Tensor::from_storage(T::wrap(data), x.shape()))
        }),
        // d erf(x) = 2/sqrt(pi) * exp(-x^2)
        UnaryOp::Erf => {
            let d = x.mul(x)?.neg()?.exp()?.mul_scalar(std::f64::consts::FRAC_2_SQRT_PI)?;
            g.mul(&d)
        }
    }
}
