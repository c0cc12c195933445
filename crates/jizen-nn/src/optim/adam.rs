//! Adam and AdamW (decoupled weight decay), as in `torch.optim.Adam` / `AdamW`.

use jizen_tensor::{Float, Result, Tensor};

use super::{grad_data, update3, update_all, Optimizer, Rule};

/// Adam's hyper-parameters (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    /// L2 penalty added to the gradient (Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    /// AdamW: decay the weights directly instead of through the gradient.
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, decoupled: false }
    }
}

/// Adam with first and second moment estimates per parameter.
pub struct Adam {
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
    pub config: AdamConfig,
}

impl Adam {
    pub fn new(params: Vec<Tensor>, config: AdamConfig) -> Self {
        let m = params.iter().map(|p| p.zeros_like()).collect();
        let v = params.iter().map(|p| p.zeros_like()).collect();
        Adam { params, m, v, step: 0, config }
    }
}

impl Rule for Adam {
    const NAME: &'static str = "adam";

    fn params(&self) -> &[Tensor] {
        &self.params
    }

    fn update<T: Float>(&mut self, i: usize) -> Result<()> {
        let t = self.step;
        let p = &self.params[i];
        let Some(g) = grad_data::<T>(p)? else { return Ok(()) };
        let c = self.config;
        let (b1, b2) = c.betas;
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        let step_size = T::from_f64(c.lr / bc1);
        let (b1t, b2t, eps, wd) = (T::from_f64(b1), T::from_f64(b2), T::from_f64(c.eps), T::from_f64(c.weight_decay));
        let one = T::one();
        let sqrt_bc2 = T::from_f64(bc2.sqrt());
        let lr_wd = T::from_f64(c.lr * c.weight_decay);
        update3::<T>(p, &self.m[i], &self.v[i], |w, m, v| {
            for j in 0..w.len() {
                let mut gj = g[j];
                if c.decoupled {
                    w[j] = w[j] - lr_wd * w[j];
                } else if c.weight_decay != 0.0 {
                    gj += wd * w[j];
                }
                m[j] = b1t * m[j] + (one - b1t) * gj;
                v[j] = b2t * v[j] + (one - b2t) * gj * gj;
                let denom = v[j].sqrt() / sqrt_bc2 + eps;
                w[j] = w[j] - step_size * m[j] / denom;
            }
        })
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        self.step += 1;
        update_all(self)
    }

    fn zero_grad(&self) {
        self.params.iter().for_each(|p| p.zero_grad());
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }
}
