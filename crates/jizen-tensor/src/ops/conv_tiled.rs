//! 2-D convolution as three primitives that form a closed family under differentiation (like
//! PyTorch's `convolution` / `convolution_backward`):
//!
//! - `Conv2d`: `y = conv(x, w)`, x [N, C, H, W], w [Cout, C/groups, kh, kw] -> y [N, Cout, oh, ow];
//! - `Conv2dGradInput`: `conv(·, w)ᵀ g`, the adjoint in x (a transposed convolution) -> [N, C, H, W];
//! - `Conv2dGradWeight`: the adjoint in w of `conv(x, ·)` applied to g -> [Cout, C/groups, kh, kw].
//!
//! All three are slices of one trilinear form `T(x, w, g) = <conv(x, w), g>`, so each one's
//! gradient is one of the others (see [`backward`]); gradients of gradients work.
//!
//! The kernels work one sample at a time (Caffe's scheme): the sample's columns
//! `[C*kh*kw, oh*ow]` go into a per-thread buffer small enough to stay in cache, one GEMM per
//! group uses them, and samples are split across threads. Nothing the size of the batch's
//! columns is ever written, the output comes out in NCHW order (no permute), and the weight
//! gradient recomputes the columns instead of storing them.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::dtype::Float;
use crate::error::{dtype_err, shape_err, Result};
use crate::op::Op;
use crate::ops::conv::{gather_row, scatter_row, Im2colGeometry};
use crate::parallel::{num_threads, pool};
use crate::storage::{assume_init, fill_uninit, uninit, zeroed, StorageElement};
use crate::Tensor;

/// Convolutions with fewer multiply-adds than this run on one thread.
const PAR_FLOPS: usize = 1 << 18;

/// The geometry of a convolution: the input's windows (`im`: channels, size, kernel, stride,
/// padding, dilation, output size), the groups and the output channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub im: Im2colGeometry,
    pub groups: usize,
    pub cout: usize,
}

impl ConvGeometry {
    /// Rows of one group's columns: `C/groups * kh * kw` (the GEMM's inner dimension).
    fn kg(&self) -> usize {
        self.im.c / self.groups * self.im.kernel[0] * self.im.kernel[1]
    }
    fn l(&self) -> usize {
        self.im.out[0] * self.im.out[1]
    }
    fn in_len(&self) -> usize {
        self.im.c * self.im.h * self.im.w
    }
    /// A 1×1 kernel with stride 1 and no padding: the columns are the image itself.
    fn pointwise(&self) -> bool {
        self.im.kernel == [1, 1] && self.im.stride == [1, 1] && self.im.padding == [0, 0]
    }
    fn weight_shape(&self) -> [usize; 4] {
        [self.cout, self.im.c / self.groups, self.im.kernel[0], self.im.kernel[1]]
    }
    fn flops(&self, n: usize) -> usize {
        n * self.cout * self.kg() * self.l()
    }
}

/// `dst [m, n]` = (`acc` ? dst : 0) + `a` × `b`, with `dst` m×n, `a` m×k and `b` k×n given by
/// (row, column) strides.
///
/// # Safety
/// Every pointer must cover the elements its strides reach; `dst` must not alias `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<T: Float>(
    [m, n, k]: [usize; 3],
    (dst, dst_rs, dst_cs): (*mut T, usize, usize),
    acc: bool,
    (a, a_rs, a_cs): (*const T, usize, usize),
    (b, b_rs, b_cs): (*const T, usize, usize),
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        acc,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        if acc { T::one() } else { T::zero() },
        T::one(),
        false,
        false,
        false,
        par,
    )
}

/// For kernel offset `(ki, kj)` of a "same-width" geometry (stride 1, `ow == w`), the columns'
/// row is the image plane shifted by a constant: `row[i] = plane[i + shift]` wherever the window
/// sees the image. Returns `(shift, lo, hi)`: the range `lo..hi` of the row covered by one
/// contiguous copy (its few out-of-image entries, at line ends, are then set by the caller).
fn shifted(g: &Im2colGeometry, ki: usize, kj: usize) -> Option<(isize, usize, usize)> {
    if g.stride != [1, 1] || g.out[1] != g.w {
        return None;
    }
    let (ylo, yhi) = g.valid(0, ki);
    let (xlo, xhi) = g.valid(1, kj);
    if ylo >= yhi || xlo >= xhi {
        return Some((0, 0, 0));
    }
    let dy = (ki * g.dilation[0]) as isize - g.padding[0] as isize;
    let dx = (kj * g.dilation[1]) as isize - g.padding[1] as isize;
    let ow = g.out[1];
    Some((dy * g.w as isize + dx, ylo * ow + xlo, (yhi - 1) * ow + xhi))
}

/// One sample's image `[C, H, W]` as columns `[C*kh*kw, L]`, into `cols`.
fn im2col_sample<T: Float>(x: &[T], g: &Im2colGeometry, cols: &mut [T]) {
    let (kk, l, plane, ow) = (g.kernel[0] * g.kernel[1], g.out[0] * g.out[1], g.h * g.w, g.out[1]);
    for (r, row) in cols.chunks_mut(l).enumerate() {
        let (c, k) = (r / kk, r % kk);
        let (ki, kj) = (k / g.kernel[1], k % g.kernel[1]);
        let src = &x[c * plane..(c + 1) * plane];
        match shifted(g, ki, kj) {
            Some((shift, lo, hi)) if lo < hi => {
                // One copy for the whole row, then zeros where the window hangs over the padding.
                let s0 = (lo as isize + shift) as usize;
                row[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
                let ((ylo, yhi), (xlo, xhi)) = (g.valid(0, ki), g.valid(1, kj));
                row[..ylo * ow].fill(T::zero());
                row[yhi * ow..].fill(T::zero());
                if xlo > 0 || xhi < ow {
                    for line in row[ylo * ow..yhi * ow].chunks_mut(ow) {
                        line[..xlo].fill(T::zero());
                        line[xhi..].fill(T::zero());
                    }
                }
            }
            _ => gather_row(src, g, ki, kj, row),
        }
    }
}

/// Columns `[C*kh*kw, L]` summed into one sample's image `[C, H, W]` (which must be zeroed).
/// The columns are scratch: entries that fall on the padding are cleared on the way.
fn col2im_sample<T: Float>(cols: &mut [T], g: &Im2colGeometry, img: &mut [T]) {
    let (kk, l, plane, ow) = (g.kernel[0] * g.kernel[1], g.out[0] * g.out[1], g.h * g.w, g.out[1]);
    for (r, row) in cols.chunks_mut(l).enumerate() {
        let (c, k) = (r / kk, r % kk);
        let (ki, kj) = (k / g.kernel[1], k % g.kernel[1]);
        let dst = &mut img[c * plane..(c + 1) * plane];
        match shifted(g, ki, kj) {
            Some((shift, lo, hi)) if lo < hi => {
                let ((ylo, yhi), (xlo, xhi)) = (g.valid(0, ki), g.valid(1, kj));
                if xlo > 0 || xhi < ow {
                    for line in row[ylo * ow..yhi * ow].chunks_mut(ow) {
                        line[..xlo].fill(T::zero());
                        line[xhi..].fill(T::zero());
                    }
                }
                let d0 = (lo as isize + shift) as usize;
                for (d, &v) in dst[d0..d0 + (hi - lo)].iter_mut().zip(&row[lo..hi]) {
                    *d += v;
                }
            }
            Some(_) => {}
            None => scatter_row(row, g, ki, kj, dst),
        }
    }
}

/// Whether the forward and input-gradient kernels of `cg` take Winograd's F(2×2, 3×3)
/// (`conv_winograd.rs`): where it applies, unless `JIZEN_WINOGRAD=0` (kept for comparison).
fn winograd(cg: &ConvGeometry) -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("JIZEN_WINOGRAD").map_or(true, |v| v.trim() != "0"))
        && super::conv_winograd::applies(cg)
}

/// How to spread `n` samples over the threads: `Some(par)` = one sample after another, each
/// GEMM with `par`; `None` = samples in parallel, GEMMs on one thread.
fn plan(cg: &ConvGeometry, n: usize) -> Option<gemm::Parallelism> {
    let threads = num_threads();
    let big = cg.flops(n) >= PAR_FLOPS;
    if threads > 1 && big && n >= threads {
        None
    } else if threads > 1 && big {
        Some(gemm::Parallelism::Rayon(threads))
    } else {
        Some(gemm::Parallelism::None)
    }
}

/// Runs `f(sample, out_chunk, scratch)` for every sample, where `out` holds `per` elements per
/// sample and `scratch` is a per-thread buffer of `scratch_len` elements.
fn for_each_sample<T: Float>(
    out: &mut [MaybeUninit<T>],
    per: usize,
    scratch_len: usize,
    plan: Option<gemm::Parallelism>,
    f: impl Fn(usize, &mut [MaybeUninit<T>], &mut [T], gemm::Parallelism) + Sync + Send,
) {
    if out.is_empty() || per == 0 {
        return;
    }
    match plan {
        None => {
            // A few contiguous runs of samples per thread (for balance), one scratch buffer each.
            let n = out.len() / per;
            let per_task = n.div_ceil((4 * num_threads()).min(n));
            pool().install(|| {
                out.par_chunks_mut(per * per_task).enumerate().for_each(|(t, o)| {
                    let mut s = vec![T::zero(); scratch_len];
                    for (j, oi) in o.chunks_mut(per).enumerate() {
                        f(t * per_task + j, oi, &mut s, gemm::Parallelism::None);
                    }
                })
            })
        }
        Some(par) => {
            let mut s = vec![T::zero(); scratch_len];
            let mut go = || out.chunks_mut(per).enumerate().for_each(|(i, o)| f(i, o, &mut s, par));
            if matches!(par, gemm::Parallelism::Rayon(_)) {
                pool().install(go)
            } else {
                go()
            }
        }
    }
}

/// y [N, Cout, L] = W [Cout, kg] × cols(x[n]) [kg, L] (+ bias [Cout]), per group.
fn forward_kernel<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, n: usize, cg: &ConvGeometry) -> Vec<T> {
    if winograd(cg) {
        return super::conv_winograd::forward(x, w, bias, n, cg);
    }
    let (kg, l, gs) = (cg.kg(), cg.l(), cg.groups);
    let cog = cg.cout / gs;
    let mut out = uninit::<T>(n * cg.cout * l);
    let scratch = if cg.pointwise() { 0 } else { kg * gs * l };
    for_each_sample(&mut out, cg.cout * l, scratch, plan(cg, n), |i, y, cols, par| {
        let xi = &x[i * cg.in_len()..(i + 1) * cg.in_len()];
        let cols: &[T] = if cg.pointwise() {
            xi
        } else {
            im2col_sample(xi, &cg.im, cols);
            cols
        };
        if let Some(b) = bias {
            // The GEMM adds onto the bias, which is still in cache: no extra pass over y.
            y.chunks_mut(l).zip(b).for_each(|(row, &v)| {
                fill_uninit(row, v);
            });
        }
        for gi in 0..gs {
            // SAFETY: the slices cover [cog, kg], [kg, L] and [cog, L] of group gi; without a
            // bias gemm writes y without reading it.
            unsafe {
                gemm(
                    [cog, l, kg],
                    (y[gi * cog * l..].as_mut_ptr().cast::<T>(), l, 1),
                    bias.is_some(),
                    (w[gi * cog * kg..].as_ptr(), kg, 1),
                    (cols[gi * kg * l..].as_ptr(), l, 1),
                    par,
                )
            }
        }
    });
    // SAFETY: every sample's [Cout, L] block was written by its GEMMs (the groups cover Cout).
    unsafe { assume_init(out) }
}

/// grad_x [N, C, H, W] = col2im(Wᵀ [kg, Cout] × g[n] [Cout, L]), per group.
fn grad_input_kernel<T: Float>(gy: &[T], w: &[T], n: usize, cg: &ConvGeometry) -> Vec<T> {
    if winograd(cg) {
        return super::conv_winograd::grad_input(gy, w, n, cg);
    }
    let (kg, l, gs) = (cg.kg(), cg.l(), cg.groups);
    let cog = cg.cout / gs;
    let mut out = uninit::<T>(n * cg.in_len());
    let scratch = if cg.pointwise() { 0 } else { kg * gs * l };
    for_each_sample(&mut out, cg.in_len(), scratch, plan(cg, n), |i, img, cols, par| {
        let gi_ = &gy[i * cg.cout * l..(i + 1) * cg.cout * l];
        // Pointwise, the products are the image itself ([C, H·W]); else columns for col2im.
        let dst: *mut T = if cg.pointwise() { img.as_mut_ptr().cast::<T>() } else { cols.as_mut_ptr() };
        for gi in 0..gs {
            // SAFETY: Wᵀ of group gi is [kg, cog] with strides (1, kg); g is [cog, L]; the
            // destination holds [kg, L] per group and gemm writes it without reading it.
            unsafe {
                gemm(
                    [kg, l, cog],
                    (dst.add(gi * kg * l), l, 1),
                    false,
                    (w[gi * cog * kg..].as_ptr(), 1, kg),
                    (gi_[gi * cog * l..].as_ptr(), l, 1),
                    par,
                )
            }
        }
        if !cg.pointwise() {
            col2im_sample(cols, &cg.im, fill_uninit(img, T::zero()));
        }
    });
    // SAFETY: each sample's image was written whole: by the GEMMs (pointwise: groups · kg · L
    // = C · H · W elements) or filled with zeros before col2im added onto it.
    unsafe { assume_init(out) }
}

/// grad_w [Cout, kg] = Σ_n g[n] [Cout, L] × cols(x[n])ᵀ [L, kg], per group; each thread sums
/// its own samples, then the partial sums are added.
fn grad_weight_kernel<T: Float>(x: &[T], gy: &[T], n: usize, cg: &ConvGeometry) -> Vec<T> {
    if winograd(cg) {
        return super::conv_winograd::grad_weight(x, gy, n, cg);
    }
    let (kg, l, gs) = (cg.kg(), cg.l(), cg.groups);
    let cog = cg.cout / gs;
    let wlen = cg.cout * kg;
    let scratch = if cg.pointwise() { 0 } else { kg * gs * l };
    // Samples [lo, hi) into `acc` (overwritten by the first sample).
    let run = |lo: usize, hi: usize, acc: &mut [T], cols: &mut [T], par: gemm::Parallelism| {
        for i in lo..hi {
            let xi = &x[i * cg.in_len()..(i + 1) * cg.in_len()];
            let cols: &[T] = if cg.pointwise() {
                xi
            } else {
                im2col_sample(xi, &cg.im, cols);
                cols
            };
            let gi_ = &gy[i * cg.cout * l..(i + 1) * cg.cout * l];
            for gi in 0..gs {
                // SAFETY: g of group gi is [cog, L]; colsᵀ is [L, kg] with strides (1, L).
                unsafe {
                    gemm(
                        [cog, kg, l],
                        (acc[gi * cog * kg..].as_mut_ptr(), kg, 1),
                        i > lo,
                        (gi_[gi * cog * l..].as_ptr(), l, 1),
                        (cols[gi * kg * l..].as_ptr(), 1, l),
                        par,
                    )
                }
            }
        }
    };
    if n == 0 {
        return zeroed(wlen);
    }
    match plan(cg, n) {
        None => {
            let tasks = num_threads().min(n);
            let parts: Vec<Vec<T>> = pool().install(|| {
                (0..tasks)
                    .into_par_iter()
                    .map(|t| {
                        let (lo, hi) = (t * n / tasks, (t + 1) * n / tasks);
                        let mut acc = vec![T::zero(); wlen];
                        let mut cols = vec![T::zero(); scratch];
                        run(lo, hi, &mut acc, &mut cols, gemm::Parallelism::None);
                        acc
                    })
                    .collect()
            });
            let mut parts = parts.into_iter();
            let mut out = parts.next().expect("at least one task");
            for p in parts {
                out.iter_mut().zip(&p).for_each(|(o, &v)| *o += v);
            }
            out
        }
        Some(par) => {
            let mut acc = zeroed::<T>(wlen);
            let mut cols = vec![T::zero(); scratch];
            if matches!(par, gemm::Parallelism::Rayon(_)) {
                pool().install(|| run(0, n, &mut acc, &mut cols, par));
            } else {
                run(0, n, &mut acc, &mut cols, par);
            }
            acc
        }
    }
}

fn same_dtype(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(dtype_err(op, format!("operands are {} and {}", a.dtype(), b.dtype())));
    }
    Ok(())
}

impl Tensor {
    /// The primitive `Conv2d`: `self` [N, C, H, W] with `weight` [Cout, C/groups, kh, kw] and an
    /// optional `bias` [Cout] (checked by the caller).
    pub(crate) fn conv2d_prim(&self, weight: &Tensor, bias: Option<&Tensor>, cg: ConvGeometry) -> Result<Tensor> {
        same_dtype("conv2d", self, weight)?;
        if let Some(b) = bias {
            same_dtype("conv2d", self, b)?;
        }
        let n = self.shape()[0];
        let shape = [n, cg.cout, cg.im.out[0], cg.im.out[1]];
        crate::with_float!(self.dtype(), "conv2d", |T| {
            let data = self.with_data::<T, _>(|x| {
                weight.with_data::<T, _>(|w| match bias {
                    None => Ok(forward_kernel::<T>(x, w, None, n, &cg)),
                    Some(b) => b.with_data::<T, _>(|b| forward_kernel::<T>(x, w, Some(b), n, &cg)),
                })
            })???;
            Ok(Tensor::from_op(T::wrap(data), &shape, || Op::Conv2d(self.clone(), weight.clone(), bias.cloned(), cg)))
        })
    }

    /// The primitive `Conv2dGradInput`: `self` is a gradient [N, Cout, oh, ow].
    pub(crate) fn conv2d_grad_input_prim(&self, weight: &Tensor, cg: ConvGeometry) -> Result<Tensor> {
        same_dtype("conv2d_grad_input", self, weight)?;
        let n = self.shape()[0];
        let shape = [n, cg.im.c, cg.im.h, cg.im.w];
        crate::with_float!(self.dtype(), "conv2d_grad_input", |T| {
            let data =
                self.with_data::<T, _>(|g| weight.with_data::<T, _>(|w| grad_input_kernel::<T>(g, w, n, &cg)))??;
            Ok(Tensor::from_op(T::wrap(data), &shape, || Op::Conv2dGradInput(self.clone(), weight.clone(), cg)))
        })
    }

    /// The primitive `Conv2dGradWeight`: `self` is the input [N, C, H, W], `grad` [N, Cout, oh, ow].
    pub(crate) fn conv2d_grad_weight_prim(&self, grad: &Tensor, cg: ConvGeometry) -> Result<Tensor> {
        same_dtype("conv2d_grad_weight", self, grad)?;
        let n = self.shape()[0];
        crate::with_float!(self.dtype(), "conv2d_grad_weight", |T| {
            let data =
                self.with_data::<T, _>(|x| grad.with_data::<T, _>(|g| grad_weight_kernel::<T>(x, g, n, &cg)))??;
            Ok(Tensor::from_op(T::wrap(data), &cg.weight_shape(), || {
                Op::Conv2dGradWeight(self.clone(), grad.clone(), cg)
            }))
        })
    }

    /// The gradient of `conv2d` with respect to its input, as a function of the output's gradient
    /// `self` [N, Cout, oh, ow] and `weight` [Cout, C/groups, kh, kw], for an input of spatial
    /// size `input_hw` (PyTorch's `torch.nn.grad.conv2d_input`). Differentiable.
    pub fn conv2d_grad_input(
        &self,
        weight: &Tensor,
        input_hw: [usize; 2],
        o: super::conv::ConvOptions,
    ) -> Result<Tensor> {
        let op = "conv2d_grad_input";
        let [n, cout, oh, ow] = rank4(op, "gradient", self)?;
        let [wcout, cin_g, kh, kw] = rank4(op, "weight", weight)?;
        let cg = geometry(op, [n, cin_g * o.groups, input_hw[0], input_hw[1]], [wcout, cin_g, kh, kw], o)?;
        if [cout, oh, ow] != [cg.cout, cg.im.out[0], cg.im.out[1]] {
            return Err(shape_err(
                op,
                format!(
                    "gradient {:?} does not match the output [{n}, {}, {}, {}] of weight {:?} on a {input_hw:?} input",
                    self.shape(),
                    cg.cout,
                    cg.im.out[0],
                    cg.im.out[1],
                    weight.shape()
                ),
            ));
        }
        self.conv2d_grad_input_prim(weight, cg)
    }

    /// The gradient of `conv2d` with respect to its weight, as a function of the input `self`
    /// [N, C, H, W] and the output's gradient `grad` [N, Cout, oh, ow], for a `kernel` [kh, kw]
    /// (PyTorch's `torch.nn.grad.conv2d_weight`). Differentiable.
    pub fn conv2d_grad_weight(&self, grad: &Tensor, kernel: [usize; 2], o: super::conv::ConvOptions) -> Result<Tensor> {
        let op = "conv2d_grad_weight";
        let [n, cin, h, w] = rank4(op, "input", self)?;
        let [gn, cout, oh, ow] = rank4(op, "gradient", grad)?;
        if o.groups == 0 || cin % o.groups != 0 {
            return Err(shape_err(op, format!("input channels {cin} are not divisible by groups={}", o.groups)));
        }
        let cg = geometry(op, [n, cin, h, w], [cout, cin / o.groups, kernel[0], kernel[1]], o)?;
        if [gn, oh, ow] != [n, cg.im.out[0], cg.im.out[1]] {
            return Err(shape_err(
                op,
                format!(
                    "gradient {:?} does not match the output [{n}, {cout}, {}, {}] of a {kernel:?} kernel on input {:?}",
                    grad.shape(),
                    cg.im.out[0],
                    cg.im.out[1],
                    self.shape()
                ),
            ));
        }
        self.conv2d_grad_weight_prim(grad, cg)
    }
}

fn rank4(op: &'static str, what: &str, t: &Tensor) -> Result<[usize; 4]> {
    match t.shape() {
        &[a, b, c, d] => Ok([a, b, c, d]),
        s => Err(shape_err(op, format!("{what} must be 4-D, got {s:?}"))),
    }
}

/// Checks an input shape, a weight shape and options against each other.
pub(crate) fn geometry(
    op: &'static str,
    [_, cin, h, w]: [usize; 4],
    [cout, cin_g, kh, kw]: [usize; 4],
    o: super::conv::ConvOptions,
) -> Result<ConvGeometry> {
    let g = o.groups;
    if g == 0 || cin_g * g != cin || cout % g != 0 {
        return Err(shape_err(
            op,
            format!("{cin} input channels, weight [{cout}, {cin_g}, {kh}, {kw}] and groups={g} do not agree (input channels must equal weight.shape[1] * groups, and groups must divide the output channels)"),
        ));
    }
    let im = Im2colGeometry::new(op, [cin, h, w], [kh, kw], o.stride, o.padding, o.dilation)?;
    Ok(ConvGeometry { im, groups: g, cout })
}

/// Gradients of the three primitives (one per input, in the order of [`Op::inputs`]), each
/// written with the others.
pub(crate) fn backward(op: &Op, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let need = |t: &Tensor| t.requires_grad();
    Ok(match op {
        // y = conv(x, w) + b: gx = conv_ᵀ(g, w), gw = conv_w(x, g), gb = g summed but for channels.
        Op::Conv2d(x, w, b, cg) => {
            let mut gs = vec![
                if need(x) { Some(g.conv2d_grad_input_prim(w, *cg)?) } else { None },
                if need(w) { Some(x.conv2d_grad_weight_prim(g, *cg)?) } else { None },
            ];
            if let Some(b) = b {
                gs.push(if need(b) { Some(g.sum(&[0, 2, 3], false)?) } else { None });
            }
            gs
        }
        // z = conv_ᵀ(gy, w): <z, g> = <conv(g, w), gy>.
        Op::Conv2dGradInput(gy, w, cg) => vec![
            if need(gy) { Some(g.conv2d_prim(w, None, *cg)?) } else { None },
            if need(w) { Some(g.conv2d_grad_weight_prim(gy, *cg)?) } else { None },
        ],
        // z = conv_w(x, gy): <z, g> = <conv(x, g), gy>.
        Op::Conv2dGradWeight(x, gy, cg) => vec![
            if need(x) { Some(gy.conv2d_grad_input_prim(g, *cg)?) } else { None },
            if need(gy) { Some(x.conv2d_prim(g, None, *cg)?) } else { None },
        ],
        _ => unreachable!("conv_tiled::backward called for {}", op.name()),
    })
}
