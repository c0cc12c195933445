//! Fused kernels against the composites they replace (oracle: the composite definition, written
//! here with primitives). Log-softmax: outputs, gradients and second derivatives.

use jizen_tensor::{grad, DType, Rng, Tensor};

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
