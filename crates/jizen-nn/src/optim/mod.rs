//! Optimizers. Each keeps its state as tensors beside the parameters and updates parameters in
//! place from their accumulated gradients (`Tensor::grad`), outside autograd.
//!
//! Parameters come in [`ParamGroup`]s, as in PyTorch: each group may set its own learning rate
//! and weight decay, and falls back to the optimizer's config otherwise. `new(params, config)`
//! makes one group. [`Optimizer::set_lr`] sets the learning rate of every group (what a torch
//! scheduler does to a single-group optimizer); to keep per-group ratios under a schedule, call
//! [`Optimizer::set_group_lr`] with each group's own base rate through the [`Schedule`].
//!
//! State (moments, momentum buffers, the step count) saves and loads with
//! [`Optimizer::state_dict`] / [`Optimizer::load_state_dict`] under PyTorch's names
//! (`state.<param index>.<buffer>`, the index counting parameters across groups in order);
//! hyper-parameters are config and are not part of it.

mod adam;
mod clip;
mod rmsprop;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use clip::{clip_grad_norm, clip_grad_value};
pub use rmsprop::{RMSprop, RMSpropConfig};
pub use schedule::{CosineWithWarmup, ExponentialLr, OneCycle, PlateauConfig, ReduceOnPlateau, Schedule, StepLr};
pub use sgd::{Sgd, SgdConfig};

use std::collections::BTreeMap;

use jizen_tensor::{DType, Error, Float, Result, Tensor};

/// A rule that updates parameters from their gradients.
pub trait Optimizer: Send {
    /// Applies one update to every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;

    /// Clears the gradients of all parameters.
    fn zero_grad(&self);

    /// The learning rate of the first parameter group.
    fn lr(&self) -> f64;

    /// Sets the learning rate of every parameter group (for schedules).
    fn set_lr(&mut self, lr: f64);

    /// The learning rate of each parameter group, in order.
    fn group_lrs(&self) -> Vec<f64>;

    /// Sets the learning rate of group `i`; an error if there is no such group.
    fn set_group_lr(&mut self, i: usize, lr: f64) -> Result<()>;

    /// A copy of the optimizer's state (not its hyper-parameters), under PyTorch's names
    /// (`state.0.exp_avg`, `state.0.step`, …).
    fn state_dict(&self) -> BTreeMap<String, Tensor>;

    /// Restores state written by [`Optimizer::state_dict`] of an optimizer of the same kind over
    /// parameters of the same shapes. Strict: a missing, unexpected or mis-shaped entry is an
    /// error, and then nothing is loaded.
    fn load_state_dict(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()>;
}

/// A set of parameters that share a learning rate and a weight decay; `None` takes the
/// optimizer's default from its config.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    /// The parameters of this group.
    pub params: Vec<Tensor>,
    /// This group's learning rate, or `None` for the optimizer's.
    pub lr: Option<f64>,
    /// This group's weight decay, or `None` for the optimizer's.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group with the optimizer's default learning rate and weight decay.
    pub fn new(params: Vec<Tensor>) -> Self {
        ParamGroup { params, lr: None, weight_decay: None }
    }
}

/// The parameters of all groups, flattened, and each group's resolved hyper-parameters.
pub(crate) struct Groups {
    pub params: Vec<Tensor>,
    /// The group of each parameter.
    group_of: Vec<usize>,
    lr: Vec<f64>,
    weight_decay: Vec<f64>,
}

impl Groups {
    pub fn new(groups: Vec<ParamGroup>, lr: f64, weight_decay: f64) -> Self {
        let mut g = Groups { params: vec![], group_of: vec![], lr: vec![], weight_decay: vec![] };
        for (k, group) in groups.into_iter().enumerate() {
            g.group_of.extend(std::iter::repeat_n(k, group.params.len()));
            g.params.extend(group.params);
            g.lr.push(group.lr.unwrap_or(lr));
            g.weight_decay.push(group.weight_decay.unwrap_or(weight_decay));
        }
        g
    }

    /// Learning rate and weight decay of parameter `i`.
    pub fn hyper(&self, i: usize) -> (f64, f64) {
        let k = self.group_of[i];
        (self.lr[k], self.weight_decay[k])
    }

    pub fn zero_grad(&self) {
        self.params.iter().for_each(|p| p.zero_grad());
    }

    pub fn lrs(&self) -> Vec<f64> {
        self.lr.clone()
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr.iter_mut().for_each(|l| *l = lr);
    }

    pub fn set_group_lr(&mut self, i: usize, lr: f64) -> Result<()> {
        let n = self.lr.len();
        let slot = self
            .lr
            .get_mut(i)
            .ok_or_else(|| Error::invalid("set_group_lr", format!("group {i} does not exist ({n} groups)")))?;
        *slot = lr;
        Ok(())
    }
}

/// Implements the group and state plumbing of [`Optimizer`] for a type with a `groups: Groups`
/// field and `save_state`, `load_state` (which reads and checks everything) and `commit_state`
/// (which installs what `load_state` read, once nothing is left to fail) methods.
macro_rules! optimizer_common {
    () => {
        fn zero_grad(&self) {
            self.groups.zero_grad()
        }

        fn lr(&self) -> f64 {
            self.groups.lrs().first().copied().unwrap_or(f64::NAN)
        }

        fn set_lr(&mut self, lr: f64) {
            self.groups.set_lr(lr)
        }

        fn group_lrs(&self) -> Vec<f64> {
            self.groups.lrs()
        }

        fn set_group_lr(&mut self, i: usize, lr: f64) -> jizen_tensor::Result<()> {
            self.groups.set_group_lr(i, lr)
        }

        fn state_dict(&self) -> std::collections::BTreeMap<String, jizen_tensor::Tensor> {
            let mut out = std::collections::BTreeMap::new();
            self.save_state(&mut out);
            out
        }

        fn load_state_dict(
            &mut self,
            state: &std::collections::BTreeMap<String, jizen_tensor::Tensor>,
        ) -> jizen_tensor::Result<()> {
            let mut reader = super::StateReader::new(state);
            let loaded = self.load_state(&mut reader)?;
            reader.finish()?;
            self.commit_state(loaded);
            Ok(())
        }
    };
}
pub(crate) use optimizer_common;

/// A copy of `t` with its own storage (a snapshot that later steps do not change).
pub(crate) fn snapshot(t: &Tensor) -> Tensor {
    let c = t.zeros_like();
    c.copy_from_(t).expect("same shape and dtype");
    c
}

/// The step count as PyTorch stores it: a 0-d f64 tensor.
pub(crate) fn step_tensor(step: u64) -> Tensor {
    Tensor::scalar(step as f64, DType::F64)
}

/// Reads a state dict strictly: every key taken must exist with the expected shape and dtype,
/// and `finish` fails on keys nobody took.
pub(crate) struct StateReader<'a> {
    state: &'a BTreeMap<String, Tensor>,
    taken: std::collections::BTreeSet<&'a str>,
}

impl<'a> StateReader<'a> {
    pub fn new(state: &'a BTreeMap<String, Tensor>) -> Self {
        StateReader { state, taken: Default::default() }
    }

    /// Entry `key`, if present, checked against `like`'s shape and dtype.
    pub fn optional(&mut self, key: &str, like: &Tensor) -> Result<Option<Tensor>> {
        let Some((k, t)) = self.state.get_key_value(key) else { return Ok(None) };
        if t.shape() != like.shape() || t.dtype() != like.dtype() {
            return Err(Error::invalid(
                "load_state_dict",
                format!("{key}: expected {:?} {}, got {:?} {}", like.shape(), like.dtype(), t.shape(), t.dtype()),
            ));
        }
        self.taken.insert(k.as_str());
        Ok(Some(t.clone()))
    }

    /// Entry `key`, which must be present.
    pub fn required(&mut self, key: &str, like: &Tensor) -> Result<Tensor> {
        self.optional(key, like)?.ok_or_else(|| Error::invalid("load_state_dict", format!("missing entry {key}")))
    }

    /// The step count under `key` (a 0-d float or integer tensor holding a whole number).
    pub fn step(&mut self, key: &str) -> Result<u64> {
        let Some((k, t)) = self.state.get_key_value(key) else {
            return Err(Error::invalid("load_state_dict", format!("missing entry {key}")));
        };
        let v = if t.numel() == 1 { t.item()? } else { f64::NAN };
        if !(v >= 0.0 && v.fract() == 0.0) {
            return Err(Error::invalid("load_state_dict", format!("{key}: expected a step count, got {t:?}")));
        }
        self.taken.insert(k.as_str());
        Ok(v as u64)
    }

    /// Fails if some entry was not taken.
    pub fn finish(self) -> Result<()> {
        let extra: Vec<&String> = self.state.keys().filter(|k| !self.taken.contains(k.as_str())).collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid("load_state_dict", format!("unexpected entries {extra:?}")))
        }
    }
}

/// Runs `f` on the data of a parameter and one state tensor of the same shape, both in place.
pub(crate) fn update2<T: jizen_tensor::storage::StorageElement>(
    p: &Tensor,
    a: &Tensor,
    f: impl FnOnce(&mut [T], &mut [T]),
) -> Result<()> {
    let mut inner_p: Result<()> = Ok(());
    a.update_::<T>(|sa| {
        inner_p = p.update_::<T>(|w| f(w, sa));
    })?;
    inner_p
}

/// Runs `f` on the data of a parameter and two state tensors of the same shape, all in place.
pub(crate) fn update3<T: jizen_tensor::storage::StorageElement>(
    p: &Tensor,
    a: &Tensor,
    b: &Tensor,
    f: impl FnOnce(&mut [T], &mut [T], &mut [T]),
) -> Result<()> {
    let mut inner_b: Result<()> = Ok(());
    let mut inner_p: Result<()> = Ok(());
    a.update_::<T>(|sa| {
        inner_b = b.update_::<T>(|sb| {
            inner_p = p.update_::<T>(|w| f(w, sa, sb));
        });
    })?;
    inner_b?;
    inner_p
}

/// A copy of the gradient of `p` (contiguous), or `None` if it has none.
pub(crate) fn grad_data<T: jizen_tensor::storage::StorageElement>(p: &Tensor) -> Result<Option<Vec<T>>> {
    match p.grad() {
        None => Ok(None),
        Some(g) => g.with_data::<T, _>(|d| d.to_vec()).map(Some),
    }
}

/// The per-parameter update of an optimizer, generic over the float type.
pub(crate) trait Rule {
    const NAME: &'static str;
    fn params(&self) -> &[Tensor];
    fn update<T: Float>(&mut self, i: usize) -> Result<()>;
}

/// Applies `rule` to every parameter, by the parameter's dtype.
pub(crate) fn update_all<R: Rule>(rule: &mut R) -> Result<()> {
    for i in 0..rule.params().len() {
        match rule.params()[i].dtype() {
            DType::F32 => rule.update::<f32>(i)?,
            DType::F64 => rule.update::<f64>(i)?,
            d => return Err(Error::DType { op: R::NAME, msg: format!("cannot optimise a {d} parameter") }),
        }
    }
    Ok(())
}
