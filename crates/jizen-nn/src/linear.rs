//! Fully connected layer.

use jizen_tensor::{DType, Result, Rng, Tensor};

use crate::init;
use crate::module::{join, Module};

/// `y = x Wᵀ + b`, with `weight` [out, in] and `bias` [out] as in PyTorch (so state dicts move
/// between the two unchanged).
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer with PyTorch's default initialisation, from a seeded generator.
    pub fn new(inputs: usize, outputs: usize, bias: bool, dtype: DType, rng: &mut Rng) -> Self {
        let weight = init::torch_default(&[outputs, inputs], inputs, dtype, rng).requires_grad_(true);
        let bias = bias.then(|| init::torch_default(&[outputs], inputs, dtype, rng).requires_grad_(true));
        Linear { weight, bias }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // [.., in] @ [in, out]: the transpose is a view, the GEMM reads it by strides.
        let y = x.matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join(prefix, "bias"), b);
        }
    }
}
