//! The `Module` trait: a forward function plus named parameters.

use std::collections::BTreeMap;

use std::sync::Mutex;

use jizen_tensor::{Error, Result, Rng, Tensor};

/// A network or a layer. Parameters are leaf tensors that require gradients; they are visited
/// with dotted names that follow the module tree, matching PyTorch's `state_dict` keys.
pub trait Module: Send + Sync {
    /// Applies the module.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// Calls `f(name, parameter)` for every parameter, names prefixed with `prefix`.
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor));

    /// Calls `f(name, buffer)` for every buffer (state that is not trained by gradients, such as
    /// batch norm's running statistics), names prefixed with `prefix`. Default: none.
    fn visit_buffers(&self, _prefix: &str, _f: &mut dyn FnMut(String, &Tensor)) {}

    /// Switches between training and evaluation behaviour (dropout, batch norm). Default: no-op.
    fn set_training(&self, _training: bool) {}

    /// Sets the training mode of the modules named `prefix` (or below it) that `select`
    /// accepts: containers pass the question on to their children under their dotted names;
    /// a leaf answers for itself. Fine-tuning uses it to keep frozen batch-norm layers in
    /// inference mode while the rest trains.
    fn set_training_where(&self, prefix: &str, select: &dyn Fn(&str) -> bool, training: bool) {
        if select(prefix) {
            self.set_training(training);
        }
    }

    /// Calls `f(name, generator)` for every random generator the module owns (dropout's mask
    /// generator), so that a checkpoint can save and restore it and a resumed run draws the
    /// same masks. Default: none.
    fn visit_rngs(&self, _prefix: &str, _f: &mut dyn FnMut(String, &Mutex<Rng>)) {}

    /// All parameters with their names, in definition order.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_parameters("", &mut |name, t| out.push((name, t.clone())));
        out
    }

    /// All buffers with their names, in definition order.
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_buffers("", &mut |name, t| out.push((name, t.clone())));
        out
    }

    /// All parameters, in definition order.
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters().into_iter().map(|(_, t)| t).collect()
    }

    /// The total number of parameter elements.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|t| t.numel()).sum()
    }
}

/// Joins a prefix and a name with a dot (`"encoder" + "weight" -> "encoder.weight"`).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A snapshot of the parameters and buffers by name, like PyTorch's `state_dict` (the tensors
/// are shared, not copied).
pub fn state_dict(m: &dyn Module) -> BTreeMap<String, Tensor> {
    m.named_parameters().into_iter().chain(m.named_buffers()).collect()
}

/// What [`load_state_dict`] did, key by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    /// Parameters (or buffers) of the module that the state dict does not have.
    pub missing: Vec<String>,
    /// Entries of the state dict that the module does not have.
    pub unexpected: Vec<String>,
    /// `(name, module shape, state-dict shape)`.
    pub shape_mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

/// Copies the values of `state` into the module's parameters and buffers. With `strict`, any
/// missing, unexpected or mismatched key is an error listing all of them, and nothing is loaded.
pub fn load_state_dict(m: &dyn Module, state: &BTreeMap<String, Tensor>, strict: bool) -> Result<LoadReport> {
    let mut params = m.named_parameters();
    params.extend(m.named_buffers());
    let mut report = LoadReport::default();
    let mut plan = Vec::new();
    for (name, p) in &params {
        match state.get(name) {
            None => report.missing.push(name.clone()),
            Some(t) if t.shape() != p.shape() => {
                report.shape_mismatched.push((name.clone(), p.shape().to_vec(), t.shape().to_vec()))
            }
            Some(t) => plan.push((name.clone(), p.clone(), t.clone())),
        }
    }
    for k in state.keys() {
        if !params.iter().any(|(n, _)| n == k) {
            report.unexpected.push(k.clone());
        }
    }
    let clean = report.missing.is_empty() && report.unexpected.is_empty() && report.shape_mismatched.is_empty();
    if strict && !clean {
        let mut msg = String::from("state dict does not match the model:");
        if !report.missing.is_empty() {
            msg += &format!(" missing {:?};", report.missing);
        }
        if !report.unexpected.is_empty() {
            msg += &format!(" unexpected {:?};", report.unexpected);
        }
        for (n, a, b) in &report.shape_mismatched {
            msg += &format!(" {n}: model {a:?}, state dict {b:?};");
        }
        return Err(Error::Invalid { op: "load_state_dict", msg: msg.trim_end_matches(';').to_string() });
    }
    for (name, p, t) in plan {
        let t = t.to_dtype(p.dtype())?;
        p.copy_from_(&t)?;
        report.loaded.push(name);
    }
    Ok(report)
}
