//! Convolution and pooling: the public `conv2d` / `conv_transpose2d` (argument checks; their
//! kernels are the primitives of `conv_tiled.rs`), two primitives `im2col` (sliding windows as
//! columns, PyTorch's `unfold`) and its adjoint `col2im` (`fold`), and pooling, composed from
//! im2col or a gather. The older whole-batch convolution (im2col + one GEMM) stays as a
//! composite for comparison (`JIZEN_CONV=batched`).

use rayon::prelude::*;

use crate::dtype::Float;
use crate::error::{invalid, shape_err, Result};
use crate::op::Op;
use crate::parallel::{pool, worth_parallel};
use crate::storage::StorageElement;
use crate::Tensor;

/// The window geometry shared by an image `[N, c, h, w]` and its columns
/// `[c * kh * kw, N, oh * ow]` (the primitive's layout; the public [`Tensor::im2col`] shows them
/// as PyTorch's `unfold` does, `[N, c * kh * kw, oh * ow]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Im2colGeometry {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub out: [usize; 2],
}

impl Im2colGeometry {
    /// Geometry of a `kernel` sliding over an image of `c` channels and size `h`×`w`.
    pub fn new(
        op: &'static str,
        [c, h, w]: [usize; 3],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<Self> {
        if kernel.contains(&0) || stride.contains(&0) || dilation.contains(&0) {
            return Err(invalid(
                op,
                format!("kernel {kernel:?}, stride {stride:?} and dilation {dilation:?} must be positive"),
            ));
        }
        let size = |i: usize, n: usize| -> Result<usize> {
            let span = dilation[i] * (kernel[i] - 1) + 1;
            if n + 2 * padding[i] < span {
                return Err(shape_err(op, format!("input {h}x{w} with padding {padding:?} is smaller than the kernel {kernel:?} (dilation {dilation:?})")));
            }
            Ok((n + 2 * padding[i] - span) / stride[i] + 1)
        };
        Ok(Im2colGeometry { c, h, w, kernel, stride, padding, dilation, out: [size(0, h)?, size(1, w)?] })
    }

    fn rows(&self) -> usize {
        self.c * self.kernel[0] * self.kernel[1]
    }

    fn cols(&self) -> usize {
        self.out[0] * self.out[1]
    }

    /// For kernel offset `k` along axis `i`, the output positions whose input coordinate
    /// `o * stride - padding + k * dilation` lies inside the image: `lo..hi`.
    pub(crate) fn valid(&self, i: usize, k: usize) -> (usize, usize) {
        let n = if i == 0 { self.h } else { self.w };
        let (s, p, d) = (self.stride[i], self.padding[i], self.dilation[i]);
        let shift = k * d; // input coordinate = o*s + shift - p
        let lo = if shift >= p { 0 } else { (p - shift).div_ceil(s) };
        // o*s + shift - p <= n - 1  <=>  o <= (n - 1 + p - shift) / s
        let hi = if n + p > shift { ((n - 1 + p - shift) / s + 1).min(self.out[i]) } else { 0 };
        (lo.min(hi), hi)
    }
}

/// One row of columns: for kernel offset `(ki, kj)`, the `oh*ow` values of image plane `src`
/// that the window positions see (zero where the window hangs over the padding).
#[inline]
pub(crate) fn gather_row<T: Float>(src: &[T], g: &Im2colGeometry, ki: usize, kj: usize, row: &mut [T]) {
    let ow = g.out[1];
    let (ylo, yhi) = g.valid(0, ki);
    let (xlo, xhi) = g.valid(1, kj);
    // The row's buffer is scratch reused from sample to sample, not cleared: write the
    // padding's zeros explicitly.
    row[..ylo * ow].fill(T::zero());
    row[yhi * ow..].fill(T::zero());
    for oy in ylo..yhi {
        let iy = oy * g.stride[0] + ki * g.dilation[0] - g.padding[0];
        let line = &src[iy * g.w..(iy + 1) * g.w];
        let o = &mut row[oy * ow..(oy + 1) * ow];
        o[..xlo].fill(T::zero());
        o[xhi..].fill(T::zero());
        let ix0 = xlo * g.stride[1] + kj * g.dilation[1] - g.padding[1];
        if g.stride[1] == 1 {
            o[xlo..xhi].copy_from_slice(&line[ix0..ix0 + (xhi - xlo)]);
        } else {
            for (t, ox) in (xlo..xhi).enumerate() {
                o[ox] = line[ix0 + t * g.stride[1]];
            }
        }
    }
}

/// The adjoint of [`gather_row`]: adds one row of columns back into image plane `img`.
#[inline]
pub(crate) fn scatter_row<T: Float>(row: &[T], g: &Im2colGeometry, ki: usize, kj: usize, img: &mut [T]) {
    let ow = g.out[1];
    let (ylo, yhi) = g.valid(0, ki);
    let (xlo, xhi) = g.valid(1, kj);
    for oy in ylo..yhi {
        let iy = oy * g.stride[0] + ki * g.dilation[0] - g.padding[0];
        let line = &mut img[iy * g.w..(iy + 1) * g.w];
        let r = &row[oy * ow..(oy + 1) * ow];
        let ix0 = xlo * g.stride[1] + kj * g.dilation[1] - g.padding[1];
        if g.stride[1] == 1 {
            for (d, &v) in line[ix0..ix0 + (xhi - xlo)].iter_mut().zip(&r[xlo..xhi]) {
                *d += v;
            }
        } else {
            for (t, ox) in (xlo..xhi).enumerate() {
                line[ix0 + t * g.stride[1]] += r[ox];
            }
        }
    }
}

/// Image `x` [N, c, h, w] (contiguous data) -> columns [c*kh*kw, N, oh*ow].
///
/// Channels first, batch second: a convolution is then one GEMM `W [Cout, K] @ cols [K, N*L]`
/// for the whole batch (and its gradients are one GEMM each), instead of N small ones.
fn im2col_kernel<T: Float>(x: &[T], n: usize, g: &Im2colGeometry) -> Vec<T> {
    let (rows, l) = (g.rows(), g.cols());
    let [kh, kw] = g.kernel;
    let plane = g.h * g.w;
    let mut out = crate::storage::zeroed::<T>(rows * n * l);
    // One task per row (c, ki, kj): N segments of L values.
    let work = |r: usize, dst: &mut [T]| {
        let (c, k) = (r / (kh * kw), r % (kh * kw));
        for (b, seg) in dst.chunks_mut(l).enumerate() {
            let src = &x[(b * g.c + c) * plane..(b * g.c + c + 1) * plane];
            gather_row(src, g, k / kw, k % kw, seg);
        }
    };
    let chunk = (n * l).max(1);
    if worth_parallel(out.len()) {
        pool().install(|| out.par_chunks_mut(chunk).enumerate().for_each(|(r, d)| work(r, d)));
    } else {
        out.chunks_mut(chunk).enumerate().for_each(|(r, d)| work(r, d));
    }
    out
}

/// Columns [c*kh*kw, N, oh*ow] (contiguous data) -> image [N, c, h, w], overlaps summed.
fn col2im_kernel<T: Float>(cols: &[T], n: usize, g: &Im2colGeometry) -> Vec<T> {
    let l = g.cols();
    let [kh, kw] = g.kernel;
    let plane = g.h * g.w;
    let mut out = crate::storage::zeroed::<T>(n * g.c * plane);
    // One task per image plane (b, c): it reads its kh*kw rows.
    let work = |bc: usize, img: &mut [T]| {
        let (b, c) = (bc / g.c, bc % g.c);
        for ki in 0..kh {
            for kj in 0..kw {
                let r = (c * kh + ki) * kw + kj;
                let row = &cols[(r * n + b) * l..(r * n + b + 1) * l];
                scatter_row(row, g, ki, kj, img);
            }
        }
    };
    if worth_parallel(cols.len()) {
        pool().install(|| out.par_chunks_mut(plane.max(1)).enumerate().for_each(|(bc, d)| work(bc, d)));
    } else {
        out.chunks_mut(plane.max(1)).enumerate().for_each(|(bc, d)| work(bc, d));
    }
    out
}

/// Strides, padding, dilation and groups of a convolution (PyTorch's defaults: 1, 0, 1, 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvOptions {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    /// Extra rows/columns on one side of a transposed convolution's output.
    pub output_padding: [usize; 2],
}

impl Default for ConvOptions {
    fn default() -> Self {
        ConvOptions { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1, output_padding: [0, 0] }
    }
}

impl ConvOptions {
    /// The same stride along both axes.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s, s];
        self
    }
    /// The same zero padding on all four sides.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p, p];
        self
    }
    /// The same dilation along both axes.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d, d];
        self
    }
    /// Split the channels into `g` independent groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// Extra output rows/columns of a transposed convolution (an error for `conv2d`).
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = [p, p];
        self
    }
}

fn expect_rank4(op: &'static str, what: &str, t: &Tensor) -> Result<[usize; 4]> {
    match t.shape() {
        &[a, b, c, d] => Ok([a, b, c, d]),
        s => Err(shape_err(op, format!("{what} must be 4-D [N, C, H, W], got {s:?}"))),
    }
}

impl Tensor {
    /// Sliding windows of `self` [N, C, H, W] as columns [N, C*kh*kw, oh*ow] (zero padding),
    /// like PyTorch's `unfold`. (A view of the primitive's channels-first layout.)
    pub fn im2col(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<Tensor> {
        let [n, c, h, w] = expect_rank4("im2col", "input", self)?;
        let g = Im2colGeometry::new("im2col", [c, h, w], kernel, stride, padding, dilation)?;
        self.im2col_geom(n, g)?.permute(&[1, 0, 2])
    }

    /// The primitive: columns [C*kh*kw, N, L].
    fn im2col_geom(&self, n: usize, g: Im2colGeometry) -> Result<Tensor> {
        crate::with_float!(self.dtype(), "im2col", |T| {
            let data = self.with_data::<T, _>(|x| im2col_kernel::<T>(x, n, &g))?;
            Ok(Tensor::from_op(T::wrap(data), &[g.rows(), n, g.cols()], || Op::Im2col(self.clone(), g)))
        })
    }

    /// The primitive: columns [C*kh*kw, N, L] summed into images [N, C, H, W].
    fn col2im_geom(&self, g: Im2colGeometry) -> Result<Tensor> {
        let n = self.shape()[1];
        if self.shape() != [g.rows(), n, g.cols()] {
            return Err(shape_err(
                "col2im",
                format!("columns {:?} do not match [{}, N, {}]", self.shape(), g.rows(), g.cols()),
            ));
        }
        crate::with_float!(self.dtype(), "col2im", |T| {
            let data = self.with_data::<T, _>(|x| col2im_kernel::<T>(x, n, &g))?;
            Ok(Tensor::from_op(T::wrap(data), &[n, g.c, g.h, g.w], || Op::Col2im(self.clone(), g)))
        })
    }

    /// Sums columns [N, C*kh*kw, oh*ow] back into an image [N, C, H, W] (the adjoint of
    /// [`Tensor::im2col`]).
    pub fn col2im(
        &self,
        image: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<Tensor> {
        if self.rank() != 3 {
            return Err(shape_err("col2im", format!("columns must be 3-D, got {:?}", self.shape())));
        }
        let k = kernel[0] * kernel[1];
        if k == 0 || !self.shape()[1].is_multiple_of(k) {
            return Err(shape_err(
                "col2im",
                format!("{} rows are not a multiple of the kernel size {kernel:?}", self.shape()[1]),
            ));
        }
        let g = Im2colGeometry::new(
            "col2im",
            [self.shape()[1] / k, image[0], image[1]],
            kernel,
            stride,
            padding,
            dilation,
        )?;
        if self.shape()[2] != g.cols() {
            return Err(shape_err(
                "col2im",
                format!("{} columns do not match the {} windows of a {image:?} image", self.shape()[2], g.cols()),
            ));
        }
        self.permute(&[1, 0, 2])?.col2im_geom(g)
    }

    /// 2-D convolution (cross-correlation, as in PyTorch) of `self` [N, Cin, H, W] with `weight`
    /// [Cout, Cin/groups, kh, kw] and an optional `bias` [Cout].
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, o: ConvOptions) -> Result<Tensor> {
        let [n, cin, h, w] = expect_rank4("conv2d", "input", self)?;
        let [cout, cin_g, kh, kw] = expect_rank4("conv2d", "weight", weight)?;
        let g = o.groups;
        if g == 0 || cin_g * g != cin || cout % g != 0 {
            return Err(shape_err("conv2d", format!("input {:?} and weight {:?} do not agree with groups={g} (input channels must equal weight.shape[1] * groups)", self.shape(), weight.shape())));
        }
        if o.output_padding != [0, 0] {
            return Err(invalid(
                "conv2d",
                format!("output_padding {:?} applies to conv_transpose2d only", o.output_padding),
            ));
        }
        let cg = super::conv_tiled::geometry("conv2d", [n, cin, h, w], [cout, cin_g, kh, kw], o)?;
        let bias = bias.map(|b| check_bias("conv2d", b, cout)).transpose()?;
        if tiled_conv() {
            return self.conv2d_prim(weight, bias.as_ref(), cg);
        }
        let out = self.conv2d_batched(weight, cg)?;
        match bias {
            None => Ok(out),
            Some(b) => out.add(&b.reshape(&[1, cout, 1, 1])?),
        }
    }

    /// Transposed 2-D convolution of `self` [N, Cin, H, W] with `weight` [Cin, Cout/groups, kh, kw]
    /// (PyTorch's layout), optional `bias` [Cout]; honours `output_padding`.
    pub fn conv_transpose2d(&self, weight: &Tensor, bias: Option<&Tensor>, o: ConvOptions) -> Result<Tensor> {
        let [_, cin, h, w] = expect_rank4("conv_transpose2d", "input", self)?;
        let [wcin, cout_g, kh, kw] = expect_rank4("conv_transpose2d", "weight", weight)?;
        let g = o.groups;
        if g == 0 || wcin != cin || cin % g != 0 {
            return Err(shape_err("conv_transpose2d", format!("input {:?} and weight {:?} do not agree with groups={g} (input channels must equal weight.shape[0])", self.shape(), weight.shape())));
        }
        for i in 0..2 {
            if o.output_padding[i] >= o.stride[i].max(o.dilation[i]) {
                return Err(invalid(
                    "conv_transpose2d",
                    format!(
                        "output_padding {:?} must be smaller than stride {:?} or dilation {:?}",
                        o.output_padding, o.stride, o.dilation
                    ),
                ));
            }
        }
        let cout = cout_g * g;
        let size = |i: usize, x: usize, k: usize| -> Result<usize> {
            let full = (x - 1) * o.stride[i] + o.dilation[i] * (k - 1) + o.output_padding[i] + 1;
            full.checked_sub(2 * o.padding[i]).filter(|&s| s > 0).ok_or_else(|| {
                shape_err("conv_transpose2d", format!("padding {:?} leaves no output for input {h}x{w}", o.padding))
            })
        };
        let (hout, wout) = (size(0, h, kh)?, size(1, w, kw)?);
        let geom =
            Im2colGeometry::new("conv_transpose2d", [cout, hout, wout], [kh, kw], o.stride, o.padding, o.dilation)?;
        debug_assert_eq!(geom.out, [h, w]);
        // The adjoint of the convolution from [N, Cout, hout, wout] to [N, Cin, h, w] whose weight
        // is `weight` (the same layout): conv2d's input-gradient primitive.
        let cg = super::conv_tiled::ConvGeometry { im: geom, groups: g, cout: cin };
        let out = self.conv2d_grad_input_prim(weight, cg)?;
        match bias {
            None => Ok(out),
            Some(b) => out.add(&check_bias("conv_transpose2d", b, cout)?.reshape(&[1, cout, 1, 1])?),
        }
    }

    /// Max pooling; returns the pooled values. Windows may be padded (padding counts as -inf) and
    /// dilated. The gradient goes to the first maximum of each window, as in PyTorch.
    pub fn max_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<Tensor> {
        Ok(self.max_pool2d_with_indices(kernel, stride, padding, dilation)?.0)
    }

    /// Max pooling, also returning each maximum's flat index `y * W + x` within its plane (i64),
    /// like PyTorch's `return_indices=True`. Composite: the values are a gather at the indices.
    pub fn max_pool2d_with_indices(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<(Tensor, Tensor)> {
        let [n, c, h, w] = expect_rank4("max_pool2d", "input", self)?;
        if padding[0] * 2 > kernel[0] || padding[1] * 2 > kernel[1] {
            return Err(invalid(
                "max_pool2d",
                format!("padding {padding:?} must be at most half the kernel {kernel:?}"),
            ));
        }
        let geom = Im2colGeometry::new("max_pool2d", [c, h, w], kernel, stride, padding, dilation)?;
        let [oh, ow] = geom.out;
        let flat = self.reshape(&[n, c, h * w])?;
        // One pass finds every window's maximum and where it is; the values are then recorded
        // as the gather they equal (`flat.gather(2, idx)`, what the backward pass differentiates),
        // without a second pass over the input.
        let (vals, idx) = crate::with_float!(self.dtype(), "max_pool2d", |T| {
            let (vals, idx) = flat.with_data::<T, _>(|x| max_pool_kernel::<T>(x, n * c, &geom))??;
            let idx = Tensor::from_vec(idx, &[n, c, oh * ow])?;
            let vals = Tensor::from_op(T::wrap(vals), &[n, c, oh * ow], || Op::Gather(flat.clone(), 2, idx.clone()));
            Ok::<_, crate::Error>((vals, idx))
        })?;
        Ok((vals.reshape(&[n, c, oh, ow])?, idx.reshape(&[n, c, oh, ow])?))
    }

    /// Average pooling with zero padding; `count_include_pad` as in PyTorch (default there: true).
    pub fn avg_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        count_include_pad: bool,
    ) -> Result<Tensor> {
        let [n, c, h, w] = expect_rank4("avg_pool2d", "input", self)?;
        let geom = Im2colGeometry::new("avg_pool2d", [1, h, w], kernel, stride, padding, [1, 1])?;
        let [oh, ow] = geom.out;
        let cols = self.reshape(&[n * c, 1, h, w])?.im2col_geom(n * c, geom)?; // [kh*kw, N*C, L]
        let pooled = if count_include_pad || padding == [0, 0] {
            cols.mean(&[0], false)?
        } else {
            let ones = Tensor::ones(&[1, 1, h, w], self.dtype());
            let count = ones.im2col_geom(1, geom)?.sum(&[0], false)?; // [1, L]
            cols.sum(&[0], false)?.div(&count)?
        };
        pooled.reshape(&[n, c, oh, ow])
    }

    /// Adaptive average pooling to `[oh, ow]` with PyTorch's window rule
    /// (`floor(i*H/oh) .. ceil((i+1)*H/oh)`), composed as `P_h @ x @ P_wᵀ`.
    pub fn adaptive_avg_pool2d(&self, out: [usize; 2]) -> Result<Tensor> {
        let [_, _, h, w] = expect_rank4("adaptive_avg_pool2d", "input", self)?;
        if out.contains(&0) {
            return Err(invalid("adaptive_avg_pool2d", format!("output size {out:?} must be positive")));
        }
        let pool_matrix = |o: usize, n: usize| -> Tensor {
            let mut m = vec![0.0; o * n];
            for i in 0..o {
                let (s, e) = ((i * n) / o, ((i + 1) * n).div_ceil(o));
                for j in s..e {
                    m[i * n + j] = 1.0 / (e - s) as f64;
                }
            }
            Tensor::from_f64_vec(m, &[o, n], self.dtype())
        };
        let ph = pool_matrix(out[0], h);
        let pw = pool_matrix(out[1], w);
        ph.matmul(self)?.matmul(&pw.t()?)
    }
}

/// Whether `conv2d` uses the per-sample primitives of `conv_tiled.rs` (the default) or the
/// older whole-batch im2col + one GEMM composite (`JIZEN_CONV=batched`, kept for comparison).
fn tiled_conv() -> bool {
    static TILED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TILED.get_or_init(|| std::env::var("JIZEN_CONV").map_or(true, |v| v.trim() != "batched"))
}

impl Tensor {
    /// The whole-batch composite: columns [Cin*kh*kw, N, L] for the batch, one GEMM per group,
    /// and a permuted view of the result. Its gradients go through `im2col`/`col2im` and matmul.
    fn conv2d_batched(&self, weight: &Tensor, cg: super::conv_tiled::ConvGeometry) -> Result<Tensor> {
        let [n, _, _, _] = expect_rank4("conv2d", "input", self)?;
        let [cout, cin_g, kh, kw] = expect_rank4("conv2d", "weight", weight)?;
        let (geom, g) = (cg.im, cg.groups);
        let [oh, ow] = geom.out;
        let l = oh * ow;
        let cols = self.im2col_geom(n, geom)?; // [Cin*kh*kw, N, L]
        let kg = cin_g * kh * kw;
        // One GEMM for the whole batch: [Cout, K] @ [K, N*L] (per group).
        let out = if g == 1 {
            weight.reshape(&[cout, kg])?.matmul(&cols.reshape(&[kg, n * l])?)?
        } else {
            let c = cols.reshape(&[g, kg, n * l])?;
            weight.reshape(&[g, cout / g, kg])?.matmul(&c)?.reshape(&[cout, n * l])?
        };
        // [Cout, N, oh, ow] -> [N, Cout, oh, ow]: a view; the next op reads it by strides.
        out.reshape(&[cout, n, oh, ow])?.permute(&[1, 0, 2, 3])
    }
}

fn check_bias(op: &'static str, b: &Tensor, c: usize) -> Result<Tensor> {
    if b.shape() != [c] {
        return Err(shape_err(op, format!("bias must be [{c}], got {:?}", b.shape())));
    }
    Ok(b.clone())
}

/// Gradient of `im2col(x)`: the columns' gradient folded back.
pub(crate) fn im2col_backward(_x: &Tensor, g: &Im2colGeometry, grad: &Tensor) -> Result<Tensor> {
    grad.col2im_geom(*g)
}

/// Gradient of `col2im(cols)`: the image's gradient unfolded.
pub(crate) fn col2im_backward(g: &Im2colGeometry, grad: &Tensor) -> Result<Tensor> {
    grad.im2col_geom(grad.shape()[0], *g)
}

/// The larger of two `(value, index)` candidates, `best` on ties; a NaN wins over a number and
/// the first NaN stays (PyTorch's rule). Written as selects, not branches: which candidate wins
/// depends on the data, and a branch on it is mispredicted about half the time.
#[inline(always)]
fn pick<T: Float>(best: (T, usize), cand: (T, usize)) -> (T, usize) {
    let take = (cand.0 > best.0) | (cand.0.is_nan() & !best.0.is_nan());
    (if take { cand.0 } else { best.0 }, if take { cand.1 } else { best.1 })
}

/// For each of `planes` planes of `x` (`[planes, h * w]`), every window's maximum and its index
/// in the plane, `[planes, oh * ow]` each. The first maximum wins ties; a NaN wins over numbers
/// (the first NaN), as in PyTorch. A window wholly in the padding (possible with dilation) has no
/// maximum: an error.
fn max_pool_kernel<T: Float>(x: &[T], planes: usize, g: &Im2colGeometry) -> Result<(Vec<T>, Vec<i64>)> {
    let [oh, ow] = g.out;
    let (plane, out_plane) = (g.h * g.w, oh * ow);
    // The window positions inside the image, per output row and per output column.
    let taps = |axis: usize, o: usize| -> Vec<usize> {
        let n = [g.h, g.w][axis];
        (0..g.kernel[axis])
            .filter_map(|k| {
                let i = (o * g.stride[axis] + k * g.dilation[axis]) as isize - g.padding[axis] as isize;
                (0..n as isize).contains(&i).then_some(i as usize)
            })
            .collect()
    };
    let rows: Vec<Vec<usize>> = (0..oh).map(|oy| taps(0, oy)).collect();
    let cols: Vec<Vec<usize>> = (0..ow).map(|ox| taps(1, ox)).collect();
    if rows.iter().chain(&cols).any(|t| t.is_empty()) {
        return Err(invalid(
            "max_pool2d",
            format!(
                "a window of kernel {:?} with dilation {:?} lies wholly in the padding {:?} of a {}x{} input",
                g.kernel, g.dilation, g.padding, g.h, g.w
            ),
        ));
    }
    let mut vals = crate::storage::zeroed::<T>(planes * out_plane);
    let mut idx = crate::storage::zeroed::<i64>(planes * out_plane);
    // The common 2x2 window with stride 2 and no padding: the two input rows of an output row,
    // a straight loop the compiler can vectorise.
    let pairs = g.kernel == [2, 2] && g.stride == [2, 2] && g.padding == [0, 0] && g.dilation == [1, 1];
    let work = |(p, (v, ix)): (usize, (&mut [T], &mut [i64]))| {
        let src = &x[p * plane..(p + 1) * plane];
        if pairs {
            let lines = v.chunks_exact_mut(ow).zip(ix.chunks_exact_mut(ow));
            for (oy, (v, ix)) in lines.enumerate() {
                let (r0, r1) = (2 * oy * g.w, (2 * oy + 1) * g.w);
                let (top, bottom) = (&src[r0..r0 + 2 * ow], &src[r1..r1 + 2 * ow]);
                for (ox, (v, ix)) in v.iter_mut().zip(ix.iter_mut()).enumerate() {
                    let (a, b) = ((top[2 * ox], r0 + 2 * ox), (top[2 * ox + 1], r0 + 2 * ox + 1));
                    let (c, d) = ((bottom[2 * ox], r1 + 2 * ox), (bottom[2 * ox + 1], r1 + 2 * ox + 1));
                    let best = pick(pick(pick(a, b), c), d);
                    (*v, *ix) = (best.0, best.1 as i64);
                }
            }
            return;
        }
        for (oy, ys) in rows.iter().enumerate() {
            for (ox, xs) in cols.iter().enumerate() {
                let first = ys[0] * g.w + xs[0];
                let mut best = (src[first], first);
                for &iy in ys {
                    for &jx in xs {
                        let at = iy * g.w + jx;
                        best = pick(best, (src[at], at));
                    }
                }
                (v[oy * ow + ox], ix[oy * ow + ox]) = (best.0, best.1 as i64);
            }
        }
    };
    let chunk = out_plane.max(1);
    if worth_parallel(x.len()) {
        let pieces = vals.par_chunks_mut(chunk).zip(idx.par_chunks_mut(chunk));
        pool().install(|| pieces.enumerate().with_min_len(4).for_each(work));
    } else {
        vals.chunks_mut(chunk).zip(idx.chunks_mut(chunk)).enumerate().for_each(work);
    }
    Ok((vals, idx))
}
