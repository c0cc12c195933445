//! Learning-rate schedules against `torch.optim.lr_scheduler` (oracle: torch 2.15.0, fixtures
//! written by `scripts/fixtures/torch_optim.py`): the rate of each of 30 steps from a base of 0.1,
//! compared to 1e-12. `cosine_warmup` is torch's `LambdaLR` with Hugging Face's
//! cosine-with-warmup formula (torch has no such scheduler); ReduceLROnPlateau is fed a fixed
//! sequence of metric values.

use std::collections::BTreeMap;

use jizen_nn::{
    CosineWithWarmup, ExponentialLr, OneCycle, Optimizer, PlateauConfig, ReduceOnPlateau, Schedule, Sgd, SgdConfig,
    StepLr,
};
use jizen_tensor::{DType, Tensor};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/optim.safetensors");

fn fixture() -> BTreeMap<String, Tensor> {
    jizen_tensor::safetensors::load(FIXTURE).unwrap()
}

fn compare(name: &str, got: &[f64]) {
    let want = fixture()[&format!("sched.{name}")].to_vec::<f64>().unwrap();
    assert_eq!(got.len(), want.len(), "{name}");
    let mut worst = 0f64;
    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
        let d = (a - b).abs();
        worst = worst.max(d);
        assert!(d <= 1e-12, "{name} step {k}: jizen {a} vs torch {b} (difference {d:e})");
    }
    println!("{name}: 30 steps, largest |jizen - torch| = {worst:.2e}");
}

fn check(name: &str, s: &dyn Schedule) {
    let got: Vec<f64> = (0..30).map(|k| s.lr(k, 0.1)).collect();
    compare(name, &got);
}

#[test]
fn step_based_schedules_match_torch() {
    check("steplr", &StepLr { step_size: 7, gamma: 0.5 });
    check("exponential", &ExponentialLr { gamma: 0.9 });
    check("cosine_warmup", &CosineWithWarmup { warmup_steps: 5, total_steps: 25, min_lr: 0.001 });
    check("onecycle", &OneCycle::new(30));
}

#[test]
fn reduce_on_plateau_matches_torch() {
    let metrics = fixture()["sched.plateau.metrics"].to_vec::<f64>().unwrap();
    let p = Tensor::zeros(&[1], DType::F64).requires_grad_(true);
    let mut opt = Sgd::new(vec![p], SgdConfig { lr: 0.1, ..Default::default() });
    let mut plateau = ReduceOnPlateau::new(PlateauConfig {
        factor: 0.5,
        patience: 2,
        cooldown: 1,
        min_lr: 0.004,
        ..Default::default()
    });
    let mut got = vec![];
    for m in metrics {
        plateau.step(m, &mut opt).unwrap();
        got.push(opt.lr());
    }
    compare("plateau", &got);
}

#[test]
fn schedule_sets_every_group_from_its_base() {
    let a = Tensor::zeros(&[1], DType::F64).requires_grad_(true);
    let b = Tensor::zeros(&[1], DType::F64).requires_grad_(true);
    let groups = vec![
        jizen_nn::ParamGroup { params: vec![a], lr: None, weight_decay: None },
        jizen_nn::ParamGroup { params: vec![b], lr: Some(0.01), weight_decay: None },
    ];
    let mut opt = Sgd::with_groups(groups, SgdConfig { lr: 0.1, ..Default::default() });
    let base = opt.group_lrs();
    let s = StepLr { step_size: 2, gamma: 0.5 };
    s.apply(&mut opt, 5, &base).unwrap();
    assert_eq!(opt.group_lrs(), [0.1 * 0.25, 0.01 * 0.25]);
    assert!(s.apply(&mut opt, 5, &base[..1]).is_err());
}
