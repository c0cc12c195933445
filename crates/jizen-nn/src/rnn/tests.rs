//! Behaviour of the recurrent layers beyond the PyTorch parity and gradient checks (those are in
//! `tests/rnn_parity.rs` and `tests/rnn_gradcheck.rs`): names, initialisation, errors, dropout,
//! carried state, and weight tying with `Linear::from_tensors`.

use std::sync::Mutex;

use jizen_tensor::{DType, Rng, Tensor};

use super::*;
use crate::{Embedding, Linear, Module};

fn lstm(config: RnnConfig) -> Lstm {
    Lstm::new(config, DType::F64, &mut Rng::new(0)).unwrap()
}

fn input(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, &mut Rng::new(seed))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_f64_vec().iter().zip(b.to_f64_vec()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn parameter_names_shapes_and_init_follow_pytorch() {
    // oracle: torch.nn.LSTM(3, 5, num_layers=2).state_dict() keys and shapes.
    let m = Lstm::new(RnnConfig::new(3, 5).num_layers(2), DType::F32, &mut Rng::new(0)).unwrap();
    let got: Vec<(String, Vec<usize>)> =
        m.named_parameters().into_iter().map(|(n, t)| (n, t.shape().to_vec())).collect();
    let want: Vec<(String, Vec<usize>)> = [
        ("weight_ih_l0", vec![20, 3]),
        ("weight_hh_l0", vec![20, 5]),
        ("bias_ih_l0", vec![20]),
        ("bias_hh_l0", vec![20]),
        ("weight_ih_l1", vec![20, 5]),
        ("weight_hh_l1", vec![20, 5]),
        ("bias_ih_l1", vec![20]),
        ("bias_hh_l1", vec![20]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(got, want);
    // U(-1/sqrt(H), 1/sqrt(H)) for every tensor, and not all alike.
    let bound = 1.0 / 5f64.sqrt();
    for (name, t) in m.named_parameters() {
        let v = t.to_f64_vec();
        assert!(v.iter().all(|x| x.abs() <= bound), "{name} outside ±{bound}");
        assert!(v.iter().any(|x| x.abs() > bound / 2.0), "{name} does not spread over the range");
        assert!(t.is_variable(), "{name} must require a gradient");
    }
    let gru = GruCell::new(3, 5, false, DType::F32, &mut Rng::new(0));
    let names: Vec<String> = gru.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight_ih", "weight_hh"]);
    assert_eq!(gru.weight_ih().shape(), &[15, 3]);
}

/// Runs `f` and returns its error message, failing if it succeeded.
fn error_of<T>(r: jizen_tensor::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_inputs_are_errors_naming_the_layer_and_shapes() {
    let m = lstm(RnnConfig::new(3, 5).num_layers(2));
    let e = error_of(m.forward(&input(&[4, 2, 6], 0)));
    assert_eq!(e, "Lstm: input must be [T, N, in] with in = 3, got [4, 2, 6]");
    let e = error_of(m.forward(&input(&[4, 3], 0)));
    assert!(e.starts_with("Lstm: input must be [T, N, in]") && e.contains("[4, 3]"), "{e}");
    let e = error_of(m.forward(&input(&[0, 2, 3], 0)));
    assert_eq!(e, "Lstm: input [T, N, in] [0, 2, 3] has no time steps or an empty batch");
    let e = error_of(m.forward(&Tensor::zeros(&[4, 2, 3], DType::F32)));
    assert_eq!(e, "Lstm: input is f32 but the weights are f64");
    let bad = LstmState { h: input(&[2, 2, 5], 1), c: input(&[1, 2, 5], 2) };
    let e = error_of(m.forward_with_state(&input(&[4, 2, 3], 0), Some(&bad)));
    assert_eq!(e, "Lstm: initial cell state c0 must be [layers, N, H] = [2, 2, 5] f64, got [1, 2, 5] f64");

    let bf = Gru::new(RnnConfig::new(3, 5).batch_first(true), DType::F64, &mut Rng::new(0)).unwrap();
    let e = error_of(bf.forward(&input(&[2, 0, 3], 0)));
    assert_eq!(e, "Gru: input [N, T, in] [2, 0, 3] has no time steps or an empty batch");
    let e = error_of(bf.forward_with_state(&input(&[2, 4, 3], 0), Some(&input(&[1, 4, 5], 1))));
    assert_eq!(e, "Gru: initial hidden state h0 must be [layers, N, H] = [1, 2, 5] f64, got [1, 4, 5] f64");

    let cell = LstmCell::new(3, 5, true, DType::F64, &mut Rng::new(0));
    let (h, c) = (input(&[2, 5], 1), input(&[2, 4], 2));
    let e = error_of(cell.step(&input(&[2, 3], 0), Some((&h, &c))));
    assert_eq!(e, "LstmCell: cell state c must be [N, H] = [2, 5] f64, got [2, 4] f64");
    let e = error_of(RnnCell::new(3, 5, true, DType::F64, &mut Rng::new(0)).step(&input(&[7, 2, 3], 0), None));
    assert_eq!(e, "RnnCell: input must be [N, in] with in = 3, got [7, 2, 3]");

    let e = error_of(Rnn::new(RnnConfig::new(3, 0), DType::F32, &mut Rng::new(0)));
    assert_eq!(e, "Rnn: input_size (3), hidden_size (0) and num_layers (1) must all be positive");
    let e = error_of(Lstm::new(RnnConfig::new(3, 4).dropout(1.0, 0), DType::F32, &mut Rng::new(0)));
    assert_eq!(e, "Lstm: dropout probability 1 must be in [0, 1)");
    let e = error_of(GruCell::from_tensors(input(&[12, 3], 0), input(&[12, 5], 1), None, None));
    assert_eq!(e, "GruCell: weight_hh must be [3*H, H] with H > 0, got [12, 5]");
    let e = error_of(LstmCell::from_tensors(input(&[16, 3], 0), input(&[16, 4], 1), Some(input(&[4], 2)), None));
    assert_eq!(e, "LstmCell: bias_ih must be [16] f64, got [4] f64");
    let cells = vec![LstmCell::new(3, 4, true, DType::F64, &mut Rng::new(0))];
    let e = error_of(Lstm::from_cells(RnnConfig::new(3, 4).num_layers(2), cells));
    assert_eq!(e, "Lstm: 1 layers given for num_layers = 2");
}

#[test]
fn batch_first_is_the_transposed_layout() {
    // oracle: the time-major result of the same weights, transposed.
    let (tm, bf) =
        (lstm(RnnConfig::new(3, 4).num_layers(2)), lstm(RnnConfig::new(3, 4).num_layers(2).batch_first(true)));
    let x = input(&[5, 2, 3], 1); // [T, N, in]
    let (y_tm, s_tm) = tm.forward_with_state(&x, None).unwrap();
    let (y_bf, s_bf) = bf.forward_with_state(&x.transpose(0, 1).unwrap(), None).unwrap();
    assert_eq!(y_bf.shape(), &[2, 5, 4]);
    assert_eq!(max_abs_diff(&y_tm, &y_bf.transpose(0, 1).unwrap()), 0.0);
    assert_eq!(max_abs_diff(&s_tm.h, &s_bf.h), 0.0);
    assert_eq!(max_abs_diff(&s_tm.c, &s_bf.c), 0.0);
}

#[test]
fn carried_state_continues_the_sequence_and_detach_cuts_the_graph() {
    // oracle: one pass over 6 steps equals two windows of 3 with the state carried.
    let m = lstm(RnnConfig::new(3, 4).num_layers(2));
    let x = input(&[6, 2, 3], 3).requires_grad_(true);
    let (full, full_state) = m.forward_with_state(&x, None).unwrap();
    let (first, s1) = m.forward_with_state(&x.narrow(0, 0, 3).unwrap(), None).unwrap();
    let (second, s2) = m.forward_with_state(&x.narrow(0, 3, 3).unwrap(), Some(&s1.detach())).unwrap();
    let joined = Tensor::cat(&[&first, &second], 0).unwrap();
    assert!(max_abs_diff(&full, &joined) < 1e-12);
    assert!(max_abs_diff(&full_state.h, &s2.h) < 1e-12 && max_abs_diff(&full_state.c, &s2.c) < 1e-12);
    // The second window's loss reaches the first window's inputs only through the state, which
    // was detached: their gradient is zero, while the second window's inputs get one.
    let grads = second.sum_all().unwrap().backward().unwrap();
    let gx = grads.get(&x).expect("x takes part").to_f64_vec();
    assert!(gx[..3 * 2 * 3].iter().all(|&g| g == 0.0), "the gradient crossed a detached state");
    assert!(gx[3 * 2 * 3..].iter().any(|&g| g != 0.0));
    // Without detaching it does cross.
    let (second, _) = m.forward_with_state(&x.narrow(0, 3, 3).unwrap(), Some(&s1)).unwrap();
    let gx = second.sum_all().unwrap().backward().unwrap().get(&x).unwrap().to_f64_vec();
    assert!(gx[..3 * 2 * 3].iter().any(|&g| g != 0.0));
}

#[test]
fn dropout_between_layers_is_seeded_and_off_in_eval_mode() {
    let x = input(&[4, 2, 3], 5);
    let plain = lstm(RnnConfig::new(3, 4).num_layers(2)).forward(&x).unwrap();
    let dropped = |seed: u64| lstm(RnnConfig::new(3, 4).num_layers(2).dropout(0.5, seed));
    // Same weights (same init generator); masks from the module's own seeded generator.
    let (a, b, c) = (dropped(1), dropped(1), dropped(2));
    let (ya, yb, yc) = (a.forward(&x).unwrap(), b.forward(&x).unwrap(), c.forward(&x).unwrap());
    assert_eq!(max_abs_diff(&ya, &yb), 0.0, "same seed, same masks");
    assert!(max_abs_diff(&ya, &yc) > 1e-3, "another seed, other masks");
    assert!(max_abs_diff(&ya, &plain) > 1e-3, "dropout changes the training-mode output");
    // The next call draws new masks.
    assert!(max_abs_diff(&ya, &a.forward(&x).unwrap()) > 1e-3);
    a.set_training(false);
    assert!(!a.is_training());
    assert_eq!(max_abs_diff(&a.forward(&x).unwrap(), &plain), 0.0, "evaluation mode is dropout-free");
    // The generator is exposed for checkpoints, and restoring it replays the masks.
    let mut names = Vec::new();
    let mut saved = None;
    b.visit_rngs("rnn", &mut |name: String, rng: &Mutex<Rng>| {
        names.push(name);
        saved = Some(rng.lock().unwrap().state());
    });
    assert_eq!(names, ["rnn.dropout"]);
    let y1 = b.forward(&x).unwrap();
    b.visit_rngs("", &mut |_, rng| *rng.lock().unwrap() = Rng::from_state(saved.unwrap()));
    assert_eq!(max_abs_diff(&y1, &b.forward(&x).unwrap()), 0.0);
    // One layer: nothing lies between layers, so dropout has no effect (as in PyTorch).
    let one = Gru::new(RnnConfig::new(3, 4).dropout(0.5, 0), DType::F64, &mut Rng::new(0)).unwrap();
    let one_plain = Gru::new(RnnConfig::new(3, 4), DType::F64, &mut Rng::new(0)).unwrap();
    assert_eq!(max_abs_diff(&one.forward(&x).unwrap(), &one_plain.forward(&x).unwrap()), 0.0);
}

#[test]
fn tied_embedding_and_decoder_accumulate_into_one_weight() {
    // oracle: the sum of the gradients of the two uses computed separately, each through an
    // untied copy of the table.
    let (vocab, dim) = (7, 4);
    let emb = Embedding::new(vocab, dim, DType::F64, &mut Rng::new(0));
    let bias = Tensor::zeros(&[vocab], DType::F64).requires_grad_(true);
    let decoder = Linear::from_tensors(emb.weight.clone(), Some(bias)).unwrap();
    assert_eq!(decoder.weight.id(), emb.weight.id(), "one tensor, not a copy");
    let ids = Tensor::from_vec(vec![1i64, 3, 3, 6], &[4]).unwrap();
    let cot = input(&[4, vocab], 9);
    let loss = |e: &Embedding, d: &Linear| d.forward(&e.forward(&ids)?.tanh()?)?.mul(&cot)?.sum_all();
    loss(&emb, &decoder).unwrap().backward().unwrap();
    let tied = emb.weight.grad().expect("the tied weight has a gradient");

    // Untied: the embedding's table and the decoder's weight as two variables of equal value.
    let e2 = Embedding { weight: emb.weight.detach().requires_grad_(true) };
    let d2 = Linear::from_tensors(emb.weight.detach().requires_grad_(true), None).unwrap();
    let grads = loss(&e2, &d2).unwrap().backward().unwrap();
    let sum = grads.get(&e2.weight).unwrap().add(grads.get(&d2.weight).unwrap()).unwrap();
    assert!(max_abs_diff(&tied, &sum) < 1e-12);
    assert!(grads.get(&e2.weight).unwrap().to_f64_vec().iter().any(|&g| g != 0.0));

    let e = error_of(Linear::from_tensors(input(&[3, 4], 0), Some(input(&[4], 1))));
    assert_eq!(e, "Linear::from_tensors: bias must be [out] = [3] f64, got [4] f64");
    let e = error_of(Linear::from_tensors(input(&[3], 0), None));
    assert_eq!(e, "Linear::from_tensors: weight must be a float [out, in] matrix, got [3] f64");
}

#[test]
fn stacks_equal_their_cells_stepped_by_hand_for_any_length() {
    // oracle: the cells' own step, looped over time and layers; the lengths cover one chunk of
    // the per-step slicing (1, 2), uneven chunks (5, 10) and many (40).
    let mut rng = Rng::new(11);
    let cells: Vec<LstmCell> =
        (0..2).map(|k| LstmCell::new(if k == 0 { 3 } else { 4 }, 4, true, DType::F64, &mut rng)).collect();
    let shared = |c: &LstmCell| {
        LstmCell::from_tensors(c.weight_ih().clone(), c.weight_hh().clone(), c.bias_ih().cloned(), c.bias_hh().cloned())
    };
    let stack =
        Lstm::from_cells(RnnConfig::new(3, 4).num_layers(2), cells.iter().map(|c| shared(c).unwrap()).collect())
            .unwrap();
    for t_len in [1, 2, 5, 10, 40] {
        let x = input(&[t_len, 2, 3], t_len as u64);
        let (y, state) = stack.forward_with_state(&x, None).unwrap();
        let mut states: Vec<Option<(Tensor, Tensor)>> = vec![None, None];
        let mut outs = Vec::new();
        for t in 0..t_len {
            let mut h = x.narrow(0, t, 1).unwrap().squeeze(0).unwrap();
            for (k, cell) in cells.iter().enumerate() {
                let (hk, ck) = cell.step(&h, states[k].as_ref().map(|(a, b)| (a, b))).unwrap();
                states[k] = Some((hk.clone(), ck));
                h = hk;
            }
            outs.push(h);
        }
        let by_hand = Tensor::stack(&outs.iter().collect::<Vec<_>>(), 0).unwrap();
        assert!(max_abs_diff(&y, &by_hand) < 1e-12, "T = {t_len}");
        let c_last = states[1].as_ref().unwrap().1.clone();
        assert!(max_abs_diff(&state.c.narrow(0, 1, 1).unwrap().squeeze(0).unwrap(), &c_last) < 1e-12);
    }
}
