//! Seeded initialisers.

use jizen_tensor::{DType, Rng, Tensor};

/// Uniform in `[-bound, bound]`.
pub fn uniform(shape: &[usize], bound: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    Tensor::rand(shape, -bound, bound, dtype, rng)
}

/// PyTorch's default for `Linear` and `Conv2d` weights and biases: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`
/// (kaiming-uniform with `a = sqrt(5)` reduces to this bound).
pub fn torch_default(shape: &[usize], fan_in: usize, dtype: DType, rng: &mut Rng) -> Tensor {
    uniform(shape, 1.0 / (fan_in.max(1) as f64).sqrt(), dtype, rng)
}

/// Kaiming (He) normal for ReLU networks: `N(0, 2 / fan_in)`.
pub fn kaiming_normal(shape: &[usize], fan_in: usize, dtype: DType, rng: &mut Rng) -> Tensor {
    let std = (2.0 / fan_in.max(1) as f64).sqrt();
    Tensor::randn(shape, dtype, rng).mul_scalar(std).expect("scaling a fresh tensor")
}

/// Xavier (Glorot) uniform: `U(-a, a)` with `a = sqrt(6 / (fan_in + fan_out))`.
pub fn xavier_uniform(shape: &[usize], fan_in: usize, fan_out: usize, dtype: DType, rng: &mut Rng) -> Tensor {
    uniform(shape, (6.0 / (fan_in + fan_out).max(1) as f64).sqrt(), dtype, rng)
}
