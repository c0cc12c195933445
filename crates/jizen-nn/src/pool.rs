//! Pooling layers over `[N, C, H, W]`: max, average and adaptive average.

use jizen_tensor::{Result, Tensor};

use crate::module::Module;

/// Max pooling, like `torch.nn.MaxPool2d`: the stride defaults to the kernel size; padding
/// counts as -inf; the gradient goes to the first maximum of each window.
///
/// ```
/// use jizen_nn::{MaxPool2d, Module};
/// use jizen_tensor::{DType, Tensor};
/// let pool = MaxPool2d::new([3, 3]).stride([2, 2]).padding([1, 1]);
/// assert_eq!(pool.forward(&Tensor::zeros(&[1, 2, 7, 7], DType::F32))?.shape(), &[1, 2, 4, 4]);
/// # Ok::<(), jizen_tensor::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window size `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Step between windows (default: the kernel size).
    pub stride: [usize; 2],
    /// Implicit padding on each side.
    pub padding: [usize; 2],
    /// Spacing between window elements.
    pub dilation: [usize; 2],
}

impl MaxPool2d {
    /// Windows of `kernel`, stride `kernel`, no padding, no dilation.
    pub fn new(kernel: [usize; 2]) -> Self {
        MaxPool2d { kernel, stride: kernel, padding: [0, 0], dilation: [1, 1] }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the padding (at most half the kernel, as in PyTorch).
    pub fn padding(mut self, padding: [usize; 2]) -> Self {
        self.padding = padding;
        self
    }

    /// Sets the dilation.
    pub fn dilation(mut self, dilation: [usize; 2]) -> Self {
        self.dilation = dilation;
        self
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool2d(self.kernel, self.stride, self.padding, self.dilation)
    }

    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}
}

/// Average pooling with zero padding, like `torch.nn.AvgPool2d`: the stride defaults to the
/// kernel size, and `count_include_pad` (default true) divides by the full window size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d {
    /// Window size `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Step between windows (default: the kernel size).
    pub stride: [usize; 2],
    /// Implicit padding on each side.
    pub padding: [usize; 2],
    /// Whether padded zeros count in each window's divisor.
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// Windows of `kernel`, stride `kernel`, no padding.
    pub fn new(kernel: [usize; 2]) -> Self {
        AvgPool2d { kernel, stride: kernel, padding: [0, 0], count_include_pad: true }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: [usize; 2]) -> Self {
        self.padding = padding;
        self
    }

    /// Whether padded zeros count in each window's divisor.
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.count_include_pad = on;
        self
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool2d(self.kernel, self.stride, self.padding, self.count_include_pad)
    }

    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}
}

/// Adaptive average pooling to a fixed `[oh, ow]`, like `torch.nn.AdaptiveAvgPool2d` (window
/// `i` covers `floor(i*H/oh) .. ceil((i+1)*H/oh)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    /// The output size `[oh, ow]`.
    pub output: [usize; 2],
}

impl AdaptiveAvgPool2d {
    /// Pools every input to `output` = `[oh, ow]`.
    pub fn new(output: [usize; 2]) -> Self {
        AdaptiveAvgPool2d { output }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.adaptive_avg_pool2d(self.output)
    }

    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Tensor)) {}
}
