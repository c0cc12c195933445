//! Adam and AdamW (decoupled weight decay), as in `torch.optim.Adam` / `AdamW`.

use std::collections::BTreeMap;

use jizen_tensor::parallel::par_update;
use jizen_tensor::{Float, Result, Tensor};

use super::{
    optimizer_common, snapshot, step_tensor, update3, update_all, Groups, Optimizer, ParamGroup, Rule, StateReader,
};

/// Adam's hyper-parameters (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (the default of groups that set none).
    pub lr: f64,
    /// Decay rates of the first and second moment estimates.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// L2 penalty added to the gradient (Adam) or decoupled decay (AdamW); the default of groups
    /// that set none.
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
    groups: Groups,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
    config: AdamConfig,
}

impl Adam {
    /// Adam over one group of parameters.
    pub fn new(params: Vec<Tensor>, config: AdamConfig) -> Self {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// Adam over parameter groups, each with its own learning rate and weight decay if it sets them.
    pub fn with_groups(groups: Vec<ParamGroup>, config: AdamConfig) -> Self {
        let groups = Groups::new(groups, config.lr, config.weight_decay);
        let m = groups.params.iter().map(|p| p.zeros_like()).collect();
        let v = groups.params.iter().map(|p| p.zeros_like()).collect();
        Adam { groups, m, v, step: 0, config }
    }

    /// The hyper-parameters (`lr` and `weight_decay` are the groups' defaults, fixed at construction).
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    fn save_state(&self, out: &mut BTreeMap<String, Tensor>) {
        for i in 0..self.groups.params.len() {
            out.insert(format!("state.{i}.step"), step_tensor(self.step));
            out.insert(format!("state.{i}.exp_avg"), snapshot(&self.m[i]));
            out.insert(format!("state.{i}.exp_avg_sq"), snapshot(&self.v[i]));
        }
    }

    fn load_state(&self, r: &mut StateReader) -> Result<(Vec<Tensor>, Vec<Tensor>, u64)> {
        let (mut m, mut v, mut step) = (vec![], vec![], 0);
        for (i, p) in self.groups.params.iter().enumerate() {
            step = r.step(&format!("state.{i}.step"))?;
            m.push(snapshot(&r.required(&format!("state.{i}.exp_avg"), p)?));
            v.push(snapshot(&r.required(&format!("state.{i}.exp_avg_sq"), p)?));
        }
        Ok((m, v, step))
    }

    fn commit_state(&mut self, (m, v, step): (Vec<Tensor>, Vec<Tensor>, u64)) {
        (self.m, self.v, self.step) = (m, v, step);
    }
}

impl Rule for Adam {
    const NAME: &'static str = "adam";

    fn params(&self) -> &[Tensor] {
        &self.groups.params
    }

    fn update<T: Float>(&mut self, i: usize) -> Result<()> {
        let t = self.step;
        let p = &self.groups.params[i];
        let Some(g) = p.grad() else { return Ok(()) };
        let c = self.config;
        let (lr, weight_decay) = self.groups.hyper(i);
        let (b1, b2) = c.betas;
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        let step_size = T::from_f64(lr / bc1);
        let (b1t, b2t, eps, wd) = (T::from_f64(b1), T::from_f64(b2), T::from_f64(c.eps), T::from_f64(weight_decay));
        let one = T::one();
        let sqrt_bc2 = T::from_f64(bc2.sqrt());
        let lr_wd = T::from_f64(lr * weight_decay);
        let (m, v) = (&self.m[i], &self.v[i]);
        // One pass per element, split across threads for large parameters.
        let mut res = Ok(());
        g.with_data::<T, _>(|gd| {
            res = update3::<T>(p, m, v, |w, m, v| {
                par_update([w, m, v], gd, |[w, m, v], g| {
                    for j in 0..w.len() {
                        let mut gj = g[j];
                        if c.decoupled {
                            w[j] = w[j] - lr_wd * w[j];
                        } else if weight_decay != 0.0 {
                            gj += wd * w[j];
                        }
                        m[j] = b1t * m[j] + (one - b1t) * gj;
                        v[j] = b2t * v[j] + (one - b2t) * gj * gj;
                        let denom = v[j].sqrt() / sqrt_bc2 + eps;
                        w[j] = w[j] - step_size * m[j] / denom;
                    }
                })
            })
        })?;
        res
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        self.step += 1;
        update_all(self)
    }

    optimizer_common!();
}
