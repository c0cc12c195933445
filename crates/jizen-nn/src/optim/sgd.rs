//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay, as in
//! `torch.optim.SGD`.

use std::collections::BTreeMap;

use jizen_tensor::{Float, Result, Tensor};

use super::{optimizer_common, snapshot, update2, update_all, Groups, Optimizer, ParamGroup, Rule, StateReader};
use jizen_tensor::parallel::par_update;

/// SGD's hyper-parameters (PyTorch's defaults, except `lr`, which PyTorch requires).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (the default of groups that set none).
    pub lr: f64,
    /// Momentum factor; 0 turns momentum off.
    pub momentum: f64,
    /// Nesterov momentum (needs `momentum > 0`).
    pub nesterov: bool,
    /// L2 penalty added to the gradient (the default of groups that set none).
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { lr: 0.01, momentum: 0.0, nesterov: false, weight_decay: 0.0 }
    }
}

/// SGD; the momentum buffer starts as the first gradient, as in PyTorch.
pub struct Sgd {
    groups: Groups,
    velocity: Vec<Option<Tensor>>,
    config: SgdConfig,
}

impl Sgd {
    /// SGD over one group of parameters.
    pub fn new(params: Vec<Tensor>, config: SgdConfig) -> Self {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// SGD over parameter groups, each with its own learning rate and weight decay if it sets them.
    pub fn with_groups(groups: Vec<ParamGroup>, config: SgdConfig) -> Self {
        let groups = Groups::new(groups, config.lr, config.weight_decay);
        let velocity = groups.params.iter().map(|_| None).collect();
        Sgd { groups, velocity, config }
    }

    /// The hyper-parameters (`lr` and `weight_decay` are the groups' defaults, fixed at construction).
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    fn save_state(&self, out: &mut BTreeMap<String, Tensor>) {
        for (i, v) in self.velocity.iter().enumerate() {
            if let Some(v) = v {
                out.insert(format!("state.{i}.momentum_buffer"), snapshot(v));
            }
        }
    }

    fn load_state(&self, r: &mut StateReader) -> Result<Vec<Option<Tensor>>> {
        let mut velocity = Vec::with_capacity(self.velocity.len());
        for (i, p) in self.groups.params.iter().enumerate() {
            velocity.push(r.optional(&format!("state.{i}.momentum_buffer"), p)?.map(|t| snapshot(&t)));
        }
        Ok(velocity)
    }

    fn commit_state(&mut self, velocity: Vec<Option<Tensor>>) {
        self.velocity = velocity;
    }
}

impl Rule for Sgd {
    const NAME: &'static str = "sgd";

    fn params(&self) -> &[Tensor] {
        &self.groups.params
    }

    fn update<T: Float>(&mut self, i: usize) -> Result<()> {
        let p = self.groups.params[i].clone();
        let Some(g) = p.grad() else { return Ok(()) };
        let c = self.config;
        let (lr, wd) = self.groups.hyper(i);
        let (lr, mu, wdt) = (T::from_f64(lr), T::from_f64(c.momentum), T::from_f64(wd));
        let (decay, nesterov) = (wd != 0.0, c.nesterov);
        // One pass per element: the decayed gradient, the velocity, the step (in the order of
        // PyTorch's SGD), split across threads for large parameters.
        let mut res = Ok(());
        if c.momentum == 0.0 {
            g.with_data::<T, _>(|gd| {
                res = p.update_::<T>(|w| {
                    par_update([w], gd, |[w], g| {
                        for (wj, &gj) in w.iter_mut().zip(g) {
                            let gj = if decay { gj + wdt * *wj } else { gj };
                            *wj = *wj - lr * gj;
                        }
                    })
                })
            })?;
            return res;
        }
        // The velocity starts at zero: its first value is then the gradient itself.
        let buf = self.velocity[i].get_or_insert_with(|| Tensor::zeros(p.shape(), p.dtype())).clone();
        g.with_data::<T, _>(|gd| {
            res = update2::<T>(&p, &buf, |w, b| {
                par_update([w, b], gd, |[w, b], g| match (decay, nesterov) {
                    (false, false) => momentum_pass::<T, false, false>(w, b, g, lr, mu, wdt),
                    (false, true) => momentum_pass::<T, false, true>(w, b, g, lr, mu, wdt),
                    (true, false) => momentum_pass::<T, true, false>(w, b, g, lr, mu, wdt),
                    (true, true) => momentum_pass::<T, true, true>(w, b, g, lr, mu, wdt),
                })
            })
        })?;
        res
    }
}

/// One momentum-SGD pass over a run of elements: the decayed gradient, the velocity, the step.
/// The options are constants, so the loop has no branch and compiles to vector code (with the
/// options tested inside it ran one element at a time: 11% of the `mlp` benchmark's samples
/// under `perf`, 5% after).
#[inline(always)]
fn momentum_pass<T: Float, const DECAY: bool, const NESTEROV: bool>(
    w: &mut [T],
    b: &mut [T],
    g: &[T],
    lr: T,
    mu: T,
    wdt: T,
) {
    let n = w.len();
    let (b, g) = (&mut b[..n], &g[..n]);
    for j in 0..n {
        let gj = if DECAY { g[j] + wdt * w[j] } else { g[j] };
        b[j] = mu * b[j] + gj;
        let step = if NESTEROV { gj + mu * b[j] } else { b[j] };
        w[j] = w[j] - lr * step;
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        update_all(self)
    }

    optimizer_common!();
}
