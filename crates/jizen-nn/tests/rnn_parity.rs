//! Parity of the recurrent layers with `torch.nn.LSTM`, `GRU`, `RNN` and their cells, on
//! committed fixtures.
//!
//! Oracle: `scripts/fixtures/torch_rnn.py` (torch 2.15.0, float32, deterministic) wrote
//! `tests/fixtures/rnn.safetensors`: for every case `C`, the PyTorch module's state dict under
//! its own names (`C.weight_ih_l0`, ...), the input `C.in`, the initial state `C.h0` / `C.c0`
//! (when given), the outputs `C.out`, `C.hn`, `C.cn`, random cotangents `C.cot.*` and the
//! gradients `C.grad.*` of `Σ out·cot.out + Σ hn·cot.hn + Σ cn·cot.cn` with respect to the input,
//! the initial state and every parameter. Each test loads the state dict into a fresh jizen
//! layer with `load_state_dict` in strict mode (so the names and shapes are PyTorch's), runs
//! forward and backward and compares elementwise with `|a - b| <= ATOL + RTOL |b|`, printing the
//! largest difference.

use std::collections::{BTreeMap, BTreeSet};

use jizen_nn::{load_state_dict, Gru, GruCell, Lstm, LstmCell, LstmState, Module, Rnn, RnnCell, RnnConfig};
use jizen_tensor::{DType, Rng, Tensor};

const RNN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/rnn.safetensors");

/// Absolute part of the elementwise tolerance (values and gradients are of order 1).
const ATOL: f64 = 2e-6;
/// Relative part of the elementwise tolerance.
const RTOL: f64 = 1e-5;

/// The fixture's sizes (see the script's docstring).
const IN: usize = 5;
const H: usize = 7;

mod common;
use common::Fixtures;

fn fixtures() -> Fixtures {
    common::load(RNN, "scripts/fixtures/torch_rnn.py")
}

fn get<'a>(fx: &'a Fixtures, key: &str) -> &'a Tensor {
    common::get(fx, RNN, key)
}

/// Largest `|a - b|` and, if any element is outside the tolerance, a description of the worst.
fn compare(key: &str, actual: &Tensor, expected: &Tensor) -> (f64, Option<String>) {
    common::compare(key, actual, expected, ATOL, RTOL)
}

/// Keys of case `name` that are not parameters.
const NOT_PARAMS: &[&str] = &["in", "h0", "c0", "out", "hn", "cn"];

/// The state dict of case `name`.
fn case_state(fx: &Fixtures, name: &str) -> BTreeMap<String, Tensor> {
    let prefix = format!("{name}.");
    fx.iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest, v)))
        .filter(|(rest, _)| !NOT_PARAMS.contains(rest) && !rest.starts_with("grad.") && !rest.starts_with("cot."))
        .map(|(rest, v)| (rest.to_string(), v.clone()))
        .collect()
}

/// A layer under test, with how to run it.
enum Layer {
    Lstm(Lstm),
    Gru(Gru),
    Rnn(Rnn),
    LstmCell(LstmCell),
    GruCell(GruCell),
    RnnCell(RnnCell),
}

impl Layer {
    fn module(&self) -> &dyn Module {
        match self {
            Layer::Lstm(m) => m,
            Layer::Gru(m) => m,
            Layer::Rnn(m) => m,
            Layer::LstmCell(m) => m,
            Layer::GruCell(m) => m,
            Layer::RnnCell(m) => m,
        }
    }

    /// Runs the layer from the optional initial state; returns `(key, tensor)` outputs.
    fn run(&self, x: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> jizen_tensor::Result<Vec<(&str, Tensor)>> {
        Ok(match self {
            Layer::Lstm(m) => {
                let state = h0.map(|h| LstmState { h: h.clone(), c: c0.expect("c0 with h0").clone() });
                let (out, s) = m.forward_with_state(x, state.as_ref())?;
                vec![("out", out), ("hn", s.h), ("cn", s.c)]
            }
            Layer::Gru(m) => {
                let (out, h) = m.forward_with_state(x, h0)?;
                vec![("out", out), ("hn", h)]
            }
            Layer::Rnn(m) => {
                let (out, h) = m.forward_with_state(x, h0)?;
                vec![("out", out), ("hn", h)]
            }
            Layer::LstmCell(m) => {
                let (h, c) = m.step(x, h0.zip(c0))?;
                vec![("out", h), ("cn", c)]
            }
            Layer::GruCell(m) => vec![("out", m.step(x, h0)?)],
            Layer::RnnCell(m) => vec![("out", m.step(x, h0)?)],
        })
    }
}

/// Builds the jizen layer for a case from its name (`lstm2_bf_state`, `grucell`, ...).
fn layer_for(name: &str) -> Layer {
    let rng = &mut Rng::new(0);
    let config = |layers: usize| RnnConfig::new(IN, H).num_layers(layers).batch_first(name.contains("_bf"));
    match name.split('_').next().unwrap() {
        "lstm2" => Layer::Lstm(Lstm::new(config(2), DType::F32, rng).unwrap()),
        "gru2" => Layer::Gru(Gru::new(config(2), DType::F32, rng).unwrap()),
        "rnn1" => Layer::Rnn(Rnn::new(config(1), DType::F32, rng).unwrap()),
        "lstmcell" => Layer::LstmCell(LstmCell::new(IN, H, true, DType::F32, rng)),
        "grucell" => Layer::GruCell(GruCell::new(IN, H, true, DType::F32, rng)),
        "rnncell" => Layer::RnnCell(RnnCell::new(IN, H, true, DType::F32, rng)),
        other => panic!("no jizen layer for fixture case {other}"),
    }
}

/// Runs one case; returns the largest difference and the failures.
fn run_case(fx: &Fixtures, name: &str) -> (f64, Vec<String>) {
    let layer = layer_for(name);
    let m = layer.module();
    if let Err(e) = load_state_dict(m, &case_state(fx, name), true) {
        return (f64::INFINITY, vec![format!("{name}: {e}")]);
    }
    let var = |key: &str| fx.get(&format!("{name}.{key}")).map(|t| t.clone().requires_grad_(true));
    let (x, h0, c0) = (var("in").expect("every case has an input"), var("h0"), var("c0"));
    let outs = layer.run(&x, h0.as_ref(), c0.as_ref()).unwrap_or_else(|e| panic!("{name}: forward: {e}"));
    let mut loss = Tensor::scalar(0.0, DType::F32);
    let mut checks = Vec::new();
    for (key, t) in &outs {
        let cot = get(fx, &format!("{name}.cot.{key}"));
        loss = loss.add(&t.mul(cot).unwrap().sum_all().unwrap()).unwrap();
        checks.push((format!("{name}.{key}"), t.detach()));
    }
    let grads = loss.backward().unwrap_or_else(|e| panic!("{name}: backward: {e}"));
    let inputs = [("in", Some(&x)), ("h0", h0.as_ref()), ("c0", c0.as_ref())];
    for (key, t) in inputs.into_iter().filter_map(|(k, t)| t.map(|t| (k, t))) {
        checks.push((format!("{name}.grad.{key}"), grads.get(t).cloned().unwrap_or_else(|| t.zeros_like())));
    }
    for (p, t) in m.named_parameters() {
        checks.push((format!("{name}.grad.{p}"), grads.get(&t).cloned().unwrap_or_else(|| t.zeros_like())));
    }
    // Every output and gradient of the fixture must have been compared.
    let mut failures = Vec::new();
    let checked: BTreeSet<&String> = checks.iter().map(|(k, _)| k).collect();
    let prefix = format!("{name}.");
    for k in fx.keys().filter(|k| k.starts_with(&prefix)) {
        let rest = &k[prefix.len()..];
        let is_result = rest.starts_with("grad.") || ["out", "hn", "cn"].contains(&rest);
        if is_result && !checked.contains(k) {
            failures.push(format!("{k}: in the fixture, not produced by jizen"));
        }
    }
    let mut max_abs = 0.0f64;
    for (key, actual) in &checks {
        let (d, f) = compare(key, actual, get(fx, key));
        max_abs = max_abs.max(d);
        failures.extend(f);
    }
    (max_abs, failures)
}

/// Runs the cases, prints each one's largest difference and fails with every mismatch.
fn run_cases(oracle: &str, cases: &[&str]) {
    let fx = fixtures();
    let mut failures = Vec::new();
    let mut summary = format!("oracle: {oracle} (|a - b| <= {ATOL:e} + {RTOL:e} |b|)");
    for name in cases {
        let (d, f) = run_case(&fx, name);
        summary += &format!("\n  {name:<18} max |jizen - torch| = {d:.2e}");
        failures.extend(f);
    }
    println!("{summary}");
    assert!(failures.is_empty(), "mismatches against {oracle}:\n{}", failures.join("\n"));
}

const LSTM: &[&str] = &["lstm2_tm", "lstm2_tm_state", "lstm2_bf", "lstm2_bf_state"];
const GRU: &[&str] = &["gru2_tm", "gru2_tm_state", "gru2_bf", "gru2_bf_state"];
const RNN_TANH: &[&str] = &["rnn1_tm", "rnn1_tm_state", "rnn1_bf", "rnn1_bf_state"];
const CELLS: &[&str] = &["lstmcell", "grucell", "rnncell"];

#[test]
fn lstm_matches_torch() {
    run_cases("torch.nn.LSTM, 2 layers, time-major and batch-first, zero and given state", LSTM);
}

#[test]
fn gru_matches_torch() {
    run_cases("torch.nn.GRU, 2 layers, time-major and batch-first, zero and given state", GRU);
}

#[test]
fn rnn_matches_torch() {
    run_cases("torch.nn.RNN (tanh), 1 layer, time-major and batch-first, zero and given state", RNN_TANH);
}

#[test]
fn cells_match_torch() {
    run_cases("torch.nn.LSTMCell, GRUCell, RNNCell, one step from a given state", CELLS);
}

#[test]
fn every_fixture_case_is_checked() {
    // oracle: the fixture's own list of cases; a case added to the script must get a test here.
    let fx = fixtures();
    let cases: BTreeSet<&str> = fx.keys().filter_map(|k| k.strip_suffix(".in")).filter(|c| !c.contains('.')).collect();
    let tested: BTreeSet<&str> = [LSTM, GRU, RNN_TANH, CELLS].concat().into_iter().collect();
    assert_eq!(cases, tested, "fixture cases and tested cases differ");
}
