//! What a training run is, as plain serde data: the optimizer, the schedule, the loop's length
//! and its checkpoints. A run's config is written beside its metrics and into every checkpoint.

use jizen_nn::{
    Adam, AdamConfig, CosineWithWarmup, ExponentialLr, OneCycle, Optimizer, ParamGroup, PlateauConfig, RMSprop,
    RMSpropConfig, Schedule, Sgd, SgdConfig, StepLr,
};
use jizen_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An optimizer and its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// SGD with optional (Nesterov) momentum and L2 weight decay.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum factor (0: none).
        #[serde(default)]
        momentum: f64,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty.
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam (L2 weight decay through the gradient).
    Adam {
        /// Learning rate.
        lr: f64,
        /// L2 penalty.
        #[serde(default)]
        weight_decay: f64,
    },
    /// AdamW (decoupled weight decay).
    Adamw {
        /// Learning rate.
        lr: f64,
        /// Decoupled weight decay.
        #[serde(default = "adamw_decay")]
        weight_decay: f64,
    },
    /// RMSprop.
    Rmsprop {
        /// Learning rate.
        lr: f64,
        /// Momentum factor.
        #[serde(default)]
        momentum: f64,
        /// L2 penalty.
        #[serde(default)]
        weight_decay: f64,
    },
}

fn adamw_decay() -> f64 {
    0.01
}

impl OptimizerConfig {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::Adamw { lr, .. }
            | OptimizerConfig::Rmsprop { lr, .. } => lr,
        }
    }

    /// Creates the optimizer over `groups`.
    pub fn build(&self, groups: Vec<ParamGroup>) -> Box<dyn Optimizer> {
        match *self {
            OptimizerConfig::Sgd { lr, momentum, nesterov, weight_decay } => {
                Box::new(Sgd::with_groups(groups, SgdConfig { lr, momentum, nesterov, weight_decay }))
            }
            OptimizerConfig::Adam { lr, weight_decay } => {
                Box::new(Adam::with_groups(groups, AdamConfig { lr, weight_decay, ..Default::default() }))
            }
            OptimizerConfig::Adamw { lr, weight_decay } => Box::new(Adam::with_groups(
                groups,
                AdamConfig { lr, weight_decay, decoupled: true, ..Default::default() },
            )),
            OptimizerConfig::Rmsprop { lr, momentum, weight_decay } => Box::new(RMSprop::with_groups(
                groups,
                RMSpropConfig { lr, momentum, weight_decay, ..Default::default() },
            )),
        }
    }

    /// Creates the optimizer over one group of `params`.
    pub fn build_for(&self, params: Vec<Tensor>) -> Box<dyn Optimizer> {
        self.build(vec![ParamGroup::new(params)])
    }
}

/// A learning-rate schedule. Step-based schedules are counted in optimizer steps over the whole
/// run; `plateau` watches the validation loss once per epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// A constant rate.
    #[default]
    Constant,
    /// Multiply by `gamma` every `step_size` steps.
    Step {
        /// Steps between decays.
        step_size: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Multiply by `gamma` every step.
    Exponential {
        /// Decay factor per step.
        gamma: f64,
    },
    /// Linear warm-up for `warmup_steps`, then a cosine to `min_lr` at the end of the run.
    Cosine {
        /// Warm-up steps.
        #[serde(default)]
        warmup_steps: usize,
        /// Final rate.
        #[serde(default)]
        min_lr: f64,
    },
    /// One cycle over the whole run, peaking at the optimizer's rate.
    OneCycle {
        /// Fraction of the run spent warming up.
        #[serde(default = "pct_start")]
        pct_start: f64,
    },
    /// Cut by `factor` when the validation loss has not improved for `patience` epochs.
    Plateau {
        /// Multiplicative cut.
        #[serde(default = "plateau_factor")]
        factor: f64,
        /// Epochs without improvement tolerated.
        #[serde(default = "plateau_patience")]
        patience: usize,
    },
}

fn pct_start() -> f64 {
    0.3
}
fn plateau_factor() -> f64 {
    0.1
}
fn plateau_patience() -> usize {
    2
}

impl ScheduleConfig {
    /// The step-based schedule for a run of `total_steps`, or `None` (constant or plateau).
    pub fn step_schedule(&self, total_steps: usize) -> Option<Box<dyn Schedule>> {
        match *self {
            ScheduleConfig::Constant | ScheduleConfig::Plateau { .. } => None,
            ScheduleConfig::Step { step_size, gamma } => Some(Box::new(StepLr { step_size, gamma })),
            ScheduleConfig::Exponential { gamma } => Some(Box::new(ExponentialLr { gamma })),
            ScheduleConfig::Cosine { warmup_steps, min_lr } => {
                Some(Box::new(CosineWithWarmup { warmup_steps, total_steps, min_lr }))
            }
            ScheduleConfig::OneCycle { pct_start } => {
                Some(Box::new(OneCycle { pct_start, ..OneCycle::new(total_steps) }))
            }
        }
    }

    /// The plateau settings, if this is the plateau schedule.
    pub fn plateau(&self) -> Option<PlateauConfig> {
        match *self {
            ScheduleConfig::Plateau { factor, patience } => {
                Some(PlateauConfig { factor, patience, ..Default::default() })
            }
            _ => None,
        }
    }
}

/// Augmentation of image batches during training (evaluation never augments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Random crop after zero padding by this many pixels (0: off).
    #[serde(default)]
    pub crop_padding: usize,
    /// Random horizontal flips (off for digits, on for natural images).
    #[serde(default)]
    pub hflip: bool,
}

impl AugmentConfig {
    /// Whether any augmentation is on.
    pub fn is_on(&self) -> bool {
        self.crop_padding > 0 || self.hflip
    }
}

/// What the network learns to do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Objective {
    /// Classify: cross-entropy on the logits against the integer labels.
    #[default]
    Supervised,
    /// Reconstruct the (flattened) input from itself: the mean squared error; with `noise`, that
    /// fraction of the input's values is zeroed first (masking noise: a denoising autoencoder).
    Autoencoder {
        /// Fraction of input values set to zero (0: a plain autoencoder).
        #[serde(default)]
        noise: f64,
        /// How many of the model's first layers form the encoder: what fine-tuning keeps.
        #[serde(default)]
        encoder_layers: Option<usize>,
    },
}

impl Objective {
    /// `supervised`, `autoencoder` or `denoising-autoencoder`.
    pub fn name(&self) -> String {
        match self {
            Objective::Supervised => "supervised".into(),
            Objective::Autoencoder { noise, .. } if *noise > 0.0 => format!("denoising-autoencoder (noise {noise})"),
            Objective::Autoencoder { .. } => "autoencoder".into(),
        }
    }
}

/// Stop when the validation accuracy has not improved by `min_delta` for `patience` epochs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Epochs without improvement tolerated.
    pub patience: u64,
    /// The smallest gain that counts as an improvement (accuracy, in [0, 1]).
    #[serde(default)]
    pub min_delta: f64,
}

/// A training run: data order, loop length, optimizer, schedule, regularisation, checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: u64,
    /// Stop after this many optimizer steps, even mid-epoch.
    pub max_steps: Option<u64>,
    /// Examples per step.
    pub batch_size: usize,
    /// Seeds the data order, augmentation and (through the model) initialisation.
    pub seed: u64,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f64>,
    /// What the network learns.
    pub objective: Objective,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f64,
    /// Training augmentation.
    pub augment: AugmentConfig,
    /// Examples held out of the training set for validation (`None`: the data set's default).
    pub val: Option<usize>,
    /// Train on this many labelled examples per class (a label budget; `None`: all).
    pub labels_per_class: Option<usize>,
    /// Keep only these classes of the data set, relabelled `0..k` in this order (`None`: all).
    pub classes: Option<Vec<i64>>,
    /// Write a training log line every this many steps.
    pub log_every: u64,
    /// Validate every this many steps (and once before the first) instead of after each epoch;
    /// 0: after each epoch.
    pub eval_every: u64,
    /// Keep a `best.safetensors` of the best validation so far.
    pub save_best: bool,
    /// Save a checkpoint every this many steps (besides the end of each epoch); 0: epochs only.
    pub checkpoint_every: u64,
    /// Periodic checkpoints kept on disk (the newest ones); 0 writes none (only the final one).
    pub keep_checkpoints: usize,
    /// Early stopping on the validation accuracy.
    pub early_stopping: Option<EarlyStopping>,
    /// Show a progress bar on a terminal.
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            max_steps: None,
            batch_size: 64,
            seed: 0,
            optimizer: OptimizerConfig::Adam { lr: 1e-3, weight_decay: 0.0 },
            schedule: ScheduleConfig::Constant,
            clip_grad_norm: None,
            objective: Objective::Supervised,
            label_smoothing: 0.0,
            augment: AugmentConfig::default(),
            val: None,
            labels_per_class: None,
            classes: None,
            log_every: 50,
            eval_every: 0,
            save_best: true,
            checkpoint_every: 0,
            keep_checkpoints: 2,
            early_stopping: None,
            progress: true,
        }
    }
}

impl TrainConfig {
    /// Parses a config from TOML text; fields left out keep their defaults.
    pub fn from_toml(text: &str) -> Result<TrainConfig> {
        let c: TrainConfig =
            toml::from_str(text).map_err(|e| Error::Msg(format!("train config: {}", e.to_string().trim())))?;
        c.validate()?;
        Ok(c)
    }

    /// Checks the values a run cannot start with.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Msg(format!("train config: {m}")));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        if self.epochs == 0 && self.max_steps.is_none() {
            return bad("epochs must be at least 1 (or set max_steps)");
        }
        let lr = self.optimizer.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return bad(&format!("the learning rate must be positive, got {lr}"));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label_smoothing must be in [0, 1)");
        }
        if self.clip_grad_norm.is_some_and(|c| c.is_nan() || c <= 0.0) {
            return bad("clip_grad_norm must be positive");
        }
        if let Objective::Autoencoder { noise, .. } = self.objective {
            if !(0.0..1.0).contains(&noise) {
                return bad("the autoencoder's noise must be in [0, 1)");
            }
        }
        Ok(())
    }
}
