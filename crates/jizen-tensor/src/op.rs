//! The primitive operations: the only list of them. Every differentiable tensor that was
//! computed (rather than created) remembers the `Op` that made it and its inputs; autograd walks
//! these records backwards. Everything else in the engine (sigmoid, softmax, pooling,
//! cross-entropy, ...) is composed from these and has no backward code of its own.

use std::sync::Arc;

use crate::ops::conv::Im2colGeometry;
use crate::ops::conv_tiled::ConvGeometry;
use crate::Tensor;

/// Elementwise functions of one tensor (`ops/unary.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Tanh,
    Relu,
    Erf,
}

/// Elementwise functions of two tensors of one shape (`ops/binary.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
}

/// Comparisons (`ops/binary.rs`); they return 0/1 in the input dtype and carry no gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Reductions over a set of axes, keeping them as size 1 (`ops/reduce.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

/// How a tensor was computed from its inputs.
#[derive(Clone, Debug)]
pub enum Op {
    Unary(UnaryOp, Tensor),
    Binary(BinaryOp, Tensor, Tensor),
    /// `where(cond, a, b)`; `cond` carries no gradient.
    Where(Tensor, Tensor, Tensor),
    /// Reduction over `axes`, keeping them (size 1).
    Reduce(ReduceOp, Tensor, Vec<usize>),
    Reshape(Tensor),
    Permute(Tensor, Vec<usize>),
    /// Broadcast to a larger shape (stride 0); backward sums back to the source shape.
    Expand(Tensor),
    /// `(input, dim, start)`; the length is the output's.
    Narrow(Tensor, usize, usize),
    Cat(Vec<Tensor>, usize),
    /// Contiguous copy of a view.
    Copy(Tensor),
    /// Conversion between float dtypes.
    Cast(Tensor),
    /// Batched matrix product of operands with equal batch dimensions.
    Matmul(Tensor, Tensor),
    /// `x @ weightᵀ + bias` for `x` `[m, in]`, `weight` `[out, in]`, `bias` `[out]` (optional):
    /// one GEMM accumulating onto the bias (`ops/matmul.rs`).
    Linear(Tensor, Tensor, Option<Tensor>),
    /// `(input, dim, index)`.
    IndexSelect(Tensor, usize, Tensor),
    /// `(base, dim, index, source)`: `base` with `source` rows added at `index` along `dim`.
    IndexAdd(Tensor, usize, Tensor, Tensor),
    /// `(input, dim, index)`.
    Gather(Tensor, usize, Tensor),
    /// `(base, dim, index, source)`.
    ScatterAdd(Tensor, usize, Tensor, Tensor),
    /// Sliding windows of an image batch as columns (the "unfold" of convolution).
    Im2col(Tensor, Im2colGeometry),
    /// The adjoint of `Im2col`: columns summed back into an image batch ("fold").
    Col2im(Tensor, Im2colGeometry),
    /// 2-D convolution `(input, weight, bias)` (`ops/conv_tiled.rs`); the bias [Cout] is
    /// optional.
    Conv2d(Tensor, Tensor, Option<Tensor>, ConvGeometry),
    /// The gradient of `Conv2d` in its input, `(output gradient, weight)`: a transposed convolution.
    Conv2dGradInput(Tensor, Tensor, ConvGeometry),
    /// The gradient of `Conv2d` in its weight, `(input, output gradient)`.
    Conv2dGradWeight(Tensor, Tensor, ConvGeometry),
    /// Batch normalisation with batch statistics over every axis but 1 of a contiguous `x`
    /// `[N, C, ...]`, with optional `[C]` `weight` and `bias` (`ops/norm.rs`): a fused kernel
    /// for `(x - mean) / sqrt(var + eps) * weight + bias`, tested against that composite.
    /// `mean` and `invstd` (`1 / sqrt(var + eps)`, `[C]`) are saved for the backward pass;
    /// they are constants, not inputs.
    BatchNorm {
        x: Tensor,
        weight: Option<Tensor>,
        bias: Option<Tensor>,
        mean: Tensor,
        invstd: Tensor,
        eps: f64,
    },
    /// Log-softmax over the last axis of a contiguous tensor: a fused kernel for the composite
    /// `(x - m) - log(sum(exp(x - m)))` (`ops/softmax.rs`), tested against it.
    LogSoftmax(Tensor),
    /// Per-row softmax cross-entropy of `logits` `[M, C]` against class indices, with label
    /// smoothing (`ops/cross_entropy.rs`): a fused kernel for the composite of `log_softmax`,
    /// `gather` and `mean`. `stats` `[M, 2]` keeps each row's shift and log-normaliser.
    SoftmaxCrossEntropy {
        logits: Tensor,
        targets: Arc<[usize]>,
        smoothing: f64,
        stats: Tensor,
    },
    /// A whole LSTM layer over a sequence (`ops/lstm.rs`): from the input projections `gx`
    /// `[T, N, 4H]`, the recurrent weight `w_hh` `[4H, H]` and optional initial states `[N, H]`,
    /// every step's `h` and `c` as `[2, T, N, H]`: a fused kernel for the per-step composite,
    /// tested against it. `gates` keeps the activated gates, time-major `[T·N, G]` with `G` = 4H
    /// rounded up to a multiple of 16 (a constant).
    LstmSequence {
        gx: Tensor,
        w_hh: Tensor,
        h0: Option<Tensor>,
        c0: Option<Tensor>,
        gates: Tensor,
    },
}

impl Op {
    /// The inputs through which gradients flow.
    pub fn inputs(&self) -> Vec<&Tensor> {
        match self {
            Op::Unary(_, x)
            | Op::Reduce(_, x, _)
            | Op::Reshape(x)
            | Op::Permute(x, _)
            | Op::Expand(x)
            | Op::Narrow(x, _, _)
            | Op::Copy(x)
            | Op::Cast(x)
            | Op::IndexSelect(x, _, _)
            | Op::Gather(x, _, _)
            | Op::Im2col(x, _)
            | Op::Col2im(x, _)
            | Op::LogSoftmax(x)
            | Op::SoftmaxCrossEntropy { logits: x, .. } => vec![x],
            Op::Binary(_, a, b)
            | Op::Where(_, a, b)
            | Op::Matmul(a, b)
            | Op::Conv2dGradInput(a, b, _)
            | Op::Conv2dGradWeight(a, b, _) => vec![a, b],
            Op::Conv2d(x, w, b, _) | Op::Linear(x, w, b) => {
                [Some(x), Some(w), b.as_ref()].into_iter().flatten().collect()
            }
            Op::BatchNorm { x, weight, bias, .. } => {
                [Some(x), weight.as_ref(), bias.as_ref()].into_iter().flatten().collect()
            }
            Op::LstmSequence { gx, w_hh, h0, c0, .. } => {
                [Some(gx), Some(w_hh), h0.as_ref(), c0.as_ref()].into_iter().flatten().collect()
            }
            Op::IndexAdd(base, _, _, src) | Op::ScatterAdd(base, _, _, src) => vec![base, src],
            Op::Cat(xs, _) => xs.iter().collect(),
        }
    }

    /// A short name for error messages and graph dumps.
    pub fn name(&self) -> String {
        match self {
            Op::Unary(u, _) => format!("{u:?}").to_lowercase(),
            Op::Binary(b, _, _) => format!("{b:?}").to_lowercase(),
            Op::Reduce(r, _, _) => format!("{r:?}").to_lowercase(),
            Op::Where(..) => "where".into(),
            Op::Reshape(_) => "reshape".into(),
            Op::Permute(..) => "permute".into(),
            Op::Expand(_) => "expand".into(),
            Op::Narrow(..) => "narrow".into(),
            Op::Cat(..) => "cat".into(),
            Op::Copy(_) => "contiguous".into(),
            Op::Cast(_) => "to_dtype".into(),
            Op::Matmul(..) => "matmul".into(),
            Op::Linear(..) => "linear".into(),
            Op::IndexSelect(..) => "index_select".into(),
            Op::IndexAdd(..) => "index_add".into(),
            Op::Gather(..) => "gather".into(),
            Op::ScatterAdd(..) => "scatter_add".into(),
            Op::Im2col(..) => "im2col".into(),
            Op::Col2im(..) => "col2im".into(),
            Op::Conv2d(..) => "conv2d".into(),
            Op::Conv2dGradInput(..) => "conv2d_grad_input".into(),
            Op::Conv2dGradWeight(..) => "conv2d_grad_weight".into(),
            Op::BatchNorm { .. } => "batch_norm".into(),
            Op::LogSoftmax(_) => "log_softmax".into(),
            Op::SoftmaxCrossEntropy { .. } => "cross_entropy".into(),
            Op::LstmSequence { .. } => "lstm_sequence".into(),
        }
    }

    /// Tensors the backward rule keeps besides the inputs (statistics, activated gates): they
    /// live as long as the graph does.
    pub fn saved(&self) -> Vec<&Tensor> {
        match self {
            Op::BatchNorm { mean, invstd, .. } => vec![mean, invstd],
            Op::SoftmaxCrossEntropy { stats, .. } => vec![stats],
            Op::LstmSequence { gates, .. } => vec![gates],
            _ => Vec::new(),
        }
    }
}
