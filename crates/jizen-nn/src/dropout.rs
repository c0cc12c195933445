//! Dropout as a layer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use jizen_tensor::{Error, Result, Rng, Tensor};

use crate::module::Module;

/// Inverted dropout, like `torch.nn.Dropout`: in training mode (the initial mode) each element
/// is zeroed with probability `p` and the others are scaled by `1 / (1 - p)`; in evaluation mode
/// it is the identity. The layer owns its seeded generator, so a run is reproducible.
///
/// ```
/// use jizen_nn::{Dropout, Module};
/// use jizen_tensor::{DType, Tensor};
/// let drop = Dropout::new(0.5, 0)?;
/// drop.set_training(false);
/// let x = Tensor::ones(&[2, 3], DType::F32);
/// assert_eq!(drop.forward(&x)?.to_vec::<f32>()?, vec![1.0; 6]);
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct Dropout {
    /// The probability of zeroing an element, in `[0, 1)`.
    pub p: f64,
    rng: Mutex<Rng>,
    training: AtomicBool,
}

impl Dropout {
    /// A dropout layer with probability `p` whose masks come from `Rng::new(seed)`.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Invalid { op: "Dropout", msg: format!("probability {p} must be in [0, 1)") });
        }
        Ok(Dropout { p, rng: Mutex::new(Rng::new(seed)), training: AtomicBool::new(true) })
    }

    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.is_training() {
            return Ok(x.clone());
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        x.dropout(self.p, true, &mut rng)
    }

    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}

    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(String, &Mutex<Rng>)) {
        f(prefix.to_string(), &self.rng);
    }
}
