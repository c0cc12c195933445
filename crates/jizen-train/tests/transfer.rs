//! Transfer manifests: remapping, new heads, clear errors for what does not fit, frozen parts
//! (batch norm included), discriminative learning rates and staged unfreezing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use jizen_data::{Dataset, Digits};
use jizen_models::{Layer, Model, ModelSpec};
use jizen_nn::Module;
use jizen_tensor::{DType, Tensor};
use jizen_train::transfer::glob;
use jizen_train::{OptimizerConfig, Stages, TrainConfig, Trainer, TransferManifest};

mod common;

fn spec(classes: usize) -> ModelSpec {
    use Layer::*;
    ModelSpec {
        name: "mlp-bn".into(),
        input: vec![64],
        layers: vec![Linear { out: 32, bias: true }, BatchNorm, Relu, Flatten, Linear { out: classes, bias: true }],
    }
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("transfer", name)
}

fn values(m: &dyn Module) -> BTreeMap<String, Vec<f64>> {
    jizen_nn::state_dict(m)
        .into_iter()
        .map(|(k, t)| (k, t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap()))
        .collect()
}

fn config(epochs: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 64,
        optimizer: OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9, nesterov: false, weight_decay: 0.0 },
        progress: false,
        ..Default::default()
    }
}

fn digits() -> Arc<dyn Dataset> {
    Arc::new(Digits::uci8x8())
}

#[test]
fn globs_and_remap_rules() {
    assert!(glob("features.*", "features.0.weight"));
    assert!(glob("*.running_mean", "3.body.1.running_mean"));
    assert!(!glob("features.*", "head.weight"));
    assert!(glob("0.weight", "0.weight") && !glob("0.weight", "0.weight2"));
    let m = TransferManifest::from_toml("remap = [\"encoder.* -> features.*\"]\n").unwrap();
    assert_eq!(m.remap.len(), 1);
    let err = TransferManifest::from_toml("remap = [\"encoder.* features\"]\n").unwrap_err().to_string();
    assert!(err.contains("expected \"from -> to\""), "{err}");
    let err = TransferManifest::from_toml("frozen = [\"0.*\"]\n").unwrap_err().to_string();
    assert!(err.contains("frozen"), "{err}");
}

#[test]
fn a_new_head_is_reinitialised_and_everything_else_loads() {
    let source = Model::build(&spec(10), DType::F32, 1).unwrap();
    let state = jizen_nn::state_dict(&source);
    let target = Model::build(&spec(5), DType::F32, 2).unwrap();

    // Without a rule, the head's shapes do not fit: an error, and nothing loaded.
    let before = values(&target);
    let err = TransferManifest::default().load(&target, &state).unwrap_err().to_string();
    assert!(err.contains("4.weight: model [5, 32], checkpoint [10, 32]"), "{err}");
    assert!(err.contains("nothing was loaded"), "{err}");
    assert_eq!(values(&target), before);

    let manifest = TransferManifest { reinit: vec!["4.*".into()], ..Default::default() };
    let report = manifest.load(&target, &state).unwrap();
    assert_eq!(report.loaded.len(), 7, "{}", report.to_text());
    let reinit: Vec<&str> = report.reinitialised.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(reinit, ["4.bias", "4.weight"]);
    let (now, src) = (values(&target), values(&source));
    assert_eq!(now["0.weight"], src["0.weight"]);
    assert_eq!(now["1.running_var"], src["1.running_var"]);
    assert_eq!(now["4.weight"], before["4.weight"]);
    assert!(report.to_text().contains("4.weight [5, 32] (checkpoint [10, 32])"), "{}", report.to_text());
}

#[test]
fn remapped_and_skipped_keys() {
    let source = Model::build(&spec(10), DType::F32, 1).unwrap();
    // A checkpoint whose names carry an `encoder.` prefix and an extra decoder tensor.
    let mut state: BTreeMap<String, Tensor> =
        jizen_nn::state_dict(&source).into_iter().map(|(k, t)| (format!("encoder.{k}"), t)).collect();
    state.insert("decoder.weight".into(), Tensor::zeros(&[64, 32], DType::F32));
    let target = Model::build(&spec(10), DType::F32, 2).unwrap();

    let err = TransferManifest::default().load(&target, &state).unwrap_err().to_string();
    assert!(err.contains("checkpoint key \"encoder.0.weight\" is not in the model (closest: [\"0.weight\""), "{err}");

    let m =
        TransferManifest { remap: vec!["encoder.* -> *".into()], skip: vec!["decoder.*".into()], ..Default::default() };
    let report = m.load(&target, &state).unwrap();
    assert_eq!(report.loaded.len(), 9);
    assert_eq!(report.skipped, ["decoder.weight"]);
    assert!(report.loaded.contains(&("encoder.0.weight".into(), "0.weight".into())));
    assert_eq!(values(&target)["4.weight"], values(&source)["4.weight"]);
}

#[test]
fn patterns_that_match_nothing_are_errors_with_the_closest_names() {
    let model = Model::build(&spec(10), DType::F32, 1).unwrap();
    let state = jizen_nn::state_dict(&model);
    let m = TransferManifest { freeze: vec!["O.*".into()], reinit: vec!["head.*".into()], ..Default::default() };
    let err = m.load(&model, &state).unwrap_err().to_string();
    assert!(err.contains("freeze \"O.*\" matches no model key"), "{err}");
    assert!(err.contains("reinit \"head.*\" matches no model key"), "{err}");
}

#[test]
fn frozen_parts_keep_weights_and_batch_norm_statistics() {
    let model = Model::build(&spec(10), DType::F32, 1).unwrap();
    let before = values(&model);
    let manifest = TransferManifest { freeze: vec!["0.*".into(), "1.*".into()], ..Default::default() };
    let out = tmp("frozen");
    Trainer::new(config(1), &out).unwrap().transfer(manifest).fit(&model, digits(), None, None).unwrap();
    let after = values(&model);
    for k in ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"] {
        assert_eq!(after[k], before[k], "{k} must not change when frozen");
    }
    assert_ne!(after["4.weight"], before["4.weight"]);

    // Unfrozen, the same run moves the batch-norm statistics.
    let model = Model::build(&spec(10), DType::F32, 1).unwrap();
    Trainer::new(config(1), tmp("unfrozen")).unwrap().fit(&model, digits(), None, None).unwrap();
    assert_ne!(values(&model)["1.running_mean"], before["1.running_mean"]);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn staged_unfreezing_trains_the_head_first_then_joins_blocks_from_the_top() {
    let stages = Stages { probe_epochs: 1, unfreeze_every: 1, warmup_steps: 10 };
    let manifest = TransferManifest { stages: Some(stages), ..Default::default() };
    // Blocks from the top: 4 (head, epoch 0), 1 (batch norm, epoch 1), 0 (first layer, epoch 2).
    let one = Model::build(&spec(10), DType::F32, 1).unwrap();
    let before = values(&one);
    Trainer::new(config(1), tmp("stage1")).unwrap().transfer(manifest.clone()).fit(&one, digits(), None, None).unwrap();
    let v = values(&one);
    assert_ne!(v["4.weight"], before["4.weight"]);
    for k in ["0.weight", "1.weight", "1.running_mean"] {
        assert_eq!(v[k], before[k], "{k} trains only after the linear probe");
    }
    let two = Model::build(&spec(10), DType::F32, 1).unwrap();
    Trainer::new(config(2), tmp("stage2")).unwrap().transfer(manifest.clone()).fit(&two, digits(), None, None).unwrap();
    let v = values(&two);
    assert_ne!(v["1.weight"], before["1.weight"]);
    assert_ne!(v["1.running_mean"], before["1.running_mean"]);
    assert_eq!(v["0.weight"], before["0.weight"]);
    let three = Model::build(&spec(10), DType::F32, 1).unwrap();
    let out = tmp("stage3");
    Trainer::new(config(3), &out).unwrap().transfer(manifest).fit(&three, digits(), None, None).unwrap();
    assert_ne!(values(&three)["0.weight"], before["0.weight"]);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn learning_rate_multipliers_make_parameter_groups() {
    let model = Model::build(&spec(10), DType::F32, 1).unwrap();
    let before = values(&model);
    let mut lr_mult = BTreeMap::new();
    lr_mult.insert("0.*".to_string(), 0.0);
    lr_mult.insert("1.*".to_string(), 0.1);
    let out = tmp("lr-mult");
    let manifest = TransferManifest { lr_mult, ..Default::default() };
    let report = Trainer::new(config(1), &out).unwrap().transfer(manifest).fit(&model, digits(), None, None).unwrap();
    assert_eq!(values(&model)["0.weight"], before["0.weight"], "a zero multiplier leaves the block in place");
    let ck = jizen_train::Checkpoint::load(&report.final_checkpoint).unwrap();
    let mut lrs = ck.meta.unwrap().group_lrs;
    lrs.sort_by(f64::total_cmp);
    assert_eq!(lrs, [0.0, 0.1 * 0.1, 0.1]);
    std::fs::remove_dir_all(&out).ok();
}
