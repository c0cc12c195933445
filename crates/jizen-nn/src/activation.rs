//! Activation layers (no parameters).

use jizen_tensor::{Result, Tensor};

use crate::module::Module;

/// `max(x, 0)`.
pub struct Relu;

impl Module for Relu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.relu()
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}
}

/// Hyperbolic tangent.
pub struct Tanh;

impl Module for Tanh {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.tanh()
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}
}

/// `x` for positive `x`, else `slope * x`, like `torch.nn.LeakyReLU(slope)` (PyTorch's default
/// slope is 0.01, see [`LeakyRelu::default`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyRelu(pub f64);

impl Default for LeakyRelu {
    fn default() -> Self {
        LeakyRelu(0.01)
    }
}

impl Module for LeakyRelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.leaky_relu(self.0)
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}
}

/// GELU in its exact erf form, `x * Φ(x)`, like `torch.nn.GELU()`.
pub struct Gelu;

impl Module for Gelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.gelu()
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}
}

/// The logistic function `1 / (1 + e^-x)`.
pub struct Sigmoid;

impl Module for Sigmoid {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.sigmoid()
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}
}
