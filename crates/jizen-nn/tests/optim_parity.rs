//! Optimizers step by step against `torch.optim` (oracle: torch 2.15.0, fixtures written by
//! `scripts/fixtures/torch_optim.py`): ten steps on a fixed objective whose gradient changes
//! every step, in f64, compared after every step. Also parameter groups (the parameter split in
//! two, each part in its own group) and gradient clipping (`clip_grad_norm_` / `clip_grad_value_`
//! before an SGD step).

use std::collections::BTreeMap;

use jizen_nn::{
    clip_grad_norm, clip_grad_value, Adam, AdamConfig, Optimizer, ParamGroup, RMSprop, RMSpropConfig, Sgd, SgdConfig,
};
use jizen_tensor::Tensor;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/optim.safetensors");

fn fixture() -> BTreeMap<String, Tensor> {
    jizen_tensor::safetensors::load(FIXTURE).unwrap()
}

/// A fresh leaf with rows `rows` of `t`.
fn leaf(t: &Tensor, rows: std::ops::Range<usize>) -> Tensor {
    let t = t.narrow(0, rows.start, rows.len()).unwrap().contiguous().unwrap();
    Tensor::from_vec(t.to_vec::<f64>().unwrap(), t.shape()).unwrap().requires_grad_(true)
}

/// loss = sum(w * (p - t)^2) + sum(c * p^3) over rows `rows` of the objective's constants.
fn objective(fx: &BTreeMap<String, Tensor>, p: &Tensor, rows: std::ops::Range<usize>) -> Tensor {
    let [w, t, c] = ["w", "t", "c"].map(|k| fx[k].narrow(0, rows.start, rows.len()).unwrap());
    let loss = w.mul(&p.sub(&t).unwrap().square().unwrap()).unwrap().sum_all().unwrap();
    loss.add(&c.mul(&p.powf(3.0).unwrap()).unwrap().sum_all().unwrap()).unwrap()
}

/// Asserts `got` equals the fixture's `key` and returns the largest difference.
fn compare(fx: &BTreeMap<String, Tensor>, key: &str, got: &[f64]) -> f64 {
    let want = fx[key].to_vec::<f64>().unwrap();
    assert_eq!(got.len(), want.len(), "{key}");
    let mut worst = 0f64;
    for (a, b) in got.iter().zip(&want) {
        let d = (a - b).abs();
        worst = worst.max(d);
        assert!(d <= 1e-12 + 1e-10 * b.abs(), "{key}: jizen {a} vs torch {b} (difference {d:e})");
    }
    worst
}

/// Ten steps of one parameter (the whole objective); `before_step` runs between backward and step.
fn run_with(name: &str, make: impl Fn(Tensor) -> Box<dyn Optimizer>, before_step: impl Fn(&Tensor, usize) -> f64) {
    let fx = fixture();
    let p = leaf(&fx["p0"], 0..3);
    let mut opt = make(p.clone());
    let mut worst = 0f64;
    for k in 1..=10 {
        opt.zero_grad();
        objective(&fx, &p, 0..3).backward().unwrap();
        worst = worst.max(before_step(&p, k));
        opt.step().unwrap();
        worst = worst.max(compare(&fx, &format!("{name}.step.{k}"), &p.to_vec::<f64>().unwrap()));
    }
    println!("{name}: 10 steps, largest |jizen - torch| = {worst:.2e}");
}

fn run(name: &str, make: impl Fn(Tensor) -> Box<dyn Optimizer>) {
    run_with(name, make, |_, _| 0.0)
}

/// Ten steps of two parameters (rows 0..2 and row 2), each in its own group as `make` builds them.
fn run_groups(name: &str, make: impl Fn(Tensor, Tensor) -> Box<dyn Optimizer>) {
    let fx = fixture();
    let (a, b) = (leaf(&fx["p0"], 0..2), leaf(&fx["p0"], 2..3));
    let mut opt = make(a.clone(), b.clone());
    let mut worst = 0f64;
    for k in 1..=10 {
        opt.zero_grad();
        objective(&fx, &a, 0..2).add(&objective(&fx, &b, 2..3)).unwrap().backward().unwrap();
        opt.step().unwrap();
        let got = [a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap()].concat();
        worst = worst.max(compare(&fx, &format!("{name}.step.{k}"), &got));
    }
    println!("{name}: 10 steps, largest |jizen - torch| = {worst:.2e}");
}

/// Group 0 sets its weight decay, group 1 its learning rate (as in the fixture).
fn groups(a: Tensor, b: Tensor, wd: f64, lr: f64) -> Vec<ParamGroup> {
    vec![
        ParamGroup { params: vec![a], lr: None, weight_decay: Some(wd) },
        ParamGroup { params: vec![b], lr: Some(lr), weight_decay: None },
    ]
}

#[test]
fn sgd_matches_torch() {
    run("sgd", |p| Box::new(Sgd::new(vec![p], SgdConfig { lr: 0.05, ..Default::default() })));
    run("sgd_momentum", |p| Box::new(Sgd::new(vec![p], SgdConfig { lr: 0.05, momentum: 0.9, ..Default::default() })));
    run("sgd_nesterov_wd", |p| {
        Box::new(Sgd::new(vec![p], SgdConfig { lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.01 }))
    });
}

#[test]
fn adam_and_adamw_match_torch() {
    run("adam", |p| Box::new(Adam::new(vec![p], AdamConfig { lr: 0.01, ..Default::default() })));
    run("adam_wd", |p| {
        Box::new(Adam::new(
            vec![p],
            AdamConfig { lr: 0.01, betas: (0.8, 0.99), eps: 1e-6, weight_decay: 0.1, decoupled: false },
        ))
    });
    run("adamw", |p| {
        Box::new(Adam::new(vec![p], AdamConfig { lr: 0.01, weight_decay: 0.1, decoupled: true, ..Default::default() }))
    });
}

#[test]
fn rmsprop_matches_torch() {
    run("rmsprop", |p| Box::new(RMSprop::new(vec![p], RMSpropConfig::default())));
    run("rmsprop_centered_momentum_wd", |p| {
        let c = RMSpropConfig { lr: 0.01, alpha: 0.9, eps: 1e-6, momentum: 0.9, centered: true, weight_decay: 0.01 };
        Box::new(RMSprop::new(vec![p], c))
    });
}

#[test]
fn parameter_groups_match_torch() {
    run_groups("sgd_groups", |a, b| {
        let c = SgdConfig { lr: 0.05, momentum: 0.9, weight_decay: 0.001, ..Default::default() };
        Box::new(Sgd::with_groups(groups(a, b, 0.1, 0.01), c))
    });
    run_groups("adam_groups", |a, b| {
        let c = AdamConfig { lr: 0.01, weight_decay: 0.001, ..Default::default() };
        Box::new(Adam::with_groups(groups(a, b, 0.1, 0.03), c))
    });
    run_groups("adamw_groups", |a, b| {
        let c = AdamConfig { lr: 0.01, weight_decay: 0.01, decoupled: true, ..Default::default() };
        Box::new(Adam::with_groups(groups(a, b, 0.5, 0.03), c))
    });
    run_groups("rmsprop_groups", |a, b| {
        let c = RMSpropConfig { lr: 0.01, momentum: 0.5, ..Default::default() };
        Box::new(RMSprop::with_groups(groups(a, b, 0.1, 0.03), c))
    });
}

#[test]
fn group_learning_rates_can_be_read_and_set() {
    let fx = fixture();
    let (a, b) = (leaf(&fx["p0"], 0..2), leaf(&fx["p0"], 2..3));
    let mut opt = Sgd::with_groups(groups(a, b, 0.1, 0.01), SgdConfig { lr: 0.05, ..Default::default() });
    assert_eq!(opt.group_lrs(), [0.05, 0.01]);
    assert_eq!(opt.lr(), 0.05);
    opt.set_group_lr(1, 0.2).unwrap();
    assert_eq!(opt.group_lrs(), [0.05, 0.2]);
    assert!(opt.set_group_lr(2, 0.2).is_err());
    opt.set_lr(0.3);
    assert_eq!(opt.group_lrs(), [0.3, 0.3]);
}

fn sgd_momentum(p: Tensor) -> Box<dyn Optimizer> {
    Box::new(Sgd::new(vec![p], SgdConfig { lr: 0.05, momentum: 0.9, ..Default::default() }))
}

#[test]
fn clip_grad_norm_matches_torch() {
    let fx = fixture();
    run_with("clip_norm", sgd_momentum, |p, k| {
        let total = clip_grad_norm(std::slice::from_ref(p), 2.0).unwrap();
        compare(&fx, &format!("clip_norm.norm.{k}"), &[total])
    });
}

#[test]
fn clip_grad_value_matches_torch() {
    run_with("clip_value", sgd_momentum, |p, _| {
        clip_grad_value(std::slice::from_ref(p), 0.5).unwrap();
        assert!(p.grad().unwrap().to_vec::<f64>().unwrap().iter().all(|g| g.abs() <= 0.5));
        0.0
    });
}

/// Oracle: the definition (no torch). A gradient that is a broadcast view (the gradient of a sum)
/// is replaced, not written through; parameters without a gradient are skipped; f32 works.
#[test]
fn clipping_handles_views_missing_gradients_and_f32() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap().requires_grad_(true);
    let b = Tensor::from_vec(vec![0.5f32; 4], &[4]).unwrap().requires_grad_(true);
    let none = Tensor::from_vec(vec![1.0f32; 2], &[2]).unwrap().requires_grad_(true);
    // grad a = [2, 2, 2] (a broadcast of one value), grad b = 2 b = [1, 1, 1, 1]
    a.sum_all()
        .unwrap()
        .mul_scalar(2.0)
        .unwrap()
        .add(&b.square().unwrap().sum_all().unwrap())
        .unwrap()
        .backward()
        .unwrap();
    let params = [a.clone(), b.clone(), none.clone()];
    let total = clip_grad_norm(&params, 1.0).unwrap();
    assert!((total - 4.0).abs() < 1e-12, "total norm {total}");
    let coef = (1.0 / (4.0 + 1e-6)) as f32;
    assert_eq!(a.grad().unwrap().to_vec::<f32>().unwrap(), [2.0 * coef; 3]);
    assert_eq!(b.grad().unwrap().to_vec::<f32>().unwrap(), [coef; 4]);
    assert!(none.grad().is_none());
    clip_grad_value(&params, 0.3).unwrap();
    assert_eq!(a.grad().unwrap().to_vec::<f32>().unwrap(), [0.3; 3]);
    assert_eq!(b.grad().unwrap().to_vec::<f32>().unwrap(), [coef; 4]);
    // a norm below the limit leaves the gradients as they are
    let before = b.grad().unwrap().to_vec::<f32>().unwrap();
    clip_grad_norm(std::slice::from_ref(&b), 10.0).unwrap();
    assert_eq!(b.grad().unwrap().to_vec::<f32>().unwrap(), before);
}

/// Gradients long enough to be reduced on several threads: the norm is the f64 norm of all the
/// elements, whatever the split, and clipping multiplies each element by the factor rounded to
/// f32 (torch's `g.mul_(clip_coef.to(g.dtype))`).
#[test]
fn clip_grad_norm_of_large_gradients_is_exact_in_f64() {
    let mut rng = jizen_tensor::Rng::new(7);
    let params: Vec<Tensor> = [300_001usize, 65_536, 5]
        .iter()
        .map(|&n| Tensor::zeros(&[n], jizen_tensor::DType::F32).requires_grad_(true))
        .collect();
    let grads: Vec<Vec<f32>> = params
        .iter()
        .map(|p| {
            let g = Tensor::randn(p.shape(), jizen_tensor::DType::F32, &mut rng);
            p.replace_grad(g.clone()).unwrap();
            g.to_vec::<f32>().unwrap()
        })
        .collect();
    let expected = grads.iter().flatten().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    let total = clip_grad_norm(&params, 1.0).unwrap();
    assert!((total - expected).abs() <= 1e-12 * expected, "norm {total}, expected {expected}");
    let coef = (1.0 / (total + 1e-6)) as f32;
    for (p, g) in params.iter().zip(&grads) {
        let clipped = p.grad().unwrap().to_vec::<f32>().unwrap();
        assert!(clipped.iter().zip(g).all(|(&c, &x)| c == x * coef), "a clipped element is not x · coef");
    }
}
