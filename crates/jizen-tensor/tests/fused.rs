//! Fused kernels against the composites they replace (oracle: the composite definition, written
//! here with primitives). Log-softmax, softmax cross-entropy and linear: outputs, gradients and second
//! derivatives.

use jizen_tensor::{cross_entropy, grad, CrossEntropyOptions, DType, Reduction, Rng, Tensor};

/// The composite definition: `(x - m) - log(sum(exp(x - m)))`, `m` the detached maximum.
fn log_softmax_composite(x: &Tensor, axis: isize) -> Tensor {
    let m = x.max(&[axis], true).unwrap().detach();
    let shifted = x.sub(&m).unwrap();
    shifted.sub(&shifted.exp().unwrap().sum(&[axis], true).unwrap().log().unwrap()).unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(worst <= tol, "{what}: largest difference {worst:e}");
}

#[test]
fn log_softmax_matches_its_composite() {
    let mut rng = Rng::new(4);
    for (shape, axis, dtype, tol) in [
        (vec![7, 33], 1isize, DType::F64, 1e-12),
        (vec![3, 5, 4], 1, DType::F64, 1e-12),
        (vec![3, 5, 4], 0, DType::F64, 1e-12),
        (vec![64, 1000], -1, DType::F32, 2e-5),
    ] {
        let x = Tensor::randn(&shape, dtype, &mut rng).mul_scalar(4.0).unwrap().requires_grad_(true);
        let cot = Tensor::randn(&shape, dtype, &mut rng);
        let fused = x.log_softmax(axis).unwrap();
        let composite = log_softmax_composite(&x, axis);
        close(&fused.to_f64_vec(), &composite.to_f64_vec(), tol, "output");
        let gf = grad(&fused, &[&x], Some(&cot), false).unwrap()[0].clone().unwrap();
        let gc = grad(&composite, &[&x], Some(&cot), false).unwrap()[0].clone().unwrap();
        close(&gf.to_f64_vec(), &gc.to_f64_vec(), tol, "gradient");
    }
}

#[test]
fn log_softmax_second_derivatives_match() {
    // d/dx of <grad_x <log_softmax(x), c>, v>: the fused op's backward rule must itself be
    // differentiable.
    let mut rng = Rng::new(5);
    let x = Tensor::randn(&[4, 6], DType::F64, &mut rng).requires_grad_(true);
    let c = Tensor::randn(&[4, 6], DType::F64, &mut rng);
    let v = Tensor::randn(&[4, 6], DType::F64, &mut rng);
    let hv = |y: &Tensor| -> Vec<f64> {
        let g = grad(y, &[&x], Some(&c), true).unwrap()[0].clone().unwrap();
        let s = g.mul(&v).unwrap().sum_all().unwrap();
        grad(&s, &[&x], None, false).unwrap()[0].clone().unwrap().to_f64_vec()
    };
    close(&hv(&x.log_softmax(1).unwrap()), &hv(&log_softmax_composite(&x, 1)), 1e-12, "Hessian-vector product");
}

#[test]
fn a_row_of_minus_infinity_is_nan_as_in_pytorch_and_leaves_other_rows_alone() {
    let x = Tensor::from_vec(vec![f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0, 1.0], &[2, 2]).unwrap();
    let y = x.log_softmax(1).unwrap().to_vec::<f32>().unwrap();
    assert!(y[0].is_nan() && y[1].is_nan(), "{y:?}");
    assert!((y[3] - (1.0 - (1.0f32.exp() + 1.0).ln())).abs() < 1e-6, "{y:?}");
}

#[test]
fn masked_logits_get_exactly_zero_and_a_nan_or_infinity_spoils_only_its_own_row() {
    // f32 rows long enough for the 32-lane loops: the sums of e^(x − m) use the cheaper
    // exponential for non-positive arguments where the row's maximum is finite.
    let c = 70;
    let mut rows = vec![vec![0.5f32; c]; 4];
    rows[0][3] = f32::NEG_INFINITY; // masked: probability and gradient exactly 0
    rows[0][69] = f32::NEG_INFINITY; // also in the loop's remainder
    rows[0][10] = 2.0;
    rows[1][5] = f32::NAN;
    rows[2][7] = f32::INFINITY;
    rows[3][0] = -200.0; // far below the rest: e^(x − m) flushes to 0, as its f32 value would round
    let x = Tensor::from_vec(rows.concat(), &[4, c]).unwrap().requires_grad_(true);
    let logp = x.log_softmax(1).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(logp[3], f32::NEG_INFINITY);
    assert_eq!(logp[69], f32::NEG_INFINITY);
    let expect = |z: f64, others: &[(f64, usize)]| {
        let s: f64 = others.iter().map(|&(v, n)| n as f64 * v.exp()).sum();
        (z - s.ln()) as f32
    };
    let want0 = expect(2.0, &[(2.0, 1), (0.5, c - 3)]);
    assert!((logp[10] - want0).abs() < 1e-5, "{} against {want0}", logp[10]);
    assert!(logp[c..2 * c].iter().all(|v| v.is_nan()), "a NaN logit makes its row NaN");
    assert!(logp[2 * c..3 * c].iter().all(|v| v.is_nan()), "a +inf logit makes its row NaN, as in PyTorch");
    let want3 = expect(0.5, &[(0.5, c - 1)]);
    assert!((logp[3 * c + 1] - want3).abs() < 1e-5, "{} against {want3}", logp[3 * c + 1]);

    let y = Tensor::from_vec(vec![10i64, 0, 0, 1], &[4]).unwrap();
    let opts = CrossEntropyOptions { reduction: Reduction::None, ..Default::default() };
    let loss = cross_entropy(&x, &y, opts).unwrap();
    let l = loss.to_vec::<f32>().unwrap();
    assert!((l[0] + want0).abs() < 1e-5 && l[1].is_nan() && l[2].is_nan() && (l[3] + want3).abs() < 1e-5, "{l:?}");
    let cot = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], &[4]).unwrap();
    let g = grad(&loss, &[&x], Some(&cot), false).unwrap()[0].clone().unwrap().to_vec::<f32>().unwrap();
    assert_eq!((g[3], g[69]), (0.0, 0.0), "masked entries get no gradient");
    let p_other = (0.5 - (2.0f64.exp() + (c - 3) as f64 * 0.5f64.exp()).ln()).exp() as f32;
    assert!((g[0] - p_other).abs() < 1e-6 && (g[10] - (want0.exp() - 1.0)).abs() < 1e-6, "{:?}", &g[..12]);
    assert_eq!(g[3 * c], 0.0, "e^(-200.5) is below f32's range");
    assert!(g[3 * c..].iter().all(|v| v.is_finite()));
}

/// The composite definition of the per-row smoothed cross-entropy:
/// `(1 - eps)·(-log p_y) + eps·mean(-log p)`, `log p` from the composite log-softmax.
fn cross_entropy_composite(x: &Tensor, y: &[i64], eps: f64) -> Tensor {
    let logp = log_softmax_composite(x, 1);
    let idx = Tensor::from_vec(y.to_vec(), &[y.len(), 1]).unwrap();
    let nll = logp.gather(1, &idx).unwrap().reshape(&[y.len()]).unwrap().neg().unwrap();
    let smooth = logp.mean(&[1], false).unwrap().neg().unwrap();
    nll.mul_scalar(1.0 - eps).unwrap().add(&smooth.mul_scalar(eps).unwrap()).unwrap()
}

fn targets(rng: &mut Rng, m: usize, c: usize) -> Vec<i64> {
    (0..m).map(|_| rng.below(c as u64) as i64).collect()
}

#[test]
fn cross_entropy_matches_its_composite() {
    let mut rng = Rng::new(6);
    for (m, c, dtype, eps, tol) in [
        (7, 33, DType::F64, 0.0, 1e-12),
        (9, 5, DType::F64, 0.1, 1e-12),
        (700, 1000, DType::F32, 0.0, 2e-5),
        (64, 257, DType::F32, 0.2, 2e-5),
    ] {
        let x = Tensor::randn(&[m, c], dtype, &mut rng).mul_scalar(4.0).unwrap().requires_grad_(true);
        let y = targets(&mut rng, m, c);
        let t = Tensor::from_vec(y.clone(), &[m]).unwrap();
        let options = CrossEntropyOptions { label_smoothing: eps, reduction: Reduction::None, ..Default::default() };
        let fused = cross_entropy(&x, &t, options).unwrap();
        let composite = cross_entropy_composite(&x, &y, eps);
        close(&fused.to_f64_vec(), &composite.to_f64_vec(), tol, "losses");
        let cot = Tensor::randn(&[m], dtype, &mut rng);
        let gf = grad(&fused, &[&x], Some(&cot), false).unwrap()[0].clone().unwrap();
        let gc = grad(&composite, &[&x], Some(&cot), false).unwrap()[0].clone().unwrap();
        close(&gf.to_f64_vec(), &gc.to_f64_vec(), tol, "gradient");
        // The recorded (create_graph) backward composes the same gradient from differentiable ops.
        let gr = grad(&fused, &[&x], Some(&cot), true).unwrap()[0].clone().unwrap();
        close(&gr.to_f64_vec(), &gc.to_f64_vec(), tol, "recorded gradient");
    }
}

#[test]
fn cross_entropy_second_derivatives_match() {
    let mut rng = Rng::new(7);
    let x = Tensor::randn(&[4, 6], DType::F64, &mut rng).requires_grad_(true);
    let y = [3i64, 0, 5, 1];
    let c = Tensor::randn(&[4], DType::F64, &mut rng);
    let v = Tensor::randn(&[4, 6], DType::F64, &mut rng);
    let hv = |loss: &Tensor| -> Vec<f64> {
        let g = grad(loss, &[&x], Some(&c), true).unwrap()[0].clone().unwrap();
        let s = g.mul(&v).unwrap().sum_all().unwrap();
        grad(&s, &[&x], None, false).unwrap()[0].clone().unwrap().to_f64_vec()
    };
    let t = Tensor::from_vec(y.to_vec(), &[4]).unwrap();
    let options = CrossEntropyOptions { label_smoothing: 0.1, reduction: Reduction::None, ..Default::default() };
    let fused = cross_entropy(&x, &t, options).unwrap();
    close(&hv(&fused), &hv(&cross_entropy_composite(&x, &y, 0.1)), 1e-12, "Hessian-vector product");
}

#[test]
fn cross_entropy_keeps_no_class_sized_tensor_but_its_input() {
    // What the graph holds for backward: the logits, not log-probabilities beside them.
    let mut rng = Rng::new(8);
    let x = Tensor::randn(&[100, 1000], DType::F32, &mut rng).requires_grad_(true);
    let h = x.mul_scalar(2.0).unwrap(); // an activation the graph must keep
    let t = Tensor::from_vec(targets(&mut rng, 100, 1000), &[100]).unwrap();
    let loss = cross_entropy(&h, &t, CrossEntropyOptions::default()).unwrap();
    let held = jizen_tensor::graph_memory(&loss).activation_bytes;
    assert!(held < 100 * 1000 * 4 + 100 * 64, "graph holds {held} bytes beyond the parameters");
}

#[test]
fn linear_matches_matmul_plus_bias() {
    let mut rng = Rng::new(9);
    for (shape, dtype, tol) in [(vec![7, 33], DType::F64, 1e-12), (vec![3, 70, 200], DType::F32, 2e-5)] {
        let fin = *shape.last().unwrap();
        let x = Tensor::randn(&shape, dtype, &mut rng).requires_grad_(true);
        let w = Tensor::randn(&[50, fin], dtype, &mut rng).requires_grad_(true);
        let b = Tensor::randn(&[50], dtype, &mut rng).requires_grad_(true);
        let fused = x.linear(&w, Some(&b)).unwrap();
        let composite = x.matmul(&w.t().unwrap()).unwrap().add(&b).unwrap();
        assert_eq!(fused.shape(), composite.shape());
        close(&fused.to_f64_vec(), &composite.to_f64_vec(), tol, "output");
        let cot = Tensor::randn(fused.shape(), dtype, &mut rng);
        let gf = grad(&fused, &[&x, &w, &b], Some(&cot), false).unwrap();
        let gc = grad(&composite, &[&x, &w, &b], Some(&cot), false).unwrap();
        for (f, c) in gf.iter().zip(&gc) {
            close(&f.as_ref().unwrap().to_f64_vec(), &c.as_ref().unwrap().to_f64_vec(), tol * 10.0, "gradient");
        }
    }
}

#[test]
fn linear_rejects_mismatched_shapes() {
    let x = Tensor::ones(&[2, 3], DType::F32);
    let e = x.linear(&Tensor::ones(&[4, 5], DType::F32), None).unwrap_err().to_string();
    assert!(e.contains("must end in the weight's 5 input features"), "{e}");
    let e = x.linear(&Tensor::ones(&[4, 3], DType::F32), Some(&Tensor::ones(&[3], DType::F32))).unwrap_err();
    assert!(e.to_string().contains("bias [3] must be [4]"), "{e}");
    let e = x.linear(&Tensor::ones(&[3], DType::F32), None).unwrap_err().to_string();
    assert!(e.contains("weight must be [out, in]"), "{e}");
}
