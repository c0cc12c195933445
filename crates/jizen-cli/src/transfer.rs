//! `jizen pretrain`, `jizen finetune` and `jizen info`: the pre-train → fine-tune path and the
//! lineage of every checkpoint.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use jizen_models::{Layer, ModelSpec};
use jizen_train::{Checkpoint, Lineage, Objective, OnShapeMismatch, Stages, TransferManifest};

use crate::datasets;
use crate::train::{model_spec, train_config, Job, RunFlags, Start};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// What pre-training optimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PretrainObjective {
    /// Classify the source data's labels.
    Supervised,
    /// Reconstruct the input (labels unused).
    Autoencoder,
    /// Reconstruct the input from a copy with `--noise` of its values zeroed (labels unused).
    Denoising,
}

/// Arguments of `jizen pretrain`.
#[derive(Args)]
pub struct PretrainArgs {
    /// The objective.
    #[arg(long, value_enum, default_value = "supervised")]
    objective: PretrainObjective,
    /// The network (zoo name or TOML file). For the autoencoders, its layers before the last
    /// Linear are the encoder; a decoder mirroring the encoder's Linear widths is added.
    #[arg(long)]
    model: String,
    /// The source data set.
    #[arg(long)]
    data: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Fraction of input values zeroed by the denoising objective.
    #[arg(long, default_value_t = 0.3)]
    noise: f64,
    /// Autoencoders: first train each encoder layer alone, this many epochs, as an autoencoder
    /// of the codes below it (greedy layer-wise, a stacked autoencoder); then the whole stack
    /// trains for --epochs. 0: no greedy stage.
    #[arg(long, default_value_t = 0)]
    greedy_epochs: u64,
    /// A training config TOML file; the flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "runs/pretrain")]
    out: PathBuf,
    #[command(flatten)]
    run: RunFlags,
}

/// Arguments of `jizen finetune`.
#[derive(Args)]
pub struct FinetuneArgs {
    /// The pre-trained checkpoint to start from.
    #[arg(long)]
    from: PathBuf,
    /// The target data set.
    #[arg(long)]
    data: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The target network (default: the checkpoint's, with a new head for the target's classes;
    /// for an autoencoder, its encoder and a new head).
    #[arg(long)]
    model: Option<String>,
    #[command(flatten)]
    transfer: TransferFlags,
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "runs/finetune")]
    out: PathBuf,
    #[command(flatten)]
    run: RunFlags,
}

/// How a checkpoint loads into the target and how the parts train (a manifest file and flags).
#[derive(Args)]
pub struct TransferFlags {
    /// A transfer manifest TOML file; the flags below add to it.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Rename checkpoint keys: "FROM -> TO" with `*` (repeatable).
    #[arg(long)]
    remap: Vec<String>,
    /// Leave out checkpoint keys matching this pattern (repeatable).
    #[arg(long)]
    skip: Vec<String>,
    /// Keep model keys matching this pattern at their fresh initialisation (repeatable).
    #[arg(long)]
    reinit: Vec<String>,
    /// Re-initialise every tensor whose shape differs instead of failing.
    #[arg(long)]
    reinit_mismatched: bool,
    /// Freeze model parameters matching this pattern (repeatable).
    #[arg(long)]
    freeze: Vec<String>,
    /// A learning-rate multiplier: PATTERN=FACTOR (repeatable), e.g. "0.*=0.1".
    #[arg(long)]
    lr_mult: Vec<String>,
    /// Epochs training only the head before the other blocks join.
    #[arg(long)]
    probe_epochs: Option<u64>,
    /// Epochs between blocks joining, from the top (0: all at once).
    #[arg(long)]
    unfreeze_every: Option<u64>,
    /// Warm-up steps of each block that joins late.
    #[arg(long)]
    join_warmup: Option<u64>,
}

/// Arguments of `jizen compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// The pre-trained checkpoint.
    #[arg(long)]
    from: PathBuf,
    /// The target data set (its test split measures both arms).
    #[arg(long)]
    data: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The target network (default: derived from the checkpoint, as `finetune` does).
    #[arg(long)]
    model: Option<String>,
    /// Label budgets, labels per class (`all` for every label).
    #[arg(long, value_delimiter = ',', default_value = "10,100,all")]
    labels: Vec<String>,
    /// Number of seeds per budget (seeds 0, 1, ...).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Optimizer steps per run.
    #[arg(long, default_value_t = 300)]
    steps: u64,
    /// Test accuracy every this many steps.
    #[arg(long, default_value_t = 25)]
    eval_every: u64,
    #[command(flatten)]
    transfer: TransferFlags,
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
    #[command(flatten)]
    run: RunFlags,
}

/// `jizen compare`.
pub fn compare(a: &CompareArgs) -> Result<()> {
    let mut train = train_config(&a.run, &a.config)?;
    if a.steps == 0 || a.eval_every == 0 || a.seeds == 0 {
        return Err("--steps, --eval-every and --seeds must be at least 1".into());
    }
    train.val = Some(0);
    let data = datasets::open_for_run(&a.data, a.data_dir.as_deref(), &train)?;
    let ck = Checkpoint::load(&a.from)?;
    let (spec, manifest) = target_and_manifest(&a.from, &ck, &data, a.model.as_deref(), &a.transfer)?;
    let labels = a
        .labels
        .iter()
        .map(|l| match l.trim() {
            "all" => Ok(usize::MAX),
            n => n
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("--labels {n:?}: expected a positive number or `all`")),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let cfg = jizen_train::compare::CompareConfig {
        labels_per_class: labels,
        seeds: (0..a.seeds).collect(),
        steps: a.steps,
        eval_every: a.eval_every,
        train,
    };
    println!(
        "jizen compare: {} from {} against from scratch on {}: budgets {:?} labels/class, {} seeds, {} steps each",
        spec.name,
        a.from.display(),
        data.name,
        a.labels,
        a.seeds,
        a.steps
    );
    let task = jizen_train::compare::CompareTask {
        spec: &spec,
        checkpoint: (&a.from, &ck.model),
        manifest: &manifest,
        target: (&data.name, data.train.clone(), data.test.clone()),
    };
    let report = jizen_train::compare::compare(&task, &cfg, &a.out, &mut |line| println!("  {line}"))?;
    let md = report.to_markdown();
    println!("\n{md}");
    let write = |name: &str, text: String| -> Result<()> {
        std::fs::write(a.out.join(name), text).map_err(|e| format!("{}: {e}", a.out.join(name).display()).into())
    };
    write("report.md", md)?;
    write("report.json", serde_json::to_string_pretty(&report)?)?;
    let mut plots = Vec::new();
    for (name, chart) in report.charts() {
        write(&name, chart.to_svg())?;
        plots.push(name);
    }
    println!("wrote {0}/report.md, {0}/report.json and {1}", a.out.display(), plots.join(", "));
    Ok(())
}

/// Arguments of `jizen info`.
#[derive(Args)]
pub struct InfoArgs {
    /// A checkpoint.
    checkpoint: PathBuf,
}

/// The index of the last `Linear` of `layers`.
fn head_index(layers: &[Layer]) -> Option<usize> {
    layers.iter().rposition(|l| matches!(l, Layer::Linear { .. }))
}

/// An autoencoder around the encoder `spec.layers[..head]`: the decoder mirrors the encoder's
/// Linear widths back to the input size, ending in a sigmoid (inputs are in [0, 1]).
fn autoencoder(spec: &ModelSpec) -> Result<(ModelSpec, usize)> {
    let head = head_index(&spec.layers).ok_or("the autoencoder's model needs a Linear layer (its head is dropped)")?;
    let encoder = &spec.layers[..head];
    let widths: Vec<usize> = encoder
        .iter()
        .filter_map(|l| match l {
            Layer::Linear { out, .. } => Some(*out),
            _ => None,
        })
        .collect();
    if widths.is_empty() {
        return Err("the encoder (the layers before the last Linear) needs a Linear layer to give a code".into());
    }
    let mut layers = encoder.to_vec();
    for &w in widths.iter().rev().skip(1) {
        layers.extend([Layer::Linear { out: w, bias: true }, Layer::Relu]);
    }
    layers.extend([Layer::Linear { out: spec.input.iter().product(), bias: true }, Layer::Sigmoid]);
    Ok((ModelSpec { name: format!("{}-autoencoder", spec.name), input: spec.input.clone(), layers }, head))
}

/// `jizen pretrain`.
pub fn pretrain(a: &PretrainArgs) -> Result<()> {
    let mut config = train_config(&a.run, &a.config)?;
    let data = datasets::open_for_run(&a.data, a.data_dir.as_deref(), &config)?;
    let spec = model_spec(&a.model, &data.input, data.classes)?;
    let (spec, encoder_layers) = match a.objective {
        PretrainObjective::Supervised if a.greedy_epochs > 0 => {
            return Err("--greedy-epochs needs --objective autoencoder or denoising".into())
        }
        PretrainObjective::Supervised => (spec, None),
        objective => {
            let (ae, encoder_layers) = autoencoder(&spec)?;
            let noise = if objective == PretrainObjective::Denoising { a.noise } else { 0.0 };
            config.objective = Objective::Autoencoder { noise, encoder_layers: Some(encoder_layers) };
            config.validate()?;
            (ae, Some(encoder_layers))
        }
    };
    let start = match encoder_layers.filter(|_| a.greedy_epochs > 0) {
        None => None,
        Some(encoder_layers) => {
            let stage_config = jizen_train::TrainConfig { epochs: a.greedy_epochs, ..config.clone() };
            println!("jizen pretrain: greedy layer-wise stage, {} epochs per encoder layer", a.greedy_epochs);
            let greedy = jizen_train::stacked::pretrain(
                &spec,
                encoder_layers,
                &stage_config,
                &data.name,
                data.train.clone(),
                &a.out,
                &mut |line| println!("  {line}"),
            )?;
            println!("jizen pretrain: the whole stack, from the layers trained one by one");
            Some(Start { lineage: greedy.lineage()?, parent: Some(greedy.state) })
        }
    };
    Job { command: "pretrain", spec, config, data, out: a.out.clone(), resume: None, start }.run()
}

/// `jizen finetune`.
pub fn finetune(a: &FinetuneArgs) -> Result<()> {
    let config = train_config(&a.run, &a.config)?;
    let data = datasets::open_for_run(&a.data, a.data_dir.as_deref(), &config)?;
    let ck = Checkpoint::load(&a.from)?;
    let (spec, manifest) = target_and_manifest(&a.from, &ck, &data, a.model.as_deref(), &a.transfer)?;
    let lineage = Lineage::from_parent(&a.from, &ck, manifest, Default::default())?;
    let start = Start { parent: Some(ck.model), lineage };
    Job { command: "finetune", spec, config, data, out: a.out.clone(), resume: None, start: Some(start) }.run()
}

/// The target network (given, or derived from the checkpoint's: a new head for the target's
/// classes; an autoencoder's encoder and a head) and the manifest that loads the checkpoint
/// into it (the rules the derivation implies, a manifest file, then the flags).
pub fn target_and_manifest(
    from: &Path,
    ck: &Checkpoint,
    data: &datasets::Data,
    model: Option<&str>,
    t: &TransferFlags,
) -> Result<(ModelSpec, TransferManifest)> {
    let parent_spec = ck.meta.as_ref().and_then(|m| m.model.clone());
    let parent_objective = ck.meta.as_ref().and_then(|m| m.train.as_ref()).map(|t| t.objective.clone());
    let mut manifest = match &t.manifest {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            TransferManifest::from_toml(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => TransferManifest::default(),
    };
    let spec = match (model, &parent_spec) {
        (Some(m), _) => model_spec(m, &data.input, data.classes)?,
        (None, None) => {
            return Err(format!("{}: holds weights only; name the target with --model", from.display()).into())
        }
        (None, Some(parent)) => {
            if parent.input != data.input {
                return Err(format!(
                    "{}: the model takes samples of shape {:?} but {} has {:?}; give --model for the target",
                    from.display(),
                    parent.input,
                    data.name,
                    data.input
                )
                .into());
            }
            let mut layers = parent.layers.clone();
            if let Some(Objective::Autoencoder { encoder_layers: Some(e), .. }) = parent_objective {
                // Keep the encoder, drop the decoder's tensors, add a fresh head.
                manifest.skip.extend((e..layers.len()).filter(|i| has_params(&layers[*i])).map(|i| format!("{i}.*")));
                layers.truncate(e);
                manifest.reinit.push(format!("{}.*", layers.len()));
                layers.push(Layer::Linear { out: data.classes, bias: true });
            } else {
                let head = head_index(&layers).ok_or("the checkpoint's model has no Linear head to replace")?;
                if let Layer::Linear { out, .. } = &mut layers[head] {
                    if *out != data.classes {
                        *out = data.classes;
                        manifest.reinit.push(format!("{head}.*"));
                    }
                }
            }
            let name = format!("{}-finetuned", parent.name.trim_end_matches("-autoencoder"));
            ModelSpec { name, input: data.input.clone(), layers }
        }
    };
    manifest.remap.extend(t.remap.iter().cloned());
    manifest.skip.extend(t.skip.iter().cloned());
    manifest.reinit.extend(t.reinit.iter().cloned());
    manifest.freeze.extend(t.freeze.iter().cloned());
    if t.reinit_mismatched {
        manifest.on_shape_mismatch = OnShapeMismatch::Reinit;
    }
    for rule in &t.lr_mult {
        let (pattern, factor) = rule
            .rsplit_once('=')
            .ok_or_else(|| format!("--lr-mult {rule:?}: expected PATTERN=FACTOR, e.g. \"0.*=0.1\""))?;
        let factor: f64 =
            factor.trim().parse().map_err(|_| format!("--lr-mult {rule:?}: {factor:?} is not a number"))?;
        manifest.lr_mult.insert(pattern.trim().to_string(), factor);
    }
    if t.probe_epochs.is_some() || t.unfreeze_every.is_some() || t.join_warmup.is_some() {
        let s = manifest.stages.get_or_insert_with(Stages::default);
        s.probe_epochs = t.probe_epochs.unwrap_or(s.probe_epochs);
        s.unfreeze_every = t.unfreeze_every.unwrap_or(s.unfreeze_every);
        s.warmup_steps = t.join_warmup.unwrap_or(s.warmup_steps);
    }
    // Validate the merged manifest as a file would be.
    let manifest = TransferManifest::from_toml(&toml::to_string(&manifest).map_err(|e| e.to_string())?)?;
    Ok((spec, manifest))
}

fn has_params(layer: &Layer) -> bool {
    matches!(
        layer,
        Layer::Linear { .. } | Layer::Conv2d { .. } | Layer::BatchNorm | Layer::LayerNorm | Layer::Residual { .. }
    )
}

/// `jizen info`.
pub fn info(a: &InfoArgs) -> Result<()> {
    let path: &Path = &a.checkpoint;
    let ck = Checkpoint::load(path)?;
    let params: usize = ck.model.values().map(|t| t.numel()).sum();
    println!("{}: {} tensors, {} values", path.display(), ck.model.len(), jizen_models::thousands(params as u64));
    let Some(meta) = &ck.meta else {
        println!("weights only (no jizen metadata): saved by another program, or by jizen_tensor::safetensors::save");
        return Ok(());
    };
    let objective = meta.train.as_ref().map_or("unknown".into(), |t| t.objective.name());
    println!(
        "model {}, trained on {} ({objective}), step {}, epoch {}{}, jizen {}",
        meta.model.as_ref().map_or("unknown", |m| m.name.as_str()),
        meta.data.as_deref().unwrap_or("unknown data"),
        meta.step,
        meta.epoch,
        if meta.finished { ", finished" } else { ", in progress" },
        meta.jizen_version
    );
    for (k, v) in &meta.metrics {
        println!("  {k}: {v:.6}");
    }
    println!("lineage:");
    println!("  this checkpoint");
    let ancestors = meta.lineage.as_ref().map(|l| l.ancestors.clone()).unwrap_or_default();
    if let Some(report) = meta.lineage.as_ref().and_then(|l| l.load_report.as_ref()) {
        println!(
            "    started from its parent: {} tensors loaded, {} re-initialised, {} skipped",
            report.loaded.len(),
            report.reinitialised.len(),
            report.skipped.len()
        );
    }
    for a in &ancestors {
        println!(
            "  <- {} (sha256 {}…): {} on {}, {}, step {}",
            a.path,
            &a.sha256[..12.min(a.sha256.len())],
            a.model.as_deref().unwrap_or("unknown model"),
            a.data.as_deref().unwrap_or("unknown data"),
            a.objective,
            a.step
        );
    }
    let first_seed = match ancestors.last() {
        Some(a) => a.seed,
        None => meta.train.as_ref().map(|t| t.seed),
    };
    match first_seed {
        Some(seed) => println!("  <- random initialisation (seed {seed})"),
        None => println!("  <- weights of unknown origin"),
    }
    Ok(())
}
