//! Multi-layer recurrent stacks over whole sequences: [`Rnn`], [`Lstm`], [`Gru`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use jizen_tensor::{DType, Error, Result, Rng, Tensor};

use super::{check_input, Kind, LayerState, LstmState, Params, RnnConfig};
use crate::module::{join, Module};

/// The stack behind all three public types.
struct Stack {
    kind: Kind,
    config: RnnConfig,
    /// One per layer; layer `k` reads `in` (k = 0) or `H` features.
    layers: Vec<Params>,
    /// Draws the dropout masks between layers.
    rng: Mutex<Rng>,
    training: AtomicBool,
}

/// What one pass over a sequence returns.
struct Run {
    /// `[T, N, H]` (or `[N, T, H]` with `batch_first`).
    output: Tensor,
    /// `[layers, N, H]`.
    h: Tensor,
    /// `[layers, N, H]`, LSTM only.
    c: Option<Tensor>,
}

impl Stack {
    fn new(kind: Kind, config: RnnConfig, dtype: DType, rng: &mut Rng) -> Result<Stack> {
        config.validate(kind.stack_name())?;
        let layers = (0..config.num_layers)
            .map(|k| {
                let input = if k == 0 { config.input_size } else { config.hidden_size };
                Params::new(kind, input, config.hidden_size, config.bias, dtype, rng)
            })
            .collect();
        Stack::from_layers(kind, config, layers)
    }

    /// A stack of existing layers (their tensors shared), checked against `config`.
    fn from_layers(kind: Kind, config: RnnConfig, layers: Vec<Params>) -> Result<Stack> {
        let name = kind.stack_name();
        config.validate(name)?;
        if layers.len() != config.num_layers {
            return Err(Error::invalid(
                name,
                format!("{} layers given for num_layers = {}", layers.len(), config.num_layers),
            ));
        }
        for (k, p) in layers.iter().enumerate() {
            let input = if k == 0 { config.input_size } else { config.hidden_size };
            if p.input_size != input || p.hidden_size != config.hidden_size || p.dtype() != layers[0].dtype() {
                return Err(Error::shape(
                    name,
                    format!(
                        "layer {k} must map {input} -> {} features ({}), got {} -> {} ({})",
                        config.hidden_size,
                        layers[0].dtype(),
                        p.input_size,
                        p.hidden_size,
                        p.dtype()
                    ),
                ));
            }
            if p.bias_ih.is_some() != config.bias || p.bias_hh.is_some() != config.bias {
                return Err(Error::invalid(name, format!("layer {k}'s biases do not match bias = {}", config.bias)));
            }
        }
        let rng = Mutex::new(Rng::new(config.dropout_seed));
        Ok(Stack { kind, config, layers, rng, training: AtomicBool::new(true) })
    }

    /// Checks an initial state `[layers, N, H]` and splits it into per-layer `[N, H]` views.
    fn split_state(&self, what: &str, s: Option<&Tensor>, n: usize) -> Result<Vec<Option<Tensor>>> {
        let (l, h) = (self.config.num_layers, self.config.hidden_size);
        let Some(s) = s else {
            return Ok(vec![None; l]);
        };
        let dtype = self.layers[0].dtype();
        if s.shape() != [l, n, h] || s.dtype() != dtype {
            return Err(Error::shape(
                self.kind.stack_name(),
                format!(
                    "initial {what} must be [layers, N, H] = [{l}, {n}, {h}] {dtype}, got {:?} {}",
                    s.shape(),
                    s.dtype()
                ),
            ));
        }
        (0..l).map(|k| Ok(Some(s.narrow(0, k, 1)?.squeeze(0)?))).collect()
    }

    fn run(&self, x: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<Run> {
        let name = self.kind.stack_name();
        let batch_first = self.config.batch_first;
        let layout = if batch_first { "[N, T, in]" } else { "[T, N, in]" };
        check_input(name, x, 3, layout, &self.layers[0])?;
        let x = if batch_first { x.transpose(0, 1)? } else { x.clone() }; // [T, N, in]
        let (t_len, n) = (x.shape()[0], x.shape()[1]);
        if t_len == 0 || n == 0 {
            return Err(Error::shape(
                name,
                format!(
                    "input {layout} {:?} has no time steps or an empty batch",
                    if batch_first { [n, t_len, x.shape()[2]] } else { [t_len, n, x.shape()[2]] }
                ),
            ));
        }
        let h0 = self.split_state("hidden state h0", h0, n)?;
        let c0 = self.split_state("cell state c0", c0, n)?;
        let hidden = self.config.hidden_size;
        let drop = self.config.dropout > 0.0 && self.training.load(Ordering::Relaxed);

        let mut seq = x.reshape(&[t_len * n, self.layers[0].input_size])?; // [T*N, in]
        let mut final_h = Vec::with_capacity(self.layers.len());
        let mut final_c = Vec::with_capacity(self.layers.len());
        for (k, p) in self.layers.iter().enumerate() {
            let w = p.prepare()?;
            let projected = w.project_input(&seq)?; // the whole sequence in one GEMM, [T*N, G*H]
            let state = if self.kind == Kind::Lstm {
                // One primitive for the whole layer: [2, T, N, H] = every step's h, then c.
                let y =
                    w.lstm_sequence(&projected.reshape(&[t_len, n, 4 * hidden])?, h0[k].as_ref(), c0[k].as_ref())?;
                seq = y.narrow(0, 0, 1)?.reshape(&[t_len * n, hidden])?; // contiguous view
                let last = |part: usize| y.narrow(0, part, 1)?.narrow(1, t_len - 1, 1)?.reshape(&[n, hidden]);
                LayerState { h: Some(last(0)?), c: Some(last(1)?) }
            } else {
                let gx = StepSlices::new(projected, t_len, n)?;
                let mut state = LayerState { h: h0[k].clone(), c: c0[k].clone() };
                let mut outputs = Vec::with_capacity(t_len);
                for t in 0..t_len {
                    w.step(&gx.step(t)?, &mut state)?;
                    outputs.push(state.h.clone().expect("a step sets h")); // [N, H]
                }
                let refs: Vec<&Tensor> = outputs.iter().collect();
                seq = Tensor::cat(&refs, 0)?; // [T*N, H]
                state
            };
            if drop && k + 1 < self.layers.len() {
                let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                seq = seq.dropout(self.config.dropout, true, &mut rng)?;
            }
            final_h.push(state.h.expect("a step sets h"));
            if let Some(c) = state.c {
                final_c.push(c);
            }
        }
        let output = seq.reshape(&[t_len, n, hidden])?;
        let output = if batch_first { output.transpose(0, 1)? } else { output };
        let stack = |v: &[Tensor]| Tensor::stack(&v.iter().collect::<Vec<_>>(), 0);
        let c = if final_c.is_empty() { None } else { Some(stack(&final_c)?) };
        Ok(Run { output, h: stack(&final_h)?, c })
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        for (k, p) in self.layers.iter().enumerate() {
            p.visit(prefix, &format!("_l{k}"), f);
        }
    }
}

/// Per-step views `[N, G*H]` of a sequence's input projection `[T*N, G*H]`.
///
/// Why two levels of `narrow`: the gradient of a narrow is materialised at the full size of
/// what it narrows (zeros around the slice), so `T` per-step narrows of the whole projection
/// would cost `O(T²·N·G·H)` in the backward pass. Narrowing chunks of `⌈√T⌉` steps first and the
/// steps within their chunk costs `O(T^1.5·N·G·H)`; on the PTB-small shape (2×200 LSTM, batch
/// 20, 35 steps) it made forward + backward about a quarter faster, as fast as projecting each
/// step with its own product.
struct StepSlices {
    /// `[K*N, G*H]` each (the last may be shorter).
    chunks: Vec<Tensor>,
    /// Steps per chunk, `K`.
    per_chunk: usize,
    /// Batch size `N`.
    n: usize,
}

impl StepSlices {
    fn new(projected: Tensor, t_len: usize, n: usize) -> Result<StepSlices> {
        let per_chunk = ((t_len as f64).sqrt().ceil() as usize).max(1);
        let chunks = if per_chunk >= t_len {
            vec![projected]
        } else {
            (0..t_len)
                .step_by(per_chunk)
                .map(|t0| projected.narrow(0, t0 * n, per_chunk.min(t_len - t0) * n))
                .collect::<Result<_>>()?
        };
        Ok(StepSlices { chunks, per_chunk, n })
    }

    /// Step `t`'s rows, `[N, G*H]`.
    fn step(&self, t: usize) -> Result<Tensor> {
        self.chunks[t / self.per_chunk].narrow(0, (t % self.per_chunk) * self.n, self.n)
    }
}

/// Accessors and `Module` plumbing shared by the three stacks.
macro_rules! stack_common {
    ($t:ident, $cell:ident, $kind:expr) => {
        impl $t {
            /// A stack with PyTorch's initialisation (every tensor `U(-1/sqrt(H), 1/sqrt(H))`,
            /// layer by layer in the order `weight_ih, weight_hh, bias_ih, bias_hh`). Fails on
            /// zero sizes or a dropout probability outside `[0, 1)`.
            pub fn new(config: RnnConfig, dtype: DType, rng: &mut Rng) -> Result<Self> {
                Ok($t(Stack::new($kind, config, dtype, rng)?))
            }

            /// A stack of existing cells (their tensors shared, not copied), layer 0 first;
            /// their sizes and biases must agree with `config`.
            pub fn from_cells(config: RnnConfig, cells: Vec<super::$cell>) -> Result<Self> {
                let layers = cells.into_iter().map(|c| c.into_params()).collect();
                Ok($t(Stack::from_layers($kind, config, layers)?))
            }

            /// The options it was built with.
            pub fn config(&self) -> &RnnConfig {
                &self.0.config
            }

            /// Whether dropout between layers is active (training mode, the initial mode).
            pub fn is_training(&self) -> bool {
                self.0.training.load(Ordering::Relaxed)
            }
        }

        /// `forward(x)` returns the output sequence only (`[T, N, H]`, or `[N, T, H]` with
        /// `batch_first`) from the zero state; `forward_with_state` also takes and returns the
        /// state. Parameters: `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`,
        /// `bias_hh_l{k}` per layer `k`, as in PyTorch. The dropout generator is visited as
        /// `<prefix>.dropout`.
        impl Module for $t {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                Ok(self.0.run(x, None, None)?.output)
            }

            fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
                self.0.visit_parameters(prefix, f);
            }

            fn set_training(&self, training: bool) {
                self.0.training.store(training, Ordering::Relaxed);
            }

            fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(String, &Mutex<Rng>)) {
                f(join(prefix, "dropout"), &self.0.rng);
            }
        }
    };
}

/// A stack of Elman layers with tanh, like `torch.nn.RNN` (`nonlinearity='tanh'`).
///
/// ```
/// use jizen_nn::{Module, Rnn, RnnConfig};
/// use jizen_tensor::{DType, Rng, Tensor};
/// let rnn = Rnn::new(RnnConfig::new(3, 5).num_layers(2), DType::F32, &mut Rng::new(0))?;
/// let x = Tensor::ones(&[7, 2, 3], DType::F32); // [T, N, in]
/// let (y, h) = rnn.forward_with_state(&x, None)?;
/// assert_eq!((y.shape(), h.shape()), (&[7, 2, 5][..], &[2, 2, 5][..]));
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct Rnn(Stack);
stack_common!(Rnn, RnnCell, Kind::Tanh);

impl Rnn {
    /// Runs the sequence `x` (`[T, N, in]`, or `[N, T, in]` with `batch_first`) from `h0`
    /// `[layers, N, H]` (`None`: zeros). Returns the last layer's outputs at every step
    /// (`[T, N, H]` or `[N, T, H]`) and every layer's final hidden state `[layers, N, H]`.
    pub fn forward_with_state(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let r = self.0.run(x, h0, None)?;
        Ok((r.output, r.h))
    }
}

/// A stack of LSTM layers, like `torch.nn.LSTM` (see [`super::LstmCell`] for the formulas).
///
/// Truncated backpropagation through time carries the state across windows, cut off from the
/// previous window's graph:
///
/// ```
/// use jizen_nn::{Lstm, Module, RnnConfig};
/// use jizen_tensor::{DType, Rng, Tensor};
/// let lstm = Lstm::new(RnnConfig::new(4, 8).num_layers(2).dropout(0.2, 0), DType::F32, &mut Rng::new(0))?;
/// let mut state = None;
/// for _window in 0..3 {
///     let x = Tensor::ones(&[5, 2, 4], DType::F32); // [T, N, in]
///     let (y, s) = lstm.forward_with_state(&x, state.as_ref())?;
///     y.sum_all()?.backward()?;
///     state = Some(s.detach()); // h, c: [2, 2, 8]
/// }
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct Lstm(Stack);
stack_common!(Lstm, LstmCell, Kind::Lstm);

impl Lstm {
    /// Runs the sequence `x` (`[T, N, in]`, or `[N, T, in]` with `batch_first`) from `state`
    /// (`None`: zeros). Returns the last layer's outputs at every step (`[T, N, H]` or
    /// `[N, T, H]`) and the final state of every layer (`h`, `c`: `[layers, N, H]`).
    pub fn forward_with_state(&self, x: &Tensor, state: Option<&LstmState>) -> Result<(Tensor, LstmState)> {
        let r = self.0.run(x, state.map(|s| &s.h), state.map(|s| &s.c))?;
        let c = r.c.expect("an LSTM returns a cell state");
        Ok((r.output, LstmState { h: r.h, c }))
    }
}

/// A stack of GRU layers, like `torch.nn.GRU` (see [`super::GruCell`] for the formulas).
///
/// ```
/// use jizen_nn::{Gru, Module, RnnConfig};
/// use jizen_tensor::{DType, Rng, Tensor};
/// let gru = Gru::new(RnnConfig::new(3, 5).batch_first(true), DType::F32, &mut Rng::new(0))?;
/// let (y, h) = gru.forward_with_state(&Tensor::ones(&[2, 7, 3], DType::F32), None)?; // [N, T, in]
/// assert_eq!((y.shape(), h.shape()), (&[2, 7, 5][..], &[1, 2, 5][..]));
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct Gru(Stack);
stack_common!(Gru, GruCell, Kind::Gru);

impl Gru {
    /// Runs the sequence `x` (`[T, N, in]`, or `[N, T, in]` with `batch_first`) from `h0`
    /// `[layers, N, H]` (`None`: zeros). Returns the last layer's outputs at every step
    /// (`[T, N, H]` or `[N, T, H]`) and every layer's final hidden state `[layers, N, H]`.
    pub fn forward_with_state(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let r = self.0.run(x, h0, None)?;
        Ok((r.output, r.h))
    }
}
