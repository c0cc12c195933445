//! Convolution layers: `Conv2d` and `ConvTranspose2d`, with PyTorch's weight layouts and
//! default initialisation, so state dicts move between the two unchanged.

use jizen_tensor::{ConvOptions, DType, Error, Result, Rng, Tensor};

use crate::init;
use crate::module::{join, Module};

fn check_groups(layer: &'static str, inputs: usize, outputs: usize, groups: usize) -> Result<()> {
    if groups == 0 || !inputs.is_multiple_of(groups) || !outputs.is_multiple_of(groups) {
        return Err(Error::Invalid {
            op: layer,
            msg: format!("{inputs} input and {outputs} output channels must both be divisible by groups={groups}"),
        });
    }
    Ok(())
}

/// 2-D convolution over `[N, Cin, H, W]`, like `torch.nn.Conv2d`: `weight`
/// `[Cout, Cin/groups, kh, kw]`, optional `bias` `[Cout]`; stride, padding, dilation and groups
/// come from [`ConvOptions`] (its `output_padding` is ignored here).
///
/// ```
/// use jizen_nn::{Conv2d, Module};
/// use jizen_tensor::{ConvOptions, DType, Rng, Tensor};
/// let conv = Conv2d::new(3, 8, [3, 3], ConvOptions::default().padding(1), true, DType::F32, &mut Rng::new(0))?;
/// let y = conv.forward(&Tensor::zeros(&[2, 3, 5, 5], DType::F32))?;
/// assert_eq!(y.shape(), &[2, 8, 5, 5]);
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct Conv2d {
    /// `[Cout, Cin/groups, kh, kw]`.
    pub weight: Tensor,
    /// `[Cout]`.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation, groups (and, for the transposed layer, output padding).
    pub options: ConvOptions,
}

/// A convolution weight of `shape` and an optional bias of `outputs`, with PyTorch's default
/// initialisation: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` where `fan_in` is the product of the
/// weight's dimensions after the first (as `torch.nn.init._calculate_fan_in_and_fan_out` takes it),
/// weight drawn first.
fn init_weight_and_bias(
    shape: [usize; 4],
    outputs: usize,
    bias: bool,
    dtype: DType,
    rng: &mut Rng,
) -> (Tensor, Option<Tensor>) {
    let fan_in = shape[1] * shape[2] * shape[3];
    let weight = init::torch_default(&shape, fan_in, dtype, rng).requires_grad_(true);
    let bias = bias.then(|| init::torch_default(&[outputs], fan_in, dtype, rng).requires_grad_(true));
    (weight, bias)
}

impl Conv2d {
    /// A layer with PyTorch's default initialisation, `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with
    /// `fan_in = Cin/groups * kh * kw` for the weight and the bias alike (weight drawn first).
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: [usize; 2],
        options: ConvOptions,
        bias: bool,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Self> {
        check_groups("Conv2d", inputs, outputs, options.groups)?;
        let cin_g = inputs / options.groups;
        let (weight, bias) = init_weight_and_bias([outputs, cin_g, kernel[0], kernel[1]], outputs, bias, dtype, rng);
        Ok(Conv2d { weight, bias, options })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.weight, self.bias.as_ref(), ConvOptions { output_padding: [0, 0], ..self.options })
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join(prefix, "bias"), b);
        }
    }
}

/// Transposed 2-D convolution over `[N, Cin, H, W]`, like `torch.nn.ConvTranspose2d`: `weight`
/// `[Cin, Cout/groups, kh, kw]`, optional `bias` `[Cout]`; stride, padding, dilation, groups and
/// `output_padding` come from [`ConvOptions`].
///
/// ```
/// use jizen_nn::{ConvTranspose2d, Module};
/// use jizen_tensor::{ConvOptions, DType, Rng, Tensor};
/// let o = ConvOptions::default().stride(2).padding(1).output_padding(1);
/// let up = ConvTranspose2d::new(4, 2, [3, 3], o, true, DType::F32, &mut Rng::new(0))?;
/// assert_eq!(up.forward(&Tensor::zeros(&[1, 4, 5, 5], DType::F32))?.shape(), &[1, 2, 10, 10]);
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
pub struct ConvTranspose2d {
    /// `[Cin, Cout/groups, kh, kw]`.
    pub weight: Tensor,
    /// `[Cout]`.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation, groups (and, for the transposed layer, output padding).
    pub options: ConvOptions,
}

impl ConvTranspose2d {
    /// A layer with PyTorch's default initialisation. PyTorch takes the fan-in from the weight's
    /// second dimension, so here it is `Cout/groups * kh * kw`.
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: [usize; 2],
        options: ConvOptions,
        bias: bool,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Self> {
        check_groups("ConvTranspose2d", inputs, outputs, options.groups)?;
        let cout_g = outputs / options.groups;
        let (weight, bias) = init_weight_and_bias([inputs, cout_g, kernel[0], kernel[1]], outputs, bias, dtype, rng);
        Ok(ConvTranspose2d { weight, bias, options })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv_transpose2d(&self.weight, self.bias.as_ref(), self.options)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join(prefix, "bias"), b);
        }
    }
}
