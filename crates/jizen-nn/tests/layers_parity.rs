//! Parity of jizen-nn's layers with `torch.nn`, on committed fixtures.
//!
//! `scripts/fixtures/torch_layers.py` (torch 2.15.0, float32, deterministic) wrote
//! `tests/fixtures/layers.safetensors`: for every case `C`, the module's state dict under
//! PyTorch's names (`C.weight`, `C.running_mean`, ...), the input `C.in`, the output `C.out`, a
//! random cotangent `C.cot`, the gradients `C.grad.in` and `C.grad.<parameter>` of
//! `(out * cot).sum()`, and, for batch norm in training mode, the buffers after the forward pass
//! (`C.after.<buffer>`). Each test loads the state dict into a freshly built jizen layer with
//! `load_state_dict` in strict mode (which checks the names too), runs forward and backward, and
//! compares elementwise with `|a - b| <= ATOL + RTOL * |b|`, printing the largest difference.

use std::collections::{BTreeMap, BTreeSet};

use jizen_nn::{
    load_state_dict, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, ConvTranspose2d, Dropout,
    Embedding, Flatten, Gelu, LayerNorm, LeakyRelu, Linear, MaxPool2d, Module, Sequential, Sigmoid,
};
use jizen_tensor::{ConvOptions, DType, Rng, Tensor};

const LAYERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/layers.safetensors");

/// Absolute part of the elementwise tolerance.
const ATOL: f64 = 1e-5;
/// Relative part of the elementwise tolerance.
const RTOL: f64 = 1e-4;

mod common;
use common::Fixtures;

fn fixtures() -> Fixtures {
    common::load(LAYERS, "scripts/fixtures/README.md")
}

fn get<'a>(fx: &'a Fixtures, key: &str) -> &'a Tensor {
    common::get(fx, LAYERS, key)
}

/// Largest `|a - b|` and, if any element is outside the tolerance, a description of the worst.
fn compare(key: &str, actual: &Tensor, expected: &Tensor) -> (f64, Option<String>) {
    common::compare(key, actual, expected, ATOL, RTOL)
}

/// The state dict of case `name`: every `name.<key>` that is not an input, output, cotangent,
/// gradient or after-forward buffer.
fn case_state(fx: &Fixtures, name: &str) -> BTreeMap<String, Tensor> {
    let prefix = format!("{name}.");
    fx.iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest, v)))
        .filter(|(rest, _)| {
            !["in", "out", "cot"].contains(rest) && !rest.starts_with("grad.") && !rest.starts_with("after.")
        })
        .map(|(rest, v)| (rest.to_string(), v.clone()))
        .collect()
}

/// Runs one case: loads the state dict (strict), sets the mode from the name (`_eval`), runs
/// forward and backward and compares everything the fixture has. Returns the largest
/// difference and the failures.
fn run_case(fx: &Fixtures, name: &str, m: &dyn Module) -> (f64, Vec<String>) {
    let mut failures = Vec::new();
    let state = case_state(fx, name);
    if let Err(e) = load_state_dict(m, &state, true) {
        return (f64::INFINITY, vec![format!("{name}: {e}")]);
    }
    m.set_training(!name.ends_with("_eval"));
    let x = get(fx, &format!("{name}.in")).clone();
    let x = if x.dtype().is_float() { x.requires_grad_(true) } else { x };
    let out = m.forward(&x).unwrap_or_else(|e| panic!("{name}: forward: {e}"));
    let mut checks = vec![(format!("{name}.out"), out.detach())];
    let cot = get(fx, &format!("{name}.cot"));
    let grads = out.mul(cot).unwrap().sum_all().unwrap().backward().unwrap_or_else(|e| panic!("{name}: {e}"));
    if x.dtype().is_float() {
        let g = grads.get(&x).cloned().unwrap_or_else(|| x.zeros_like());
        checks.push((format!("{name}.grad.in"), g));
    }
    for (p, t) in m.named_parameters() {
        let g = grads.get(&t).cloned().unwrap_or_else(|| t.zeros_like());
        checks.push((format!("{name}.grad.{p}"), g));
    }
    for (b, t) in m.named_buffers() {
        if let Some(_after) = fx.get(&format!("{name}.after.{b}")) {
            checks.push((format!("{name}.after.{b}"), t));
        }
    }
    // Every gradient and buffer the fixture has must have been compared.
    let expected_keys: BTreeSet<&String> = fx
        .keys()
        .filter(|k| k.starts_with(&format!("{name}.grad.")) || k.starts_with(&format!("{name}.after.")))
        .collect();
    let checked: BTreeSet<&String> = checks.iter().map(|(k, _)| k).collect();
    for k in expected_keys.difference(&checked) {
        failures.push(format!("{k}: in the fixture, not produced by jizen"));
    }
    let mut max_abs = 0.0f64;
    for (key, actual) in &checks {
        let (d, f) = compare(key, actual, get(fx, key));
        max_abs = max_abs.max(d);
        failures.extend(f);
    }
    (max_abs, failures)
}

/// Runs several cases, prints each one's largest difference and fails with every mismatch.
fn run_cases(oracle: &str, cases: Vec<(&str, Box<dyn Module>)>) {
    let fx = fixtures();
    let mut failures = Vec::new();
    // One print per test, so that the summaries of tests running in parallel do not interleave.
    let mut summary = format!("oracle: {oracle}");
    for (name, m) in cases {
        let (d, f) = run_case(&fx, name, m.as_ref());
        summary += &format!("\n  {name:<22} max |jizen - torch| = {d:.2e}");
        failures.extend(f);
    }
    println!("{summary}");
    assert!(failures.is_empty(), "mismatches against {oracle}:\n{}", failures.join("\n"));
}

fn rng() -> Rng {
    Rng::new(0)
}

const CONV: &[&str] = &["conv2d", "conv2d_s2p1g2", "conv_transpose2d"];
const BATCH_NORM_1D: &[&str] = &["bn1d_train", "bn1d_eval", "bn1d_3d_train", "bn1d_3d_eval"];
const BATCH_NORM_2D: &[&str] = &["bn2d_train", "bn2d_eval"];
const LAYER_NORM: &[&str] = &["layernorm_last1", "layernorm_last2"];
const POOLS: &[&str] = &["maxpool2d", "maxpool2d_k3s2p1", "avgpool2d", "avgpool2d_k3s2p1", "adaptive_avgpool2d"];
const ACTIVATIONS: &[&str] = &["leaky_relu", "gelu", "sigmoid"];
const OTHERS: &[&str] = &["embedding", "linear_nobias", "flatten"];

#[test]
fn conv_layers_match_torch() {
    // oracle: torch.nn.Conv2d and torch.nn.ConvTranspose2d, torch 2.15.0
    let f = DType::F32;
    let cases: Vec<(&str, Box<dyn Module>)> = vec![
        ("conv2d", Box::new(Conv2d::new(3, 4, [3, 3], ConvOptions::default(), true, f, &mut rng()).unwrap())),
        (
            "conv2d_s2p1g2",
            Box::new(
                Conv2d::new(4, 6, [3, 3], ConvOptions::default().stride(2).padding(1).groups(2), true, f, &mut rng())
                    .unwrap(),
            ),
        ),
        (
            "conv_transpose2d",
            Box::new(
                ConvTranspose2d::new(
                    4,
                    3,
                    [3, 3],
                    ConvOptions::default().stride(2).padding(1).output_padding(1),
                    true,
                    f,
                    &mut rng(),
                )
                .unwrap(),
            ),
        ),
    ];
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), CONV);
    run_cases("torch.nn.Conv2d / torch.nn.ConvTranspose2d, torch 2.15.0", cases);
}

#[test]
fn batchnorm1d_matches_torch() {
    // oracle: torch.nn.BatchNorm1d, torch 2.15.0 (training: batch statistics and running-buffer
    // update; eval: the fixture's non-trivial running statistics)
    let f = DType::F32;
    let cases: Vec<(&str, Box<dyn Module>)> = vec![
        ("bn1d_train", Box::new(BatchNorm1d::new(5, f))),
        ("bn1d_eval", Box::new(BatchNorm1d::new(5, f))),
        ("bn1d_3d_train", Box::new(BatchNorm1d::new(3, f))),
        ("bn1d_3d_eval", Box::new(BatchNorm1d::new(3, f))),
    ];
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), BATCH_NORM_1D);
    run_cases("torch.nn.BatchNorm1d, torch 2.15.0", cases);
}

#[test]
fn batchnorm2d_matches_torch() {
    // oracle: torch.nn.BatchNorm2d, torch 2.15.0
    let cases: Vec<(&str, Box<dyn Module>)> = vec![
        ("bn2d_train", Box::new(BatchNorm2d::new(3, DType::F32))),
        ("bn2d_eval", Box::new(BatchNorm2d::new(3, DType::F32))),
    ];
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), BATCH_NORM_2D);
    run_cases("torch.nn.BatchNorm2d, torch 2.15.0", cases);
}

#[test]
fn layernorm_matches_torch() {
    // oracle: torch.nn.LayerNorm, torch 2.15.0
    let cases: Vec<(&str, Box<dyn Module>)> = vec![
        ("layernorm_last1", Box::new(LayerNorm::new(&[6], DType::F32))),
        ("layernorm_last2", Box::new(LayerNorm::new(&[4, 6], DType::F32))),
    ];
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), LAYER_NORM);
    run_cases("torch.nn.LayerNorm, torch 2.15.0", cases);
}

#[test]
fn pools_match_torch() {
    // oracle: torch.nn.MaxPool2d, AvgPool2d and AdaptiveAvgPool2d, torch 2.15.0
    let cases: Vec<(&str, Box<dyn Module>)> = vec![
        ("maxpool2d", Box::new(MaxPool2d::new([2, 2]))),
        ("maxpool2d_k3s2p1", Box::new(MaxPool2d::new([3, 3]).stride([2, 2]).padding([1, 1]))),
        ("avgpool2d", Box::new(AvgPool2d::new([2, 2]))),
        ("avgpool2d_k3s2p1", Box::new(AvgPool2d::new([3, 3]).stride([2, 2]).padding([1, 1]))),
        ("adaptive_avgpool2d", Box::new(AdaptiveAvgPool2d::new([2, 3]))),
    ];
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), POOLS);
    run_cases("torch.nn.MaxPool2d / AvgPool2d / AdaptiveAvgPool2d, torch 2.15.0", cases);
}

#[test]
fn activations_match_torch() {
    // oracle: torch.nn.LeakyReLU(0.2), torch.nn.GELU(), torch.nn.Sigmoid(), torch 2.15.0
    let cases: Vec<(&str, Box<dyn Module>)> =
        vec![("leaky_relu", Box::new(LeakyRelu(0.2))), ("gelu", Box::new(Gelu)), ("sigmoid", Box::new(Sigmoid))];
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), ACTIVATIONS);
    run_cases("torch.nn.LeakyReLU / GELU / Sigmoid, torch 2.15.0", cases);
}

#[test]
fn embedding_linear_flatten_match_torch() {
    // oracle: torch.nn.Embedding, torch.nn.Linear(bias=False), torch.nn.Flatten, torch 2.15.0
    let f = DType::F32;
    let cases: Vec<(&str, Box<dyn Module>)> = vec![
        ("embedding", Box::new(Embedding::new(10, 4, f, &mut rng()))),
        ("linear_nobias", Box::new(Linear::new(5, 3, false, f, &mut rng()))),
        ("flatten", Box::new(Flatten::new())),
    ];
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), OTHERS);
    run_cases("torch.nn.Embedding / Linear / Flatten, torch 2.15.0", cases);
}

#[test]
fn every_fixture_case_is_checked() {
    let fx = fixtures();
    let in_file: BTreeSet<&str> = fx.keys().filter_map(|k| k.strip_suffix(".out")).collect();
    let tested: BTreeSet<&str> =
        [CONV, BATCH_NORM_1D, BATCH_NORM_2D, LAYER_NORM, POOLS, ACTIVATIONS, OTHERS].concat().into_iter().collect();
    assert_eq!(in_file, tested, "cases in {LAYERS} vs cases the tests run");
}

#[test]
fn batch_norm_buffers_are_named_and_sequential_forwards_them() {
    // oracle: torch.nn.Sequential(Conv2d, BatchNorm2d).state_dict() keys, torch 2.15.0
    let net = Sequential::new()
        .push(Conv2d::new(1, 2, [3, 3], ConvOptions::default(), true, DType::F32, &mut rng()).unwrap())
        .push(BatchNorm2d::new(2, DType::F32));
    let buffers: Vec<String> = net.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(buffers, ["1.running_mean", "1.running_var", "1.num_batches_tracked"]);
    let keys: Vec<String> = jizen_nn::state_dict(&net).into_keys().collect();
    assert_eq!(
        keys,
        ["0.bias", "0.weight", "1.bias", "1.num_batches_tracked", "1.running_mean", "1.running_var", "1.weight"]
    );
    // Training-mode forward counts the batch; evaluation-mode forward changes no buffer.
    let x = Tensor::randn(&[2, 1, 5, 5], DType::F32, &mut rng());
    net.forward(&x).unwrap();
    net.set_training(false);
    let before: Vec<Vec<f64>> = net.named_buffers().iter().map(|(_, t)| t.to_f64_vec()).collect();
    net.forward(&x).unwrap();
    let after: Vec<Vec<f64>> = net.named_buffers().iter().map(|(_, t)| t.to_f64_vec()).collect();
    assert_eq!(before, after);
    assert_eq!(after[2], [1.0]);
}

#[test]
fn dropout_is_identity_in_eval_and_inverted_dropout_in_training() {
    // oracle: the definition of inverted dropout (torch.nn.Dropout's documented behaviour),
    // checked statistically rather than against torch's generator.
    let p = 0.3;
    let drop = Dropout::new(p, 7).unwrap();
    let x = Tensor::randn(&[200, 500], DType::F32, &mut rng()).requires_grad_(true);
    let y = drop.forward(&x).unwrap();
    let (xs, ys) = (x.to_vec::<f32>().unwrap(), y.to_vec::<f32>().unwrap());
    let keep = 1.0 / (1.0 - p);
    let zeros = ys.iter().filter(|&&v| v == 0.0).count();
    let frac = zeros as f64 / ys.len() as f64;
    // 100,000 Bernoulli(0.3) draws: the standard deviation of the fraction is 0.00145.
    assert!((frac - p).abs() < 0.01, "dropped fraction {frac}, expected about {p}");
    for (&a, &b) in xs.iter().zip(&ys) {
        assert!(b == 0.0 || ((b as f64) - a as f64 * keep).abs() <= 1e-6 * (1.0 + (a as f64).abs()), "{a} -> {b}");
    }
    // The gradient is the mask itself: 0 or 1/(1-p).
    let g = y.sum_all().unwrap().backward().unwrap().get(&x).unwrap().to_vec::<f32>().unwrap();
    for (&gi, &yi) in g.iter().zip(&ys) {
        let expect = if yi == 0.0 { 0.0 } else { keep };
        assert!((gi as f64 - expect).abs() < 1e-6, "gradient {gi}, expected {expect}");
    }
    // Fresh masks on every call; the same seed gives the same masks.
    let y2 = drop.forward(&x).unwrap().to_vec::<f32>().unwrap();
    assert_ne!(ys, y2);
    let again = Dropout::new(p, 7).unwrap().forward(&x).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(ys, again);
    // Evaluation mode: the identity.
    drop.set_training(false);
    assert_eq!(drop.forward(&x).unwrap().to_vec::<f32>().unwrap(), xs);
    assert!(Dropout::new(1.0, 0).is_err());
}

#[test]
fn layer_errors_name_the_layer_and_the_shapes() {
    // oracle: PyTorch refuses the same inputs (its messages differ).
    let bn = BatchNorm2d::new(3, DType::F32);
    let err = bn.forward(&Tensor::zeros(&[2, 4, 5, 5], DType::F32)).unwrap_err().to_string();
    assert!(err.contains("BatchNorm2d") && err.contains("[N, 3, H, W]") && err.contains("[2, 4, 5, 5]"), "{err}");
    let err = BatchNorm1d::new(3, DType::F32).forward(&Tensor::zeros(&[1, 3], DType::F32)).unwrap_err().to_string();
    assert!(err.contains("more than 1 value per channel"), "{err}");
    let err = LayerNorm::new(&[4], DType::F32).forward(&Tensor::zeros(&[2, 5], DType::F32)).unwrap_err().to_string();
    assert!(err.contains("layer_norm") && err.contains("[2, 5]") && err.contains("[4]"), "{err}");
    let err = Conv2d::new(3, 4, [3, 3], ConvOptions::default().groups(2), true, DType::F32, &mut rng());
    assert!(err.is_err_and(|e| e.to_string().contains("groups=2")));
}
