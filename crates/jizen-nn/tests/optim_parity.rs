//! Optimizers step by step against `torch.optim` (oracle: torch 2.15.0, fixtures written by
//! `scripts/fixtures/torch_optim.py`): ten steps on a fixed objective whose gradient changes
//! every step, in f64, compared after every step.

use std::collections::BTreeMap;

use jizen_nn::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use jizen_tensor::Tensor;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/optim.safetensors");

fn run(name: &str, make: impl Fn(Tensor) -> Box<dyn Optimizer>) {
    let fx: BTreeMap<String, Tensor> = jizen_tensor::safetensors::load(FIXTURE).unwrap();
    let (w, t, c) = (&fx["w"], &fx["t"], &fx["c"]);
    let p = fx["p0"].detach().contiguous().unwrap();
    let p = Tensor::from_vec(p.to_vec::<f64>().unwrap(), p.shape()).unwrap().requires_grad_(true);
    let mut opt = make(p.clone());
    let mut worst = 0f64;
    for k in 1..=10 {
        opt.zero_grad();
        // loss = sum(w * (p - t)^2) + sum(c * p^3)
        let loss = w.mul(&p.sub(t).unwrap().square().unwrap()).unwrap().sum_all().unwrap();
        let loss = loss.add(&c.mul(&p.powf(3.0).unwrap()).unwrap().sum_all().unwrap()).unwrap();
        loss.backward().unwrap();
        opt.step().unwrap();
        let want = fx[&format!("{name}.step.{k}")].to_vec::<f64>().unwrap();
        let got = p.to_vec::<f64>().unwrap();
        for (a, b) in got.iter().zip(&want) {
            let d = (a - b).abs();
            worst = worst.max(d);
            assert!(d <= 1e-12 + 1e-10 * b.abs(), "{name} step {k}: jizen {a} vs torch {b} (difference {d:e})");
        }
    }
    println!("{name}: 10 steps, largest |jizen - torch| = {worst:.2e}");
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
