//! The model language: a per-sample input shape and a list of layers, as plain serde data (TOML
//! on disk), and the built-in zoo written in it.

use jizen_tensor::{Error, Result};
use serde::{Deserialize, Serialize};

/// One layer of a [`ModelSpec`]. Input sizes (features, channels) are never written: they are
/// inferred from the shape the previous layer produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    /// `torch.nn.Linear` over the last dimension.
    Linear {
        /// Output features.
        out: usize,
        /// Whether the layer has a bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `torch.nn.Conv2d` with a square kernel.
    Conv2d {
        /// Output channels.
        out: usize,
        /// Kernel height and width.
        kernel: usize,
        /// Stride (default 1).
        #[serde(default = "one")]
        stride: usize,
        /// Zero padding on every side (default 0).
        #[serde(default)]
        padding: usize,
        /// Whether the layer has a bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `BatchNorm1d` on `[N, C]` input, `BatchNorm2d` on `[N, C, H, W]`.
    BatchNorm,
    /// `torch.nn.LayerNorm` over the last dimension.
    LayerNorm,
    /// `torch.nn.ReLU`.
    Relu,
    /// `torch.nn.LeakyReLU` with the given negative slope.
    LeakyRelu {
        /// Slope for negative inputs.
        slope: f64,
    },
    /// `torch.nn.GELU` (exact, erf form).
    Gelu,
    /// `torch.nn.Tanh`.
    Tanh,
    /// `torch.nn.Sigmoid`.
    Sigmoid,
    /// `torch.nn.MaxPool2d` with a square window; the stride defaults to the window.
    MaxPool2d {
        /// Window height and width.
        kernel: usize,
        /// Stride (default: the window).
        #[serde(default)]
        stride: Option<usize>,
    },
    /// `torch.nn.AvgPool2d` with a square window; the stride defaults to the window.
    AvgPool2d {
        /// Window height and width.
        kernel: usize,
        /// Stride (default: the window).
        #[serde(default)]
        stride: Option<usize>,
    },
    /// `torch.nn.AdaptiveAvgPool2d` to an `out × out` grid.
    AdaptiveAvgPool2d {
        /// Output height and width.
        out: usize,
    },
    /// `torch.nn.Flatten`: everything but the batch dimension into one.
    Flatten,
    /// `torch.nn.Dropout`.
    Dropout {
        /// Probability of zeroing an element.
        p: f64,
    },
    /// `body(x) + shortcut(x)`; an empty shortcut is the identity. Parameters are named
    /// `body.<i>.*` and `shortcut.<i>.*`.
    Residual {
        /// The residual branch.
        body: Vec<Layer>,
        /// A projection when the body changes the shape (default: identity).
        #[serde(default)]
        shortcut: Vec<Layer>,
    },
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

/// A network as data: the shape of one input sample and the layers applied to it in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// A name for reports (`cnn`, or the TOML file's own).
    pub name: String,
    /// The shape of one sample, without the batch dimension (`[1, 28, 28]`, `[784]`).
    pub input: Vec<usize>,
    /// The layers, applied in order.
    pub layers: Vec<Layer>,
}

impl ModelSpec {
    /// Parses a spec from TOML text (`name`, `input`, then `[[layers]]` tables with a `type`).
    ///
    /// ```
    /// let spec = jizen_models::ModelSpec::from_toml(r#"
    ///     name = "tiny"
    ///     input = [4]
    ///     [[layers]]
    ///     type = "linear"
    ///     out = 3
    /// "#)?;
    /// assert_eq!(spec.layers.len(), 1);
    /// # Ok::<(), jizen_tensor::Error>(())
    /// ```
    pub fn from_toml(text: &str) -> Result<ModelSpec> {
        toml::from_str(text).map_err(|e| Error::invalid("ModelSpec::from_toml", e.to_string().trim().to_string()))
    }

    /// The spec as TOML text (what [`ModelSpec::from_toml`] reads back).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::invalid("ModelSpec::to_toml", e.to_string()))
    }

    /// The number of classes (or outputs) of the last `Linear` layer, if any.
    pub fn outputs(&self) -> Option<usize> {
        self.layers.iter().rev().find_map(|l| match l {
            Layer::Linear { out, .. } => Some(*out),
            _ => None,
        })
    }
}

/// The names [`zoo`] knows.
pub const ZOO: [&str; 4] = ["mlp", "cnn", "lenet5", "resnet-cifar"];

/// A built-in network for inputs of shape `input` (one sample) and `classes` outputs:
/// - `mlp`: flatten, 512, 256, `classes`, ReLU between (the benchmark's 784-512-256-10);
/// - `cnn`: two blocks of 3×3 convolution (32, then 64 channels, padding 1), batch norm, ReLU and
///   2×2 max pooling, then a 128-unit hidden layer (the benchmark's MNIST CNN);
/// - `lenet5`: LeCun et al.'s layout (6 and 16 channels of 5×5 convolutions, 120-84-`classes`),
///   with ReLU and max pooling, padded to keep 28×28 inputs at the classic 32×32 geometry;
/// - `resnet-cifar`: ResNet-20 of He et al. 2016 for 32×32 images (16/32/64 channels, three
///   basic blocks per stage, 1×1 projection shortcuts where the shape changes, global average
///   pooling).
pub fn zoo(name: &str, input: &[usize], classes: usize) -> Result<ModelSpec> {
    use Layer::*;
    let conv = |out, kernel, stride, padding| Conv2d { out, kernel, stride, padding, bias: true };
    let conv_nb = |out, kernel, stride, padding| Conv2d { out, kernel, stride, padding, bias: false };
    let pool2 = || MaxPool2d { kernel: 2, stride: None };
    let linear = |out| Linear { out, bias: true };
    let layers = match name {
        "mlp" => vec![Flatten, linear(512), Relu, linear(256), Relu, linear(classes)],
        "cnn" => vec![
            conv(32, 3, 1, 1),
            BatchNorm,
            Relu,
            pool2(),
            conv(64, 3, 1, 1),
            BatchNorm,
            Relu,
            pool2(),
            Flatten,
            linear(128),
            Relu,
            linear(classes),
        ],
        "lenet5" => {
            let pad = if input.len() == 3 && input[1] == 28 { 2 } else { 0 };
            vec![
                conv(6, 5, 1, pad),
                Relu,
                pool2(),
                conv(16, 5, 1, 0),
                Relu,
                pool2(),
                Flatten,
                linear(120),
                Relu,
                linear(84),
                Relu,
                linear(classes),
            ]
        }
        "resnet-cifar" => {
            let mut layers = vec![conv_nb(16, 3, 1, 1), BatchNorm, Relu];
            let mut channels = 16;
            for (stage, width) in [16, 32, 64].into_iter().enumerate() {
                for block in 0..3 {
                    let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                    let body = vec![conv_nb(width, 3, stride, 1), BatchNorm, Relu, conv_nb(width, 3, 1, 1), BatchNorm];
                    let shortcut = if stride != 1 || channels != width {
                        vec![conv_nb(width, 1, stride, 0), BatchNorm]
                    } else {
                        vec![]
                    };
                    layers.push(Residual { body, shortcut });
                    layers.push(Relu);
                    channels = width;
                }
            }
            layers.extend([AdaptiveAvgPool2d { out: 1 }, Flatten, linear(classes)]);
            layers
        }
        other => {
            return Err(Error::invalid(
                "zoo",
                format!("unknown model {other:?}; the zoo has {} (or give a .toml file)", ZOO.join(", ")),
            ))
        }
    };
    Ok(ModelSpec { name: name.to_string(), input: input.to_vec(), layers })
}
