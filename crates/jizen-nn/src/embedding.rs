//! Embedding table.

use jizen_tensor::{DType, Result, Rng, Tensor};

use crate::module::{join, Module};

/// A lookup table, like `torch.nn.Embedding`: `weight` `[num, dim]`, initialised `N(0, 1)` as in
/// PyTorch. The forward pass takes i64 ids of any shape and returns `ids.shape + [dim]`; the
/// gradient of a row is the sum over every position that looked it up.
///
/// ```
/// use jizen_nn::{Embedding, Module};
/// use jizen_tensor::{DType, Rng, Tensor};
/// let emb = Embedding::new(10, 4, DType::F32, &mut Rng::new(0));
/// let ids = Tensor::from_vec(vec![1i64, 7, 7], &[3])?;
/// assert_eq!(emb.forward(&ids)?.shape(), &[3, 4]);
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct Embedding {
    /// `[num, dim]`.
    pub weight: Tensor,
}

impl Embedding {
    /// A table of `num` vectors of size `dim`, drawn from `N(0, 1)`.
    pub fn new(num: usize, dim: usize, dtype: DType, rng: &mut Rng) -> Self {
        Embedding { weight: Tensor::randn(&[num, dim], dtype, rng).requires_grad_(true) }
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.weight.embedding(ids)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join(prefix, "weight"), &self.weight);
    }
}
