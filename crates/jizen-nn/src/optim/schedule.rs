//! Learning-rate schedules. Those that depend only on the step count are pure functions of it
//! ([`Schedule::lr`]), so a resumed run needs nothing but its step number; step `k` means "the
//! rate for the k-th optimizer step, counting from 0", i.e. torch's `get_last_lr()` after `k`
//! calls of `scheduler.step()`. [`ReduceOnPlateau`] depends on the metrics it has seen and so
//! keeps state, as in torch.

use jizen_tensor::{Error, Result};

use super::Optimizer;

/// A learning rate as a function of the step count and a base rate.
pub trait Schedule {
    /// The learning rate at step `step` (from 0) for a group whose base rate is `base`.
    fn lr(&self, step: usize, base: f64) -> f64;

    /// Sets the learning rate of every group of `opt` for step `step`, from each group's base
    /// rate in `base_lrs` (keep the rates `opt.group_lrs()` had before the first step).
    fn apply(&self, opt: &mut dyn Optimizer, step: usize, base_lrs: &[f64]) -> Result<()> {
        if base_lrs.len() != opt.group_lrs().len() {
            return Err(Error::invalid(
                "Schedule::apply",
                format!("{} base rates for {} parameter groups", base_lrs.len(), opt.group_lrs().len()),
            ));
        }
        for (i, &base) in base_lrs.iter().enumerate() {
            opt.set_group_lr(i, self.lr(step, base))?;
        }
        Ok(())
    }
}

/// `base * gamma^(step / step_size)` (integer division), as `torch.optim.lr_scheduler.StepLR`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLr {
    /// Steps between decays.
    pub step_size: usize,
    /// Multiplicative factor of each decay.
    pub gamma: f64,
}

impl Schedule for StepLr {
    fn lr(&self, step: usize, base: f64) -> f64 {
        base * self.gamma.powi((step / self.step_size.max(1)) as i32)
    }
}

/// `base * gamma^step`, as `torch.optim.lr_scheduler.ExponentialLR`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialLr {
    /// Multiplicative factor per step.
    pub gamma: f64,
}

impl Schedule for ExponentialLr {
    fn lr(&self, step: usize, base: f64) -> f64 {
        base * self.gamma.powi(step as i32)
    }
}

/// Linear warmup from 0 to `base` over `warmup_steps`, then a cosine from `base` down to `min_lr`
/// at `total_steps`, and `min_lr` after that (the convention of Hugging Face's
/// `get_cosine_schedule_with_warmup`, with a floor).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineWithWarmup {
    /// Steps of linear warmup (the rate at step `k < warmup_steps` is `base * k / warmup_steps`).
    pub warmup_steps: usize,
    /// Step at which the cosine reaches `min_lr`.
    pub total_steps: usize,
    /// The final learning rate.
    pub min_lr: f64,
}

impl Schedule for CosineWithWarmup {
    fn lr(&self, step: usize, base: f64) -> f64 {
        if step < self.warmup_steps {
            return base * step as f64 / self.warmup_steps as f64;
        }
        if step >= self.total_steps {
            return self.min_lr;
        }
        let progress = (step - self.warmup_steps) as f64 / (self.total_steps - self.warmup_steps) as f64;
        self.min_lr + (base - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// The one-cycle policy of `torch.optim.lr_scheduler.OneCycleLR` (two phases, cosine annealing),
/// with `base` as `max_lr`: from `max_lr / div_factor` up to `max_lr` over the first `pct_start`
/// of `total_steps`, then down to `max_lr / div_factor / final_div_factor` at step
/// `total_steps - 1`. Only the learning rate is scheduled (torch also cycles momentum unless
/// `cycle_momentum=False`). Steps past the end keep extrapolating the last phase's cosine, where
/// torch raises an error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneCycle {
    /// Length of the cycle in steps.
    pub total_steps: usize,
    /// Fraction of the cycle spent increasing the rate.
    pub pct_start: f64,
    /// `max_lr / initial_lr`.
    pub div_factor: f64,
    /// `initial_lr / final_lr`.
    pub final_div_factor: f64,
}

impl OneCycle {
    /// A cycle of `total_steps` with torch's defaults (pct_start 0.3, div_factor 25,
    /// final_div_factor 1e4).
    pub fn new(total_steps: usize) -> Self {
        OneCycle { total_steps, pct_start: 0.3, div_factor: 25.0, final_div_factor: 1e4 }
    }
}

/// torch's `_annealing_cos`: from `start` (pct 0) to `end` (pct 1).
fn annealing_cos(start: f64, end: f64, pct: f64) -> f64 {
    let cos_out = (std::f64::consts::PI * pct).cos() + 1.0;
    end + (start - end) / 2.0 * cos_out
}

impl Schedule for OneCycle {
    fn lr(&self, step: usize, max_lr: f64) -> f64 {
        let initial = max_lr / self.div_factor;
        let min_lr = initial / self.final_div_factor;
        let step = step as f64;
        let end_up = self.pct_start * self.total_steps as f64 - 1.0;
        let end_down = self.total_steps as f64 - 1.0;
        if step <= end_up {
            annealing_cos(initial, max_lr, step / end_up)
        } else {
            annealing_cos(max_lr, min_lr, (step - end_up) / (end_down - end_up))
        }
    }
}

/// The settings of [`ReduceOnPlateau`] (torch's defaults: factor 0.1, patience 10, threshold
/// 1e-4, no cooldown, min_lr 0, eps 1e-8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlateauConfig {
    /// Factor the rate is multiplied by.
    pub factor: f64,
    /// Observations without improvement tolerated before a cut.
    pub patience: usize,
    /// An improvement must beat the best value by this fraction of it.
    pub threshold: f64,
    /// Observations after a cut during which nothing counts as bad.
    pub cooldown: usize,
    /// Lower bound of the rate.
    pub min_lr: f64,
    /// Cuts smaller than this are skipped.
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig { factor: 0.1, patience: 10, threshold: 1e-4, cooldown: 0, min_lr: 0.0, eps: 1e-8 }
    }
}

/// Cuts the learning rate by `factor` when a metric (to be minimised) has stopped improving for
/// more than `patience` observations, as `torch.optim.lr_scheduler.ReduceLROnPlateau` in mode
/// `min` with a relative threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceOnPlateau {
    /// The settings.
    pub config: PlateauConfig,
    best: f64,
    num_bad: usize,
    cooldown_counter: usize,
}

impl ReduceOnPlateau {
    /// A fresh plateau detector (no metric seen yet).
    pub fn new(config: PlateauConfig) -> Self {
        ReduceOnPlateau { config, best: f64::INFINITY, num_bad: 0, cooldown_counter: 0 }
    }

    /// The detector's state: best metric so far, observations without improvement, and the
    /// cooldown left (what a checkpoint saves).
    pub fn state(&self) -> (f64, usize, usize) {
        (self.best, self.num_bad, self.cooldown_counter)
    }

    /// A detector restored from [`ReduceOnPlateau::state`].
    pub fn from_state(config: PlateauConfig, (best, num_bad, cooldown_counter): (f64, usize, usize)) -> Self {
        ReduceOnPlateau { config, best, num_bad, cooldown_counter }
    }

    /// Records one metric value; returns whether the rate should be cut now.
    pub fn observe(&mut self, metric: f64) -> bool {
        let c = self.config;
        if metric < self.best * (1.0 - c.threshold) {
            self.best = metric;
            self.num_bad = 0;
        } else {
            self.num_bad += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad = 0;
        }
        if self.num_bad > c.patience {
            self.cooldown_counter = c.cooldown;
            self.num_bad = 0;
            return true;
        }
        false
    }

    /// The rate after a cut of `lr`: `max(lr * factor, min_lr)`, unless that changes it by no
    /// more than `eps`.
    pub fn reduced(&self, lr: f64) -> f64 {
        let new = (lr * self.config.factor).max(self.config.min_lr);
        if lr - new > self.config.eps {
            new
        } else {
            lr
        }
    }

    /// Records `metric` and, if it calls for a cut, cuts the rate of every group of `opt`.
    pub fn step(&mut self, metric: f64, opt: &mut dyn Optimizer) -> Result<()> {
        if self.observe(metric) {
            for (i, lr) in opt.group_lrs().into_iter().enumerate() {
                opt.set_group_lr(i, self.reduced(lr))?;
            }
        }
        Ok(())
    }
}
