//! The training loop: epochs of shuffled batches, a classifier's cross-entropy, an optimizer
//! with a schedule and clipping, metrics as it goes, validation after each epoch, periodic,
//! best-model and final checkpoints, early stopping, and exact resumption.
//!
//! A run lives in one directory:
//! ```text
//! out/metrics.jsonl, out/metrics.csv   the records (train every `log_every` steps, val per epoch)
//! out/curves.svg, out/curves.png       learning curves, redrawn after every epoch
//! out/checkpoints/step-*.safetensors   periodic checkpoints (the newest `keep_checkpoints`)
//! out/best.safetensors                 the epoch with the best validation accuracy
//! out/final.safetensors                the end of the run
//! ```
//!
//! Resuming is exact: the data order of an epoch depends only on the seed and the epoch, the
//! loader restarts at the saved batch, and the checkpoint carries the weights, buffers, optimizer
//! state, dropout generators, schedule state and step. A run resumed from step `k` ends with the
//! same bits as one that never stopped (same seed, same thread count).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use jizen_data::{DataLoader, Dataset, LoaderConfig};
use jizen_models::Model;
use jizen_nn::{clip_grad_norm, Module, Optimizer, ParamGroup, ReduceOnPlateau, Schedule};
use jizen_tensor::{cross_entropy, CrossEntropyOptions, Tensor};

use crate::checkpoint::{list_steps, step_path, Checkpoint, CheckpointMeta};
use crate::config::{Objective, TrainConfig};
use crate::evaluate::{EvalReport, Evaluator, SharedDataset};
use crate::metrics::{MetricsLog, Record};
use crate::transfer::{Stages, TransferManifest};
use crate::{curves, Error, Result};

/// Hooks into a run. Every method has a default that does nothing.
pub trait Callback {
    /// After each record is written (train every `log_every` steps, val after each epoch).
    fn on_record(&mut self, _record: &Record) {}
    /// After each epoch's validation; return `true` to stop the run.
    fn on_epoch_end(&mut self, _epoch: u64, _val: Option<&EvalReport>) -> bool {
        false
    }
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct FitReport {
    /// Optimizer steps taken in total (including those before a resume).
    pub steps: u64,
    /// Epochs completed.
    pub epochs: u64,
    /// The last validation, if there was a validation set.
    pub last_val: Option<EvalReport>,
    /// Best validation accuracy and its epoch (0-based).
    pub best: Option<(f64, u64)>,
    /// Whether early stopping (or a callback) ended the run.
    pub stopped_early: bool,
    /// Seconds of training, over all sessions of the run.
    pub elapsed_s: f64,
    /// The final checkpoint.
    pub final_checkpoint: PathBuf,
}

/// Trains a [`Model`] as a classifier; see the module documentation for what it writes.
pub struct Trainer {
    config: TrainConfig,
    out: PathBuf,
    data_name: Option<String>,
    callbacks: Vec<Box<dyn Callback>>,
    transfer: Option<TransferManifest>,
    lineage: Option<crate::checkpoint::Lineage>,
}

/// Where the loop stands; saved in every checkpoint.
struct Progress {
    step: u64,
    epoch: u64,
    batch_in_epoch: u64,
    best: Option<(f64, u64)>,
    elapsed_before: f64,
}

/// Train metrics since the last record.
#[derive(Default)]
struct Window {
    steps: u64,
    examples: u64,
    loss: f64,
    correct: u64,
    grad_norm: f64,
    started: Option<Instant>,
}

impl Trainer {
    /// A trainer writing into `out` (created if needed).
    pub fn new(config: TrainConfig, out: impl Into<PathBuf>) -> Result<Trainer> {
        config.validate()?;
        Ok(Trainer { config, out: out.into(), data_name: None, callbacks: Vec::new(), transfer: None, lineage: None })
    }

    /// Trains as a fine-tuning run: the manifest's frozen parts, learning-rate multipliers and
    /// stages apply (its loading rules were applied before, by [`TransferManifest::load`]).
    pub fn transfer(mut self, manifest: TransferManifest) -> Self {
        self.transfer = Some(manifest);
        self
    }

    /// Where the model came from, recorded in every checkpoint of the run.
    pub fn lineage(mut self, lineage: crate::checkpoint::Lineage) -> Self {
        self.lineage = Some(lineage);
        self
    }

    /// Records what the model is trained on in its checkpoints.
    pub fn data_name(mut self, name: impl Into<String>) -> Self {
        self.data_name = Some(name.into());
        self
    }

    /// Adds a callback.
    pub fn callback(mut self, c: impl Callback + 'static) -> Self {
        self.callbacks.push(Box::new(c));
        self
    }

    /// The directory of periodic checkpoints.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.out.join("checkpoints")
    }

    /// The newest periodic checkpoint of the run directory, if any.
    pub fn latest_checkpoint(&self) -> Option<PathBuf> {
        list_steps(&self.checkpoint_dir()).pop().map(|(_, p)| p)
    }

    /// Trains `model` on `train`, validating on `val` after each epoch. With `resume`, the run
    /// continues from that checkpoint (which must come from the same model and config).
    pub fn fit(
        &mut self,
        model: &Model,
        train: Arc<dyn Dataset>,
        val: Option<Arc<dyn Dataset>>,
        resume: Option<&Path>,
    ) -> Result<FitReport> {
        let c = self.config.clone();
        std::fs::create_dir_all(self.checkpoint_dir())
            .map_err(|e| Error::Io { path: self.checkpoint_dir(), source: e })?;
        let params = model.parameters();
        let loader_config =
            LoaderConfig { batch_size: c.batch_size, shuffle: true, drop_last: false, seed: c.seed, prefetch: 2 };
        let train_data = SharedDataset(train);
        let loader = DataLoader::new(Arc::new(train_data.clone()), loader_config)?;
        let steps_per_epoch = loader.batches_per_epoch() as u64;
        if steps_per_epoch == 0 {
            return Err(Error::Msg("the training set is empty".into()));
        }
        let total_steps = c.max_steps.map_or(c.epochs * steps_per_epoch, |m| m.min(c.epochs.max(1) * steps_per_epoch));
        let schedule = c.schedule.step_schedule(total_steps as usize);
        let mut plateau = c.schedule.plateau().map(ReduceOnPlateau::new);
        let plan = ParamPlan::new(model, self.transfer.as_ref(), c.optimizer.lr(), steps_per_epoch)?;
        if plateau.is_some() && plan.warms_up() {
            return Err(Error::Msg("staged warm-up needs a step schedule (constant, cosine, ...), not plateau".into()));
        }
        let mut opt = c.optimizer.build(plan.param_groups());

        let mut at = Progress { step: 0, epoch: 0, batch_in_epoch: 0, best: None, elapsed_before: 0.0 };
        if let Some(path) = resume {
            self.restore(path, model, opt.as_mut(), &mut plateau, &mut at)?;
        }
        let log = MetricsLog::open(&self.out, resume.map(|_| at.step))?;
        let session = Instant::now();
        let elapsed = |at: &Progress| at.elapsed_before + session.elapsed().as_secs_f64();
        let mut last_val = None;
        let mut last_finite: Option<(f64, u64)> = None;
        let mut stopped_early = false;

        if let (Some(val), true, None) = (&val, c.eval_every > 0, resume) {
            // Where the run starts: the head start of pre-trained weights shows at step 0.
            last_val = Some(self.validate(model, val, opt.as_mut(), &mut plateau, &mut at, &log, 0.0)?);
        }
        while at.epoch < c.epochs.max(1) && at.step < total_steps {
            plan.enter_epoch(model, at.epoch)?;
            train_data.set_epoch(at.epoch);
            let bar = self.progress_bar(steps_per_epoch, at.batch_in_epoch, at.epoch);
            let mut window = Window::default();
            for batch in loader.epoch(at.epoch, at.batch_in_epoch as usize) {
                if at.step >= total_steps {
                    break;
                }
                plan.set_lrs(opt.as_mut(), at.step, schedule.as_deref())?;
                let (x, y) = batch?;
                // The step's compute on jizen's pool (`parallel::on_pool`): a non-finite loss stops
                // it before the backward pass and comes back as `None`.
                let (loss_value, hits, norm) = jizen_tensor::parallel::on_pool(|| -> Result<_> {
                    opt.zero_grad();
                    let (loss, hits) = objective_loss(model, &c, &x, &y, at.step)?;
                    let loss_value = loss.item()?;
                    if !loss_value.is_finite() {
                        return Ok((loss_value, hits, None));
                    }
                    loss.backward_free_graph()?;
                    let norm = clip_grad_norm(&params, c.clip_grad_norm.unwrap_or(f64::INFINITY))?;
                    opt.step()?;
                    Ok((loss_value, hits, Some(norm)))
                })?;
                let Some(norm) = norm else {
                    return Err(self.non_finite(loss_value, at.step, at.epoch, last_finite));
                };
                last_finite = Some((loss_value, at.step));
                window.add(loss_value, norm, hits, y.shape()[0] as u64);
                at.step += 1;
                at.batch_in_epoch += 1;
                if let Some(b) = &bar {
                    b.inc(1);
                    b.set_message(window.message());
                }
                if at.step.is_multiple_of(c.log_every.max(1)) {
                    self.flush(&log, &mut window, &at, opt.lr(), elapsed(&at))?;
                }
                if let (Some(val), true) = (&val, c.eval_every > 0 && at.step.is_multiple_of(c.eval_every.max(1))) {
                    self.flush(&log, &mut window, &at, opt.lr(), elapsed(&at))?;
                    let now = elapsed(&at);
                    last_val = Some(self.validate(model, val, opt.as_mut(), &mut plateau, &mut at, &log, now)?);
                    plan.enter_epoch(model, at.epoch)?;
                }
                let mid_epoch = at.batch_in_epoch < steps_per_epoch && at.step < total_steps;
                if c.checkpoint_every > 0 && at.step.is_multiple_of(c.checkpoint_every) && mid_epoch {
                    self.flush(&log, &mut window, &at, opt.lr(), elapsed(&at))?;
                    self.save_periodic(model, opt.as_ref(), &plateau, &at, elapsed(&at), false)?;
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            self.flush(&log, &mut window, &at, opt.lr(), elapsed(&at))?;
            if at.batch_in_epoch < steps_per_epoch {
                break; // max_steps ended the run mid-epoch
            }
            // The epoch is complete: validate, adapt, and checkpoint.
            let mut stop = false;
            if let (Some(val), 0) = (&val, c.eval_every) {
                let now = elapsed(&at);
                let report = self.validate(model, val, opt.as_mut(), &mut plateau, &mut at, &log, now)?;
                if let (Some(es), Some((_, best_epoch))) = (&c.early_stopping, at.best) {
                    stop |= at.epoch - best_epoch >= es.patience;
                }
                last_val = Some(report);
            }
            for cb in &mut self.callbacks {
                stop |= cb.on_epoch_end(at.epoch, last_val.as_ref());
            }
            at.epoch += 1;
            at.batch_in_epoch = 0;
            self.save_periodic(model, opt.as_ref(), &plateau, &at, elapsed(&at), false)?;
            curves::write(&self.out)?;
            if stop {
                stopped_early = true;
                break;
            }
        }
        let final_path = self.out.join("final.safetensors");
        let meta = self.meta(&at, opt.as_ref(), &plateau, elapsed(&at), true, model);
        Checkpoint::capture(model, Some(opt.as_ref()), meta).save(&final_path)?;
        curves::write(&self.out)?;
        Ok(FitReport {
            steps: at.step,
            epochs: at.epoch,
            last_val,
            best: at.best,
            stopped_early,
            elapsed_s: elapsed(&at),
            final_checkpoint: final_path,
        })
    }

    /// Evaluates on the validation set, records it, steps a plateau schedule, and saves the best
    /// checkpoint so far.
    #[allow(clippy::too_many_arguments)]
    fn validate(
        &mut self,
        model: &Model,
        val: &Arc<dyn Dataset>,
        opt: &mut dyn Optimizer,
        plateau: &mut Option<ReduceOnPlateau>,
        at: &mut Progress,
        log: &MetricsLog,
        elapsed: f64,
    ) -> Result<EvalReport> {
        let report = match self.config.objective {
            Objective::Supervised => Evaluator { batch_size: 512, top_k: 5 }.evaluate(model, val.clone())?,
            Objective::Autoencoder { .. } => reconstruction_report(model, val.clone())?,
        };
        let record = Record {
            step: at.step,
            epoch: at.epoch,
            split: "val".into(),
            loss: report.loss,
            accuracy: (!report.accuracy.is_nan()).then_some(report.accuracy),
            lr: opt.lr(),
            grad_norm: None,
            examples_per_s: None,
            elapsed_s: elapsed,
        };
        self.emit(log, &record)?;
        if let Some(p) = plateau.as_mut() {
            p.step(report.loss, opt)?;
        }
        // Higher is better: accuracy, or minus the loss of a reconstruction.
        let score = if report.accuracy.is_nan() { -report.loss } else { report.accuracy };
        let min_delta = self.config.early_stopping.as_ref().map_or(0.0, |e| e.min_delta);
        if self.config.save_best && at.best.is_none_or(|(b, _)| score > b + min_delta) {
            at.best = Some((score, at.epoch));
            let meta = self.meta(at, opt, plateau, elapsed, false, model);
            Checkpoint::capture(model, Some(opt), meta).save(&self.out.join("best.safetensors"))?;
        }
        Ok(report)
    }

    fn restore(
        &self,
        path: &Path,
        model: &Model,
        opt: &mut dyn Optimizer,
        plateau: &mut Option<ReduceOnPlateau>,
        at: &mut Progress,
    ) -> Result<()> {
        let ck = Checkpoint::load(path).map_err(|e| {
            let older: Vec<String> = list_steps(&self.checkpoint_dir())
                .into_iter()
                .map(|(_, p)| p)
                .filter(|p| p != path)
                .map(|p| p.display().to_string())
                .collect();
            match older.last() {
                Some(prev) => {
                    Error::Msg(format!("{e}\nthe previous checkpoint is intact: resume from it with --resume {prev}"))
                }
                None => e,
            }
        })?;
        let meta = ck.meta(path)?;
        if meta.model.as_ref() != Some(model.spec()) {
            return Err(Error::Msg(format!(
                "{}: was written for model {:?}, not {:?}",
                path.display(),
                meta.model.as_ref().map(|m| m.name.as_str()),
                model.spec().name
            )));
        }
        if meta.train.as_ref() != Some(&self.config) {
            return Err(Error::Msg(format!(
                "{}: was written by a run with another training config; resume with the same settings",
                path.display()
            )));
        }
        ck.restore_model(model, true)?;
        opt.load_state_dict(&ck.optimizer)
            .map_err(|e| Error::Msg(format!("{}: optimizer state: {e}", path.display())))?;
        for (i, &lr) in meta.group_lrs.iter().enumerate() {
            opt.set_group_lr(i, lr)?;
        }
        if let (Some(p), Some(state)) = (plateau.as_mut(), meta.plateau) {
            *p = ReduceOnPlateau::from_state(p.config, state);
        }
        *at = Progress {
            step: meta.step,
            epoch: meta.epoch,
            batch_in_epoch: meta.batch_in_epoch,
            best: meta.best,
            elapsed_before: meta.metrics.get("elapsed_s").copied().unwrap_or(0.0),
        };
        Ok(())
    }

    fn meta(
        &self,
        at: &Progress,
        opt: &dyn Optimizer,
        plateau: &Option<ReduceOnPlateau>,
        elapsed: f64,
        finished: bool,
        model: &Model,
    ) -> CheckpointMeta {
        let mut meta = CheckpointMeta::new();
        meta.model = Some(model.spec().clone());
        meta.train = Some(self.config.clone());
        meta.data = self.data_name.clone();
        meta.step = at.step;
        meta.epoch = at.epoch;
        meta.batch_in_epoch = at.batch_in_epoch;
        meta.finished = finished;
        meta.group_lrs = opt.group_lrs();
        meta.plateau = plateau.as_ref().map(|p| p.state());
        meta.best = at.best;
        meta.metrics.insert("elapsed_s".into(), elapsed);
        meta.lineage = self.lineage.clone();
        if let Some((acc, _)) = at.best {
            meta.metrics.insert("best_val_accuracy".into(), acc);
        }
        meta
    }

    fn save_periodic(
        &self,
        model: &Model,
        opt: &dyn Optimizer,
        plateau: &Option<ReduceOnPlateau>,
        at: &Progress,
        elapsed: f64,
        finished: bool,
    ) -> Result<()> {
        if self.config.keep_checkpoints == 0 {
            return Ok(());
        }
        let meta = self.meta(at, opt, plateau, elapsed, finished, model);
        Checkpoint::capture(model, Some(opt), meta).save(&step_path(&self.checkpoint_dir(), at.step))?;
        let all = list_steps(&self.checkpoint_dir());
        for (_, old) in all.iter().take(all.len().saturating_sub(self.config.keep_checkpoints)) {
            let _ = std::fs::remove_file(old);
        }
        Ok(())
    }

    fn flush(&mut self, log: &MetricsLog, w: &mut Window, at: &Progress, lr: f64, elapsed: f64) -> Result<()> {
        if w.steps == 0 {
            return Ok(());
        }
        let seconds = w.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let record = Record {
            step: at.step,
            epoch: at.epoch,
            split: "train".into(),
            loss: w.loss / w.steps as f64,
            accuracy: (self.config.objective == Objective::Supervised).then(|| w.correct as f64 / w.examples as f64),
            lr,
            grad_norm: Some(w.grad_norm / w.steps as f64),
            examples_per_s: (seconds > 0.0).then(|| w.examples as f64 / seconds),
            elapsed_s: elapsed,
        };
        *w = Window::default();
        self.emit(log, &record)
    }

    fn emit(&mut self, log: &MetricsLog, record: &Record) -> Result<()> {
        log.write(record)?;
        for cb in &mut self.callbacks {
            cb.on_record(record);
        }
        Ok(())
    }

    fn non_finite(&self, loss: f64, step: u64, epoch: u64, last_finite: Option<(f64, u64)>) -> Error {
        let last = match last_finite {
            Some((l, s)) => format!("the last finite loss was {l:.6} at step {s}"),
            None => "no step had a finite loss".into(),
        };
        let kept = match self.latest_checkpoint() {
            Some(p) => format!("the last good checkpoint is {}", p.display()),
            None => "no checkpoint had been written yet".into(),
        };
        Error::Msg(format!(
            "the loss became {loss} at step {step} (epoch {epoch}); {last}; {kept}. Stopped without saving \
             the diverged weights; try a lower learning rate or gradient clipping"
        ))
    }

    fn progress_bar(&self, len: u64, done: u64, epoch: u64) -> Option<indicatif::ProgressBar> {
        use std::io::IsTerminal;
        if !self.config.progress || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::new(len).with_position(done);
        let style = indicatif::ProgressStyle::with_template(&format!(
            "epoch {:>3} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{elapsed}} < {{eta}})",
            epoch + 1
        ))
        .expect("a valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        Some(bar)
    }
}

impl Window {
    fn add(&mut self, loss: f64, grad_norm: f64, correct: u64, examples: u64) {
        self.started.get_or_insert_with(Instant::now);
        self.steps += 1;
        self.loss += loss;
        self.grad_norm += grad_norm;
        self.correct += correct;
        self.examples += examples;
    }

    fn message(&self) -> String {
        let seconds = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64()).max(1e-9);
        format!(
            "loss {:.4} acc {:.2}% {:.0} ex/s",
            self.loss / self.steps.max(1) as f64,
            100.0 * self.correct as f64 / self.examples.max(1) as f64,
            self.examples as f64 / seconds
        )
    }
}

/// The loss of one batch under the run's objective, and how many examples were classified
/// right (0 for a reconstruction).
fn objective_loss(model: &Model, c: &TrainConfig, x: &Tensor, y: &Tensor, step: u64) -> Result<(Tensor, u64)> {
    match c.objective {
        Objective::Supervised => {
            let logits = model.forward(x)?;
            let options = CrossEntropyOptions { label_smoothing: c.label_smoothing, ..Default::default() };
            Ok((cross_entropy(&logits, y, options)?, correct(&logits, y)?))
        }
        Objective::Autoencoder { noise, .. } => {
            let input = if noise > 0.0 {
                // Masking noise from a generator seeded by the step, so a resumed run draws the same.
                let mut rng = jizen_tensor::Rng::new(c.seed ^ step.wrapping_mul(0xA076_1D64_78BD_642F));
                let keep = jizen_tensor::dropout_mask(x.shape(), noise, x.dtype(), &mut rng).mul_scalar(1.0 - noise)?;
                x.mul(&keep)?
            } else {
                x.clone()
            };
            let recon = model.forward(&input)?;
            Ok((reconstruction_loss(&recon, x)?, 0))
        }
    }
}

/// Mean squared error between a reconstruction `[N, D]` and its flattened input.
fn reconstruction_loss(recon: &Tensor, x: &Tensor) -> Result<Tensor> {
    let target = x.flatten(1, -1)?;
    let recon = recon.flatten(1, -1)?;
    if recon.shape() != target.shape() {
        return Err(Error::Msg(format!(
            "an autoencoder must output as many values as its input has: output {:?}, input {:?}",
            recon.shape(),
            target.shape()
        )));
    }
    Ok(jizen_tensor::mse_loss(&recon, &target, jizen_tensor::Reduction::Mean)?)
}

/// A validation report for a reconstruction objective: the mean loss, no accuracy (NaN).
fn reconstruction_report(model: &Model, data: Arc<dyn Dataset>) -> Result<EvalReport> {
    let config = LoaderConfig { batch_size: 512, shuffle: false, drop_last: false, seed: 0, prefetch: 2 };
    let loader = DataLoader::new(Arc::new(SharedDataset(data)), config)?;
    model.set_training(false);
    let (mut sum, mut n) = (0.0, 0usize);
    for batch in loader.epoch(0, 0) {
        let (x, _) = batch?;
        let loss = jizen_tensor::no_grad(|| -> Result<Tensor> { reconstruction_loss(&model.forward(&x)?, &x) })?;
        sum += loss.item()? * x.shape()[0] as f64;
        n += x.shape()[0];
    }
    Ok(EvalReport {
        examples: n,
        loss: sum / n.max(1) as f64,
        accuracy: f64::NAN,
        top_k: 0,
        top_k_accuracy: f64::NAN,
        per_class_accuracy: vec![],
        confusion: vec![],
    })
}

/// How many rows of `logits` have their largest score at the target.
fn correct(logits: &Tensor, y: &Tensor) -> Result<u64> {
    let predicted = logits.detach().argmax(-1, false)?.to_vec::<i64>()?;
    let labels = y.to_vec::<i64>()?;
    Ok(predicted.iter().zip(&labels).filter(|(p, l)| p == l).count() as u64)
}

/// How a run's parameters train: one optimizer group per top-level block and learning-rate
/// multiplier, frozen parameters left out, and (with stages) blocks joining from the top.
struct ParamPlan {
    groups: Vec<PlanGroup>,
    /// Names of parameters frozen for the whole run.
    frozen: Vec<String>,
    stages: Option<Stages>,
    steps_per_epoch: u64,
}

struct PlanGroup {
    /// 0 for the last block (the head), counting up towards the input.
    rank: usize,
    names: Vec<String>,
    params: Vec<Tensor>,
    base_lr: f64,
}

impl ParamPlan {
    fn new(model: &Model, manifest: Option<&TransferManifest>, lr: f64, steps_per_epoch: u64) -> Result<ParamPlan> {
        let named = model.named_parameters();
        let block = |name: &str| name.split('.').next().unwrap_or("").to_string();
        let mut blocks: Vec<String> = Vec::new();
        for (n, _) in &named {
            if !blocks.contains(&block(n)) {
                blocks.push(block(n));
            }
        }
        let mut plan = ParamPlan {
            groups: vec![],
            frozen: vec![],
            stages: manifest.and_then(|m| m.stages.clone()),
            steps_per_epoch,
        };
        for (name, p) in named {
            if manifest.is_some_and(|m| m.is_frozen(&name)) {
                plan.frozen.push(name);
                continue;
            }
            let rank = blocks.len() - 1 - blocks.iter().position(|b| *b == block(&name)).expect("listed");
            let base_lr = lr * manifest.map_or(1.0, |m| m.lr_mult_of(&name));
            match plan.groups.iter_mut().find(|g| g.rank == rank && g.base_lr == base_lr) {
                Some(g) => {
                    g.names.push(name);
                    g.params.push(p);
                }
                None => plan.groups.push(PlanGroup { rank, names: vec![name], params: vec![p], base_lr }),
            }
        }
        if plan.groups.is_empty() {
            return Err(Error::Msg("every parameter is frozen: nothing to train".into()));
        }
        Ok(plan)
    }

    fn param_groups(&self) -> Vec<ParamGroup> {
        self.groups
            .iter()
            .map(|g| ParamGroup { params: g.params.clone(), lr: Some(g.base_lr), weight_decay: None })
            .collect()
    }

    /// The epoch from which the block of `rank` trains.
    fn join_epoch(&self, rank: usize) -> u64 {
        match &self.stages {
            None => 0,
            Some(_) if rank == 0 => 0,
            Some(s) => s.probe_epochs + s.unfreeze_every * (rank as u64 - 1),
        }
    }

    fn warms_up(&self) -> bool {
        self.stages.as_ref().is_some_and(|s| s.warmup_steps > 0)
    }

    /// Freezes what does not train in `epoch` (no gradient, batch norm in inference mode) and
    /// puts the rest in training mode.
    fn enter_epoch(&self, model: &Model, epoch: u64) -> Result<()> {
        let mut frozen: Vec<&String> = self.frozen.iter().collect();
        for g in &self.groups {
            let active = self.join_epoch(g.rank) <= epoch;
            for p in &g.params {
                p.set_requires_grad(active)?;
            }
            if !active {
                frozen.extend(&g.names);
            }
        }
        for (name, p) in model.named_parameters() {
            if self.frozen.contains(&name) {
                p.set_requires_grad(false)?;
            }
        }
        model.set_training(true);
        // The Keras rule: a frozen batch-norm layer keeps its statistics and runs as at inference.
        let owns_frozen = |module: &str| {
            frozen.iter().any(|n| n.strip_prefix(module).is_some_and(|r| r.starts_with('.') && !r[1..].contains('.')))
        };
        model.set_training_where("", &owns_frozen, false);
        Ok(())
    }

    /// Sets each group's learning rate for `step`: the schedule at the group's base rate, times
    /// the warm-up of a block that joined late.
    fn set_lrs(&self, opt: &mut dyn Optimizer, step: u64, schedule: Option<&dyn Schedule>) -> Result<()> {
        if schedule.is_none() && !self.warms_up() {
            return Ok(());
        }
        for (i, g) in self.groups.iter().enumerate() {
            let mut lr = schedule.map_or(g.base_lr, |s| s.lr(step as usize, g.base_lr));
            let join = self.join_epoch(g.rank) * self.steps_per_epoch;
            if let Some(s) = self.stages.as_ref().filter(|s| s.warmup_steps > 0 && join > 0) {
                lr *= ((step.saturating_sub(join) + 1) as f64 / s.warmup_steps as f64).min(1.0);
            }
            opt.set_group_lr(i, lr)?;
        }
        Ok(())
    }
}
