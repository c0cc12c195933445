//! `jizen probe`: how good a checkpoint's features are, against the same network at its random
//! initialisation (linear and k-NN probes, and a 2-D PCA of the features).

use std::path::PathBuf;

use clap::Args;
use jizen_train::probe::probe as run_probe;
use jizen_train::{AugmentConfig, Checkpoint, ProbeConfig, ProbeTask};

use crate::datasets;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Arguments of `jizen probe`.
#[derive(Args)]
pub struct ProbeArgs {
    /// A checkpoint written by jizen (its metadata describes the model).
    checkpoint: PathBuf,
    /// The data set whose features are probed (default: the one the checkpoint was trained on).
    #[arg(long)]
    data: Option<String>,
    /// Where the data set's files are (default: $JIZEN_DATA/NAME, else data/NAME).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Leading layers that form the feature extractor (default: every layer before the last
    /// Linear; for an autoencoder, its encoder).
    #[arg(long)]
    layers: Option<usize>,
    /// Training examples the probes are fitted on (at most).
    #[arg(long, default_value_t = 5000)]
    n_train: usize,
    /// Test examples the probes are scored on (at most).
    #[arg(long, default_value_t = 2000)]
    n_test: usize,
    /// Seeds the order the examples are drawn in.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where probe.md, probe.json, probe-pca.svg and probe-pca.png go.
    #[arg(long, default_value = "runs/probe")]
    out: PathBuf,
}

/// `jizen probe`.
pub fn probe(a: &ProbeArgs) -> Result<()> {
    if a.n_train == 0 || a.n_test == 0 {
        return Err("--n-train and --n-test must be at least 1".into());
    }
    let path = &a.checkpoint;
    let ck = Checkpoint::load(path)?;
    let meta = ck.meta.as_ref().ok_or_else(|| {
        format!("{}: holds weights only (no jizen metadata), so its model cannot be rebuilt", path.display())
    })?;
    let spec = meta.model.clone().ok_or_else(|| {
        format!("{}: the checkpoint does not describe its model, so it cannot be rebuilt", path.display())
    })?;
    let name = a
        .data
        .clone()
        .or_else(|| meta.data.clone())
        .ok_or_else(|| format!("{}: the checkpoint does not name its data; pass --data", path.display()))?;
    let objective = meta.train.as_ref().map(|t| t.objective.clone());
    let init_seed = meta.train.as_ref().map_or(0, |t| t.seed);
    let data = datasets::open(&name, a.data_dir.as_deref(), Some(0), init_seed, &AugmentConfig::default())?;
    if spec.input != data.input {
        return Err(format!(
            "{}: the model takes samples of shape {:?} but {} has {:?} (a checkpoint for another data set?)",
            path.display(),
            spec.input,
            data.name,
            data.input
        )
        .into());
    }
    println!(
        "jizen probe: {} from {} on {} ({} train, {} test examples available), {} threads",
        spec.name,
        path.display(),
        data.name,
        data.train.len(),
        data.test.len(),
        jizen_tensor::num_threads()
    );
    let task = ProbeTask {
        spec: &spec,
        weights: &ck.model,
        objective: objective.as_ref(),
        init_seed,
        train: data.train.clone(),
        test: data.test.clone(),
        checkpoint: Some(path.display().to_string()),
        data: Some(data.name.clone()),
    };
    let config =
        ProbeConfig { layers: a.layers, n_train: a.n_train, n_test: a.n_test, seed: a.seed, ..Default::default() };
    let report = run_probe(&task, &config, &a.out)?;
    let md = report.to_markdown();
    println!("\n{md}");
    let write = |file: &str, text: String| -> Result<()> {
        let p = a.out.join(file);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()).into())
    };
    write("probe.md", md)?;
    write("probe.json", serde_json::to_string_pretty(&report)?)?;
    println!("wrote {0}/probe.md, {0}/probe.json, {0}/probe-pca.svg, {0}/probe-pca.png", a.out.display());
    Ok(())
}
