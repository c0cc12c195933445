//! A chain of modules, named `0`, `1`, ... like `torch.nn.Sequential`.

use jizen_tensor::{DType, Result, Rng, Tensor};

use crate::activation::Relu;
use crate::linear::Linear;
use crate::module::{join, Module};

/// Applies its layers in order.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    pub fn new() -> Self {
        Sequential::default()
    }

    /// Appends a layer (builder style).
    pub fn push(mut self, layer: impl Module + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a boxed layer (builder style), for layers chosen at run time.
    pub fn push_boxed(mut self, layer: Box<dyn Module>) -> Self {
        self.layers.push(layer);
        self
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        Ok(h)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_parameters(&join(prefix, &i.to_string()), f);
        }
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_buffers(&join(prefix, &i.to_string()), f);
        }
    }

    fn set_training(&self, training: bool) {
        for layer in &self.layers {
            layer.set_training(training);
        }
    }

    fn set_training_where(&self, prefix: &str, select: &dyn Fn(&str) -> bool, training: bool) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.set_training_where(&join(prefix, &i.to_string()), select, training);
        }
    }

    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(String, &std::sync::Mutex<Rng>)) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_rngs(&join(prefix, &i.to_string()), f);
        }
    }
}

/// A multi-layer perceptron `sizes[0] -> sizes[1] -> ... -> sizes[n]` with ReLU between layers
/// (PyTorch names: `0.weight`, `0.bias`, `2.weight`, ...).
pub fn mlp(sizes: &[usize], dtype: DType, rng: &mut Rng) -> Sequential {
    let mut s = Sequential::new();
    for (i, w) in sizes.windows(2).enumerate() {
        if i > 0 {
            s = s.push(Relu);
        }
        s = s.push(Linear::new(w[0], w[1], true, dtype, rng));
    }
    s
}
