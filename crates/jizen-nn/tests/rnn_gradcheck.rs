//! Finite-difference gradient checks (f64, random cotangent) of the recurrent layers, with
//! respect to the input, the initial state and every parameter.
//! Oracle: central differences of the forward pass itself (`jizen_tensor::gradcheck`).
//!
//! The parameters are passed to the checker as inputs and the layer is rebuilt around them with
//! `from_tensors` / `from_cells` on every evaluation, so that the checked gradients are those
//! the layer's own forward pass produces.

use jizen_nn::{Gru, GruCell, Lstm, LstmCell, LstmState, Rnn, RnnCell, RnnConfig};
use jizen_tensor::gradcheck::assert_gradients as check;
use jizen_tensor::{DType, Rng, Tensor};

/// Sizes: input 3, hidden 4, batch 2, 3 time steps.
const IN: usize = 3;
const H: usize = 4;
const N: usize = 2;
const T: usize = 3;

/// `N(0, scale²)` values in f64.
fn normal(shape: &[usize], seed: u64, scale: f64) -> Tensor {
    Tensor::randn(shape, DType::F64, &mut Rng::new(seed)).mul_scalar(scale).unwrap()
}

/// The four parameter tensors of a layer with `g` gate blocks reading `input` features.
fn layer_params(g: usize, input: usize, seed: u64) -> Vec<Tensor> {
    vec![
        normal(&[g * H, input], seed, 0.5),
        normal(&[g * H, H], seed + 1, 0.5),
        normal(&[g * H], seed + 2, 0.5),
        normal(&[g * H], seed + 3, 0.5),
    ]
}

/// Flattens several outputs into one vector, so that one cotangent weighs them all.
fn flat(ts: &[Tensor]) -> jizen_tensor::Result<Tensor> {
    let parts = ts.iter().map(|t| t.reshape(&[t.numel()])).collect::<jizen_tensor::Result<Vec<_>>>()?;
    Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0)
}

fn some(t: &Tensor) -> Option<Tensor> {
    Some(t.clone())
}

#[test]
fn rnn_cell_gradients() {
    // inputs: x [N, in], h [N, H], weight_ih, weight_hh, bias_ih, bias_hh
    let mut inputs = vec![normal(&[N, IN], 1, 1.0), normal(&[N, H], 2, 1.0)];
    inputs.extend(layer_params(1, IN, 10));
    check("RnnCell (x, h, weight_ih, weight_hh, bias_ih, bias_hh)", &inputs, |t| {
        let cell = RnnCell::from_tensors(t[2].clone(), t[3].clone(), some(&t[4]), some(&t[5]))?;
        cell.step(&t[0], Some(&t[1]))
    });
}

#[test]
fn lstm_cell_gradients() {
    // inputs: x, h, c, weight_ih, weight_hh, bias_ih, bias_hh; output: h' and c'
    let mut inputs = vec![normal(&[N, IN], 3, 1.0), normal(&[N, H], 4, 1.0), normal(&[N, H], 5, 1.0)];
    inputs.extend(layer_params(4, IN, 20));
    check("LstmCell (x, h, c, weights, biases) -> (h', c')", &inputs, |t| {
        let cell = LstmCell::from_tensors(t[3].clone(), t[4].clone(), some(&t[5]), some(&t[6]))?;
        let (h, c) = cell.step(&t[0], Some((&t[1], &t[2])))?;
        flat(&[h, c])
    });
    // From the zero state, which skips the recurrent product and the forget term.
    check("LstmCell from zero state (x, weights, biases)", &[&inputs[..1], &inputs[3..]].concat(), |t| {
        let cell = LstmCell::from_tensors(t[1].clone(), t[2].clone(), some(&t[3]), some(&t[4]))?;
        let (h, c) = cell.step(&t[0], None)?;
        flat(&[h, c])
    });
}

#[test]
fn gru_cell_gradients() {
    let mut inputs = vec![normal(&[N, IN], 6, 1.0), normal(&[N, H], 7, 1.0)];
    inputs.extend(layer_params(3, IN, 30));
    check("GruCell (x, h, weight_ih, weight_hh, bias_ih, bias_hh)", &inputs, |t| {
        let cell = GruCell::from_tensors(t[2].clone(), t[3].clone(), some(&t[4]), some(&t[5]))?;
        cell.step(&t[0], Some(&t[1]))
    });
}

/// Inputs of a 2-layer stack check: x, h0, (c0,) then the 4 parameters of each layer.
fn stack_inputs(g: usize, with_c: bool, seed: u64) -> Vec<Tensor> {
    let mut v = vec![normal(&[T, N, IN], seed, 1.0), normal(&[2, N, H], seed + 1, 1.0)];
    if with_c {
        v.push(normal(&[2, N, H], seed + 2, 1.0));
    }
    v.extend(layer_params(g, IN, seed + 10));
    v.extend(layer_params(g, H, seed + 20));
    v
}

#[test]
fn lstm_stack_gradients() {
    let inputs = stack_inputs(4, true, 100);
    let build = |p: &[Tensor]| -> jizen_tensor::Result<Lstm> {
        let cells = p
            .chunks(4)
            .map(|w| LstmCell::from_tensors(w[0].clone(), w[1].clone(), some(&w[2]), some(&w[3])))
            .collect::<jizen_tensor::Result<Vec<_>>>()?;
        Lstm::from_cells(RnnConfig::new(IN, H).num_layers(2), cells)
    };
    check("Lstm 2 layers, 3 steps (x, h0, c0, 8 parameters) -> (out, hn, cn)", &inputs, |t| {
        let state = LstmState { h: t[1].clone(), c: t[2].clone() };
        let (out, s) = build(&t[3..])?.forward_with_state(&t[0], Some(&state))?;
        flat(&[out, s.h, s.c])
    });
    let no_state: Vec<Tensor> = [&inputs[..1], &inputs[3..]].concat();
    check("Lstm 2 layers, 3 steps, zero state (x, 8 parameters) -> (out, hn, cn)", &no_state, |t| {
        let (out, s) = build(&t[1..])?.forward_with_state(&t[0], None)?;
        flat(&[out, s.h, s.c])
    });
}

#[test]
fn gru_stack_gradients() {
    let inputs = stack_inputs(3, false, 200);
    check("Gru 2 layers, 3 steps (x, h0, 8 parameters) -> (out, hn)", &inputs, |t| {
        let cells = t[2..]
            .chunks(4)
            .map(|w| GruCell::from_tensors(w[0].clone(), w[1].clone(), some(&w[2]), some(&w[3])))
            .collect::<jizen_tensor::Result<Vec<_>>>()?;
        let gru = Gru::from_cells(RnnConfig::new(IN, H).num_layers(2), cells)?;
        let (out, h) = gru.forward_with_state(&t[0], Some(&t[1]))?;
        flat(&[out, h])
    });
}

#[test]
fn rnn_stack_gradients() {
    // Batch-first and without biases, to cover those paths too: x is [N, T, in].
    let mut inputs = vec![normal(&[N, T, IN], 300, 1.0), normal(&[2, N, H], 301, 1.0)];
    inputs.extend(layer_params(1, IN, 310).into_iter().take(2));
    inputs.extend(layer_params(1, H, 320).into_iter().take(2));
    check("Rnn 2 layers, batch-first, no bias (x, h0, 4 weights) -> (out, hn)", &inputs, |t| {
        let cells = t[2..]
            .chunks(2)
            .map(|w| RnnCell::from_tensors(w[0].clone(), w[1].clone(), None, None))
            .collect::<jizen_tensor::Result<Vec<_>>>()?;
        let config = RnnConfig::new(IN, H).num_layers(2).batch_first(true).bias(false);
        let (out, h) = Rnn::from_cells(config, cells)?.forward_with_state(&t[0], Some(&t[1]))?;
        flat(&[out, h])
    });
}
