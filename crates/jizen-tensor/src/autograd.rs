//! Reverse-mode automatic differentiation over the dynamic graph of [`Op`] records.
//!
//! Backward rules live beside their forward kernels in `ops/*.rs` and are written with tensor
//! operations, so when the backward pass itself is recorded (`create_graph`), gradients can be
//! differentiated again (Hessian-vector products, gradient penalties).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::op::Op;
use crate::tensor::{Tensor, TensorId};

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether operations on this thread currently record history.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Disables history recording until dropped (like `torch.no_grad()`); nests.
pub struct NoGradGuard {
    prev: bool,
}

impl NoGradGuard {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NoGradGuard { prev: GRAD_ENABLED.with(|g| g.replace(false)) }
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

struct GradModeGuard {
    prev: bool,
}

impl GradModeGuard {
    fn set(on: bool) -> Self {
        GradModeGuard { prev: GRAD_ENABLED.with(|g| g.replace(on)) }
    }
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

/// Runs `f` with history recording on or off (for work moved to another thread, whose own
/// setting would otherwise apply).
pub(crate) fn with_grad_mode<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let _g = GradModeGuard::set(on);
    f()
}

/// Runs `f` without recording history.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _g = NoGradGuard::new();
    f()
}

/// Gradients from one backward pass, keyed by tensor.
#[derive(Default, Debug)]
pub struct Gradients(HashMap<TensorId, Tensor>);

impl Gradients {
    /// The gradient with respect to `t`, if `t` was reached.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.0.get(&t.id())
    }

    /// Removes and returns the gradient for `t`.
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.0.remove(&t.id())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Nodes reachable from `root` through tensors that require gradients, in topological order
/// (inputs before the tensors computed from them).
fn topological_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut visited: HashSet<TensorId> = HashSet::new();
    // Iterative DFS: (node, inputs already pushed?).
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(op) = t.op() {
            for x in op.inputs() {
                if x.requires_grad() && !visited.contains(&x.id()) {
                    stack.push((x.clone(), false));
                }
            }
        }
    }
    order
}

fn accumulate(map: &mut HashMap<TensorId, Tensor>, id: TensorId, g: Tensor) -> Result<()> {
    match map.remove(&id) {
        None => {
            map.insert(id, g);
        }
        Some(prev) => {
            map.insert(id, prev.add(&g)?);
        }
    }
    Ok(())
}

/// Of `order` (inputs first), the nodes from which a tensor of `wanted` can be reached: the
/// only ones whose backward rules contribute to the gradients of `wanted`.
fn leading_to(order: &[Tensor], wanted: &HashSet<TensorId>) -> HashSet<TensorId> {
    let mut reach = HashSet::new();
    for t in order {
        let via_input = || t.op().is_some_and(|op| op.inputs().iter().any(|x| reach.contains(&x.id())));
        if wanted.contains(&t.id()) || via_input() {
            reach.insert(t.id());
        }
    }
    reach
}

/// How a backward pass treats the graph it walks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Graph {
    /// Left as it is: the same graph can be backpropagated again.
    Keep,
    /// Each node's record is dropped once its backward rule has run, so the activations it held
    /// are freed as the pass moves towards the inputs instead of all at its end.
    Free,
}

/// The core of the backward pass: propagates `seed` (the gradient of `root`) to every tensor in
/// the graph and returns the gradients of the tensors `keep` selects. With `only_towards`, the
/// backward rules of nodes that lead to none of those tensors are skipped.
fn run_backward(
    root: &Tensor,
    seed: Tensor,
    create_graph: bool,
    accumulate_into_variables: bool,
    keep: &dyn Fn(&Tensor) -> bool,
    only_towards: Option<&HashSet<TensorId>>,
    graph: Graph,
) -> Result<Gradients> {
    if !root.requires_grad() {
        return Err(Error::Autograd(format!(
            "tensor of shape {:?} does not require a gradient: no input of its computation is a variable \
             (call requires_grad_(true) on the inputs, outside no_grad), or its graph was freed by an \
             earlier backward_free_graph",
            root.shape()
        )));
    }
    if seed.shape() != root.shape() {
        return Err(Error::Autograd(format!(
            "gradient of shape {:?} given for a tensor of shape {:?}",
            seed.shape(),
            root.shape()
        )));
    }
    let _mode = GradModeGuard::set(create_graph);
    let mut order = topological_order(root);
    let useful = only_towards.map(|wanted| leading_to(&order, wanted));
    let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
    grads.insert(root.id(), seed);
    let mut out = Gradients::default();
    // Outputs before inputs; each node leaves `order` (and, freeing, the graph) once done.
    while let Some(node) = order.pop() {
        if let Some(g) = grads.remove(&node.id()) {
            let needed = useful.as_ref().is_none_or(|u| u.contains(&node.id()));
            if let Some(op) = node.op().filter(|_| needed) {
                let input_grads = backward_op(&op, &node, &g)
                    .map_err(|e| Error::Autograd(format!("backward of {}: {e}", op.name())))?;
                for (x, gx) in op.inputs().into_iter().zip(input_grads) {
                    if let Some(gx) = gx {
                        if x.requires_grad() {
                            debug_assert_eq!(gx.shape(), x.shape(), "gradient shape for {}", op.name());
                            accumulate(&mut grads, x.id(), gx)?;
                        }
                    }
                }
            }
            if accumulate_into_variables && node.is_variable() {
                let total = match node.grad() {
                    Some(prev) => prev.add(&g)?,
                    None => g.clone(),
                };
                node.set_grad(Some(total));
            }
            if keep(&node) {
                out.0.insert(node.id(), g);
            }
        }
        if graph == Graph::Free {
            node.release_op();
        }
    }
    Ok(out)
}

/// Dispatches to the backward rule of the op's family. Returns one optional gradient per input
/// (in the order of [`Op::inputs`]).
fn backward_op(op: &Op, out: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    use crate::ops::*;
    match op {
        Op::Unary(u, x) => Ok(vec![Some(unary::backward(*u, x, out, g)?)]),
        Op::Binary(b, x, y) => {
            let (gx, gy) = binary::backward(*b, x, y, out, g)?;
            Ok(vec![gx, gy])
        }
        Op::Where(c, a, b) => {
            let (ga, gb) = binary::where_backward(c, a, b, g)?;
            Ok(vec![ga, gb])
        }
        Op::Reduce(r, x, axes) => Ok(vec![Some(reduce::backward(*r, x, axes, out, g)?)]),
        Op::Reshape(_) | Op::Permute(..) | Op::Expand(_) | Op::Narrow(..) | Op::Cat(..) | Op::Copy(_) | Op::Cast(_) => {
            movement::backward(op, g)
        }
        Op::Matmul(a, b) => {
            let (ga, gb) = matmul::backward(a, b, g)?;
            Ok(vec![ga, gb])
        }
        Op::Linear(x, w, b) => matmul::linear_backward(x, w, b.as_ref(), g),
        Op::IndexSelect(..) | Op::IndexAdd(..) | Op::Gather(..) | Op::ScatterAdd(..) => index::backward(op, g),
        Op::Im2col(x, geom) => Ok(vec![Some(conv::im2col_backward(x, geom, g)?)]),
        Op::Col2im(_, geom) => Ok(vec![Some(conv::col2im_backward(geom, g)?)]),
        Op::Conv2d(..) | Op::Conv2dGradInput(..) | Op::Conv2dGradWeight(..) => conv_tiled::backward(op, g),
        Op::BatchNorm { .. } => norm::backward(op, g),
        Op::LogSoftmax(_) => Ok(vec![Some(softmax::log_softmax_backward(out, g)?)]),
        Op::SoftmaxCrossEntropy { logits, targets, smoothing, stats } => {
            Ok(vec![Some(cross_entropy::backward(logits, targets, *smoothing, stats, g)?)])
        }
        Op::LstmSequence { .. } => lstm::backward(op, out, g),
    }
}

impl Tensor {
    /// Backpropagates from this scalar: accumulates into [`Tensor::grad`] of every variable it
    /// depends on and returns those gradients. The graph is kept, so `backward` may be called again
    /// (gradients then add up until `zero_grad`).
    pub fn backward(&self) -> Result<Gradients> {
        if self.numel() != 1 {
            return Err(Error::Autograd(format!(
                "backward() needs a scalar, got shape {:?}; reduce it first (e.g. .sum_all()) or use backward_with",
                self.shape()
            )));
        }
        self.backward_with(&self.ones_like(), false)
    }

    /// Backpropagates `grad` (the gradient of some scalar with respect to this tensor). With
    /// `create_graph`, the backward computation is itself recorded so that the returned
    /// gradients can be differentiated again.
    pub fn backward_with(&self, grad: &Tensor, create_graph: bool) -> Result<Gradients> {
        let seed = if create_graph { grad.clone() } else { grad.detach() };
        run_backward(self, seed, create_graph, true, &|t| t.is_variable(), None, Graph::Keep)
    }

    /// [`backward`](Tensor::backward) for a training step, which backpropagates each graph once:
    /// every node's record of how it was computed is dropped as soon as its backward rule has
    /// run, so each activation is freed once the pass is past the last node that needs it (with
    /// the whole graph kept, all of them live until the pass ends). Tensors the caller holds stay
    /// valid, but no longer have a history: a second backward through this graph is an error.
    pub fn backward_free_graph(&self) -> Result<Gradients> {
        if self.numel() != 1 {
            return Err(Error::Autograd(format!(
                "backward_free_graph() needs a scalar, got shape {:?}; reduce it first (e.g. .sum_all())",
                self.shape()
            )));
        }
        run_backward(self, self.ones_like(), false, true, &|t| t.is_variable(), None, Graph::Free)
    }
}

/// Gradients of `output` with respect to `inputs` (like `torch.autograd.grad`), without touching
/// any accumulated [`Tensor::grad`]. `grad_output` defaults to ones for a scalar output. With
/// `create_graph`, the results are differentiable.
pub fn grad(
    output: &Tensor,
    inputs: &[&Tensor],
    grad_output: Option<&Tensor>,
    create_graph: bool,
) -> Result<Vec<Option<Tensor>>> {
    let seed = match grad_output {
        Some(g) => g.clone(),
        None if output.numel() == 1 => output.ones_like(),
        None => {
            return Err(Error::Autograd(format!("grad of a non-scalar output {:?} needs grad_output", output.shape())));
        }
    };
    let wanted: HashSet<TensorId> = inputs.iter().map(|t| t.id()).collect();
    let mut grads =
        run_backward(output, seed, create_graph, false, &|t| wanted.contains(&t.id()), Some(&wanted), Graph::Keep)?;
    Ok(inputs.iter().map(|t| grads.remove(t)).collect())
}

/// What the recorded graph behind a tensor keeps alive, in bytes (see [`graph_memory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphMemory {
    /// Storage held for the backward pass by tensors that are not variables: activations,
    /// inputs, masks and indices the backward rules need (the output itself included).
    pub activation_bytes: usize,
    /// Storage of the variables (parameters) the graph reaches.
    pub parameter_bytes: usize,
    /// Operations recorded.
    pub ops: usize,
}

/// Measures the memory the backward pass of `root` would hold: every distinct storage buffer
/// reachable through recorded operations (views of one buffer count once). Measured, not
/// estimated: it walks the graph that the forward pass actually built.
pub fn graph_memory(root: &Tensor) -> GraphMemory {
    let mut seen_tensors: HashSet<TensorId> = HashSet::new();
    let mut seen_storage: HashSet<usize> = HashSet::new();
    let mut out = GraphMemory::default();
    let mut stack = vec![root.clone()];
    while let Some(t) = stack.pop() {
        if !seen_tensors.insert(t.id()) {
            continue;
        }
        let (storage, bytes) = t.storage_identity();
        if seen_storage.insert(storage) {
            if t.is_variable() {
                out.parameter_bytes += bytes;
            } else {
                out.activation_bytes += bytes;
            }
        }
        if let Some(op) = t.op() {
            out.ops += 1;
            for kept in op.saved() {
                let (storage, bytes) = kept.storage_identity();
                if seen_storage.insert(storage) {
                    out.activation_bytes += bytes;
                }
            }
            stack.extend(op.inputs().into_iter().cloned());
        }
    }
    out
}
