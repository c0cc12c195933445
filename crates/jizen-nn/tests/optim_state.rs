//! Optimizer state saves and loads: five steps, a state dict through safetensors bytes, a fresh
//! optimizer (and fresh parameters from the saved values) loading it, five more steps — bitwise
//! equal to ten uninterrupted steps. Oracle: the uninterrupted run.

use std::collections::BTreeMap;
use std::path::Path;

use jizen_nn::{Adam, AdamConfig, Optimizer, ParamGroup, RMSprop, RMSpropConfig, Sgd, SgdConfig};
use jizen_tensor::{DType, Rng, Tensor};

/// Two parameters (so state indices count across groups) and a loss whose gradient changes.
fn params() -> Vec<Tensor> {
    let mut rng = Rng::new(7);
    vec![
        Tensor::randn(&[3, 4], DType::F64, &mut rng).requires_grad_(true),
        Tensor::randn(&[5], DType::F32, &mut rng).requires_grad_(true),
    ]
}

fn copy(ps: &[Tensor]) -> Vec<Tensor> {
    ps.iter()
        .map(|p| {
            let c = p.zeros_like();
            c.copy_from_(p).unwrap();
            c.requires_grad_(true)
        })
        .collect()
}

fn steps(opt: &mut dyn Optimizer, ps: &[Tensor], n: usize) {
    for _ in 0..n {
        opt.zero_grad();
        let mut loss: Option<Tensor> = None;
        for p in ps {
            // sum((p - 0.3)^2 + 0.1 p^3), in f64
            let p64 = p.to_dtype(DType::F64).unwrap();
            let l = p64.add_scalar(-0.3).unwrap().square().unwrap();
            let l = l.add(&p64.powf(3.0).unwrap().mul_scalar(0.1).unwrap()).unwrap().sum_all().unwrap();
            loss = Some(match loss {
                None => l,
                Some(acc) => acc.add(&l).unwrap(),
            });
        }
        loss.unwrap().backward().unwrap();
        opt.step().unwrap();
    }
}

fn bits(ps: &[Tensor]) -> Vec<u64> {
    ps.iter().flat_map(|p| p.to_f64_vec()).map(f64::to_bits).collect()
}

fn resume_equals_uninterrupted(name: &str, make: &dyn Fn(Vec<Tensor>) -> Box<dyn Optimizer>) {
    let ps = params();
    let (straight, first) = (copy(&ps), copy(&ps));
    let mut opt = make(straight.clone());
    steps(opt.as_mut(), &straight, 10);

    let mut opt = make(first.clone());
    steps(opt.as_mut(), &first, 5);
    let state = opt.state_dict();
    let bytes = jizen_tensor::safetensors::to_bytes(state.iter().map(|(k, v)| (k.as_str(), v)), None).unwrap();
    let (state, _) = jizen_tensor::safetensors::from_bytes(&bytes, Path::new("state")).unwrap();
    drop(opt);
    let second = copy(&first);
    let mut opt = make(second.clone());
    opt.load_state_dict(&state).unwrap();
    assert_eq!(opt.state_dict().keys().collect::<Vec<_>>(), state.keys().collect::<Vec<_>>(), "{name}");
    steps(opt.as_mut(), &second, 5);
    assert_eq!(bits(&second), bits(&straight), "{name}: resumed run differs from the uninterrupted one");
}

#[test]
fn state_round_trips_for_every_optimizer() {
    let sgd = |ps: Vec<Tensor>| -> Box<dyn Optimizer> {
        Box::new(Sgd::new(ps, SgdConfig { lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.01 }))
    };
    let adam = |ps: Vec<Tensor>| -> Box<dyn Optimizer> {
        let mut ps = ps.into_iter();
        let groups = vec![
            ParamGroup::new(vec![ps.next().unwrap()]),
            ParamGroup { params: ps.collect(), lr: Some(0.02), weight_decay: Some(0.1) },
        ];
        Box::new(Adam::with_groups(groups, AdamConfig { lr: 0.01, decoupled: true, ..Default::default() }))
    };
    let rmsprop = |ps: Vec<Tensor>| -> Box<dyn Optimizer> {
        let c = RMSpropConfig { momentum: 0.9, centered: true, weight_decay: 0.01, ..Default::default() };
        Box::new(RMSprop::new(ps, c))
    };
    resume_equals_uninterrupted("sgd", &sgd);
    resume_equals_uninterrupted("adam", &adam);
    resume_equals_uninterrupted("rmsprop", &rmsprop);
}

#[test]
fn state_dict_uses_torch_names() {
    let ps = params();
    let mut opt = Adam::new(ps.clone(), AdamConfig::default());
    steps(&mut opt, &ps, 3);
    let state = opt.state_dict();
    let keys: Vec<&str> = state.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "state.0.exp_avg",
            "state.0.exp_avg_sq",
            "state.0.step",
            "state.1.exp_avg",
            "state.1.exp_avg_sq",
            "state.1.step"
        ]
    );
    assert_eq!(state["state.1.step"].item().unwrap(), 3.0);
    assert_eq!(state["state.1.exp_avg"].dtype(), DType::F32);
}

#[test]
fn bad_state_is_rejected_and_nothing_loads() {
    let ps = params();
    let mut opt = Adam::new(ps.clone(), AdamConfig::default());
    steps(&mut opt, &ps, 2);
    let good = opt.state_dict();

    let mut fresh = Adam::new(copy(&ps), AdamConfig::default());
    let before = fresh.state_dict();
    let mut missing = good.clone();
    missing.remove("state.1.exp_avg_sq");
    assert!(fresh.load_state_dict(&missing).is_err());
    let mut extra = good.clone();
    extra.insert("state.2.exp_avg".into(), Tensor::zeros(&[1], DType::F32));
    assert!(fresh.load_state_dict(&extra).is_err());
    let mut misshaped: BTreeMap<String, Tensor> = good.clone();
    misshaped.insert("state.0.exp_avg".into(), Tensor::zeros(&[4, 3], DType::F64));
    assert!(fresh.load_state_dict(&misshaped).is_err());
    let after = fresh.state_dict();
    for (k, v) in &before {
        assert_eq!(v.to_f64_vec(), after[k].to_f64_vec(), "{k} changed by a failed load");
    }
    // An SGD state does not fit an Adam.
    let mut sgd = Sgd::new(copy(&ps), SgdConfig { momentum: 0.9, ..Default::default() });
    steps(&mut sgd, &ps, 1);
    assert!(fresh.load_state_dict(&sgd.state_dict()).is_err());
}
