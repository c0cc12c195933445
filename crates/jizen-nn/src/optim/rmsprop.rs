//! RMSprop, as in `torch.optim.RMSprop`: a running average of squared gradients scales each
//! step; optionally centered (divides by an estimate of the variance instead) and with momentum.

use std::collections::BTreeMap;

use jizen_tensor::{Float, Result, Tensor};

use super::{
    grad_data, optimizer_common, snapshot, step_tensor, update_all, Groups, Optimizer, ParamGroup, Rule, StateReader,
};

/// Square averages, gradient averages, momentum buffers and the step, as read from a state dict.
type Loaded = (Vec<Tensor>, Vec<Option<Tensor>>, Vec<Option<Tensor>>, u64);

/// RMSprop's hyper-parameters (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RMSpropConfig {
    /// Learning rate (the default of groups that set none).
    pub lr: f64,
    /// Smoothing constant of the running averages.
    pub alpha: f64,
    /// Added to the denominator (after the square root) for numerical stability.
    pub eps: f64,
    /// Momentum factor; 0 turns momentum off.
    pub momentum: f64,
    /// Divide by the centered second moment (an estimate of the gradient's variance).
    pub centered: bool,
    /// L2 penalty added to the gradient (the default of groups that set none).
    pub weight_decay: f64,
}

impl Default for RMSpropConfig {
    fn default() -> Self {
        RMSpropConfig { lr: 0.01, alpha: 0.99, eps: 1e-8, momentum: 0.0, centered: false, weight_decay: 0.0 }
    }
}

/// RMSprop with a running average of squared gradients per parameter (and of gradients, when
/// centered, and a momentum buffer, with momentum).
pub struct RMSprop {
    groups: Groups,
    square_avg: Vec<Tensor>,
    grad_avg: Vec<Option<Tensor>>,
    momentum_buffer: Vec<Option<Tensor>>,
    step: u64,
    config: RMSpropConfig,
}

impl RMSprop {
    /// RMSprop over one group of parameters.
    pub fn new(params: Vec<Tensor>, config: RMSpropConfig) -> Self {
        Self::with_groups(vec![ParamGroup::new(params)], config)
    }

    /// RMSprop over parameter groups, each with its own learning rate and weight decay if it sets them.
    pub fn with_groups(groups: Vec<ParamGroup>, config: RMSpropConfig) -> Self {
        let groups = Groups::new(groups, config.lr, config.weight_decay);
        let ps = &groups.params;
        let square_avg = ps.iter().map(|p| p.zeros_like()).collect();
        let grad_avg = ps.iter().map(|p| config.centered.then(|| p.zeros_like())).collect();
        let momentum_buffer = ps.iter().map(|p| (config.momentum > 0.0).then(|| p.zeros_like())).collect();
        RMSprop { groups, square_avg, grad_avg, momentum_buffer, step: 0, config }
    }

    /// The hyper-parameters (`lr` and `weight_decay` are the groups' defaults, fixed at construction).
    pub fn config(&self) -> &RMSpropConfig {
        &self.config
    }

    fn save_state(&self, out: &mut BTreeMap<String, Tensor>) {
        for i in 0..self.groups.params.len() {
            out.insert(format!("state.{i}.step"), step_tensor(self.step));
            out.insert(format!("state.{i}.square_avg"), snapshot(&self.square_avg[i]));
            if let Some(t) = &self.grad_avg[i] {
                out.insert(format!("state.{i}.grad_avg"), snapshot(t));
            }
            if let Some(t) = &self.momentum_buffer[i] {
                out.insert(format!("state.{i}.momentum_buffer"), snapshot(t));
            }
        }
    }

    fn load_state(&self, r: &mut StateReader) -> Result<Loaded> {
        let (mut sq, mut ga, mut mb, mut step) = (vec![], vec![], vec![], 0);
        for (i, p) in self.groups.params.iter().enumerate() {
            step = r.step(&format!("state.{i}.step"))?;
            sq.push(snapshot(&r.required(&format!("state.{i}.square_avg"), p)?));
            let key = format!("state.{i}.grad_avg");
            ga.push(if self.config.centered { Some(snapshot(&r.required(&key, p)?)) } else { None });
            let key = format!("state.{i}.momentum_buffer");
            mb.push(if self.config.momentum > 0.0 { Some(snapshot(&r.required(&key, p)?)) } else { None });
        }
        Ok((sq, ga, mb, step))
    }

    fn commit_state(&mut self, (sq, ga, mb, step): Loaded) {
        (self.square_avg, self.grad_avg, self.momentum_buffer, self.step) = (sq, ga, mb, step);
    }
}

impl Rule for RMSprop {
    const NAME: &'static str = "rmsprop";

    fn params(&self) -> &[Tensor] {
        &self.groups.params
    }

    fn update<T: Float>(&mut self, i: usize) -> Result<()> {
        let p = self.groups.params[i].clone();
        let Some(mut g) = grad_data::<T>(&p)? else { return Ok(()) };
        let c = self.config;
        let (lr, wd) = self.groups.hyper(i);
        if wd != 0.0 {
            let wdt = T::from_f64(wd);
            p.with_data::<T, _>(|w| g.iter_mut().zip(w).for_each(|(gj, &wj)| *gj += wdt * wj))?;
        }
        let (alpha, one_m_alpha) = (T::from_f64(c.alpha), T::from_f64(1.0 - c.alpha));
        // avg = sqrt(square_avg [- grad_avg^2]) + eps, computed into `avg`.
        let mut avg = vec![T::zero(); g.len()];
        self.square_avg[i].update_::<T>(|s| {
            for j in 0..g.len() {
                s[j] = s[j] * alpha + one_m_alpha * g[j] * g[j];
                avg[j] = s[j];
            }
        })?;
        if let Some(ga) = &self.grad_avg[i] {
            // torch's lerp: start + w (end - start) for w < 0.5, else end - (end - start)(1 - w).
            let w = 1.0 - c.alpha;
            let (wt, one_m_w) = (T::from_f64(w), T::from_f64(1.0 - w));
            ga.update_::<T>(|a| {
                for j in 0..g.len() {
                    a[j] = if w < 0.5 { a[j] + wt * (g[j] - a[j]) } else { g[j] - (g[j] - a[j]) * one_m_w };
                    avg[j] = avg[j] - a[j] * a[j];
                }
            })?;
        }
        let eps = T::from_f64(c.eps);
        avg.iter_mut().for_each(|a| *a = a.sqrt() + eps);
        let lr = T::from_f64(lr);
        match &self.momentum_buffer[i] {
            Some(buf) => {
                let mu = T::from_f64(c.momentum);
                let mut step = vec![T::zero(); g.len()];
                buf.update_::<T>(|b| {
                    for j in 0..g.len() {
                        b[j] = b[j] * mu + g[j] / avg[j];
                        step[j] = b[j];
                    }
                })?;
                p.update_::<T>(|w| w.iter_mut().zip(&step).for_each(|(wj, &bj)| *wj = *wj - lr * bj))
            }
            None => p.update_::<T>(|w| {
                w.iter_mut().zip(g.iter().zip(&avg)).for_each(|(wj, (&gj, &aj))| *wj = *wj - lr * (gj / aj))
            }),
        }
    }
}

impl Optimizer for RMSprop {
    fn step(&mut self) -> Result<()> {
        self.step += 1;
        update_all(self)
    }

    optimizer_common!();
}
