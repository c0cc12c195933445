//! Residual connections: `y = x + f(x)` (He et al., 2016), with an optional projection on the
//! shortcut when `f` changes the shape.

use jizen_tensor::{Result, Tensor};

use crate::module::{join, Module};

/// `body(x) + shortcut(x)`, where the shortcut is the identity unless a projection is given
/// (e.g. a strided 1×1 convolution). Parameters are named `body.*` and `shortcut.*`.
pub struct Residual {
    pub body: Box<dyn Module>,
    pub shortcut: Option<Box<dyn Module>>,
}

impl Residual {
    /// `x + body(x)`.
    pub fn new(body: impl Module + 'static) -> Self {
        Residual { body: Box::new(body), shortcut: None }
    }

    /// `body(x) + shortcut(x)`.
    pub fn with_shortcut(body: impl Module + 'static, shortcut: impl Module + 'static) -> Self {
        Residual { body: Box::new(body), shortcut: Some(Box::new(shortcut)) }
    }
}

impl Module for Residual {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.body.forward(x)?;
        let s = match &self.shortcut {
            Some(p) => p.forward(x)?,
            None => x.clone(),
        };
        if y.shape() != s.shape() {
            return Err(jizen_tensor::Error::shape(
                "Residual",
                format!("body gives {:?} but the shortcut gives {:?}; add a projection shortcut", y.shape(), s.shape()),
            ));
        }
        y.add(&s)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.body.visit_parameters(&join(prefix, "body"), f);
        if let Some(p) = &self.shortcut {
            p.visit_parameters(&join(prefix, "shortcut"), f);
        }
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.body.visit_buffers(&join(prefix, "body"), f);
        if let Some(p) = &self.shortcut {
            p.visit_buffers(&join(prefix, "shortcut"), f);
        }
    }

    fn set_training(&self, training: bool) {
        self.body.set_training(training);
        if let Some(p) = &self.shortcut {
            p.set_training(training);
        }
    }

    fn set_training_where(&self, prefix: &str, select: &dyn Fn(&str) -> bool, training: bool) {
        self.body.set_training_where(&join(prefix, "body"), select, training);
        if let Some(p) = &self.shortcut {
            p.set_training_where(&join(prefix, "shortcut"), select, training);
        }
    }

    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(String, &std::sync::Mutex<jizen_tensor::Rng>)) {
        self.body.visit_rngs(&join(prefix, "body"), f);
        if let Some(p) = &self.shortcut {
            p.visit_rngs(&join(prefix, "shortcut"), f);
        }
    }
}
