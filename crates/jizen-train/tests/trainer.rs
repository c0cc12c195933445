//! The Trainer, Evaluator and Predictor on the embedded UCI digits (no external data): learning,
//! the files a run writes, exact resumption, and the errors for bad runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jizen_data::{Dataset, Digits};
use jizen_models::{zoo, Layer, Model, ModelSpec};
use jizen_tensor::{DType, Tensor};
use jizen_train::{Checkpoint, EarlyStopping, Evaluator, OptimizerConfig, Predictor, TrainConfig, Trainer};

mod common;

fn digits() -> (Arc<dyn Dataset>, Arc<dyn Dataset>) {
    common::digits_split()
}

/// An MLP with batch norm and dropout, so that resumption must restore buffers and generators.
fn spec() -> ModelSpec {
    use Layer::*;
    ModelSpec {
        name: "digits-mlp".into(),
        input: vec![64],
        layers: vec![
            Linear { out: 64, bias: true },
            BatchNorm,
            Relu,
            Dropout { p: 0.2 },
            Linear { out: 10, bias: true },
        ],
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 32,
        seed: 7,
        optimizer: OptimizerConfig::Sgd { lr: 0.05, momentum: 0.9, nesterov: false, weight_decay: 1e-4 },
        log_every: 10,
        checkpoint_every: 20,
        keep_checkpoints: 100,
        progress: false,
        ..Default::default()
    }
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("trainer", name)
}

fn weights(path: &Path) -> Vec<(String, Vec<u8>)> {
    let ck = Checkpoint::load(path).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = ck
        .model
        .iter()
        .map(|(k, t)| {
            let bytes = match t.dtype() {
                DType::I64 => t.to_vec::<i64>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
                _ => t.to_vec::<f32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            (k.clone(), bytes)
        })
        .collect();
    out.extend(ck.optimizer.iter().map(|(k, t)| {
        let v = t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
        (format!("optimizer/{k}"), v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }));
    out
}

#[test]
fn a_run_learns_and_writes_its_files() {
    let (train, val) = digits();
    let out = tmp("files");
    let model = Model::build(&spec(), DType::F32, 0).unwrap();
    let report = Trainer::new(config(), &out).unwrap().fit(&model, train, Some(val.clone()), None).unwrap();
    let last = report.last_val.as_ref().unwrap();
    assert!(last.accuracy > 0.9, "val accuracy {:.3}", last.accuracy);
    assert_eq!(report.steps, 3 * 44);
    for f in ["metrics.jsonl", "metrics.csv", "curves.svg", "curves.png", "best.safetensors", "final.safetensors"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let png = std::fs::read(out.join("curves.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(std::fs::read_to_string(out.join("curves.svg")).unwrap().contains("validation"));
    let records = jizen_train::metrics::read_records(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(records.iter().filter(|r| r.split == "val").count(), 3);
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), records.len() + 1);

    // The evaluator and the predictor agree with each other on the final checkpoint.
    let predictor = Predictor::from_checkpoint(&out.join("final.safetensors")).unwrap();
    let eval = Evaluator::default().evaluate(predictor.model(), val.clone()).unwrap();
    assert_eq!(eval.examples, 397);
    assert_eq!(eval.confusion.iter().flatten().sum::<u64>(), 397);
    assert!(eval.top_k_accuracy >= eval.accuracy);
    let preds = predictor.predict_dataset(val.clone(), 3).unwrap();
    let labels = val.batch(&(0..397).collect::<Vec<_>>()).unwrap().1.to_vec::<i64>().unwrap();
    let hits = preds.iter().zip(&labels).filter(|(p, &l)| p.label as i64 == l).count();
    assert_eq!(hits as f64 / 397.0, eval.accuracy);
    assert!(preds.iter().all(|p| (p.probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9 && p.top_k.len() == 3));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_resumed_run_ends_with_the_same_bits() {
    let (train, val) = digits();
    let whole = tmp("whole");
    let model = Model::build(&spec(), DType::F32, 0).unwrap();
    Trainer::new(config(), &whole).unwrap().fit(&model, train.clone(), Some(val.clone()), None).unwrap();

    // Resume from a mid-epoch checkpoint (step 60 of 132: epoch 1, batch 16) into a model
    // initialised differently, in another directory holding a copy of that checkpoint.
    let resumed = tmp("resumed");
    std::fs::create_dir_all(resumed.join("checkpoints")).unwrap();
    let mid = resumed.join("checkpoints/step-00000060.safetensors");
    std::fs::copy(whole.join("checkpoints/step-00000060.safetensors"), &mid).unwrap();
    let other = Model::build(&spec(), DType::F32, 99).unwrap();
    let report = Trainer::new(config(), &resumed).unwrap().fit(&other, train, Some(val), Some(&mid)).unwrap();
    assert_eq!(report.steps, 132);
    assert_eq!(weights(&whole.join("final.safetensors")), weights(&resumed.join("final.safetensors")));
    // The metrics log reads as if the run had never stopped.
    let a = jizen_train::metrics::read_records(&whole.join("metrics.jsonl")).unwrap();
    let b = jizen_train::metrics::read_records(&resumed.join("metrics.jsonl")).unwrap();
    let strip = |r: &[jizen_train::Record]| -> Vec<(u64, String, u64, Option<u64>)> {
        r.iter().map(|r| (r.step, r.split.clone(), r.loss.to_bits(), r.accuracy.map(f64::to_bits))).collect()
    };
    let tail: Vec<_> = strip(&a).into_iter().filter(|r| r.0 > 60).collect();
    assert_eq!(strip(&b), tail);
    std::fs::remove_dir_all(&whole).ok();
    std::fs::remove_dir_all(&resumed).ok();
}

#[test]
fn a_corrupt_checkpoint_is_a_clear_error_and_the_previous_one_survives() {
    let (train, _) = digits();
    let out = tmp("corrupt");
    let model = Model::build(&spec(), DType::F32, 0).unwrap();
    let cfg = TrainConfig { epochs: 1, ..config() };
    Trainer::new(cfg.clone(), &out).unwrap().fit(&model, train.clone(), None, None).unwrap();
    let trainer = Trainer::new(cfg, &out).unwrap();
    let newest = trainer.latest_checkpoint().unwrap();
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let mut trainer = trainer;
    let err = trainer.fit(&model, train, None, Some(&newest)).unwrap_err().to_string();
    assert!(err.contains(&newest.display().to_string()), "{err}");
    assert!(err.contains("the previous checkpoint is intact: resume from it with --resume"), "{err}");
    assert!(out.join("checkpoints/step-00000040.safetensors").is_file());
    assert!(Checkpoint::load(&out.join("checkpoints/step-00000040.safetensors")).is_ok());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_checkpoint_from_another_model_lists_the_keys_that_do_not_fit() {
    let (train, _) = digits();
    let out = tmp("other-model");
    let model = Model::build(&spec(), DType::F32, 0).unwrap();
    let cfg = TrainConfig { epochs: 1, ..config() };
    Trainer::new(cfg, &out).unwrap().fit(&model, train, None, None).unwrap();
    let ck = Checkpoint::load(&out.join("final.safetensors")).unwrap();
    let other = Model::build(&zoo("mlp", &[64], 10).unwrap(), DType::F32, 0).unwrap();
    let err = ck.restore_model(&other, true).unwrap_err().to_string();
    assert!(err.contains("missing [\"3.weight\"") && err.contains("\"1.running_mean\""), "{err}");
    assert!(err.contains("1.weight: model [512, 64], state dict [64]"), "{err}");
    std::fs::remove_dir_all(&out).ok();
}

/// Digits whose examples from `bad` on have NaN pixels.
struct Poisoned(Arc<Digits>, usize);

impl Dataset for Poisoned {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn batch(&self, indices: &[usize]) -> jizen_tensor::Result<(Tensor, Tensor)> {
        let (x, y) = self.0.batch(indices)?;
        let mut v = x.to_vec::<f32>()?;
        for (row, &i) in v.chunks_mut(64).zip(indices) {
            if i >= self.1 {
                row[0] = f32::NAN;
            }
        }
        Ok((Tensor::from_vec(v, x.shape())?, y))
    }
}

#[test]
fn a_nan_loss_stops_the_run_naming_the_step_and_the_last_finite_loss() {
    let out = tmp("nan");
    let model = Model::build(&spec(), DType::F32, 0).unwrap();
    let data: Arc<dyn Dataset> = Arc::new(Poisoned(Arc::new(Digits::uci8x8()), 1780));
    let err = Trainer::new(config(), &out).unwrap().fit(&model, data, None, None).unwrap_err().to_string();
    assert!(err.contains("the loss became NaN at step"), "{err}");
    assert!(err.contains("the last finite loss was"), "{err}");
    assert!(!out.join("final.safetensors").exists());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn early_stopping_ends_a_run_that_stopped_improving() {
    let (train, val) = digits();
    let out = tmp("early");
    let model = Model::build(&spec(), DType::F32, 0).unwrap();
    let cfg = TrainConfig {
        epochs: 10,
        optimizer: OptimizerConfig::Sgd { lr: 1e-9, momentum: 0.0, nesterov: false, weight_decay: 0.0 },
        early_stopping: Some(EarlyStopping { patience: 2, min_delta: 0.01 }),
        ..config()
    };
    let report = Trainer::new(cfg, &out).unwrap().fit(&model, train, Some(val), None).unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.epochs, 3);
    assert_eq!(report.best.unwrap().1, 0);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn bad_configs_are_rejected_before_training() {
    let err = TrainConfig::from_toml("batch_size = 0").unwrap_err().to_string();
    assert!(err.contains("batch_size"), "{err}");
    let err = TrainConfig::from_toml("epochs = 2\nlearning_rate = 0.1").unwrap_err().to_string();
    assert!(err.contains("learning_rate"), "{err}");
    let c = TrainConfig::from_toml("epochs = 4\n[optimizer]\nname = \"sgd\"\nlr = 0.1\nmomentum = 0.9\n[schedule]\nname = \"cosine\"\nwarmup_steps = 10\n").unwrap();
    assert_eq!(c.epochs, 4);
    assert_eq!(c.optimizer, OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9, nesterov: false, weight_decay: 0.0 });
}
