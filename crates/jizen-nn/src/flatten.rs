//! Flattening as a layer.

use jizen_tensor::{Result, Tensor};

use crate::module::Module;

/// Merges dimensions `start_dim ..= end_dim` into one, like `torch.nn.Flatten` (defaults 1 and
/// -1: `[N, C, H, W] -> [N, C*H*W]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    /// The first dimension merged (negative counts from the end).
    pub start_dim: isize,
    /// The last dimension merged, inclusive (negative counts from the end).
    pub end_dim: isize,
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten { start_dim: 1, end_dim: -1 }
    }
}

impl Flatten {
    /// Flattens everything but the batch dimension.
    pub fn new() -> Self {
        Flatten::default()
    }
}

impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.flatten(self.start_dim, self.end_dim)
    }

    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}
}
