//! The fused batch-norm primitive (`batch_norm_train`, `Op::BatchNorm`): finite-difference
//! gradient checks in f64, agreement with the composite it replaces (outputs, statistics,
//! gradients, second derivatives), and its errors. Oracles: central differences, and the
//! composite definition written here with primitives.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better than `from_ref` in a table of checks

use jizen_tensor::gradcheck::assert_gradients as check;
use jizen_tensor::{batch_norm_train, grad, graph_memory, no_grad, DType, Error, Rng, Tensor};

const EPS: f64 = 1e-5;

/// `[1, C, 1, ...]`.
fn per_channel(v: &Tensor, rank: usize) -> Tensor {
    let mut shape = vec![1; rank];
    shape[1] = v.numel();
    v.reshape(&shape).unwrap()
}

/// The composite definition (what `jizen-nn` computed before the fused op): returns
/// `(y, mean, biased var)`.
fn composite(x: &Tensor, w: Option<&Tensor>, b: Option<&Tensor>, eps: f64) -> (Tensor, Tensor, Tensor) {
    let rank = x.rank();
    let axes: Vec<isize> = (0..rank as isize).filter(|&a| a != 1).collect();
    let mean = x.mean(&axes, true).unwrap();
    let centred = x.sub(&mean).unwrap();
    let var = centred.square().unwrap().mean(&axes, true).unwrap();
    let mut y = centred.div(&var.add_scalar(eps).unwrap().sqrt().unwrap()).unwrap();
    if let Some(w) = w {
        y = y.mul(&per_channel(w, rank)).unwrap();
    }
    if let Some(b) = b {
        y = y.add(&per_channel(b, rank)).unwrap();
    }
    let c = x.shape()[1];
    (y, mean.reshape(&[c]).unwrap(), var.reshape(&[c]).unwrap())
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f64::max);
    assert!(worst <= tol, "{what}: largest difference {worst:e} (tolerance {tol:e})");
}

/// Random per-channel parameters `[C]` (weights away from 0).
fn params(c: usize, dtype: DType, rng: &mut Rng) -> (Tensor, Tensor) {
    let w = Tensor::rand(&[c], 0.5, 1.5, dtype, rng);
    let b = Tensor::randn(&[c], dtype, rng);
    (w, b)
}

#[test]
fn grad_batch_norm() {
    let mut rng = Rng::new(11);
    for shape in [vec![6, 3], vec![4, 3, 5], vec![3, 2, 3, 2]] {
        let c = shape[1];
        // Channels with different means and scales, as after a convolution.
        let x = Tensor::randn(&shape, DType::F64, &mut rng)
            .mul(&per_channel(&Tensor::rand(&[c], 0.5, 3.0, DType::F64, &mut rng), shape.len()))
            .unwrap()
            .add(&per_channel(&Tensor::randn(&[c], DType::F64, &mut rng), shape.len()))
            .unwrap();
        let (w, b) = params(c, DType::F64, &mut rng);
        let name = |what: &str| format!("batch_norm {what} {shape:?}");
        check(&name("affine"), &[x.clone(), w.clone(), b.clone()], |t| {
            Ok(batch_norm_train(&t[0], Some(&t[1]), Some(&t[2]), EPS)?.0)
        });
        check(&name("plain"), &[x.clone()], |t| Ok(batch_norm_train(&t[0], None, None, EPS)?.0));
        check(
            &name("weight only"),
            &[x.clone(), w.clone()],
            |t| Ok(batch_norm_train(&t[0], Some(&t[1]), None, EPS)?.0),
        );
        check(&name("bias only, large eps"), &[x.clone(), b.clone()], |t| {
            Ok(batch_norm_train(&t[0], None, Some(&t[1]), 0.5)?.0)
        });
    }
}

#[test]
fn batch_norm_matches_its_composite() {
    let mut rng = Rng::new(12);
    for (shape, dtype, tol) in [
        (vec![7, 4], DType::F64, 1e-12),
        (vec![5, 3, 6], DType::F64, 1e-12),
        (vec![4, 3, 5, 5], DType::F64, 1e-12),
        (vec![64, 8, 12, 12], DType::F32, 2e-5),
        (vec![32, 16], DType::F32, 2e-5),
    ] {
        let rank = shape.len();
        let c = shape[1];
        let x = Tensor::randn(&shape, dtype, &mut rng)
            .mul_scalar(3.0)
            .unwrap()
            .add(&per_channel(&Tensor::randn(&[c], dtype, &mut rng), rank))
            .unwrap()
            .requires_grad_(true);
        let (w, b) = params(c, dtype, &mut rng);
        let (w, b) = (w.requires_grad_(true), b.requires_grad_(true));
        let cot = Tensor::randn(&shape, dtype, &mut rng);
        for affine in [true, false] {
            let (wa, ba) = if affine { (Some(&w), Some(&b)) } else { (None, None) };
            let what = |s: &str| format!("{s} {shape:?} {dtype} affine={affine}");
            let (yf, mf, vf) = batch_norm_train(&x, wa, ba, EPS).unwrap();
            let (yc, mc, vc) = composite(&x, wa, ba, EPS);
            assert_eq!(yf.shape(), &shape[..]);
            assert_eq!(yf.dtype(), dtype);
            close(&yf.to_f64_vec(), &yc.to_f64_vec(), tol, &what("output"));
            close(&mf.to_f64_vec(), &mc.to_f64_vec(), tol, &what("mean"));
            close(&vf.to_f64_vec(), &vc.to_f64_vec(), tol, &what("variance"));
            assert!(!mf.requires_grad() && !vf.requires_grad(), "the statistics carry no gradient");
            let wrt: Vec<&Tensor> = if affine { vec![&x, &w, &b] } else { vec![&x] };
            let gf = grad(&yf, &wrt, Some(&cot), false).unwrap();
            let gc = grad(&yc, &wrt, Some(&cot), false).unwrap();
            for (i, (a, e)) in gf.iter().zip(&gc).enumerate() {
                let (a, e) = (a.as_ref().unwrap(), e.as_ref().unwrap());
                assert_eq!(a.shape(), e.shape());
                close(&a.to_f64_vec(), &e.to_f64_vec(), tol * 10.0, &what(&format!("gradient {i}")));
            }
        }
    }
}

#[test]
fn batch_norm_of_views_and_of_constants() {
    let mut rng = Rng::new(13);
    // A non-contiguous input (NHWC data seen as NCHW) and a strided cotangent.
    let base = Tensor::randn(&[3, 4, 5, 2], DType::F64, &mut rng).requires_grad_(true);
    let x = base.permute(&[0, 3, 1, 2]).unwrap();
    let (w, b) = params(2, DType::F64, &mut rng);
    let (w, b) = (w.requires_grad_(true), b.requires_grad_(true));
    let cot = Tensor::randn(&[3, 4, 5, 2], DType::F64, &mut rng).permute(&[0, 3, 1, 2]).unwrap();
    let yf = batch_norm_train(&x, Some(&w), Some(&b), EPS).unwrap().0;
    let yc = composite(&x, Some(&w), Some(&b), EPS).0;
    close(&yf.to_f64_vec(), &yc.to_f64_vec(), 1e-12, "output of a view");
    let gf = grad(&yf, &[&base, &w, &b], Some(&cot), false).unwrap();
    let gc = grad(&yc, &[&base, &w, &b], Some(&cot), false).unwrap();
    for (a, e) in gf.iter().zip(&gc) {
        close(&a.as_ref().unwrap().to_f64_vec(), &e.as_ref().unwrap().to_f64_vec(), 1e-11, "gradient of a view");
    }

    // A constant input (a frozen trunk): only the affine parameters get gradients.
    let x = Tensor::randn(&[6, 2, 3], DType::F64, &mut rng);
    let yf = batch_norm_train(&x, Some(&w), Some(&b), EPS).unwrap().0;
    let yc = composite(&x, Some(&w), Some(&b), EPS).0;
    let cot = Tensor::randn(&[6, 2, 3], DType::F64, &mut rng);
    let gf = grad(&yf, &[&w, &b], Some(&cot), false).unwrap();
    let gc = grad(&yc, &[&w, &b], Some(&cot), false).unwrap();
    for (a, e) in gf.iter().zip(&gc) {
        close(&a.as_ref().unwrap().to_f64_vec(), &e.as_ref().unwrap().to_f64_vec(), 1e-12, "parameter gradient");
    }

    // Without anything to differentiate, or under no_grad, nothing is recorded.
    assert!(!batch_norm_train(&x, None, None, EPS).unwrap().0.requires_grad());
    assert!(!no_grad(|| batch_norm_train(&x, Some(&w), Some(&b), EPS)).unwrap().0.requires_grad());
}

#[test]
fn batch_norm_second_derivatives() {
    // H·v of L(x, w) = <bn(x, w, b), c> in the direction (vx, vw), from differentiating the
    // gradient recorded with create_graph; against finite differences of the gradient and
    // against the composite's own second derivatives.
    let mut rng = Rng::new(14);
    let shape = [4, 3, 2, 3];
    let x0 = Tensor::randn(&shape, DType::F64, &mut rng).mul_scalar(2.0).unwrap();
    let (w0, b) = params(3, DType::F64, &mut rng);
    let c = Tensor::randn(&shape, DType::F64, &mut rng);
    let (vx, vw) = (Tensor::randn(&shape, DType::F64, &mut rng), Tensor::randn(&[3], DType::F64, &mut rng));
    type Bn<'a> = dyn Fn(&Tensor, &Tensor) -> Tensor + 'a;
    let fused: &Bn = &|x, w| batch_norm_train(x, Some(w), Some(&b), EPS).unwrap().0;
    let comp: &Bn = &|x, w| composite(x, Some(w), Some(&b), EPS).0;
    let gradient = |f: &Bn, x: &Tensor, w: &Tensor, create_graph: bool| -> (Tensor, Tensor, Tensor, Tensor) {
        let (x, w) = (x.detach().requires_grad_(true), w.detach().requires_grad_(true));
        let g = grad(&f(&x, &w), &[&x, &w], Some(&c), create_graph).unwrap();
        (g[0].clone().unwrap(), g[1].clone().unwrap(), x, w)
    };
    let hv = |f: &Bn| -> Vec<f64> {
        let (gx, gw, x, w) = gradient(f, &x0, &w0, true);
        assert!(gx.requires_grad() && gw.requires_grad(), "with create_graph the gradient is differentiable");
        let s = gx.mul(&vx).unwrap().sum_all().unwrap().add(&gw.mul(&vw).unwrap().sum_all().unwrap()).unwrap();
        let h = grad(&s, &[&x, &w], None, false).unwrap();
        let mut out = h[0].clone().unwrap().to_f64_vec();
        out.extend(h[1].clone().unwrap().to_f64_vec());
        out
    };
    let h = 1e-5;
    let at = |sign: f64| -> Vec<f64> {
        let x = x0.add(&vx.mul_scalar(sign * h).unwrap()).unwrap();
        let w = w0.add(&vw.mul_scalar(sign * h).unwrap()).unwrap();
        let (gx, gw, _, _) = gradient(fused, &x, &w, false);
        let mut out = gx.to_f64_vec();
        out.extend(gw.to_f64_vec());
        out
    };
    let fd: Vec<f64> = at(1.0).iter().zip(at(-1.0)).map(|(p, m)| (p - m) / (2.0 * h)).collect();
    let hf = hv(fused);
    close(&hf, &fd, 1e-6, "Hessian-vector product against finite differences");
    close(&hf, &hv(comp), 1e-11, "Hessian-vector product against the composite");
}

#[test]
fn batch_norm_keeps_less_for_backward_than_the_composite() {
    let mut rng = Rng::new(15);
    let w = Tensor::ones(&[8], DType::F32).requires_grad_(true);
    let b = Tensor::zeros(&[8], DType::F32).requires_grad_(true);
    // x is computed (an activation), as it would be after a convolution.
    let x = Tensor::randn(&[16, 8, 10, 10], DType::F32, &mut rng).requires_grad_(true).mul_scalar(2.0).unwrap();
    let act = x.numel() * 4;
    let fused = graph_memory(&batch_norm_train(&x, Some(&w), Some(&b), EPS).unwrap().0);
    let comp = graph_memory(&composite(&x, Some(&w), Some(&b), EPS).0);
    // The fused graph holds the output and its input x (plus x's scalar factor and the saved
    // [C] mean and 1/σ); the composite five more tensors of x's size.
    assert!(fused.activation_bytes <= 2 * act + 4 + 2 * 8 * 4, "{fused:?}");
    assert!(comp.activation_bytes >= 5 * act, "{comp:?}");
}

#[test]
fn batch_norm_errors_are_clear() {
    let msg = |r: jizen_tensor::Result<(Tensor, Tensor, Tensor)>| -> (Error, String) {
        let Err(e) = r else { panic!("expected an error") };
        let s = e.to_string();
        (e, s)
    };
    let (e, s) = msg(batch_norm_train(&Tensor::zeros(&[5], DType::F32), None, None, EPS));
    assert!(matches!(e, Error::Shape { .. }) && s.contains("batch_norm") && s.contains("[5]"), "{s}");
    let (e, s) = msg(batch_norm_train(&Tensor::scalar(1.0, DType::F32), None, None, EPS));
    assert!(matches!(e, Error::Shape { .. }), "{s}");
    for shape in [vec![1, 3], vec![1, 3, 1, 1], vec![0, 3], vec![2, 0]] {
        let (e, s) = msg(batch_norm_train(&Tensor::zeros(&shape, DType::F32), None, None, EPS));
        assert!(matches!(e, Error::Invalid { .. }) && s.contains("more than 1 value per channel"), "{s}");
    }
    let x = Tensor::zeros(&[4, 3, 2], DType::F32);
    let (e, s) = msg(batch_norm_train(&x, Some(&Tensor::ones(&[4], DType::F32)), None, EPS));
    assert!(matches!(e, Error::Shape { .. }) && s.contains("weight must be [3]") && s.contains("[4]"), "{s}");
    let (e, s) = msg(batch_norm_train(&x, None, Some(&Tensor::ones(&[3, 1], DType::F32)), EPS));
    assert!(matches!(e, Error::Shape { .. }) && s.contains("bias must be [3]"), "{s}");
    let (e, s) = msg(batch_norm_train(&x, Some(&Tensor::ones(&[3], DType::F64)), None, EPS));
    assert!(matches!(e, Error::DType { .. }) && s.contains("weight is f64"), "{s}");
    let (e, s) = msg(batch_norm_train(&Tensor::zeros(&[4, 3], DType::I64), None, None, EPS));
    assert!(matches!(e, Error::DType { .. }) && s.contains("batch_norm"), "{s}");
    let (e, s) = msg(batch_norm_train(&x, None, None, -1.0));
    assert!(matches!(e, Error::Invalid { .. }) && s.contains("eps"), "{s}");
    // A constant channel is not an error: it normalises to 0 (variance 0, divided by sqrt(eps)).
    let (y, mean, var) = batch_norm_train(&Tensor::full(&[4, 2], 3.0, DType::F32), None, None, EPS).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![0.0; 8]);
    assert_eq!((mean.to_vec::<f32>().unwrap(), var.to_vec::<f32>().unwrap()), (vec![3.0; 2], vec![0.0; 2]));
}
