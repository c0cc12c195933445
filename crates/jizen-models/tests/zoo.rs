//! The zoo and the model language: parameter counts against the PyTorch definitions, shape
//! inference and its errors, TOML round trips, and the summary's measured activation memory.

use jizen_models::{zoo, Layer, Model, ModelSpec, Summary, ZOO};
use jizen_nn::Module;
use jizen_tensor::{DType, Tensor};

#[test]
fn zoo_parameter_counts_match_pytorch() {
    // Counts of the equivalent torch.nn definitions (docs/pytorch.md), summed by hand:
    // cnn: 320 + 64 + 18,496 + 128 + 401,536 + 1,290.
    let cases: [(&str, &[usize], usize); 5] = [
        ("mlp", &[1, 28, 28], 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10),
        ("cnn", &[1, 28, 28], 421_834),
        // LeNet-5: 156 + 2,416 + 48,120 + 10,164 + 850.
        ("lenet5", &[1, 28, 28], 61_706),
        ("lenet5", &[3, 32, 32], 62_006),
        // ResNet-20: 269,722 with parameter-free shortcuts (He et al.'s option A: stem 464,
        // stages 14,016 + 51,072 + 203,520, head 650), plus two 1×1 projections with batch norm.
        ("resnet-cifar", &[3, 32, 32], 269_722 + (16 * 32 + 64) + (32 * 64 + 128)),
    ];
    for (name, input, want) in cases {
        let model = Model::build(&zoo(name, input, 10).unwrap(), DType::F32, 0).unwrap();
        assert_eq!(model.num_parameters(), want, "{name} {input:?}");
        let mut shape = vec![2];
        shape.extend_from_slice(input);
        let y = model.forward(&Tensor::zeros(&shape, DType::F32)).unwrap();
        assert_eq!(y.shape(), &[2, 10], "{name}");
    }
}

#[test]
fn parameter_names_follow_the_layer_list() {
    let model = Model::build(&zoo("resnet-cifar", &[3, 32, 32], 10).unwrap(), DType::F32, 0).unwrap();
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(&names[..3], ["0.weight", "1.weight", "1.bias"]);
    assert!(names.contains(&"3.body.0.weight".to_string()));
    assert!(names.contains(&"9.shortcut.0.weight".to_string()), "{names:?}");
    let buffers: Vec<String> = model.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert!(buffers.contains(&"1.running_mean".to_string()));
}

#[test]
fn every_zoo_model_round_trips_through_toml() {
    for name in ZOO {
        let spec = zoo(name, &[3, 32, 32], 7).unwrap();
        let text = spec.to_toml().unwrap();
        assert_eq!(ModelSpec::from_toml(&text).unwrap(), spec, "{name}:\n{text}");
    }
}

#[test]
fn a_toml_model_builds_with_inferred_sizes() {
    let spec = ModelSpec::from_toml(
        r#"
        name = "small"
        input = [1, 8, 8]
        [[layers]]
        type = "conv2d"
        out = 4
        kernel = 3
        padding = 1
        [[layers]]
        type = "relu"
        [[layers]]
        type = "max_pool2d"
        kernel = 2
        [[layers]]
        type = "flatten"
        [[layers]]
        type = "dropout"
        p = 0.1
        [[layers]]
        type = "linear"
        out = 3
        "#,
    )
    .unwrap();
    let model = Model::build(&spec, DType::F32, 0).unwrap();
    assert_eq!(model.output_shape(), &[3]);
    assert_eq!(model.num_parameters(), (4 * 9 + 4) + (64 * 3 + 3));
    let kinds: Vec<&str> = model.layers().iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Dropout", "Linear"]);
    assert_eq!(model.layers()[0].flops, 2 * 9 * 4 * 64);
}

#[test]
fn specs_that_do_not_fit_are_errors_naming_the_layer() {
    let flat = ModelSpec {
        name: "bad".into(),
        input: vec![784],
        layers: vec![Layer::Conv2d { out: 4, kernel: 3, stride: 1, padding: 0, bias: true }],
    };
    let err = Model::build(&flat, DType::F32, 0).err().unwrap().to_string();
    assert!(err.contains("layer 0") && err.contains("[C, H, W]"), "{err}");

    let tiny = zoo("cnn", &[1, 2, 2], 10).unwrap();
    let err = Model::build(&tiny, DType::F32, 0).err().unwrap().to_string();
    assert!(err.contains("window does not fit"), "{err}");

    let err = ModelSpec::from_toml("name = \"x\"\ninput = [4]\n[[layers]]\ntype = \"lstm\"\n").unwrap_err().to_string();
    assert!(err.contains("lstm"), "{err}");
    let err = zoo("vgg", &[3, 32, 32], 10).unwrap_err().to_string();
    assert!(err.contains("mlp, cnn, lenet5, resnet-cifar"), "{err}");
}

#[test]
fn wrong_input_shapes_are_errors_not_panics() {
    let model = Model::build(&zoo("cnn", &[1, 28, 28], 10).unwrap(), DType::F32, 0).unwrap();
    let err = model.forward(&Tensor::zeros(&[4, 3, 32, 32], DType::F32)).unwrap_err().to_string();
    assert!(err.contains("cnn expects input [N, 1, 28, 28], got [4, 3, 32, 32]"), "{err}");
}

#[test]
fn summary_measures_what_the_graph_holds() {
    // One bias-free Linear(4 -> 3): each sample holds its input (4 floats) and output (3 floats).
    let spec = ModelSpec { name: "one".into(), input: vec![4], layers: vec![Layer::Linear { out: 3, bias: false }] };
    let s = Summary::of(&Model::build(&spec, DType::F32, 0).unwrap()).unwrap();
    assert_eq!(s.activation_bytes_per_sample, (4 + 3) * 4);
    assert_eq!(s.params, 12);
    assert_eq!(s.flops, 2 * 4 * 3);

    let cnn = Summary::of(&Model::build(&zoo("cnn", &[1, 28, 28], 10).unwrap(), DType::F32, 0).unwrap()).unwrap();
    // At least the outputs of the two convolutions ([32, 28, 28] and [64, 14, 14] floats).
    assert!(cnn.activation_bytes_per_sample >= (32 * 28 * 28 + 64 * 14 * 14) * 4, "{cnn}");
    assert!(cnn.to_string().contains("activations held for backward"));
}
