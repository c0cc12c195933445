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

/// Orthogonal initialisation (Saxe et al., like `torch.nn.init.orthogonal_`): the weight,
/// flattened to `[shape[0], rest]`, gets orthonormal rows (or columns, whichever are fewer),
/// times `gain`. From a seeded normal matrix, by Gram–Schmidt in f64 with the signs fixed so the
/// result is a deterministic function of the seed.
pub fn orthogonal(shape: &[usize], gain: f64, dtype: DType, rng: &mut Rng) -> jizen_tensor::Result<Tensor> {
    if shape.len() < 2 {
        return Err(jizen_tensor::Error::invalid("orthogonal", format!("needs at least 2 dimensions, got {shape:?}")));
    }
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    // Orthonormalise the `k = min(rows, cols)` vectors of length `n = max(rows, cols)`.
    let (k, n) = (rows.min(cols), rows.max(cols));
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(k);
    while q.len() < k {
        let mut v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        // Two passes of modified Gram-Schmidt keep the result orthogonal to rounding error.
        for _ in 0..2 {
            for u in &q {
                let d: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= d * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-8 {
            q.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    let mut w = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            // Rows are the vectors when rows <= cols; otherwise the columns are.
            w[i * cols + j] = gain * if rows <= cols { q[i][j] } else { q[j][i] };
        }
    }
    Tensor::from_f64(w, shape, dtype)
}
