//! Fully connected layer.

use jizen_tensor::{DType, Error, Result, Rng, Tensor};

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

    /// A layer over existing tensors, `weight` `[out, in]` and `bias` `[out]`, used as they are
    /// (shared, not copied). This is how weights are tied: a language model's decoder can take
    /// its embedding's `[vocab, dim]` table, and the gradients of both uses add up in the one
    /// tensor. (A module holding both then lists the tensor under two names; an optimizer must
    /// be given it once.)
    ///
    /// ```
    /// use jizen_nn::{Embedding, Linear, Module};
    /// use jizen_tensor::{DType, Rng, Tensor};
    /// let emb = Embedding::new(10, 4, DType::F32, &mut Rng::new(0));
    /// let decoder = Linear::from_tensors(emb.weight.clone(), None)?; // 4 -> 10, tied
    /// assert_eq!(decoder.forward(&Tensor::ones(&[2, 4], DType::F32))?.shape(), &[2, 10]);
    /// # Ok::<(), jizen_tensor::Error>(())
    /// ```
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        if weight.rank() != 2 || !weight.dtype().is_float() {
            return Err(Error::shape(
                "Linear::from_tensors",
                format!("weight must be a float [out, in] matrix, got {:?} {}", weight.shape(), weight.dtype()),
            ));
        }
        if let Some(b) = &bias {
            if b.shape() != [weight.shape()[0]] || b.dtype() != weight.dtype() {
                return Err(Error::shape(
                    "Linear::from_tensors",
                    format!(
                        "bias must be [out] = [{}] {}, got {:?} {}",
                        weight.shape()[0],
                        weight.dtype(),
                        b.shape(),
                        b.dtype()
                    ),
                ));
            }
        }
        Ok(Linear { weight, bias })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // One primitive: the GEMM reads the weight's transpose by strides and accumulates onto
        // the bias.
        x.linear(&self.weight, self.bias.as_ref())
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join(prefix, "bias"), b);
        }
    }
}
