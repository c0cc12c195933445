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
