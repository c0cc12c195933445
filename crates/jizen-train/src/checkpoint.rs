//! Checkpoints: one safetensors file holding the model's parameters and buffers, the optimizer's
//! state and the generators' states, with the run's metadata as JSON in the header.
//!
//! Layout of the tensors:
//! - model parameters and buffers under their own names (`0.weight`, `1.running_mean`), so that
//!   `safetensors.torch.load_file` followed by `load_state_dict(..., strict=False)` reads the
//!   weights of a jizen checkpoint directly into the equivalent PyTorch model;
//! - `optimizer/<key>` for the optimizer state (`optimizer/state.0.exp_avg`);
//! - `rng/<module path>` for each dropout generator's xoshiro state, as an i64 `[4]`.
//!
//! Model names never contain `/`, so the three never collide. The metadata key `jizen` holds
//! [`CheckpointMeta`] as JSON. Files without it (weights saved by PyTorch) load as weights only.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use jizen_models::ModelSpec;
use jizen_nn::{LoadReport, Module, Optimizer};
use jizen_tensor::{safetensors, DType, Rng, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::{Error, Result};

const OPTIMIZER: &str = "optimizer/";
const RNG: &str = "rng/";
const META_KEY: &str = "jizen";

/// Where a run stands and how it got there: everything besides tensors that a checkpoint holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The jizen version that wrote it.
    pub jizen_version: String,
    /// The model, as a spec that rebuilds it.
    pub model: Option<ModelSpec>,
    /// The training config of the run.
    pub train: Option<TrainConfig>,
    /// What the model was trained on (a data-set name or path).
    pub data: Option<String>,
    /// Optimizer steps taken.
    pub step: u64,
    /// The epoch in progress (0-based) when saved.
    pub epoch: u64,
    /// Batches of that epoch already consumed: where the data loader resumes.
    pub batch_in_epoch: u64,
    /// Whether the run had finished when this was saved.
    pub finished: bool,
    /// The learning rate of each parameter group when saved.
    pub group_lrs: Vec<f64>,
    /// Reduce-on-plateau state (best, bad epochs, cooldown), if that schedule is used.
    pub plateau: Option<(f64, usize, usize)>,
    /// Best validation accuracy so far and the epoch it came at (for best-model checkpoints and
    /// early stopping).
    pub best: Option<(f64, u64)>,
    /// The latest metrics (`val_accuracy`, `train_loss`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Where the starting weights came from (`None`: a random initialisation from the seed).
    #[serde(default)]
    pub lineage: Option<Lineage>,
}

/// One ancestor of a checkpoint: the run that produced the weights a later run started from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ancestor {
    /// The checkpoint file as it was named when loaded.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// What it was trained on.
    pub data: Option<String>,
    /// The training objective (`supervised`, `autoencoder`, `denoising-autoencoder`).
    pub objective: String,
    /// The model's name.
    pub model: Option<String>,
    /// Optimizer steps it had taken.
    pub step: u64,
    /// The seed of the random initialisation (for the first ancestor) or of its run.
    pub seed: Option<u64>,
}

/// How a run's starting weights were obtained: the parent checkpoint, the manifest used to load
/// it and what loading did, and the parent's own ancestors, so the chain back to the first random
/// initialisation survives even when older files are gone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The checkpoint loaded, newest ancestor first, then its ancestors.
    pub ancestors: Vec<Ancestor>,
    /// The transfer manifest used to load the parent.
    pub manifest: Option<crate::transfer::TransferManifest>,
    /// What loading did with every key.
    pub load_report: Option<crate::transfer::TransferReport>,
}

impl Lineage {
    /// The lineage of a run that starts from the checkpoint at `path` (already read as `ck`).
    pub fn from_parent(
        path: &Path,
        ck: &Checkpoint,
        manifest: crate::transfer::TransferManifest,
        load_report: crate::transfer::TransferReport,
    ) -> Result<Lineage> {
        use sha2::Digest;
        let bytes = std::fs::read(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        let sha256: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let meta = ck.meta.clone().unwrap_or_default();
        let me = Ancestor {
            path: path.display().to_string(),
            sha256,
            data: meta.data.clone(),
            objective: meta.train.as_ref().map_or_else(|| "unknown (weights only)".to_string(), |t| t.objective.name()),
            model: meta.model.as_ref().map(|m| m.name.clone()),
            step: meta.step,
            seed: meta.train.as_ref().map(|t| t.seed),
        };
        let mut ancestors = vec![me];
        ancestors.extend(meta.lineage.map(|l| l.ancestors).unwrap_or_default());
        Ok(Lineage { ancestors, manifest: Some(manifest), load_report: Some(load_report) })
    }
}

impl CheckpointMeta {
    /// Metadata stamped with this build's version.
    pub fn new() -> Self {
        CheckpointMeta { jizen_version: env!("CARGO_PKG_VERSION").to_string(), ..Default::default() }
    }
}

/// The contents of a checkpoint file.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// Model parameters and buffers by name.
    pub model: BTreeMap<String, Tensor>,
    /// Optimizer state by the optimizer's own keys (empty for weights-only files).
    pub optimizer: BTreeMap<String, Tensor>,
    /// Generator states by module path.
    pub rngs: BTreeMap<String, [u64; 4]>,
    /// Run metadata; `None` for a file that jizen did not write.
    pub meta: Option<CheckpointMeta>,
}

impl Checkpoint {
    /// Captures `model` (parameters, buffers, generators) and, if given, the optimizer state.
    pub fn capture(model: &dyn Module, optimizer: Option<&dyn Optimizer>, meta: CheckpointMeta) -> Checkpoint {
        Checkpoint {
            model: jizen_nn::state_dict(model),
            optimizer: optimizer.map(|o| o.state_dict()).unwrap_or_default(),
            rngs: rng_states(model),
            meta: Some(meta),
        }
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename): a crash leaves either
    /// the old file or the new one at `path`, never a torn one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = self.model.iter().map(|(k, t)| (k.clone(), t.clone())).collect();
        if let Some(bad) = named.iter().find(|(k, _)| k.contains('/')) {
            return Err(Error::Msg(format!("model key {:?} contains '/', which checkpoints reserve", bad.0)));
        }
        named.extend(self.optimizer.iter().map(|(k, t)| (format!("{OPTIMIZER}{k}"), t.clone())));
        named.extend(rng_tensors(&self.rngs)?);
        let mut metadata = HashMap::new();
        if let Some(meta) = &self.meta {
            metadata.insert(META_KEY.to_string(), serde_json::to_string(meta).map_err(|e| Error::Msg(e.to_string()))?);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
        }
        safetensors::save(named.iter().map(|(k, t)| (k.as_str(), t)), Some(&metadata), path)?;
        Ok(())
    }

    /// Reads a checkpoint. A truncated or corrupt file is an error naming the file and the
    /// problem; a safetensors file without jizen metadata loads as weights only.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        if !path.is_file() {
            return Err(Error::Msg(format!("{}: no such checkpoint file", path.display())));
        }
        let (tensors, metadata) = safetensors::load_with_metadata(path)?;
        let meta = match metadata.get(META_KEY) {
            None => None,
            Some(json) => Some(serde_json::from_str(json).map_err(|e| {
                Error::Msg(format!(
                    "{}: the jizen metadata is not valid ({e}); the file may be corrupt",
                    path.display()
                ))
            })?),
        };
        let mut tensors = tensors;
        let rngs = take_rngs(&mut tensors, path)?;
        let mut ck = Checkpoint { meta, rngs, ..Default::default() };
        for (k, t) in tensors {
            match k.strip_prefix(OPTIMIZER) {
                Some(key) => ck.optimizer.insert(key.to_string(), t),
                None => ck.model.insert(k, t),
            };
        }
        Ok(ck)
    }

    /// Copies the weights, buffers and generator states into `model`. With `strict`, any key
    /// that does not match (missing, unexpected, or of another shape) is an error listing them
    /// all, and nothing is loaded.
    pub fn restore_model(&self, model: &dyn Module, strict: bool) -> Result<LoadReport> {
        let report = jizen_nn::load_state_dict(model, &self.model, strict)
            .map_err(|e| Error::Msg(format!("the checkpoint does not fit this model: {e}")))?;
        restore_rngs(model, &self.rngs);
        Ok(report)
    }

    /// The run metadata, or an error explaining that the file holds weights only.
    pub fn meta(&self, path: &Path) -> Result<&CheckpointMeta> {
        self.meta.as_ref().ok_or_else(|| {
            Error::Msg(format!(
                "{}: holds weights only (no jizen metadata), so no run can resume from it",
                path.display()
            ))
        })
    }
}

/// The states of `model`'s generators (dropout masks) by module path.
pub fn rng_states(model: &dyn Module) -> BTreeMap<String, [u64; 4]> {
    let mut rngs = BTreeMap::new();
    model.visit_rngs("", &mut |name, rng| {
        rngs.insert(name, rng.lock().unwrap_or_else(|e| e.into_inner()).state());
    });
    rngs
}

/// Sets each generator of `model` that `rngs` names to its saved state.
pub fn restore_rngs(model: &dyn Module, rngs: &BTreeMap<String, [u64; 4]>) {
    model.visit_rngs("", &mut |name, rng| {
        if let Some(s) = rngs.get(&name) {
            *rng.lock().unwrap_or_else(|e| e.into_inner()) = Rng::from_state(*s);
        }
    });
}

/// Generator states as the `rng/<module path>` i64 `[4]` tensors a checkpoint file holds.
pub fn rng_tensors(rngs: &BTreeMap<String, [u64; 4]>) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::with_capacity(rngs.len());
    for (k, s) in rngs {
        let words: Vec<i64> = s.iter().map(|&w| w as i64).collect();
        out.push((format!("{RNG}{k}"), Tensor::from_vec(words, &[4])?));
    }
    Ok(out)
}

/// Removes the `rng/…` entries from tensors read out of `path` and returns them as states.
pub fn take_rngs(tensors: &mut BTreeMap<String, Tensor>, path: &Path) -> Result<BTreeMap<String, [u64; 4]>> {
    let keys: Vec<String> = tensors.keys().filter(|k| k.starts_with(RNG)).cloned().collect();
    let mut rngs = BTreeMap::new();
    for k in keys {
        let t = tensors.remove(&k).expect("key listed above");
        let words = t.to_vec::<i64>().ok().filter(|w| w.len() == 4 && t.dtype() == DType::I64);
        let w =
            words.ok_or_else(|| Error::Msg(format!("{}: {k} is not a generator state (i64 [4])", path.display())))?;
        rngs.insert(k[RNG.len()..].to_string(), [w[0] as u64, w[1] as u64, w[2] as u64, w[3] as u64]);
    }
    Ok(rngs)
}

/// The periodic checkpoint of step `step` in `dir`: `step-00000123.safetensors`.
pub fn step_path(dir: &Path, step: u64) -> PathBuf {
    dir.join(format!("step-{step:08}.safetensors"))
}

/// The periodic checkpoints in `dir`, oldest first.
pub fn list_steps(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("step-")?.strip_suffix(".safetensors")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    found.sort();
    found
}
