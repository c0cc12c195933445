//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay, as in
//! `torch.optim.SGD`.

use jizen_tensor::{Float, Result, Tensor};

use super::{grad_data, update_all, Optimizer, Rule};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { lr: 0.01, momentum: 0.0, nesterov: false, weight_decay: 0.0 }
    }
}

/// SGD; the momentum buffer starts as the first gradient, as in PyTorch.
pub struct Sgd {
    params: Vec<Tensor>,
    velocity: Vec<Option<Tensor>>,
    pub config: SgdConfig,
}

impl Sgd {
    pub fn new(params: Vec<Tensor>, config: SgdConfig) -> Self {
        let velocity = params.iter().map(|_| None).collect();
        Sgd { params, velocity, config }
    }
}

impl Rule for Sgd {
    const NAME: &'static str = "sgd";

    fn params(&self) -> &[Tensor] {
        &self.params
    }

    fn update<T: Float>(&mut self, i: usize) -> Result<()> {
        let p = self.params[i].clone();
        let Some(mut g) = grad_data::<T>(&p)? else { return Ok(()) };
        let c = self.config;
        let (lr, mu, wd) = (T::from_f64(c.lr), T::from_f64(c.momentum), T::from_f64(c.weight_decay));
        if c.weight_decay != 0.0 {
            p.with_data::<T, _>(|w| g.iter_mut().zip(w).for_each(|(gj, &wj)| *gj += wd * wj))?;
        }
        if c.momentum != 0.0 {
            match &self.velocity[i] {
                None => self.velocity[i] = Some(Tensor::from_vec(g.clone(), p.shape())?),
                Some(buf) => buf.update_::<T>(|b| b.iter_mut().zip(&g).for_each(|(bj, &gj)| *bj = mu * *bj + gj))?,
            }
            let buf = self.velocity[i].as_ref().expect("set above");
            buf.with_data::<T, _>(|b| {
                for (gj, &bj) in g.iter_mut().zip(b) {
                    *gj = if c.nesterov { *gj + mu * bj } else { bj };
                }
            })?;
        }
        p.update_::<T>(|w| w.iter_mut().zip(&g).for_each(|(wj, &gj)| *wj = *wj - lr * gj))
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
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
