//! Single-step cells: one time step for a batch, `[N, in]` and state `[N, H]`. Parameter names
//! as PyTorch's `RNNCell`, `LSTMCell`, `GRUCell`: `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`.

use jizen_tensor::{DType, Result, Rng, Tensor};

use super::{check_input, Kind, LayerState, Params};
use crate::module::Module;

/// Runs one step of the cell `p` on `x` `[N, in]` from the state (`None`: zeros).
fn cell_step(p: &Params, x: &Tensor, h: Option<&Tensor>, c: Option<&Tensor>) -> Result<LayerState> {
    let name = p.kind.cell_name();
    check_input(name, x, 2, "[N, in]", p)?;
    let n = x.shape()[0];
    if let Some(h) = h {
        p.check_state(name, "hidden state h", h, n)?;
    }
    if let Some(c) = c {
        p.check_state(name, "cell state c", c, n)?;
    }
    let prepared = p.prepare()?;
    let gx = prepared.project_input(x)?; // [N, G*H]
    let mut state = LayerState { h: h.cloned(), c: c.cloned() };
    prepared.step(&gx, &mut state)?;
    Ok(state)
}

/// Accessors shared by the three cells.
macro_rules! cell_common {
    ($t:ident, $kind:expr) => {
        impl $t {
            /// A cell with PyTorch's initialisation (`U(-1/sqrt(H), 1/sqrt(H))` for every
            /// tensor), from a seeded generator.
            pub fn new(input_size: usize, hidden_size: usize, bias: bool, dtype: DType, rng: &mut Rng) -> Self {
                $t(Params::new($kind, input_size, hidden_size, bias, dtype, rng))
            }

            /// A cell over existing tensors, used as they are (shared, not copied):
            /// `weight_ih` `[G*H, in]`, `weight_hh` `[G*H, H]`, biases `[G*H]` (`G` = 1, 4, 3
            /// for the tanh, LSTM and GRU cells). Shapes and dtypes are checked.
            pub fn from_tensors(
                weight_ih: Tensor,
                weight_hh: Tensor,
                bias_ih: Option<Tensor>,
                bias_hh: Option<Tensor>,
            ) -> Result<Self> {
                Ok($t(Params::from_tensors($kind, weight_ih, weight_hh, bias_ih, bias_hh)?))
            }

            /// `[G*H, in]`, gate blocks stacked in PyTorch's order.
            pub fn weight_ih(&self) -> &Tensor {
                &self.0.weight_ih
            }

            /// `[G*H, H]`.
            pub fn weight_hh(&self) -> &Tensor {
                &self.0.weight_hh
            }

            /// `[G*H]`, if the cell has biases.
            pub fn bias_ih(&self) -> Option<&Tensor> {
                self.0.bias_ih.as_ref()
            }

            /// `[G*H]`, if the cell has biases.
            pub fn bias_hh(&self) -> Option<&Tensor> {
                self.0.bias_hh.as_ref()
            }

            pub(crate) fn into_params(self) -> Params {
                self.0
            }

            /// `in`.
            pub fn input_size(&self) -> usize {
                self.0.input_size
            }

            /// `H`.
            pub fn hidden_size(&self) -> usize {
                self.0.hidden_size
            }
        }
    };
}

/// An Elman cell with tanh, like `torch.nn.RNNCell`:
/// `h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`.
///
/// ```
/// use jizen_nn::RnnCell;
/// use jizen_tensor::{DType, Rng, Tensor};
/// let cell = RnnCell::new(3, 5, true, DType::F32, &mut Rng::new(0));
/// let h = cell.step(&Tensor::ones(&[2, 3], DType::F32), None)?; // zero initial state
/// let h = cell.step(&Tensor::ones(&[2, 3], DType::F32), Some(&h))?;
/// assert_eq!(h.shape(), &[2, 5]);
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct RnnCell(Params);
cell_common!(RnnCell, Kind::Tanh);

impl RnnCell {
    /// One step: `x` `[N, in]`, `h` `[N, H]` (`None`: zeros) -> `h'` `[N, H]`.
    pub fn step(&self, x: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        Ok(cell_step(&self.0, x, h, None)?.h.expect("a step sets h"))
    }
}

/// A long short-term memory cell, like `torch.nn.LSTMCell`, gates in PyTorch's order:
/// `(i, f, g, o) = (σ, σ, tanh, σ)(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`, `c' = f c + i g`,
/// `h' = o tanh(c')`. All four gates come from one product per operand.
///
/// ```
/// use jizen_nn::LstmCell;
/// use jizen_tensor::{DType, Rng, Tensor};
/// let cell = LstmCell::new(3, 5, true, DType::F32, &mut Rng::new(0));
/// let x = Tensor::ones(&[2, 3], DType::F32);
/// let (h, c) = cell.step(&x, None)?;
/// let (h, c) = cell.step(&x, Some((&h, &c)))?;
/// assert_eq!((h.shape(), c.shape()), (&[2, 5][..], &[2, 5][..]));
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct LstmCell(Params);
cell_common!(LstmCell, Kind::Lstm);

impl LstmCell {
    /// One step: `x` `[N, in]`, `(h, c)` each `[N, H]` (`None`: zeros) -> `(h', c')`.
    pub fn step(&self, x: &Tensor, state: Option<(&Tensor, &Tensor)>) -> Result<(Tensor, Tensor)> {
        let s = cell_step(&self.0, x, state.map(|s| s.0), state.map(|s| s.1))?;
        Ok((s.h.expect("a step sets h"), s.c.expect("an LSTM step sets c")))
    }
}

/// A gated recurrent unit, like `torch.nn.GRUCell`, gates in PyTorch's order:
/// `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)`,
/// `n = tanh(W_in x + b_in + r (W_hn h + b_hn))`, `h' = (1 - z) n + z h`.
///
/// ```
/// use jizen_nn::GruCell;
/// use jizen_tensor::{DType, Rng, Tensor};
/// let cell = GruCell::new(3, 5, true, DType::F32, &mut Rng::new(0));
/// let h = cell.step(&Tensor::ones(&[2, 3], DType::F32), None)?;
/// assert_eq!(h.shape(), &[2, 5]);
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct GruCell(Params);
cell_common!(GruCell, Kind::Gru);

impl GruCell {
    /// One step: `x` `[N, in]`, `h` `[N, H]` (`None`: zeros) -> `h'` `[N, H]`.
    pub fn step(&self, x: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        Ok(cell_step(&self.0, x, h, None)?.h.expect("a step sets h"))
    }
}

macro_rules! cell_module {
    ($t:ident) => {
        /// `forward(x)` is one step from the zero state: `[N, in] -> [N, H]` (the new `h`).
        impl Module for $t {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                Ok(cell_step(&self.0, x, None, None)?.h.expect("a step sets h"))
            }

            fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
                self.0.visit(prefix, "", f);
            }
        }
    };
}

cell_module!(RnnCell);
cell_module!(LstmCell);
cell_module!(GruCell);
