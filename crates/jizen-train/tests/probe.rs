//! Representation probes on the embedded UCI digits (no external data): trained features beat
//! the random initialisation's, the PCA plots are written, and bad layer counts are clear errors.

use std::path::PathBuf;
use std::sync::Arc;

use jizen_data::Dataset;
use jizen_models::{Layer, Model, ModelSpec};
use jizen_tensor::DType;
use jizen_train::probe::{default_layers, feature_extractor, probe};
use jizen_train::{Checkpoint, Objective, OptimizerConfig, ProbeConfig, ProbeTask, TrainConfig, Trainer};

mod common;

fn digits() -> (Arc<dyn Dataset>, Arc<dyn Dataset>) {
    common::digits_split()
}

/// An MLP with a 16-unit code before its head: narrow enough that random features lose much of
/// what the pixels say, and trained ones keep it.
fn spec() -> ModelSpec {
    use Layer::*;
    ModelSpec {
        name: "digits-mlp".into(),
        input: vec![64],
        layers: vec![
            Linear { out: 32, bias: true },
            Relu,
            Linear { out: 16, bias: true },
            Relu,
            Linear { out: 10, bias: true },
        ],
    }
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("probe", name)
}

#[test]
fn trained_features_beat_the_random_initialisation() {
    let (train, test) = digits();
    let out = tmp("trained");
    let config = TrainConfig {
        epochs: 3,
        batch_size: 32,
        seed: 3,
        optimizer: OptimizerConfig::Adam { lr: 5e-3, weight_decay: 0.0 },
        keep_checkpoints: 0,
        progress: false,
        ..Default::default()
    };
    let model = Model::build(&spec(), DType::F32, config.seed).unwrap();
    Trainer::new(config, out.join("run")).unwrap().fit(&model, train.clone(), None, None).unwrap();

    // Probe the checkpoint as `jizen probe` does: spec, weights and seed from the file.
    let ck = Checkpoint::load(&out.join("run/final.safetensors")).unwrap();
    let meta = ck.meta.clone().unwrap();
    let spec = meta.model.unwrap();
    let train_config = meta.train.unwrap();
    let task = ProbeTask {
        spec: &spec,
        weights: &ck.model,
        objective: Some(&train_config.objective),
        init_seed: train_config.seed,
        train,
        test,
        checkpoint: Some("final.safetensors".into()),
        data: Some("uci8x8".into()),
    };
    let report = probe(&task, &ProbeConfig::default(), &out).unwrap();
    println!("{}", report.to_markdown());
    assert_eq!(report.layers, 4, "default: every layer before the head");
    assert_eq!(report.feature_dim, 16);
    assert_eq!((report.n_train, report.n_test), (1400, 397));
    assert_eq!(report.kept, ["Linear", "ReLU", "Linear", "ReLU"]);
    assert!(
        report.trained.logistic_accuracy > report.random.logistic_accuracy,
        "trained {:.3} vs random {:.3}",
        report.trained.logistic_accuracy,
        report.random.logistic_accuracy
    );
    assert!(report.trained.logistic_accuracy > 0.8, "{:.3}", report.trained.logistic_accuracy);
    assert!((0.0..=1.0).contains(&report.trained.knn_accuracy) && (0.0..=1.0).contains(&report.random.knn_accuracy));
    assert_eq!(report.trained.pca_explained_variance_ratio.len(), 2);
    let md = report.to_markdown();
    assert!(md.contains("| random initialisation |") && md.contains("| pre-trained |"), "{md}");

    for f in ["probe-pca.svg", "probe-pca.png"] {
        let len = std::fs::metadata(out.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{f} missing or empty");
    }
    let png = std::fs::read(out.join("probe-pca.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = std::fs::read_to_string(out.join("probe-pca.svg")).unwrap();
    assert!(svg.contains("random initialisation") && svg.contains("pre-trained"));
    assert!(!out.join("probe-pca.tmp.png").exists());

    // The same probe, same seeds: the same accuracies.
    let again = probe(&task, &ProbeConfig::default(), &out).unwrap();
    assert_eq!(again.trained.logistic_accuracy, report.trained.logistic_accuracy);
    assert_eq!(again.random.knn_accuracy, report.random.knn_accuracy);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn asking_for_more_layers_than_the_model_has_is_a_clear_error() {
    let (train, test) = digits();
    let spec = spec();
    let weights = jizen_nn::state_dict(&Model::build(&spec, DType::F32, 0).unwrap());
    let task = ProbeTask {
        spec: &spec,
        weights: &weights,
        objective: None,
        init_seed: 0,
        train,
        test,
        checkpoint: None,
        data: None,
    };
    let out = tmp("too-many");
    for k in [6, 0] {
        let config = ProbeConfig { layers: Some(k), ..Default::default() };
        let err = probe(&task, &config, &out).unwrap_err().to_string();
        assert!(err.contains(&format!("cannot keep {k} layers")) && err.contains("digits-mlp has 5 layers"), "{err}");
    }
    assert!(!out.join("probe-pca.svg").exists());
}

#[test]
fn default_layers_follow_the_head_or_the_encoder() {
    let spec = spec();
    assert_eq!(default_layers(&spec, None).unwrap(), 4);
    assert_eq!(default_layers(&spec, Some(&Objective::Supervised)).unwrap(), 4);
    let ae = Objective::Autoencoder { noise: 0.3, encoder_layers: Some(2) };
    assert_eq!(default_layers(&spec, Some(&ae)).unwrap(), 2);
    let headless = ModelSpec { layers: vec![Layer::Relu], ..spec.clone() };
    assert!(default_layers(&headless, None).unwrap_err().to_string().contains("no Linear head"));
}

#[test]
fn weights_missing_for_a_kept_layer_are_an_error() {
    let spec = spec();
    let mut weights = jizen_nn::state_dict(&Model::build(&spec, DType::F32, 0).unwrap());
    weights.remove("2.bias");
    // Layers 0..2 do not need it; layers 0..4 do.
    assert!(feature_extractor(&spec, 2, &weights, DType::F32).is_ok());
    let err = feature_extractor(&spec, 4, &weights, DType::F32).err().unwrap().to_string();
    assert!(err.contains("missing [\"2.bias\"]"), "{err}");
}
