//! Recurrent layers: the cells [`RnnCell`] (tanh), [`LstmCell`] and [`GruCell`], and the
//! multi-layer stacks [`Rnn`], [`Lstm`] and [`Gru`] that run them over a sequence.
//!
//! Everything follows `torch.nn`: gate order (`i, f, g, o` for the LSTM, `r, z, n` for the GRU),
//! formulas (the GRU's `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`), parameter names and
//! shapes (`weight_ih_l0` `[G*H, in]`, `weight_hh_l0` `[G*H, H]`, `bias_ih_l0`, `bias_hh_l0`,
//! `..._l1`, ...; the cells drop the `_lK` suffix), initialisation (`U(-1/sqrt(H), 1/sqrt(H))`
//! for every tensor), the time-major `[T, N, in]` layout (or `[N, T, in]` with `batch_first`)
//! and the `[layers, N, H]` states. A `torch.nn.LSTM` state dict therefore loads directly with
//! [`crate::load_state_dict`].
//!
//! How a layer runs (the speed matters; every gradient comes from `jizen-tensor`'s autograd and
//! is checked against finite differences):
//!
//! - the input-to-hidden projection of the whole sequence is one `linear` before the time loop,
//!   `[T*N, in] x [in, G*H]`, its GEMM accumulating onto both biases where the formula allows;
//! - an LSTM layer then runs the whole sequence as one primitive, `Tensor::lstm_sequence`: one
//!   product `[N, H] x [H, 4H]` per step for all gates, the gates and the cell update in one
//!   pass, and a backward pass that computes `W_hh`'s gradient as a single product over all
//!   steps (see `jizen_tensor::ops::lstm`); a cell is the same primitive with one step;
//! - the tanh RNN and the GRU are composed per step: one matmul for all gates, one add, and the
//!   gate nonlinearities on the whole `[N, G*H]` gate tensor through `narrow` views. A sigmoid is
//!   `(1 + tanh(x / 2)) / 2`, so the halving is folded into the weights once per call (the
//!   sigmoid gates' rows times 1/2) and one `tanh` serves all gates; each step reads its rows
//!   of the projection through two levels of `narrow` (chunks of `⌈√T⌉` steps, then the step),
//!   because a narrow's gradient is materialised at the size of what it narrows (see
//!   `stack::StepSlices`).

mod cell;
mod stack;

pub use cell::{GruCell, LstmCell, RnnCell};
pub use stack::{Gru, Lstm, Rnn};

use jizen_tensor::{DType, Error, Result, Rng, Tensor};

use crate::init;

/// Which recurrence a layer computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    Tanh,
    /// Four gates `i, f, g, o`.
    Lstm,
    /// Three gates `r, z, n`.
    Gru,
}

impl Kind {
    /// Gate blocks stacked in the weights' rows (`G` in `[G*H, in]`).
    pub(crate) fn gates(self) -> usize {
        match self {
            Kind::Tanh => 1,
            Kind::Lstm => 4,
            Kind::Gru => 3,
        }
    }

    pub(crate) fn cell_name(self) -> &'static str {
        match self {
            Kind::Tanh => "RnnCell",
            Kind::Lstm => "LstmCell",
            Kind::Gru => "GruCell",
        }
    }

    pub(crate) fn stack_name(self) -> &'static str {
        match self {
            Kind::Tanh => "Rnn",
            Kind::Lstm => "Lstm",
            Kind::Gru => "Gru",
        }
    }

    /// Per gate block of a composed step: 0.5 for a sigmoid gate (its pre-activation is halved
    /// so that one `tanh` serves it), 1 for a tanh gate. `None` when the weights are used as
    /// they are (no sigmoid gate, or the LSTM's fused primitive).
    fn sigmoid_halves(self) -> Option<&'static [f64]> {
        match self {
            Kind::Tanh | Kind::Lstm => None,
            Kind::Gru => Some(&[0.5, 0.5, 1.0]),
        }
    }
}

/// Options of the stacks [`Rnn`], [`Lstm`] and [`Gru`], with PyTorch's defaults (one layer,
/// biases, time-major, no dropout).
///
/// ```
/// use jizen_nn::RnnConfig;
/// let c = RnnConfig::new(200, 200).num_layers(2).dropout(0.5, 7).batch_first(true);
/// assert_eq!((c.num_layers, c.dropout, c.batch_first), (2, 0.5, true));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RnnConfig {
    /// Features per time step of the input (`in`).
    pub input_size: usize,
    /// Features of the hidden state (`H`).
    pub hidden_size: usize,
    /// Layers stacked on each other; layer `k > 0` reads layer `k - 1`'s outputs.
    pub num_layers: usize,
    /// Whether the layers have `bias_ih` and `bias_hh`.
    pub bias: bool,
    /// Inputs and outputs are `[N, T, features]` rather than `[T, N, features]` (states stay
    /// `[layers, N, H]`, as in PyTorch).
    pub batch_first: bool,
    /// Dropout probability on the outputs of every layer but the last (training mode only).
    pub dropout: f64,
    /// Seed of the dropout masks' generator (owned by the module, see `Module::visit_rngs`).
    pub dropout_seed: u64,
}

impl RnnConfig {
    /// One layer of `hidden_size` over inputs of `input_size`, with biases, time-major.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        RnnConfig {
            input_size,
            hidden_size,
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            dropout_seed: 0,
        }
    }

    /// Sets the number of layers.
    pub fn num_layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }

    /// Sets whether the layers have biases.
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }

    /// Sets the batch-first layout.
    pub fn batch_first(mut self, on: bool) -> Self {
        self.batch_first = on;
        self
    }

    /// Sets the dropout probability between layers and the seed of its masks.
    pub fn dropout(mut self, p: f64, seed: u64) -> Self {
        self.dropout = p;
        self.dropout_seed = seed;
        self
    }

    /// Rejects sizes of zero and probabilities outside `[0, 1)`, naming the layer.
    pub(crate) fn validate(&self, layer: &'static str) -> Result<()> {
        if self.input_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return Err(Error::invalid(
                layer,
                format!(
                    "input_size ({}), hidden_size ({}) and num_layers ({}) must all be positive",
                    self.input_size, self.hidden_size, self.num_layers
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(layer, format!("dropout probability {} must be in [0, 1)", self.dropout)));
        }
        Ok(())
    }
}

/// The state an [`Lstm`] carries between calls: hidden and cell state of every layer, each
/// `[layers, N, H]`. Between truncated-BPTT windows, pass on [`LstmState::detach`]ed.
#[derive(Clone, Debug)]
pub struct LstmState {
    /// Hidden state `h`, `[layers, N, H]`.
    pub h: Tensor,
    /// Cell state `c`, `[layers, N, H]`.
    pub c: Tensor,
}

impl LstmState {
    /// The same values cut off from the graph, so the next window's backward pass stops here.
    pub fn detach(&self) -> LstmState {
        LstmState { h: self.h.detach(), c: self.c.detach() }
    }

    /// Zero state for `layers` layers, batch `n`, hidden size `hidden`.
    pub fn zeros(layers: usize, n: usize, hidden: usize, dtype: DType) -> LstmState {
        let z = Tensor::zeros(&[layers, n, hidden], dtype);
        LstmState { h: z.clone(), c: z }
    }
}

// ------------------------------------------------------------------------------- one layer

/// The parameters of one recurrent layer (a cell, or one layer of a stack), with PyTorch's
/// shapes: `weight_ih` `[G*H, in]`, `weight_hh` `[G*H, H]`, biases `[G*H]`.
pub(crate) struct Params {
    pub(crate) kind: Kind,
    pub(crate) input_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) weight_ih: Tensor,
    pub(crate) weight_hh: Tensor,
    pub(crate) bias_ih: Option<Tensor>,
    pub(crate) bias_hh: Option<Tensor>,
}

impl Params {
    /// PyTorch's initialisation: every tensor `U(-1/sqrt(H), 1/sqrt(H))`, drawn in the order
    /// `weight_ih, weight_hh, bias_ih, bias_hh`.
    pub(crate) fn new(kind: Kind, input: usize, hidden: usize, bias: bool, dtype: DType, rng: &mut Rng) -> Self {
        let rows = kind.gates() * hidden;
        let bound = 1.0 / (hidden.max(1) as f64).sqrt();
        let mut draw = |shape: &[usize]| init::uniform(shape, bound, dtype, rng).requires_grad_(true);
        let weight_ih = draw(&[rows, input]);
        let weight_hh = draw(&[rows, hidden]);
        let (bias_ih, bias_hh) = if bias { (Some(draw(&[rows])), Some(draw(&[rows]))) } else { (None, None) };
        Params { kind, input_size: input, hidden_size: hidden, weight_ih, weight_hh, bias_ih, bias_hh }
    }

    /// Parameters from existing tensors (shared, not copied), checked against each other:
    /// `weight_hh` `[G*H, H]` fixes `H`, `weight_ih` must be `[G*H, in]`, biases `[G*H]`, one
    /// float dtype.
    pub(crate) fn from_tensors(
        kind: Kind,
        weight_ih: Tensor,
        weight_hh: Tensor,
        bias_ih: Option<Tensor>,
        bias_hh: Option<Tensor>,
    ) -> Result<Self> {
        let name = kind.cell_name();
        let g = kind.gates();
        let hh = weight_hh.shape();
        if hh.len() != 2 || hh[1] == 0 || hh[0] != g * hh[1] {
            return Err(Error::shape(name, format!("weight_hh must be [{g}*H, H] with H > 0, got {hh:?}")));
        }
        let hidden = hh[1];
        let ih = weight_ih.shape();
        if ih.len() != 2 || ih[0] != g * hidden || ih[1] == 0 {
            return Err(Error::shape(
                name,
                format!("weight_ih must be [{g}*H, in] = [{}, in] with in > 0, got {ih:?}", g * hidden),
            ));
        }
        let dtype = weight_hh.dtype();
        if !dtype.is_float() || weight_ih.dtype() != dtype {
            return Err(Error::DType {
                op: name,
                msg: format!("weights must share one float dtype, got {} and {}", weight_ih.dtype(), dtype),
            });
        }
        for (what, b) in [("bias_ih", &bias_ih), ("bias_hh", &bias_hh)] {
            if let Some(b) = b {
                if b.shape() != [g * hidden] || b.dtype() != dtype {
                    return Err(Error::shape(
                        name,
                        format!("{what} must be [{}] {dtype}, got {:?} {}", g * hidden, b.shape(), b.dtype()),
                    ));
                }
            }
        }
        let input_size = ih[1];
        Ok(Params { kind, input_size, hidden_size: hidden, weight_ih, weight_hh, bias_ih, bias_hh })
    }

    pub(crate) fn visit(&self, prefix: &str, suffix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        let name = |base: &str| crate::module::join(prefix, &format!("{base}{suffix}"));
        f(name("weight_ih"), &self.weight_ih);
        f(name("weight_hh"), &self.weight_hh);
        if let Some(b) = &self.bias_ih {
            f(name("bias_ih"), b);
        }
        if let Some(b) = &self.bias_hh {
            f(name("bias_hh"), b);
        }
    }

    pub(crate) fn dtype(&self) -> DType {
        self.weight_ih.dtype()
    }

    /// The weights in the form the time loop uses, computed once per call (so their gradients
    /// flow back through a handful of small ops, not one per step).
    pub(crate) fn prepare(&self) -> Result<Prepared> {
        let (h, g) = (self.hidden_size, self.kind.gates());
        // [G*H]: 1/2 on the rows of sigmoid gates.
        let halves = match self.kind.sigmoid_halves() {
            Some(blocks) => {
                let v: Vec<f64> = blocks.iter().flat_map(|&s| std::iter::repeat_n(s, h)).collect();
                Some(Tensor::from_f64(v, &[g * h], self.dtype())?)
            }
            None => None,
        };
        let scaled = |t: Tensor| -> Result<Tensor> {
            match &halves {
                Some(s) => t.mul(s),
                None => Ok(t),
            }
        };
        let w_ih_t = scaled(self.weight_ih.t()?)?; // [in, G*H]
        let w_hh_t = scaled(self.weight_hh.t()?)?; // [H, G*H]
                                                   // Biases that can be summed into the input projection are; the GRU's b_hn sits inside
                                                   // `r * (W_hn h + b_hn)`, so its hidden bias stays on the hidden side.
        let (b_x, b_h) = match (self.kind, &self.bias_ih, &self.bias_hh) {
            (Kind::Gru, bi, bh) => (bi.clone().map(scaled).transpose()?, bh.clone().map(scaled).transpose()?),
            (_, Some(bi), Some(bh)) => (Some(scaled(bi.add(bh)?)?), None),
            (_, Some(b), None) | (_, None, Some(b)) => (Some(scaled(b.clone())?), None),
            (_, None, None) => (None, None),
        };
        Ok(Prepared { kind: self.kind, hidden: h, w_ih_t, w_hh_t, b_x, b_h })
    }

    /// Checks a state tensor: `[N, H]` of the layer's dtype.
    pub(crate) fn check_state(&self, layer: &'static str, what: &str, s: &Tensor, n: usize) -> Result<()> {
        if s.shape() != [n, self.hidden_size] || s.dtype() != self.dtype() {
            return Err(Error::shape(
                layer,
                format!(
                    "{what} must be [N, H] = [{n}, {}] {}, got {:?} {}",
                    self.hidden_size,
                    self.dtype(),
                    s.shape(),
                    s.dtype()
                ),
            ));
        }
        Ok(())
    }
}

/// The weights of one layer ready for the time loop (see [`Params::prepare`]).
pub(crate) struct Prepared {
    kind: Kind,
    hidden: usize,
    /// `[in, G*H]`, sigmoid rows halved.
    w_ih_t: Tensor,
    /// `[H, G*H]`, sigmoid rows halved.
    w_hh_t: Tensor,
    /// `[G*H]`, added to the input projection.
    b_x: Option<Tensor>,
    /// `[G*H]`, added to the hidden projection (GRU only).
    b_h: Option<Tensor>,
}

/// The recurrent state of one layer during the loop (`None`: zero, not yet materialised).
pub(crate) struct LayerState {
    /// `[N, H]`.
    pub(crate) h: Option<Tensor>,
    /// `[N, H]`, LSTM only.
    pub(crate) c: Option<Tensor>,
}

impl Prepared {
    /// An LSTM layer over `gx` `[T, N, 4H]` from `(h0, c0)`: every step's `h` and `c` as
    /// `[2, T, N, H]` (the fused primitive; gates i, f, g, o unscaled).
    pub(crate) fn lstm_sequence(&self, gx: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<Tensor> {
        debug_assert_eq!(self.kind, Kind::Lstm);
        gx.lstm_sequence(&self.w_hh_t.t()?, h0, c0) // w_hh_tᵀ: a view of weight_hh [4H, H]
    }

    /// The input projection of many rows at once: `[rows, in] -> [rows, G*H]`, one GEMM.
    pub(crate) fn project_input(&self, x: &Tensor) -> Result<Tensor> {
        // One GEMM accumulating onto the bias; `w_ih_t.t()` is a view of the [G*H, in] layout
        // `linear` expects, so nothing is copied.
        x.linear(&self.w_ih_t.t()?, self.b_x.as_ref()) // [rows, G*H]
    }

    /// One time step from the projected input `gx` `[N, G*H]`; updates `state` in place.
    pub(crate) fn step(&self, gx: &Tensor, state: &mut LayerState) -> Result<()> {
        let hs = self.hidden;
        match self.kind {
            Kind::Tanh => {
                let pre = match &state.h {
                    Some(h) => h.matmul(&self.w_hh_t)?.add(gx)?, // [N, H]
                    None => gx.clone(),
                };
                state.h = Some(pre.tanh()?);
            }
            Kind::Lstm => {
                let n = gx.shape()[0];
                let y = self.lstm_sequence(&gx.reshape(&[1, n, 4 * hs])?, state.h.as_ref(), state.c.as_ref())?;
                let [h, c] = [0, 1].map(|k| y.narrow(0, k, 1)?.reshape(&[n, hs]));
                (state.h, state.c) = (Some(h?), Some(c?));
            }
            Kind::Gru => {
                let h = match &state.h {
                    Some(h) => h.clone(),
                    None => Tensor::zeros(&[gx.shape()[0], hs], gx.dtype()),
                };
                let mut gh = h.matmul(&self.w_hh_t)?; // [N, 3H], r and z columns halved
                if let Some(b) = &self.b_h {
                    gh = gh.add(b)?;
                }
                // r, z = sigmoid(...) = 0.5 * tanh(halved pre-activation) + 0.5   [N, 2H]
                let rz_pre = gx.narrow(1, 0, 2 * hs)?.add(&gh.narrow(1, 0, 2 * hs)?)?;
                let rz = rz_pre.tanh()?.mul_scalar(0.5)?.add_scalar(0.5)?;
                let (r, z) = (rz.narrow(1, 0, hs)?, rz.narrow(1, hs, hs)?);
                let n = gx.narrow(1, 2 * hs, hs)?.add(&r.mul(&gh.narrow(1, 2 * hs, hs)?)?)?.tanh()?;
                // (1 - z) * n + z * h  =  n + z * (h - n)
                state.h = Some(n.add(&z.mul(&h.sub(&n)?)?)?);
            }
        }
        Ok(())
    }
}

/// Checks that `x` is a float tensor of rank `rank` whose last dimension is `input` and whose
/// dtype is the layer's.
pub(crate) fn check_input(layer: &'static str, x: &Tensor, rank: usize, layout: &str, p: &Params) -> Result<()> {
    let ok = x.rank() == rank && x.shape()[rank - 1] == p.input_size;
    if !ok {
        return Err(Error::shape(
            layer,
            format!("input must be {layout} with in = {}, got {:?}", p.input_size, x.shape()),
        ));
    }
    if x.dtype() != p.dtype() {
        return Err(Error::DType {
            op: layer,
            msg: format!("input is {} but the weights are {}", x.dtype(), p.dtype()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
