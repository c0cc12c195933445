//! Greedy layer-wise pre-training of a stacked denoising autoencoder on the embedded digits:
//! every stage trains (its reconstruction error falls), stage 2 learns from stage 1's codes,
//! and the gathered weights are each stage's own, under the full autoencoder's names.

mod common;

use jizen_models::{Layer, Model, ModelSpec};
use jizen_nn::Module;
use jizen_tensor::{no_grad, safetensors, DType};
use jizen_train::metrics::read_records;
use jizen_train::{stacked, Objective, TrainConfig};

fn autoencoder() -> ModelSpec {
    let lin = |out| Layer::Linear { out, bias: true };
    let layers =
        vec![Layer::Flatten, lin(32), Layer::Relu, lin(16), Layer::Relu, lin(32), Layer::Relu, lin(64), Layer::Sigmoid];
    ModelSpec { name: "ae".into(), input: vec![64], layers }
}

#[test]
fn each_layer_trains_on_the_codes_below_it_and_the_weights_gather_under_the_full_names() {
    let (train, _) = common::digits_split();
    let out = common::tmp("stacked", "sdae");
    let config = TrainConfig {
        epochs: 3,
        batch_size: 32,
        objective: Objective::Autoencoder { noise: 0.3, encoder_layers: Some(5) },
        ..Default::default()
    };
    let mut lines = Vec::new();
    let greedy = stacked::pretrain(&autoencoder(), 5, &config, "digits", train.clone(), &out, &mut |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[2].contains("layer 2 of 2") && lines[2].contains("[32]"), "{lines:?}");

    // Every autoencoder tensor came from a stage, and from the right one.
    let full: Vec<String> =
        jizen_nn::state_dict(&Model::build(&autoencoder(), DType::F32, 0).unwrap()).into_keys().collect();
    assert_eq!(greedy.state.keys().cloned().collect::<Vec<_>>(), full);
    let stage = |k: usize| safetensors::load(&greedy.checkpoints[k]).unwrap();
    let same =
        |a: &jizen_tensor::Tensor, b: &jizen_tensor::Tensor| a.to_vec::<f32>().unwrap() == b.to_vec::<f32>().unwrap();
    // Stage 1 is [Flatten, Linear, ReLU | Linear(64), Sigmoid]: 1.* -> 1.*, 3.* -> 7.*.
    assert!(same(&stage(0)["1.weight"], &greedy.state["1.weight"]));
    assert!(same(&stage(0)["3.weight"], &greedy.state["7.weight"]));
    // Stage 2 is [Linear(16), ReLU | Linear(32), ReLU] on 32 codes: 0.* -> 3.*, 2.* -> 5.*.
    assert!(same(&stage(1)["0.weight"], &greedy.state["3.weight"]));
    assert!(same(&stage(1)["2.bias"], &greedy.state["5.bias"]));
    assert_eq!(greedy.state["3.weight"].shape(), &[16, 32]);

    // Each stage learnt: its reconstruction error fell.
    for k in 1..=2 {
        let records = read_records(&out.join(format!("layer-{k}/metrics.jsonl"))).unwrap();
        let train_losses: Vec<f64> = records.iter().filter(|r| r.split == "train").map(|r| r.loss).collect();
        assert!(train_losses.len() >= 2 && train_losses.last() < train_losses.first(), "layer {k}: {train_losses:?}");
    }

    // The gathered weights reconstruct the digits better than a fresh autoencoder does.
    let mse = |m: &Model| -> f64 {
        let (x, _) = train.batch(&(0..256).collect::<Vec<_>>()).unwrap();
        m.set_training(false);
        let r = no_grad(|| m.forward(&x)).unwrap();
        jizen_tensor::mse_loss(&r, &x.flatten(1, -1).unwrap(), jizen_tensor::Reduction::Mean).unwrap().item().unwrap()
    };
    let fresh = Model::build(&autoencoder(), DType::F32, 0).unwrap();
    let before = mse(&fresh);
    jizen_nn::load_state_dict(&fresh, &greedy.state, true).unwrap();
    let after = mse(&fresh);
    assert!(after < before, "reconstruction error {before} -> {after}");

    // The lineage names both stages, the last first.
    let lineage = greedy.lineage().unwrap();
    let models: Vec<_> = lineage.ancestors.iter().map(|a| a.model.clone().unwrap()).collect();
    assert_eq!(models, ["ae-layer2", "ae-layer1"]);
    assert_eq!(lineage.ancestors[0].data.as_deref(), Some("digits (codes of layer 1)"));
    std::fs::remove_dir_all(&out).ok();
}
