//! The fused LSTM sequence primitive against the per-step composite it replaces (oracle: the
//! composite of matmul, sigmoid, tanh and products, `lstm_sequence_composite`): outputs,
//! gradients of every input, and second derivatives through the recorded backward pass.

use jizen_tensor::{grad, lstm_sequence_composite, DType, Rng, Tensor};

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(worst <= tol * scale, "{what}: largest difference {worst:e} (scale {scale:e})");
}

struct Case {
    gx: Tensor,
    w: Tensor,
    h0: Option<Tensor>,
    c0: Option<Tensor>,
}

impl Case {
    fn new([t, n, h]: [usize; 3], states: bool, dtype: DType, seed: u64) -> Case {
        let mut rng = Rng::new(seed);
        let mut r =
            |shape: &[usize], s: f64| Tensor::randn(shape, dtype, &mut rng).mul_scalar(s).unwrap().requires_grad_(true);
        let gx = r(&[t, n, 4 * h], 1.0);
        let w = r(&[4 * h, h], 0.5);
        let (h0, c0) = if states { (Some(r(&[n, h], 1.0)), Some(r(&[n, h], 1.0))) } else { (None, None) };
        Case { gx, w, h0, c0 }
    }

    fn inputs(&self) -> Vec<&Tensor> {
        [Some(&self.gx), Some(&self.w), self.h0.as_ref(), self.c0.as_ref()].into_iter().flatten().collect()
    }

    fn fused(&self) -> Tensor {
        self.gx.lstm_sequence(&self.w, self.h0.as_ref(), self.c0.as_ref()).unwrap()
    }

    fn composite(&self) -> Tensor {
        lstm_sequence_composite(&self.gx, &self.w, self.h0.as_ref(), self.c0.as_ref()).unwrap()
    }
}

#[test]
fn the_fused_sequence_matches_its_composite() {
    for (dims, states, dtype, tol) in [
        ([5, 3, 4], false, DType::F64, 1e-12),
        ([5, 3, 4], true, DType::F64, 1e-12),
        ([1, 2, 3], true, DType::F64, 1e-12),
        ([1, 2, 3], false, DType::F64, 1e-12),
        ([35, 20, 40], true, DType::F32, 2e-5),
        ([12, 4, 96], false, DType::F32, 2e-5),
        // A batch of two full 16-lane blocks and a partial one (the kernels' blocking).
        ([3, 37, 5], true, DType::F64, 1e-12),
        ([2, 16, 3], false, DType::F64, 1e-12),
    ] {
        let case = Case::new(dims, states, dtype, 7);
        let (fused, composite) = (case.fused(), case.composite());
        assert_eq!(fused.shape(), &[2, dims[0], dims[1], dims[2]]);
        let what = format!("{dims:?} states {states} {dtype}");
        close(&fused.to_f64_vec(), &composite.to_f64_vec(), tol, &format!("{what}: output"));
        let cot = Tensor::randn(fused.shape(), dtype, &mut Rng::new(8));
        let gf = grad(&fused, &case.inputs(), Some(&cot), false).unwrap();
        let gc = grad(&composite, &case.inputs(), Some(&cot), false).unwrap();
        for (k, ((a, b), x)) in gf.iter().zip(&gc).zip(case.inputs()).enumerate() {
            let a = a.as_ref().expect("fused gradient").to_f64_vec();
            // One step from a zero state never uses W_hh: the composite's graph does not reach it.
            let b = b.as_ref().map_or_else(|| vec![0.0; x.numel()], Tensor::to_f64_vec);
            close(&a, &b, tol, &format!("{what}: gradient of input {k}"));
        }
    }
}

#[test]
fn only_the_inputs_that_need_it_get_a_gradient() {
    let case = Case::new([4, 2, 3], true, DType::F64, 3);
    let w_fixed = case.w.detach();
    let y = case.gx.lstm_sequence(&w_fixed, case.h0.as_ref(), case.c0.as_ref()).unwrap();
    let g = grad(&y.sum_all().unwrap(), &[&case.gx, case.c0.as_ref().unwrap()], None, false).unwrap();
    assert!(g.iter().all(Option::is_some));
    let composite = lstm_sequence_composite(&case.gx, &w_fixed, case.h0.as_ref(), case.c0.as_ref()).unwrap();
    let gc = grad(&composite.sum_all().unwrap(), &[&case.gx, case.c0.as_ref().unwrap()], None, false).unwrap();
    for (a, b) in g.iter().zip(&gc) {
        close(&a.as_ref().unwrap().to_f64_vec(), &b.as_ref().unwrap().to_f64_vec(), 1e-12, "gradient");
    }
}

#[test]
fn second_derivatives_match_the_composite() {
    // d/dθ <∇_θ <y, c>, v> for every input θ: the recorded backward pass must be differentiable.
    let case = Case::new([3, 2, 3], true, DType::F64, 11);
    let mut rng = Rng::new(12);
    let c = Tensor::randn(&[2, 3, 2, 3], DType::F64, &mut rng);
    let vs: Vec<Tensor> = case.inputs().iter().map(|t| Tensor::randn(t.shape(), DType::F64, &mut rng)).collect();
    let hvp = |y: &Tensor| -> Vec<Vec<f64>> {
        let g = grad(y, &case.inputs(), Some(&c), true).unwrap();
        let mut s = Tensor::zeros(&[], DType::F64);
        for (gi, v) in g.iter().zip(&vs) {
            s = s.add(&gi.as_ref().unwrap().mul(v).unwrap().sum_all().unwrap()).unwrap();
        }
        grad(&s, &case.inputs(), None, false).unwrap().into_iter().map(|t| t.unwrap().to_f64_vec()).collect()
    };
    for (k, (a, b)) in hvp(&case.fused()).iter().zip(&hvp(&case.composite())).enumerate() {
        close(a, b, 1e-11, &format!("Hessian-vector product, input {k}"));
    }
}

#[test]
fn bad_shapes_are_clear_errors() {
    let gx = Tensor::zeros(&[5, 2, 12], DType::F32);
    let err = gx.lstm_sequence(&Tensor::zeros(&[12, 4], DType::F32), None, None).unwrap_err().to_string();
    assert!(err.contains("lstm_sequence") && err.contains("[12, 3]") && err.contains("[12, 4]"), "{err}");
    let w = Tensor::zeros(&[12, 3], DType::F32);
    let err = gx.lstm_sequence(&w, Some(&Tensor::zeros(&[3, 3], DType::F32)), None).unwrap_err().to_string();
    assert!(err.contains("h0 must be [N, H] = [2, 3]"), "{err}");
    let err = Tensor::zeros(&[5, 2, 10], DType::F32).lstm_sequence(&w, None, None).unwrap_err().to_string();
    assert!(err.contains("[4H, H]"), "{err}");
    let err = gx.lstm_sequence(&Tensor::zeros(&[12, 3], DType::F64), None, None).unwrap_err().to_string();
    assert!(err.contains("f32") && err.contains("f64"), "{err}");
    let err = Tensor::zeros(&[0, 2, 12], DType::F32).lstm_sequence(&w, None, None).unwrap_err().to_string();
    assert!(err.contains("no time steps"), "{err}");
}
