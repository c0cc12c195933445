//! From a [`ModelSpec`] to modules: one walk over the layers that infers each layer's input size
//! from the shape before it, creates the module, and records what `jizen summary` shows.

use std::sync::Mutex;

use jizen_nn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Gelu, LayerNorm, LeakyRelu,
    Linear, MaxPool2d, Module, Relu, Residual, Sequential, Sigmoid, Tanh,
};
use jizen_tensor::{ConvOptions, DType, Error, Result, Rng, Tensor};

use crate::spec::{Layer, ModelSpec};

/// What one layer of a built model is: its parameter-name prefix, its type, the shape it
/// produces for one sample, its parameter count and its forward FLOPs per sample (a
/// multiply-add counts as two; an element-wise operation as one per element).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The prefix of its parameter names (`3`, `3.body.0`).
    pub name: String,
    /// The layer type as PyTorch names it (`Conv2d`, `BatchNorm2d`).
    pub kind: String,
    /// Output shape for one sample.
    pub output: Vec<usize>,
    /// Number of parameter elements.
    pub params: usize,
    /// Forward floating-point operations per sample.
    pub flops: u64,
    /// Nesting depth (0 for top-level layers, 1 inside a residual block, ...).
    pub depth: usize,
}

/// A network built from a [`ModelSpec`]: a [`Sequential`] of its layers that checks its input
/// against the spec's sample shape before running.
pub struct Model {
    spec: ModelSpec,
    net: Sequential,
    layers: Vec<LayerInfo>,
    output: Vec<usize>,
}

impl Model {
    /// Builds the layers of `spec` in `dtype`, their weights initialised as PyTorch does by
    /// default (drawn in layer order from `Rng::new(seed)`; each dropout layer's mask generator
    /// is seeded from the same stream). A spec whose layers do not fit the shapes flowing into
    /// them is an error naming the layer.
    pub fn build(spec: &ModelSpec, dtype: DType, seed: u64) -> Result<Model> {
        if spec.input.is_empty() || spec.input.contains(&0) {
            return Err(Error::invalid(
                "Model::build",
                format!("input shape {:?} must be non-empty and positive", spec.input),
            ));
        }
        let mut rng = Rng::new(seed);
        let mut layers = Vec::new();
        let (net, output) = build_seq(&spec.layers, &spec.input, "", 0, dtype, &mut rng, &mut layers)?;
        Ok(Model { spec: spec.clone(), net, layers, output })
    }

    /// The spec this model was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Every layer, nested ones after their block, in order.
    pub fn layers(&self) -> &[LayerInfo] {
        &self.layers
    }

    /// The output shape for one sample.
    pub fn output_shape(&self) -> &[usize] {
        &self.output
    }

    /// Forward FLOPs per sample.
    pub fn flops(&self) -> u64 {
        self.layers.iter().filter(|l| l.depth == 0).map(|l| l.flops).sum()
    }

    /// An error unless `x` is `[N, ...input]` with `N ≥ 1`.
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        let s = x.shape();
        if s.len() != self.spec.input.len() + 1 || s[1..] != self.spec.input[..] || s[0] == 0 {
            let want: Vec<String> = self.spec.input.iter().map(|d| d.to_string()).collect();
            return Err(Error::shape(
                "Model",
                format!("{} expects input [N, {}], got {:?}", self.spec.name, want.join(", "), s),
            ));
        }
        Ok(())
    }
}

impl Module for Model {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.net.forward(x)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.net.visit_parameters(prefix, f)
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.net.visit_buffers(prefix, f)
    }

    fn set_training(&self, training: bool) {
        self.net.set_training(training)
    }

    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(String, &Mutex<Rng>)) {
        self.net.visit_rngs(prefix, f)
    }

    fn set_training_where(&self, prefix: &str, select: &dyn Fn(&str) -> bool, training: bool) {
        self.net.set_training_where(prefix, select, training)
    }
}

fn join(prefix: &str, name: &str) -> String {
    jizen_nn::module::join(prefix, name)
}

/// Builds `layers` for per-sample input `shape`; returns the sequence and its output shape, and
/// appends each layer's [`LayerInfo`] to `infos`.
fn build_seq(
    layers: &[Layer],
    shape: &[usize],
    prefix: &str,
    depth: usize,
    dtype: DType,
    rng: &mut Rng,
    infos: &mut Vec<LayerInfo>,
) -> Result<(Sequential, Vec<usize>)> {
    let mut seq = Sequential::new();
    let mut shape = shape.to_vec();
    for (i, layer) in layers.iter().enumerate() {
        let name = join(prefix, &i.to_string());
        let at = infos.len();
        let (module, out, params, flops, kind) = build_layer(layer, &shape, &name, depth, dtype, rng, infos)?;
        infos.insert(at, LayerInfo { name, kind, output: out.clone(), params, flops, depth });
        seq = seq.push_boxed(module);
        shape = out;
    }
    Ok((seq, shape))
}

type Built = (Box<dyn Module>, Vec<usize>, usize, u64, String);

fn build_layer(
    layer: &Layer,
    shape: &[usize],
    name: &str,
    depth: usize,
    dtype: DType,
    rng: &mut Rng,
    infos: &mut Vec<LayerInfo>,
) -> Result<Built> {
    let bad = |msg: String| Error::shape("Model::build", format!("layer {name} ({layer:?}): {msg}"));
    let numel: usize = shape.iter().product();
    let image = |what: &str| -> Result<(usize, usize, usize)> {
        match *shape {
            [c, h, w] => Ok((c, h, w)),
            _ => Err(bad(format!("{what} needs a [C, H, W] input, got {shape:?}"))),
        }
    };
    let window_out = |size: usize, kernel: usize, stride: usize, padding: usize| -> Result<usize> {
        if kernel == 0 || stride == 0 {
            return Err(bad("kernel and stride must be positive".into()));
        }
        if size + 2 * padding < kernel {
            return Err(bad(format!("a {kernel}-wide window does not fit a {size}-wide input (padding {padding})")));
        }
        Ok((size + 2 * padding - kernel) / stride + 1)
    };
    let elementwise = |m: Box<dyn Module>, kind: &str| Ok((m, shape.to_vec(), 0, numel as u64, kind.to_string()));
    match layer {
        Layer::Linear { out, bias } => {
            let inputs = *shape.last().unwrap_or(&0);
            if *out == 0 {
                return Err(bad("out must be positive".into()));
            }
            let rows = (numel / inputs.max(1)) as u64;
            let m = Linear::new(inputs, *out, *bias, dtype, rng);
            let mut o = shape.to_vec();
            *o.last_mut().expect("non-empty input shape") = *out;
            let params = inputs * out + if *bias { *out } else { 0 };
            Ok((Box::new(m), o, params, rows * (2 * inputs * out) as u64, "Linear".into()))
        }
        Layer::Conv2d { out, kernel, stride, padding, bias } => {
            let (c, h, w) = image("Conv2d")?;
            let (ho, wo) = (window_out(h, *kernel, *stride, *padding)?, window_out(w, *kernel, *stride, *padding)?);
            if *out == 0 {
                return Err(bad("out must be positive".into()));
            }
            let opts = ConvOptions::default().stride(*stride).padding(*padding);
            let m = Conv2d::new(c, *out, [*kernel, *kernel], opts, *bias, dtype, rng)?;
            let params = out * c * kernel * kernel + if *bias { *out } else { 0 };
            let flops = 2 * (c * kernel * kernel * out * ho * wo) as u64;
            Ok((Box::new(m), vec![*out, ho, wo], params, flops, "Conv2d".into()))
        }
        Layer::BatchNorm => match *shape {
            [c] | [c, _] => Ok((
                Box::new(BatchNorm1d::new(c, dtype)),
                shape.to_vec(),
                2 * c,
                4 * numel as u64,
                "BatchNorm1d".into(),
            )),
            [c, _, _] => Ok((
                Box::new(BatchNorm2d::new(c, dtype)),
                shape.to_vec(),
                2 * c,
                4 * numel as u64,
                "BatchNorm2d".into(),
            )),
            _ => Err(bad(format!("batch norm needs [C], [C, L] or [C, H, W], got {shape:?}"))),
        },
        Layer::LayerNorm => {
            let d = *shape.last().unwrap_or(&0);
            Ok((Box::new(LayerNorm::new(&[d], dtype)), shape.to_vec(), 2 * d, 5 * numel as u64, "LayerNorm".into()))
        }
        Layer::Relu => elementwise(Box::new(Relu), "ReLU"),
        Layer::LeakyRelu { slope } => elementwise(Box::new(LeakyRelu(*slope)), "LeakyReLU"),
        Layer::Gelu => elementwise(Box::new(Gelu), "GELU"),
        Layer::Tanh => elementwise(Box::new(Tanh), "Tanh"),
        Layer::Sigmoid => elementwise(Box::new(Sigmoid), "Sigmoid"),
        Layer::Dropout { p } => elementwise(Box::new(Dropout::new(*p, rng.next_u64())?), "Dropout"),
        Layer::MaxPool2d { kernel, stride } | Layer::AvgPool2d { kernel, stride } => {
            let max = matches!(layer, Layer::MaxPool2d { .. });
            let (c, h, w) = image(if max { "MaxPool2d" } else { "AvgPool2d" })?;
            let s = stride.unwrap_or(*kernel);
            let (ho, wo) = (window_out(h, *kernel, s, 0)?, window_out(w, *kernel, s, 0)?);
            let flops = (c * ho * wo * kernel * kernel) as u64;
            let out = vec![c, ho, wo];
            if max {
                Ok((Box::new(MaxPool2d::new([*kernel; 2]).stride([s; 2])), out, 0, flops, "MaxPool2d".into()))
            } else {
                Ok((Box::new(AvgPool2d::new([*kernel; 2]).stride([s; 2])), out, 0, flops, "AvgPool2d".into()))
            }
        }
        Layer::AdaptiveAvgPool2d { out } => {
            let (c, _, _) = image("AdaptiveAvgPool2d")?;
            if *out == 0 {
                return Err(bad("out must be positive".into()));
            }
            Ok((
                Box::new(AdaptiveAvgPool2d::new([*out; 2])),
                vec![c, *out, *out],
                0,
                numel as u64,
                "AdaptiveAvgPool2d".into(),
            ))
        }
        Layer::Flatten => Ok((Box::new(Flatten::new()), vec![numel], 0, 0, "Flatten".into())),
        Layer::Residual { body, shortcut } => {
            if body.is_empty() {
                return Err(bad("a residual block needs a body".into()));
            }
            let first = infos.len();
            let (b, b_out) = build_seq(body, shape, &join(name, "body"), depth + 1, dtype, rng, infos)?;
            let (module, s_out): (Box<dyn Module>, Vec<usize>) = if shortcut.is_empty() {
                (Box::new(Residual::new(b)), shape.to_vec())
            } else {
                let (s, s_out) = build_seq(shortcut, shape, &join(name, "shortcut"), depth + 1, dtype, rng, infos)?;
                (Box::new(Residual::with_shortcut(b, s)), s_out)
            };
            if b_out != s_out {
                return Err(bad(format!(
                    "the body gives {b_out:?} but the shortcut gives {s_out:?}; add a projection shortcut"
                )));
            }
            let inner = &infos[first..];
            let params = inner.iter().filter(|l| l.depth == depth + 1).map(|l| l.params).sum();
            let flops = inner.iter().filter(|l| l.depth == depth + 1).map(|l| l.flops).sum::<u64>()
                + b_out.iter().product::<usize>() as u64;
            Ok((module, b_out, params, flops, "Residual".into()))
        }
    }
}
