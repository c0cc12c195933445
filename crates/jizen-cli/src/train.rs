//! `jizen train`, `jizen eval`, `jizen predict` and `jizen summary`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use jizen_models::{zoo, Model, ModelSpec, Summary, ZOO};
use jizen_train::{
    metrics::read_records, AugmentConfig, Checkpoint, EarlyStopping, Evaluator, OptimizerConfig, Predictor,
    ScheduleConfig, TrainConfig, Trainer,
};

use crate::datasets::{self, Which};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Arguments of `jizen train`.
#[derive(Args)]
pub struct TrainArgs {
    /// A zoo model (mlp, cnn, lenet5, resnet-cifar) or a model TOML file.
    #[arg(long, required_unless_present = "resume")]
    model: Option<String>,
    /// The data set: mnist, fashion-mnist, cifar10, digits, mnist8x8, a .csv file or an image folder.
    #[arg(long, required_unless_present = "resume")]
    data: Option<String>,
    /// Where the data set's files are (default: $JIZEN_DATA/NAME, else data/NAME).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The run directory: metrics, curves and checkpoints go here.
    #[arg(long, default_value = "runs/train")]
    out: PathBuf,
    /// A training config TOML file; the flags below override its values.
    #[arg(long, conflicts_with = "resume")]
    config: Option<PathBuf>,
    /// Continue a run: from this checkpoint, or (without a value) from the newest one in --out.
    /// Model, data and settings come from the checkpoint.
    #[arg(long, num_args = 0..=1, default_missing_value = "latest", value_name = "CHECKPOINT")]
    resume: Option<String>,
    #[command(flatten)]
    run: RunFlags,
}

/// The settings of a training run, shared by `train`, `pretrain` and `finetune`; they override
/// the values of a `--config` file.
#[derive(Args)]
pub struct RunFlags {
    #[arg(long)]
    epochs: Option<u64>,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    max_steps: Option<u64>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// sgd, adam, adamw or rmsprop.
    #[arg(long)]
    optimizer: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Momentum of SGD and RMSprop.
    #[arg(long)]
    momentum: Option<f64>,
    #[arg(long)]
    nesterov: bool,
    #[arg(long)]
    weight_decay: Option<f64>,
    /// constant, cosine, onecycle, step or plateau.
    #[arg(long)]
    schedule: Option<String>,
    /// Warm-up steps of the cosine schedule.
    #[arg(long)]
    warmup_steps: Option<usize>,
    #[arg(long)]
    clip_grad_norm: Option<f64>,
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Random crops after zero padding by this many pixels.
    #[arg(long)]
    augment_crop: Option<usize>,
    /// Random horizontal flips.
    #[arg(long)]
    augment_flip: bool,
    /// Validation examples held out of the training set (default 5,000 for the 60k sets).
    #[arg(long)]
    val: Option<usize>,
    /// Train on this many labelled examples per class (a label budget).
    #[arg(long)]
    labels_per_class: Option<usize>,
    /// Keep only these classes, relabelled 0.. in this order: "0-4" or "5,6,7".
    #[arg(long, value_parser = parse_classes)]
    classes: Option<ClassList>,
    /// Stop after this many epochs without a better validation accuracy.
    #[arg(long)]
    early_stopping: Option<u64>,
    /// Save a checkpoint every this many steps, besides each epoch's end.
    #[arg(long)]
    checkpoint_every: Option<u64>,
    #[arg(long)]
    seed: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

impl RunFlags {
    /// Whether any flag that shapes a run was given (they cannot change a resumed run).
    fn has_run_settings(&self) -> bool {
        self.epochs.is_some()
            || self.max_steps.is_some()
            || self.batch_size.is_some()
            || self.optimizer.is_some()
            || self.lr.is_some()
            || self.momentum.is_some()
            || self.nesterov
            || self.weight_decay.is_some()
            || self.schedule.is_some()
            || self.warmup_steps.is_some()
            || self.clip_grad_norm.is_some()
            || self.label_smoothing.is_some()
            || self.augment_crop.is_some()
            || self.augment_flip
            || self.early_stopping.is_some()
            || self.checkpoint_every.is_some()
            || self.seed.is_some()
            || self.val.is_some()
            || self.labels_per_class.is_some()
            || self.classes.is_some()
    }
}

/// The classes given to `--classes`.
#[derive(Clone, Debug)]
pub struct ClassList(Vec<i64>);

/// `"0-4"` → `[0, 1, 2, 3, 4]`; `"5,7,9"` → `[5, 7, 9]`.
fn parse_classes(text: &str) -> std::result::Result<ClassList, String> {
    let bad = || format!("{text:?}: expected a range like 0-4 or a list like 5,6,7");
    let mut out = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (i64, i64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    Ok(ClassList(out))
}

/// Arguments of `jizen eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// A checkpoint written by `jizen train`.
    checkpoint: PathBuf,
    /// The data set (default: the one the checkpoint was trained on).
    #[arg(long)]
    data: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "test")]
    split: Which,
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Arguments of `jizen predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// A checkpoint written by `jizen train`.
    checkpoint: PathBuf,
    /// The data set (default: the one the checkpoint was trained on).
    #[arg(long)]
    data: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "test")]
    split: Which,
    /// Predict only the first N examples.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Write the predictions as CSV here (default: print them).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `jizen summary`.
#[derive(Args)]
pub struct SummaryArgs {
    /// A zoo model, a model TOML file, or a checkpoint (.safetensors).
    model: String,
    /// Per-sample input shape, e.g. 1,28,28 (zoo models only).
    #[arg(long, value_delimiter = ',', default_value = "1,28,28")]
    input: Vec<usize>,
    /// Number of classes (zoo models only).
    #[arg(long, default_value_t = 10)]
    classes: usize,
}

/// A model spec from a zoo name or a TOML file.
pub fn model_spec(model: &str, input: &[usize], classes: usize) -> Result<ModelSpec> {
    if model.ends_with(".toml") {
        let text = std::fs::read_to_string(model).map_err(|e| format!("{model}: {e}"))?;
        return Ok(ModelSpec::from_toml(&text).map_err(|e| format!("{model}: {e}"))?);
    }
    if !ZOO.contains(&model) {
        return Err(format!("unknown model {model:?}: the zoo has {}, or give a .toml file", ZOO.join(", ")).into());
    }
    Ok(zoo(model, input, classes)?)
}

pub fn train_config(a: &RunFlags, config: &Option<PathBuf>) -> Result<TrainConfig> {
    let mut c = match config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            TrainConfig::from_toml(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => TrainConfig::default(),
    };
    if let Some(v) = a.epochs {
        c.epochs = v;
    }
    c.max_steps = a.max_steps.or(c.max_steps);
    if let Some(v) = a.batch_size {
        c.batch_size = v;
    }
    if let Some(v) = a.seed {
        c.seed = v;
    }
    if let Some(name) = &a.optimizer {
        let lr = a.lr.unwrap_or(c.optimizer.lr());
        c.optimizer = match name.as_str() {
            "sgd" => OptimizerConfig::Sgd { lr, momentum: 0.0, nesterov: false, weight_decay: 0.0 },
            "adam" => OptimizerConfig::Adam { lr, weight_decay: 0.0 },
            "adamw" => OptimizerConfig::Adamw { lr, weight_decay: 0.01 },
            "rmsprop" => OptimizerConfig::Rmsprop { lr, momentum: 0.0, weight_decay: 0.0 },
            other => return Err(format!("unknown optimizer {other:?}: use sgd, adam, adamw or rmsprop").into()),
        };
    }
    match &mut c.optimizer {
        OptimizerConfig::Sgd { lr, momentum, nesterov, weight_decay } => {
            *lr = a.lr.unwrap_or(*lr);
            *momentum = a.momentum.unwrap_or(*momentum);
            *nesterov |= a.nesterov;
            *weight_decay = a.weight_decay.unwrap_or(*weight_decay);
        }
        OptimizerConfig::Rmsprop { lr, momentum, weight_decay } => {
            *lr = a.lr.unwrap_or(*lr);
            *momentum = a.momentum.unwrap_or(*momentum);
            *weight_decay = a.weight_decay.unwrap_or(*weight_decay);
        }
        OptimizerConfig::Adam { lr, weight_decay } | OptimizerConfig::Adamw { lr, weight_decay } => {
            *lr = a.lr.unwrap_or(*lr);
            *weight_decay = a.weight_decay.unwrap_or(*weight_decay);
        }
    }
    if let Some(s) = &a.schedule {
        c.schedule = match s.as_str() {
            "constant" => ScheduleConfig::Constant,
            "cosine" => ScheduleConfig::Cosine { warmup_steps: a.warmup_steps.unwrap_or(0), min_lr: 0.0 },
            "onecycle" => ScheduleConfig::OneCycle { pct_start: 0.3 },
            "step" => ScheduleConfig::Step { step_size: 1000, gamma: 0.5 },
            "plateau" => ScheduleConfig::Plateau { factor: 0.1, patience: 2 },
            other => {
                return Err(
                    format!("unknown schedule {other:?}: use constant, cosine, onecycle, step or plateau").into()
                )
            }
        };
    }
    c.clip_grad_norm = a.clip_grad_norm.or(c.clip_grad_norm);
    if let Some(v) = a.label_smoothing {
        c.label_smoothing = v;
    }
    if a.augment_crop.is_some() || a.augment_flip {
        c.augment = AugmentConfig {
            crop_padding: a.augment_crop.unwrap_or(c.augment.crop_padding),
            hflip: a.augment_flip || c.augment.hflip,
        };
    }
    c.val = a.val.or(c.val);
    c.labels_per_class = a.labels_per_class.or(c.labels_per_class);
    if let Some(ClassList(classes)) = &a.classes {
        c.classes = Some(classes.clone());
    }
    if let Some(p) = a.early_stopping {
        c.early_stopping = Some(EarlyStopping { patience: p, min_delta: 0.0 });
    }
    if let Some(v) = a.checkpoint_every {
        c.checkpoint_every = v;
    }
    c.progress = !a.quiet;
    c.validate()?;
    Ok(c)
}

/// `jizen train`.
pub fn train(a: &TrainArgs) -> Result<()> {
    match &a.resume {
        Some(path) => {
            if a.model.is_some() || a.data.is_some() || a.run.has_run_settings() {
                return Err("with --resume the model, data and settings come from the checkpoint; \
                            drop the other training flags (start a new --out to change them)"
                    .into());
            }
            resume(&a.out, path, a.data_dir.clone())
        }
        None => {
            let config = train_config(&a.run, &a.config)?;
            let name = a.data.clone().expect("clap requires --data without --resume");
            let data = datasets::open_for_run(&name, a.data_dir.as_deref(), &config)?;
            let model = a.model.as_deref().expect("clap requires --model without --resume");
            let spec = model_spec(model, &data.input, data.classes)?;
            Job { command: "train", spec, config, data, out: a.out.clone(), resume: None, start: None }.run()
        }
    }
}

/// Continues the run in `out` from `path` (`latest`: its newest periodic checkpoint).
pub fn resume(out: &Path, path: &str, data_dir: Option<PathBuf>) -> Result<()> {
    let path = if path == "latest" {
        jizen_train::checkpoint::list_steps(&out.join("checkpoints"))
            .pop()
            .map(|(_, p)| p)
            .ok_or_else(|| format!("{}: no checkpoint to resume from in checkpoints/", out.display()))?
    } else {
        PathBuf::from(path)
    };
    let ck = Checkpoint::load(&path)?;
    let meta = ck.meta(&path)?;
    let missing = || format!("{}: the checkpoint does not record its model, config and data", path.display());
    let spec = meta.model.clone().ok_or_else(missing)?;
    let config = meta.train.clone().ok_or_else(missing)?;
    let name = meta.data.clone().ok_or_else(missing)?;
    if meta.finished {
        return Err(format!("{}: that run has finished; nothing to resume", path.display()).into());
    }
    println!("jizen: resuming {} at step {} (epoch {})", path.display(), meta.step, meta.epoch + 1);
    let data = datasets::open_for_run(&name, data_dir.as_deref(), &config)?;
    // A fine-tuning run keeps its freezing and stages; its weights come from the checkpoint.
    let start = meta.lineage.clone().map(|lineage| Start { parent: None, lineage });
    Job { command: "resume", spec, config, data, out: out.to_path_buf(), resume: Some(path), start }.run()
}

/// Where a fine-tuning run's weights come from.
pub struct Start {
    /// The parent checkpoint's model tensors and the manifest that loads them (`None` when
    /// resuming: the run's own checkpoint has the weights).
    pub parent: Option<std::collections::BTreeMap<String, jizen_tensor::Tensor>>,
    /// The lineage written into the run's checkpoints (its manifest drives freezing).
    pub lineage: jizen_train::Lineage,
}

/// One training run from the command line: build, (load,) train, test, report.
pub struct Job {
    pub command: &'static str,
    pub spec: ModelSpec,
    pub config: TrainConfig,
    pub data: datasets::Data,
    pub out: PathBuf,
    pub resume: Option<PathBuf>,
    pub start: Option<Start>,
}

impl Job {
    pub fn run(self) -> Result<()> {
        let Job { command, spec, config, data, out, resume, start } = self;
        let model = Model::build(&spec, jizen_tensor::DType::F32, config.seed)?;
        println!(
            "jizen {command}: {} ({} parameters) on {} ({} train, {} val, {} test), {}, {} epochs, batch {}, {} threads",
            spec.name,
            model.num_parameters_string(),
            data.name,
            data.train.len(),
            data.val.as_ref().map_or(0, |v| v.len()),
            data.test.len(),
            config.objective.name(),
            config.epochs,
            config.batch_size,
            jizen_tensor::num_threads()
        );
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let write = |name: &str, text: String| -> Result<()> {
            std::fs::write(out.join(name), text).map_err(|e| format!("{}: {e}", out.join(name).display()).into())
        };
        write("config.toml", toml_of(&config)?)?;
        write("model.toml", spec.to_toml()?)?;
        let mut trainer = Trainer::new(config.clone(), &out)?.data_name(data.name.clone()).callback(Printer);
        if let Some(start) = start {
            let manifest = start.lineage.manifest.clone().unwrap_or_default();
            if let Some(state) = &start.parent {
                let report = manifest.load(&model, state)?;
                println!("load report:\n  {}", report.to_text().replace('\n', "\n  "));
                write("load_report.json", serde_json::to_string_pretty(&report)?)?;
                let mut lineage = start.lineage.clone();
                lineage.load_report = Some(report);
                trainer = trainer.lineage(lineage);
            } else {
                trainer = trainer.lineage(start.lineage.clone());
            }
            trainer = trainer.transfer(manifest);
        }
        let report = trainer.fit(&model, data.train.clone(), data.val.clone(), resume.as_deref())?;
        println!(
            "trained {} steps in {:.1} s{}",
            report.steps,
            report.elapsed_s,
            if report.stopped_early { " (stopped early)" } else { "" }
        );
        if config.objective == jizen_train::Objective::Supervised {
            let test = Evaluator::default().evaluate(&model, data.test.clone())?;
            write("test.json", serde_json::to_string_pretty(&test)?)?;
            println!("\ntest set: {}", test.to_text());
            println!("test accuracy {:.2}%", 100.0 * test.accuracy);
            for target in [0.98, 0.99, 0.993] {
                if let Some(r) = read_records(&out.join("metrics.jsonl"))?
                    .iter()
                    .find(|r| r.split == "val" && r.accuracy.is_some_and(|a| a >= target))
                {
                    println!(
                        "  validation accuracy first reached {:.1}% after {:.1} s (epoch {})",
                        100.0 * target,
                        r.elapsed_s,
                        r.epoch + 1
                    );
                }
            }
        }
        println!(
            "wrote {0}/final.safetensors, {0}/best.safetensors, {0}/metrics.jsonl, {0}/metrics.csv, {0}/curves.svg, \
             {0}/curves.png",
            out.display()
        );
        Ok(())
    }
}

fn toml_of(c: &TrainConfig) -> Result<String> {
    Ok(toml::to_string(c).map_err(|e| e.to_string())?)
}

/// Prints each validation record as it comes.
struct Printer;

impl jizen_train::Callback for Printer {
    fn on_record(&mut self, r: &jizen_train::Record) {
        if r.split == "val" {
            let accuracy = r.accuracy.map_or(String::new(), |a| format!("  val accuracy {:.2}%", 100.0 * a));
            println!(
                "epoch {:>3}  step {:>7}  val loss {:.4}{accuracy}  lr {:.2e}  {:.1} s",
                r.epoch + 1,
                r.step,
                r.loss,
                r.lr,
                r.elapsed_s
            );
            let _ = std::io::stdout().flush();
        }
    }
}

/// The model, data set and checkpoint behind `eval` and `predict`.
fn open_for_inference(
    checkpoint: &Path,
    data: &Option<String>,
    data_dir: &Option<PathBuf>,
) -> Result<(Predictor, datasets::Data)> {
    let predictor = Predictor::from_checkpoint(checkpoint)?;
    let ck = Checkpoint::load(checkpoint)?;
    let meta = ck.meta(checkpoint)?;
    let name =
        data.clone().or_else(|| meta.data.clone()).ok_or("the checkpoint does not name its data; pass --data")?;
    // The splits the run used (its validation hold-out and classes), without augmentation.
    let config = TrainConfig { augment: AugmentConfig::default(), ..meta.train.clone().unwrap_or_default() };
    let data = datasets::open_for_run(&name, data_dir.as_deref(), &config)?;
    predictor.model().check_input_shape(&data.input)?;
    Ok((predictor, data))
}

/// `jizen eval`.
pub fn eval(a: &EvalArgs) -> Result<()> {
    let (predictor, data) = open_for_inference(&a.checkpoint, &a.data, &a.data_dir)?;
    let split = data.split(a.split)?;
    let report = Evaluator { batch_size: 512, top_k: a.top_k.max(1) }.evaluate(predictor.model(), split)?;
    println!("{} on {} ({:?} split)\n{}", a.checkpoint.display(), data.name, a.split, report.to_text());
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// `jizen predict`.
pub fn predict(a: &PredictArgs) -> Result<()> {
    let (predictor, data) = open_for_inference(&a.checkpoint, &a.data, &a.data_dir)?;
    let mut split = data.split(a.split)?;
    if let Some(n) = a.limit {
        let n = n.min(split.len());
        split = std::sync::Arc::new(jizen_data::Subset::new(split, (0..n).collect())?);
    }
    let labels = split.batch(&(0..split.len()).collect::<Vec<_>>())?.1.to_vec::<i64>()?;
    let predictions = predictor.predict_dataset(split, a.top_k.max(1))?;
    let mut csv = String::from("index,label,predicted,probability,top_k\n");
    for (i, (p, l)) in predictions.iter().zip(&labels).enumerate() {
        let top: Vec<String> = p.top_k.iter().map(|(c, q)| format!("{c}:{q:.4}")).collect();
        csv += &format!("{i},{l},{},{:.6},{}\n", p.label, p.probabilities[p.label], top.join(" "));
    }
    match &a.out {
        Some(path) => {
            std::fs::write(path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("wrote {} predictions to {}", predictions.len(), path.display());
        }
        None => print!("{csv}"),
    }
    Ok(())
}

/// `jizen summary`.
pub fn summary(a: &SummaryArgs) -> Result<()> {
    let spec = if a.model.ends_with(".safetensors") {
        let path = Path::new(&a.model);
        let ck = Checkpoint::load(path)?;
        ck.meta(path)?
            .model
            .clone()
            .ok_or_else(|| format!("{}: the checkpoint does not record its model", path.display()))?
    } else {
        model_spec(&a.model, &a.input, a.classes)?
    };
    let model = Model::build(&spec, jizen_tensor::DType::F32, 0)?;
    println!("{}", Summary::of(&model)?);
    Ok(())
}

pub trait ModelExt {
    fn num_parameters_string(&self) -> String;
    fn check_input_shape(&self, input: &[usize]) -> Result<()>;
}

impl ModelExt for Model {
    fn num_parameters_string(&self) -> String {
        use jizen_nn::Module;
        jizen_models::thousands(self.num_parameters() as u64)
    }

    fn check_input_shape(&self, input: &[usize]) -> Result<()> {
        if self.spec().input != input {
            return Err(format!(
                "the model takes samples of shape {:?} but the data has {:?} (a checkpoint for another data set?)",
                self.spec().input,
                input
            )
            .into());
        }
        Ok(())
    }
}
