//! Finite-difference gradient checks (f64, random cotangent) of the normalisation layers.
//! Oracle: central differences of the forward pass itself (`jizen_tensor::gradcheck`).

use jizen_nn::{batch_norm_train, layer_norm, BatchNorm2d, LayerNorm, Module};
use jizen_tensor::gradcheck::assert_gradients as check;
use jizen_tensor::{DType, Rng, Tensor};

/// Normal values times `scale` plus `shift`, in f64.
fn normal(shape: &[usize], seed: u64, scale: f64, shift: f64) -> Tensor {
    Tensor::randn(shape, DType::F64, &mut Rng::new(seed)).mul_scalar(scale).unwrap().add_scalar(shift).unwrap()
}

#[test]
fn batch_norm2d_train_gradients() {
    // oracle: central differences. Input, weight and bias through the functional form.
    let x = normal(&[3, 2, 3, 4], 1, 1.5, 0.5);
    let w = normal(&[2], 2, 0.5, 1.0);
    let b = normal(&[2], 3, 0.5, 0.0);
    check("batch_norm_train (x, weight, bias)", &[x.clone(), w, b], |t| {
        Ok(batch_norm_train(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)?.0)
    });
    // The layer itself in training mode (its running buffers move on every call, which does not
    // change a training-mode output).
    let bn = BatchNorm2d::new(2, DType::F64);
    bn.weight.as_ref().unwrap().copy_from_(&normal(&[2], 4, 0.5, 1.0)).unwrap();
    check("BatchNorm2d train (x)", &[x], |t| bn.forward(&t[0]));
}

#[test]
fn layer_norm_gradients() {
    // oracle: central differences, over the last dimension and over the last two.
    let x = normal(&[2, 3, 4], 5, 1.5, -0.3);
    let w = normal(&[4], 6, 0.5, 1.0);
    let b = normal(&[4], 7, 0.5, 0.0);
    check("layer_norm last 1 (x, weight, bias)", &[x.clone(), w, b], |t| {
        layer_norm(&t[0], &[4], Some(&t[1]), Some(&t[2]), 1e-5)
    });
    let w2 = normal(&[3, 4], 8, 0.5, 1.0);
    let b2 = normal(&[3, 4], 9, 0.5, 0.0);
    check("layer_norm last 2 (x, weight, bias)", &[x.clone(), w2, b2], |t| {
        layer_norm(&t[0], &[3, 4], Some(&t[1]), Some(&t[2]), 1e-5)
    });
    let ln = LayerNorm::new(&[4], DType::F64);
    ln.weight.copy_from_(&normal(&[4], 10, 0.5, 1.0)).unwrap();
    check("LayerNorm (x)", &[x], |t| ln.forward(&t[0]));
}
