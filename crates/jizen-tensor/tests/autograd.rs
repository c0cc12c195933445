//! Autograd behaviour: accumulation, no_grad, detach, higher-order gradients, numerical
//! stability of the softmax family, error messages, and an end-to-end learning check.

use jizen_tensor::{cross_entropy, grad, no_grad, CrossEntropyOptions, DType, Rng, Tensor};

fn t64(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

#[test]
fn gradients_accumulate_until_cleared() {
    let x = t64(&[1.0, 2.0], &[2]).requires_grad_(true);
    let y = x.mul(&x).unwrap().sum_all().unwrap(); // dy/dx = 2x
    y.backward().unwrap();
    y.backward().unwrap(); // the graph is kept; gradients add up
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![4.0, 8.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![2.0, 4.0]);
}

#[test]
fn shared_subexpressions_sum_their_gradients() {
    // y = a*b + a  ->  dy/da = b + 1, dy/db = a
    let a = t64(&[3.0], &[1]).requires_grad_(true);
    let b = t64(&[5.0], &[1]).requires_grad_(true);
    let y = a.mul(&b).unwrap().add(&a).unwrap().sum_all().unwrap();
    let g = y.backward().unwrap();
    assert_eq!(g.get(&a).unwrap().to_vec::<f64>().unwrap(), vec![6.0]);
    assert_eq!(g.get(&b).unwrap().to_vec::<f64>().unwrap(), vec![3.0]);
}

#[test]
fn no_grad_and_detach_cut_the_graph() {
    let x = t64(&[1.0, 2.0], &[2]).requires_grad_(true);
    let y = no_grad(|| x.mul_scalar(2.0).unwrap());
    assert!(!y.requires_grad() && y.op().is_none());
    let z = x.mul_scalar(2.0).unwrap();
    assert!(z.requires_grad());
    let d = z.detach();
    assert!(!d.requires_grad());
    assert_eq!(d.to_vec::<f64>().unwrap(), vec![2.0, 4.0]);
    // Differentiating something that does not depend on a variable is an error, not a panic.
    let err = d.sum_all().unwrap().backward().unwrap_err().to_string();
    assert!(err.contains("does not require a gradient"), "{err}");
    let err = x.mul_scalar(1.0).unwrap().backward().unwrap_err().to_string();
    assert!(err.contains("needs a scalar"), "{err}");
}

#[test]
fn hessian_vector_product_matches_finite_differences() {
    // f(x) = sum(tanh(W x)^2) + sum(x^3): Hv computed as grad(<grad f, v>), against
    // (grad f(x + eps v) - grad f(x - eps v)) / 2eps.
    let mut rng = Rng::new(3);
    let w = Tensor::randn(&[4, 3], DType::F64, &mut rng);
    let x0 = Tensor::randn(&[3], DType::F64, &mut rng);
    let v = Tensor::randn(&[3], DType::F64, &mut rng);
    let f = |x: &Tensor| -> Tensor {
        let h = w.matmul(x).unwrap().tanh().unwrap();
        h.square().unwrap().sum_all().unwrap().add(&x.powf(3.0).unwrap().sum_all().unwrap()).unwrap()
    };
    let gradient = |x: &Tensor, create_graph: bool| -> Tensor {
        let x = x.detach().requires_grad_(true);
        let g = grad(&f(&x), &[&x], None, create_graph).unwrap();
        g[0].clone().unwrap()
    };
    let x = x0.detach().requires_grad_(true);
    let g = grad(&f(&x), &[&x], None, true).unwrap()[0].clone().unwrap();
    assert!(g.requires_grad(), "with create_graph the gradient is differentiable");
    let hv = grad(&g.mul(&v).unwrap().sum_all().unwrap(), &[&x], None, false).unwrap()[0]
        .clone()
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    let eps = 1e-5;
    let plus = gradient(&x0.add(&v.mul_scalar(eps).unwrap()).unwrap(), false).to_vec::<f64>().unwrap();
    let minus = gradient(&x0.sub(&v.mul_scalar(eps).unwrap()).unwrap(), false).to_vec::<f64>().unwrap();
    for i in 0..3 {
        let fd = (plus[i] - minus[i]) / (2.0 * eps);
        assert!((hv[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()), "Hv[{i}] = {} vs finite differences {fd}", hv[i]);
    }
}

#[test]
fn softmax_family_is_finite_for_huge_logits() {
    let x = Tensor::from_vec(vec![1e4f32, -1e4, 0.0, 1e4, 5.0, -1e4], &[2, 3]).unwrap().requires_grad_(true);
    let ls = x.log_softmax(1).unwrap();
    let v = ls.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|a| a.is_finite()), "log_softmax {v:?}");
    assert_eq!(v[0], 0.0);
    assert_eq!(v[1], -2e4);
    let sm = x.softmax(1).unwrap().to_vec::<f32>().unwrap();
    assert!(sm.iter().all(|a| a.is_finite()) && (sm[0] - 1.0).abs() < 1e-6);
    let y = Tensor::from_vec(vec![1i64, 2], &[2]).unwrap();
    let loss = cross_entropy(&x, &y, CrossEntropyOptions::default()).unwrap();
    assert!(loss.item().unwrap().is_finite());
    let g = loss.backward().unwrap();
    assert!(g.get(&x).unwrap().to_vec::<f32>().unwrap().iter().all(|a| a.is_finite()));
    let s = x.sigmoid().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(s.get(&x).unwrap().to_vec::<f32>().unwrap().iter().all(|a| a.is_finite()));
}

#[test]
fn errors_name_the_op_and_the_shapes() {
    let a = Tensor::ones(&[2, 3], DType::F32);
    let b = Tensor::ones(&[4, 5], DType::F32);
    assert_eq!(
        a.matmul(&b).unwrap_err().to_string(),
        "matmul: lhs [2, 3] and rhs [4, 5] do not agree on the inner dimension"
    );
    assert_eq!(a.add(&b).unwrap_err().to_string(), "add: shapes [2, 3] and [4, 5] cannot be broadcast together");
    let e = a.reshape(&[4]).unwrap_err().to_string();
    assert!(e.starts_with("reshape: cannot reshape [2, 3]"), "{e}");
    let e = a.add(&Tensor::ones(&[2, 3], DType::F64)).unwrap_err().to_string();
    assert!(e.contains("add") && e.contains("f32") && e.contains("f64"), "{e}");
    let table = Tensor::ones(&[3, 2], DType::F32);
    let e = table.embedding(&Tensor::from_vec(vec![5i64], &[1]).unwrap()).unwrap_err().to_string();
    assert!(e.contains("index 5 is out of range"), "{e}");
    let x = Tensor::ones(&[1, 3, 8, 8], DType::F32);
    let w = Tensor::ones(&[4, 1, 3, 3], DType::F32);
    let e = x.conv2d(&w, None, Default::default()).unwrap_err().to_string();
    assert!(e.starts_with("conv2d: input [1, 3, 8, 8] and weight [4, 1, 3, 3]"), "{e}");
    let e = cross_entropy(
        &Tensor::ones(&[2, 3], DType::F32),
        &Tensor::from_vec(vec![0i64, 3], &[2]).unwrap(),
        Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("target 3 is out of range for 3 classes"), "{e}");
}

/// Two interleaved spirals, `n` points each, labels 0 and 1.
fn two_spirals(n: usize, rng: &mut Rng) -> (Tensor, Tensor) {
    let mut xs = Vec::with_capacity(4 * n);
    let mut ys = Vec::with_capacity(2 * n);
    for class in 0..2 {
        for i in 0..n {
            let t = 0.25 + 3.0 * std::f64::consts::PI * (i as f64 / n as f64);
            let sign = if class == 0 { 1.0 } else { -1.0 };
            let (x, y) = (sign * t * t.cos() / 10.0, sign * t * t.sin() / 10.0);
            xs.push(x + 0.01 * rng.normal());
            xs.push(y + 0.01 * rng.normal());
            ys.push(class as i64);
        }
    }
    (
        Tensor::from_vec(xs.into_iter().map(|v| v as f32).collect(), &[2 * n, 2]).unwrap(),
        Tensor::from_vec(ys, &[2 * n]).unwrap(),
    )
}

#[test]
fn two_layer_mlp_learns_two_spirals() {
    // Raw tensor ops and a hand-written SGD-with-momentum loop; no layer library involved.
    let mut rng = Rng::new(0);
    let (x, y) = two_spirals(200, &mut rng);
    let hidden = 128;
    let init = |shape: &[usize], fan_in: usize, rng: &mut Rng| {
        Tensor::randn(shape, DType::F32, rng).mul_scalar((2.0 / fan_in as f64).sqrt()).unwrap().requires_grad_(true)
    };
    let params = [
        init(&[2, hidden], 2, &mut rng),
        Tensor::zeros(&[hidden], DType::F32).requires_grad_(true),
        init(&[hidden, 2], hidden, &mut rng),
        Tensor::zeros(&[2], DType::F32).requires_grad_(true),
    ];
    let mut velocity: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.numel()]).collect();
    let forward = |x: &Tensor| -> Tensor {
        let h = x.matmul(&params[0]).unwrap().add(&params[1]).unwrap().relu().unwrap();
        h.matmul(&params[2]).unwrap().add(&params[3]).unwrap()
    };
    let (lr, momentum) = (0.1f32, 0.9f32);
    let mut last_loss = f64::NAN;
    for _step in 0..3000 {
        let loss = cross_entropy(&forward(&x), &y, CrossEntropyOptions::default()).unwrap();
        let grads = loss.backward().unwrap();
        last_loss = loss.item().unwrap();
        for (p, v) in params.iter().zip(velocity.iter_mut()) {
            let g = grads.get(p).unwrap().to_vec::<f32>().unwrap();
            p.update_::<f32>(|w| {
                for i in 0..w.len() {
                    v[i] = momentum * v[i] + g[i];
                    w[i] -= lr * v[i];
                }
            })
            .unwrap();
        }
    }
    let pred = no_grad(|| forward(&x)).argmax(1, false).unwrap().to_vec::<i64>().unwrap();
    let truth = y.to_vec::<i64>().unwrap();
    let acc = pred.iter().zip(&truth).filter(|(a, b)| a == b).count() as f64 / truth.len() as f64;
    println!("two spirals: training accuracy {:.1}%, final loss {last_loss:.4}", 100.0 * acc);
    assert!(acc >= 0.95, "training accuracy {acc} below 95% (loss {last_loss})");
}

#[test]
fn graph_memory_counts_each_buffer_once() {
    // y = relu(x @ w): x [4, 3] input, w [3, 2] variable, the matmul output and the relu output.
    let x = Tensor::ones(&[4, 3], DType::F32);
    let w = Tensor::ones(&[3, 2], DType::F32).requires_grad_(true);
    let h = x.matmul(&w).unwrap();
    let y = h.relu().unwrap();
    let m = jizen_tensor::graph_memory(&y);
    assert_eq!(m.parameter_bytes, 3 * 2 * 4);
    assert_eq!(m.activation_bytes, (4 * 3 + 4 * 2 + 4 * 2) * 4);
    assert_eq!(m.ops, 2);
    // A view shares its buffer: counting it adds nothing.
    let v = y.reshape(&[8]).unwrap().sum_all().unwrap();
    let m2 = jizen_tensor::graph_memory(&v);
    assert_eq!(m2.activation_bytes, m.activation_bytes + 4);
}

#[test]
fn nan_propagates_through_relu_and_maximum_like_pytorch() {
    let x = t64(&[f64::NAN, -1.0, 2.0], &[3]);
    let r = x.relu().unwrap().to_vec::<f64>().unwrap();
    assert!(r[0].is_nan() && r[1] == 0.0 && r[2] == 2.0, "{r:?}");
    let m = x.maximum(&t64(&[0.0, 0.0, 0.0], &[3])).unwrap().to_vec::<f64>().unwrap();
    assert!(m[0].is_nan(), "{m:?}");
}

/// A small convolutional graph (conv, relu, 2×2 max pool, linear map, cross-entropy) on fixed
/// random inputs; returns the loss, the pooled activation and the two variables.
fn small_conv_graph(seed: u64) -> (Tensor, Tensor, Tensor, Tensor) {
    let mut rng = Rng::new(seed);
    let x = Tensor::randn(&[2, 1, 6, 6], DType::F64, &mut rng);
    let w = Tensor::randn(&[3, 1, 3, 3], DType::F64, &mut rng).requires_grad_(true);
    let v = Tensor::randn(&[12, 4], DType::F64, &mut rng).requires_grad_(true);
    let y = Tensor::from_vec(vec![1i64, 3], &[2]).unwrap();
    let h = x.conv2d(&w, None, jizen_tensor::ConvOptions::default()).unwrap().relu().unwrap();
    let p = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1]).unwrap();
    let logits = p.reshape(&[2, 12]).unwrap().matmul(&v).unwrap();
    let loss = cross_entropy(&logits, &y, CrossEntropyOptions::default()).unwrap();
    (loss, p, w, v)
}

#[test]
fn backward_free_graph_gives_the_same_gradients_and_frees_the_graph() {
    let (kept, _, w1, v1) = small_conv_graph(5);
    let g1 = kept.backward().unwrap();
    let (freed, pooled, w2, v2) = small_conv_graph(5);
    assert!(jizen_tensor::graph_memory(&freed).ops > 0);
    let before = pooled.to_vec::<f64>().unwrap();
    let g2 = freed.backward_free_graph().unwrap();
    for (a, b) in [(&w1, &w2), (&v1, &v2)] {
        assert_eq!(g1.get(a).unwrap().to_vec::<f64>().unwrap(), g2.get(b).unwrap().to_vec::<f64>().unwrap());
        assert_eq!(a.grad().unwrap().to_vec::<f64>().unwrap(), b.grad().unwrap().to_vec::<f64>().unwrap());
    }
    // Nothing is recorded any more; what the caller holds keeps its values.
    assert_eq!(jizen_tensor::graph_memory(&freed).ops, 0);
    assert!(pooled.op().is_none() && !pooled.requires_grad());
    assert_eq!(pooled.to_vec::<f64>().unwrap(), before);
    let err = freed.backward().unwrap_err().to_string();
    assert!(err.contains("freed by an earlier backward_free_graph"), "{err}");
    // The kept graph can still be backpropagated.
    kept.backward().unwrap();
}

#[test]
fn relu_and_max_pool_gradients_are_the_same_recorded_or_not() {
    // A plain backward pass uses fused kernels for these two rules; a recorded one (for
    // higher-order gradients) uses tensor ops. Both must give the same numbers, and only the
    // recorded one is differentiable again.
    let (loss, _, w, v) = small_conv_graph(11);
    let plain = grad(&loss, &[&w, &v], None, false).unwrap();
    let recorded = grad(&loss, &[&w, &v], None, true).unwrap();
    for (p, r) in plain.iter().zip(&recorded) {
        let (p, r) = (p.as_ref().unwrap(), r.as_ref().unwrap());
        assert!(!p.requires_grad() && r.requires_grad());
        assert_eq!(p.to_vec::<f64>().unwrap(), r.to_vec::<f64>().unwrap());
    }
}

/// Work moved onto the pool keeps the caller's history-recording setting, and its graph is
/// usable back on the calling thread.
#[test]
fn on_pool_keeps_the_callers_grad_mode() {
    use jizen_tensor::{is_grad_enabled, no_grad, parallel::on_pool};
    assert!(on_pool(is_grad_enabled));
    assert!(!no_grad(|| on_pool(is_grad_enabled)));
    assert!(is_grad_enabled(), "the caller's setting is back after on_pool");
    let x = t64(&[1.0, 2.0, 3.0], &[3]).requires_grad_(true);
    let y = on_pool(|| x.mul(&x).unwrap().sum_all().unwrap());
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), [2.0, 4.0, 6.0]);
    let z = no_grad(|| on_pool(|| x.mul(&x).unwrap()));
    assert!(!z.requires_grad(), "nothing recorded under no_grad, even on the pool");
}
