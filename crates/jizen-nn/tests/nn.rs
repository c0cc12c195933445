//! Module naming, state-dict loading and optimizer updates. Oracles: hand computation of
//! PyTorch's documented update rules (`torch.optim.SGD`, `torch.optim.Adam`).

use std::collections::BTreeMap;

use jizen_nn::{load_state_dict, mlp, state_dict, Adam, AdamConfig, Linear, Module, Optimizer, Sgd, SgdConfig};
use jizen_tensor::{DType, Rng, Tensor};

#[test]
fn linear_computes_x_wt_plus_b() {
    let lin = Linear::new(3, 2, true, DType::F64, &mut Rng::new(0));
    lin.weight.copy_from_(&Tensor::from_vec(vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0], &[2, 3]).unwrap()).unwrap();
    lin.bias.as_ref().unwrap().copy_from_(&Tensor::from_vec(vec![0.5, -0.5], &[2]).unwrap()).unwrap();
    let y = lin.forward(&Tensor::from_vec(vec![1.0, 1.0, 1.0, 0.0, 1.0, 2.0], &[2, 3]).unwrap()).unwrap();
    assert_eq!(y.to_vec::<f64>().unwrap(), vec![6.5, -0.5, 8.5, 1.5]);
}

#[test]
fn torch_default_init_bounds() {
    let lin = Linear::new(100, 50, true, DType::F32, &mut Rng::new(1));
    let bound = 1.0 / 10.0;
    for v in lin.weight.to_vec::<f32>().unwrap() {
        assert!(v.abs() <= bound as f32);
    }
    // Same seed, same weights.
    let again = Linear::new(100, 50, true, DType::F32, &mut Rng::new(1));
    assert_eq!(lin.weight.to_vec::<f32>().unwrap(), again.weight.to_vec::<f32>().unwrap());
}

#[test]
fn state_dict_round_trip_and_mismatch_reports() {
    let a = mlp(&[4, 8, 3], DType::F32, &mut Rng::new(0));
    let b = mlp(&[4, 8, 3], DType::F32, &mut Rng::new(1));
    let report = load_state_dict(&b, &state_dict(&a), true).unwrap();
    assert_eq!(report.loaded, ["0.weight", "0.bias", "2.weight", "2.bias"]);
    for ((_, pa), (_, pb)) in a.named_parameters().iter().zip(b.named_parameters()) {
        assert_eq!(pa.to_vec::<f32>().unwrap(), pb.to_vec::<f32>().unwrap());
    }
    // A state dict of another shape: strict fails naming everything, and loads nothing.
    let c = mlp(&[4, 6, 3], DType::F32, &mut Rng::new(2));
    let before = c.named_parameters()[0].1.to_vec::<f32>().unwrap();
    let mut other: BTreeMap<String, Tensor> = state_dict(&a);
    other.insert("5.weight".into(), Tensor::zeros(&[1], DType::F32));
    other.remove("0.bias");
    let err = load_state_dict(&c, &other, true).unwrap_err().to_string();
    assert!(err.contains("missing [\"0.bias\"]"), "{err}");
    assert!(err.contains("unexpected [\"5.weight\"]"), "{err}");
    assert!(err.contains("0.weight: model [6, 4], state dict [8, 4]"), "{err}");
    assert_eq!(c.named_parameters()[0].1.to_vec::<f32>().unwrap(), before);
    let lenient = load_state_dict(&c, &other, false).unwrap();
    assert_eq!(lenient.missing, ["0.bias"]);
    assert_eq!(lenient.unexpected, ["5.weight"]);
}

fn quadratic_grad(p: &Tensor) {
    // loss = sum(p^2 * [1, 2, 3]) -> grad = 2 * p * [1, 2, 3]
    p.zero_grad();
    let w = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap();
    p.square().unwrap().mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
}

#[test]
fn sgd_momentum_nesterov_weight_decay_follow_torch_rule() {
    let p = Tensor::from_vec(vec![1.0, -2.0, 0.5], &[3]).unwrap().requires_grad_(true);
    let cfg = SgdConfig { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01 };
    let mut opt = Sgd::new(vec![p.clone()], cfg);
    // Reference: the update of torch.optim.SGD, step by step in f64.
    let mut w = vec![1.0, -2.0, 0.5];
    let mut buf: Option<Vec<f64>> = None;
    for _ in 0..5 {
        quadratic_grad(&p);
        opt.step().unwrap();
        let g: Vec<f64> = (0..3).map(|i| 2.0 * w[i] * (i + 1) as f64 + 0.01 * w[i]).collect();
        let b: Vec<f64> = match &buf {
            None => g.clone(),
            Some(b) => (0..3).map(|i| 0.9 * b[i] + g[i]).collect(),
        };
        let d: Vec<f64> = (0..3).map(|i| g[i] + 0.9 * b[i]).collect();
        buf = Some(b);
        (0..3).for_each(|i| w[i] -= 0.1 * d[i]);
    }
    let got = p.to_vec::<f64>().unwrap();
    for i in 0..3 {
        assert!((got[i] - w[i]).abs() < 1e-12, "{got:?} vs {w:?}");
    }
}

#[test]
fn adam_and_adamw_follow_torch_rule() {
    for decoupled in [false, true] {
        let p = Tensor::from_vec(vec![1.0, -2.0, 0.5], &[3]).unwrap().requires_grad_(true);
        let cfg = AdamConfig { lr: 0.05, weight_decay: 0.1, decoupled, ..Default::default() };
        let mut opt = Adam::new(vec![p.clone()], cfg);
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (mut w, mut m, mut v) = (vec![1.0, -2.0, 0.5], vec![0.0; 3], vec![0.0; 3]);
        for t in 1..=10 {
            quadratic_grad(&p);
            opt.step().unwrap();
            for i in 0..3 {
                let mut g = 2.0 * w[i] * (i + 1) as f64;
                if decoupled {
                    w[i] -= 0.05 * 0.1 * w[i];
                } else {
                    g += 0.1 * w[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let mhat = m[i] / (1.0 - b1.powi(t));
                let vhat = v[i] / (1.0 - b2.powi(t));
                w[i] -= 0.05 * mhat / (vhat.sqrt() + eps);
            }
        }
        let got = p.to_vec::<f64>().unwrap();
        for i in 0..3 {
            assert!((got[i] - w[i]).abs() < 1e-9, "decoupled={decoupled}: {got:?} vs {w:?}");
        }
    }
}

#[test]
fn orthogonal_init_gives_orthonormal_rows_or_columns() {
    for shape in [[4usize, 9], [9, 4], [6, 6]] {
        let w = jizen_nn::init::orthogonal(&shape, 2.0, DType::F64, &mut Rng::new(3)).unwrap();
        let (r, c) = (shape[0], shape[1]);
        // W Wᵀ = 4 I (rows) when r <= c, Wᵀ W = 4 I (columns) otherwise.
        let g = if r <= c { w.matmul(&w.t().unwrap()).unwrap() } else { w.t().unwrap().matmul(&w).unwrap() };
        let k = r.min(c);
        let gv = g.to_vec::<f64>().unwrap();
        for i in 0..k {
            for j in 0..k {
                let want = if i == j { 4.0 } else { 0.0 };
                assert!((gv[i * k + j] - want).abs() < 1e-12, "{shape:?} [{i},{j}] = {}", gv[i * k + j]);
            }
        }
        let again = jizen_nn::init::orthogonal(&shape, 2.0, DType::F64, &mut Rng::new(3)).unwrap();
        assert_eq!(w.to_vec::<f64>().unwrap(), again.to_vec::<f64>().unwrap());
    }
    assert!(jizen_nn::init::orthogonal(&[5], 1.0, DType::F32, &mut Rng::new(0)).is_err());
}

#[test]
fn residual_adds_the_shortcut_and_names_its_parts() {
    let mut rng = Rng::new(0);
    let block = jizen_nn::Residual::new(mlp(&[3, 5, 3], DType::F64, &mut rng));
    let x = Tensor::randn(&[2, 3], DType::F64, &mut rng);
    let body = mlp(&[3, 5, 3], DType::F64, &mut Rng::new(0));
    let want = body.forward(&x).unwrap().add(&x).unwrap().to_vec::<f64>().unwrap();
    assert_eq!(block.forward(&x).unwrap().to_vec::<f64>().unwrap(), want);
    let names: Vec<String> = block.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"]);
    let projected = jizen_nn::Residual::with_shortcut(
        mlp(&[3, 4], DType::F64, &mut rng),
        Linear::new(3, 4, false, DType::F64, &mut rng),
    );
    assert_eq!(projected.forward(&x).unwrap().shape(), &[2, 4]);
    let wrong = jizen_nn::Residual::new(mlp(&[3, 4], DType::F64, &mut rng));
    let e = wrong.forward(&x).unwrap_err().to_string();
    assert!(e.contains("add a projection shortcut"), "{e}");
}
