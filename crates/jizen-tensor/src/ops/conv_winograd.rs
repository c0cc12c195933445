//! 3×3, stride-1 convolutions by Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016).
//!
//! A 2×2 block of outputs depends on a 4×4 tile `d` of the (padded) input. With the filter
//! `g` (3×3) transformed once to `U = G g Gᵀ` and the tile to `V = Bᵀ d B` (both 4×4), the
//! block is `Aᵀ (U ⊙ V) A`: 16 multiplications per channel pair instead of the 36 of the direct
//! form. Summed over input channels, each of the 16 positions ξ of the 4×4 product is one
//! matrix product `M_ξ [Cout, tiles] = U_ξ [Cout, C] × V_ξ [C, tiles]`, so the work is 16
//! GEMMs of `2.25×` fewer multiply-adds in all than im2col's one, plus the transforms, which are
//! additions only.
//!
//! ```text
//!      ⎡1  0 -1  0⎤        ⎡ 1    0    0 ⎤        ⎡1 1  1  0⎤
//! Bᵀ = ⎢0  1  1  0⎥    G = ⎢1/2  1/2  1/2⎥   Aᵀ = ⎣0 1 -1 -1⎦
//!      ⎢0 -1  1  0⎥        ⎢1/2 -1/2  1/2⎥
//!      ⎣0  1  0 -1⎦        ⎣ 0    0    1 ⎦
//! ```
//!
//! These matrices compute the cross-correlation `y[i, j] = Σ x[i + a, j + b] g[a, b]` that
//! `conv2d` means. The input gradient of such a convolution is another one (the gradient
//! correlated with the flipped, channel-transposed filter, padded by `2 − padding`), so
//! `conv2d_grad_input` takes this path too; the weight gradient stays with im2col.
//!
//! Work is split into chunks of samples, a chunk's transformed tiles and products sized to stay
//! in the core's cache; chunks run in parallel, each with its own buffers.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::dtype::Float;
use crate::ops::conv_tiled::{gemm, ConvGeometry};
use crate::parallel::{num_threads, pool};
use crate::storage::{assume_init, uninit};

/// Input and output channels below this keep im2col: the 16 products would be too thin (their
/// inner dimension is the input channels) to pay for the transforms.
const MIN_CHANNELS: usize = 8;

/// Tiles per chunk to aim for: the chunk's `V` (16 × C × tiles) and `M` (16 × Cout × tiles)
/// then stay near the size of a core's L2 cache for the channel counts of small CNNs.
const CHUNK_TILES: usize = 128;

/// Whether the convolution `cg` (and its input gradient) takes the Winograd path: a 3×3 kernel,
/// stride 1, dilation 1, one group, padding at most 2 (so that the input gradient's padding
/// `2 − p` exists) and at least [`MIN_CHANNELS`] input and output channels.
pub(crate) fn applies(cg: &ConvGeometry) -> bool {
    let g = &cg.im;
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && cg.groups == 1
        && g.padding[0] <= 2
        && g.padding[1] <= 2
        && g.c >= MIN_CHANNELS
        && cg.cout >= MIN_CHANNELS
}

/// The forward convolution of `applies(cg)`: `x` [N, C, H, W], `w` [Cout, C, 3, 3].
pub(crate) fn forward<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, n: usize, cg: &ConvGeometry) -> Vec<T> {
    let g = &cg.im;
    conv3x3(x, w, bias, n, [g.c, g.h, g.w], cg.cout, g.padding)
}

/// The input gradient of `applies(cg)`: `gy` [N, Cout, oh, ow] correlated with the flipped,
/// channel-transposed filter `w'[c, co, a, b] = w[co, c, 2 − a, 2 − b]`, padded by `2 − p`.
pub(crate) fn grad_input<T: Float>(gy: &[T], w: &[T], n: usize, cg: &ConvGeometry) -> Vec<T> {
    let (g, c, cout) = (&cg.im, cg.im.c, cg.cout);
    let mut flipped = vec![T::zero(); w.len()];
    for co in 0..cout {
        for ci in 0..c {
            let src = &w[(co * c + ci) * 9..][..9];
            let dst = &mut flipped[(ci * cout + co) * 9..][..9];
            for (k, v) in dst.iter_mut().enumerate() {
                *v = src[8 - k];
            }
        }
    }
    let pad = [2 - g.padding[0], 2 - g.padding[1]];
    conv3x3(gy, &flipped, None, n, [cout, g.out[0], g.out[1]], c, pad)
}

/// The weight gradient of `applies(cg)`: `x` [N, C, H, W] and `gy` [N, Cout, oh, ow] give
/// `dW` [Cout, C, 3, 3]. It is the adjoint of the forward's filter path: with `V` the input
/// tiles' transforms (as in the forward) and `dM = A dY Aᵀ` each 2×2 gradient block's, the
/// transformed gradient is `dU_ξ = Σ_tiles dM_ξ Vᵀ_ξ` (16 GEMMs `[Cout, tiles] × [tiles, C]`),
/// and `dW = Gᵀ dU G`.
pub(crate) fn grad_weight<T: Float>(x: &[T], gy: &[T], n: usize, cg: &ConvGeometry) -> Vec<T> {
    let g = &cg.im;
    let (c, cout) = (g.c, cg.cout);
    let (oh, ow) = (g.out[0], g.out[1]);
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let geo = Tiling { c, h: g.h, wd: g.w, cout, pad: g.padding, oh, ow, th, tw };
    let tiles = th * tw;
    let threads = num_threads();
    let per = (CHUNK_TILES / tiles).clamp(1, n.div_ceil(threads).max(1));
    let chunks = n.div_ceil(per);
    let (in_len, out_len) = (c * g.h * g.w, cout * oh * ow);
    // Chunks [lo, hi) summed into one transformed gradient [16, Cout, C].
    let run = |lo: usize, hi: usize, par| {
        let mut scr = Scratch::new(&geo, per);
        let mut du = vec![T::zero(); 16 * cout * c];
        for i in lo..hi {
            let (s0, m) = (i * per, per.min(n - i * per));
            let (xs, gs) = (&x[s0 * in_len..][..m * in_len], &gy[s0 * out_len..][..m * out_len]);
            geo.weight_chunk(xs, gs, m, &mut du, i > lo, &mut scr, par);
        }
        du
    };
    // A contiguous run of chunks per thread, its partial sums added in thread order: the same
    // sum for the same thread count, whichever thread is faster.
    let parts: Vec<Vec<T>> = if threads > 1 && chunks >= threads {
        let tasks = threads;
        pool().install(|| {
            (0..tasks)
                .into_par_iter()
                .map(|t| run(t * chunks / tasks, (t + 1) * chunks / tasks, gemm::Parallelism::None))
                .collect()
        })
    } else {
        let flops = 16 * n * tiles * c * cout;
        let par =
            if threads > 1 && flops >= 1 << 18 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        if matches!(par, gemm::Parallelism::Rayon(_)) {
            vec![pool().install(|| run(0, chunks, par))]
        } else {
            vec![run(0, chunks, par)]
        }
    };
    let mut du = parts.into_iter();
    let mut total = du.next().unwrap_or_else(|| vec![T::zero(); 16 * cout * c]);
    for p in du {
        total.iter_mut().zip(&p).for_each(|(t, &v)| *t += v);
    }
    filter_transform_adjoint(&total, cout, c)
}

/// `dW = Gᵀ dU G` for every (output, input) channel pair: the adjoint of [`filter_transform`],
/// from `du` [16, Cout, C] to `[Cout, C, 3, 3]`.
fn filter_transform_adjoint<T: Float>(du: &[T], cout: usize, c: usize) -> Vec<T> {
    let half = T::from_f64(0.5);
    // The 3 columns of Gᵀ applied to four values.
    let gt = |a: T, b: T, d: T, e: T| [a + half * (b + d), half * (b - d), half * (b + d) + e];
    let mut w = vec![T::zero(); cout * c * 9];
    for (f, dw) in w.chunks_exact_mut(9).enumerate() {
        let at = |xi: usize| du[xi * cout * c + f];
        // Gᵀ dU: each of dU's 4 columns through Gᵀ (rows a of the 3×4 intermediate).
        let cols: [[T; 3]; 4] = std::array::from_fn(|s| gt(at(s), at(4 + s), at(8 + s), at(12 + s)));
        for a in 0..3 {
            // (Gᵀ dU) G: row a through Gᵀ.
            let row = gt(cols[0][a], cols[1][a], cols[2][a], cols[3][a]);
            dw[3 * a..3 * a + 3].copy_from_slice(&row);
        }
    }
    w
}

/// `U = G g Gᵀ` for every filter of `w` [Cout, C, 3, 3], laid out `[16, C, Cout]` (position ξ
/// outermost; `U_ξ` [Cout, C] column-major, as the product's microkernel reads it).
fn filter_transform<T: Float>(w: &[T], cout: usize, c: usize) -> Vec<T> {
    let half = T::from_f64(0.5);
    // The 4 rows of G applied to three values.
    let g4 = |a: T, b: T, d: T| [a, half * (a + b + d), half * (a - b + d), d];
    let mut u = vec![T::zero(); 16 * cout * c];
    for (f, g) in w.chunks_exact(9).enumerate() {
        // G g: each filter column through G (4 rows × 3 columns).
        let cols: [[T; 4]; 3] = std::array::from_fn(|j| g4(g[j], g[3 + j], g[6 + j]));
        for r in 0..4 {
            // (G g) Gᵀ: row r through G.
            let row = g4(cols[0][r], cols[1][r], cols[2][r]);
            let (co, ci) = (f / c, f % c);
            for (s, &v) in row.iter().enumerate() {
                u[((r * 4 + s) * c + ci) * cout + co] = v;
            }
        }
    }
    u
}

/// A 3×3, stride-1 correlation of `x` [N, C, H, W] with `w` [Cout, C, 3, 3] and padding
/// `pad`, plus `bias`, by F(2×2, 3×3): output [N, Cout, H + 2 pad₀ − 2, W + 2 pad₁ − 2].
fn conv3x3<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    n: usize,
    [c, h, wd]: [usize; 3],
    cout: usize,
    pad: [usize; 2],
) -> Vec<T> {
    let (oh, ow) = (h + 2 * pad[0] - 2, wd + 2 * pad[1] - 2);
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let tiles = th * tw;
    let per_out = cout * oh * ow;
    if n * per_out == 0 {
        return Vec::new();
    }
    // Every output element is written once, by the chunk's copy back to NCHW: nothing is filled
    // first.
    let mut out = uninit::<T>(n * per_out);
    let u = filter_transform(w, cout, c);
    let geo = Tiling { c, h, wd, cout, pad, oh, ow, th, tw };
    let threads = num_threads();
    // Samples per chunk: about CHUNK_TILES tiles, and at least one chunk per thread.
    let per = (CHUNK_TILES / tiles).clamp(1, n.div_ceil(threads).max(1));
    let chunks = n.div_ceil(per);
    let flops = 16 * n * tiles * c * cout;
    let in_len = c * h * wd;
    // Chunks [lo, hi) in order into `o` (their outputs, contiguous), with one set of buffers.
    let run = |lo: usize, hi: usize, o: &mut [MaybeUninit<T>], par| {
        let mut scr = Scratch::new(&geo, per);
        for (i, o) in (lo..hi).zip(o.chunks_mut(per * per_out)) {
            let (s0, m) = (i * per, o.len() / per_out);
            geo.chunk(&x[s0 * in_len..(s0 + m) * in_len], &u, bias, m, o, &mut scr, par)
        }
    };
    if threads > 1 && chunks >= threads {
        // A contiguous run of chunks per thread, so that each allocates its buffers once (rayon's
        // `for_each_init` may make, and zero-fill, a set for each job it splits off).
        let bounds: Vec<usize> = (0..=threads).map(|t| t * chunks / threads).collect();
        let mut parts = Vec::with_capacity(threads);
        let mut rest = &mut out[..];
        for t in 0..threads {
            let samples = (bounds[t + 1] * per).min(n) - bounds[t] * per;
            let (part, tail) = rest.split_at_mut(samples * per_out);
            parts.push((bounds[t], bounds[t + 1], part));
            rest = tail;
        }
        pool().install(|| parts.into_par_iter().for_each(|(lo, hi, o)| run(lo, hi, o, gemm::Parallelism::None)));
    } else {
        let par =
            if threads > 1 && flops >= 1 << 18 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        if matches!(par, gemm::Parallelism::Rayon(_)) {
            pool().install(|| run(0, chunks, &mut out, par))
        } else {
            run(0, chunks, &mut out, par)
        }
    }
    // SAFETY: the chunks cover the output, and `chunk` writes every element of its part.
    unsafe { assume_init(out) }
}

/// The buffers of one chunk of `per` samples: the zero-bordered channels-last image of one
/// sample, the transformed tiles `v` [tiles, 16, C] and their products `prod` [tiles, 16, Cout].
struct Scratch<T> {
    img: Vec<T>,
    v: Vec<T>,
    prod: Vec<T>,
    /// One sample's outputs, channels-last over whole tiles: [2th, 2tw, Cout].
    yt: Vec<T>,
}

impl<T: Float> Scratch<T> {
    fn new(t: &Tiling, per: usize) -> Self {
        let tiles = per * t.th * t.tw;
        Scratch {
            img: vec![T::zero(); (2 * t.th + 2) * (2 * t.tw + 2) * t.c],
            v: vec![T::zero(); tiles * 16 * t.c],
            prod: vec![T::zero(); tiles * 16 * t.cout],
            yt: vec![T::zero(); 4 * t.th * t.tw * t.cout],
        }
    }
}

/// The sizes of one Winograd convolution.
#[derive(Clone, Copy)]
struct Tiling {
    c: usize,
    h: usize,
    wd: usize,
    cout: usize,
    pad: [usize; 2],
    oh: usize,
    ow: usize,
    /// Tile rows and columns: each tile makes a 2×2 block of outputs.
    th: usize,
    tw: usize,
}

impl Tiling {
    /// Convolves the `m` samples of `x` into `out` [m, Cout, oh, ow] with the transformed
    /// filters `u` [16, C, Cout].
    ///
    /// Channels are innermost everywhere in between, so every transform is a handful of vector
    /// operations across channels: the sample is copied channels-last into a zero-bordered
    /// buffer, each tile's `V` is one `[16, C]` block of `v` [tiles, 16, C], and its products one
    /// `[16, Cout]` block of `prod` [tiles, 16, Cout].
    #[allow(clippy::too_many_arguments)]
    fn chunk<T: Float>(
        &self,
        x: &[T],
        u: &[T],
        bias: Option<&[T]>,
        m: usize,
        out: &mut [MaybeUninit<T>],
        scr: &mut Scratch<T>,
        par: gemm::Parallelism,
    ) {
        let Tiling { c, cout, th, tw, .. } = *self;
        let tc = m * th * tw; // tiles in the chunk: the products' column count
        let Scratch { img, v, prod, yt } = scr;
        gather_tiles_wide(self, x, m, img, v);

        // M_ξ [Cout, tc] = U_ξ [Cout, C] × V_ξ [C, tc], where U_ξ is column-major, V_ξ's
        // column t is v[t, ξ, ..] and M_ξ's column t is prod[t, ξ, ..]: every operand has unit
        // stride down its columns.
        for xi in 0..16 {
            // SAFETY: U_ξ spans c × cout elements from xi·c·cout; V_ξ's and M_ξ's columns lie
            // at t·16·c + xi·c (resp. t·16·cout + xi·cout), inside v and prod for t < tc.
            unsafe {
                gemm(
                    [cout, tc, c],
                    (prod[xi * cout..].as_mut_ptr(), 1, 16 * cout),
                    false,
                    (u[xi * c * cout..].as_ptr(), 1, cout),
                    (v[xi * c..].as_ptr(), 1, 16 * c),
                    par,
                )
            }
        }

        scatter_tiles_wide(self, prod, bias, m, out, yt);
    }

    /// Writes into `du` [16, Cout, C] the transformed weight gradient of the `m` samples of `x`
    /// and `gy`, added to what `du` holds when `acc`.
    #[allow(clippy::too_many_arguments)]
    fn weight_chunk<T: Float>(
        &self,
        x: &[T],
        gy: &[T],
        m: usize,
        du: &mut [T],
        acc: bool,
        scr: &mut Scratch<T>,
        par: gemm::Parallelism,
    ) {
        let Tiling { c, cout, th, tw, .. } = *self;
        let tc = m * th * tw;
        let Scratch { img, v, prod: dm, yt: gt } = scr;
        gather_tiles_wide(self, x, m, img, v);
        gather_grads_wide(self, gy, m, gt, dm);
        // dU_ξ [Cout, C] = dM_ξ [Cout, tc] × V_ξᵀ [tc, C]: dM_ξ's column t is dm[t, ξ, ..], V_ξᵀ's
        // row t is v[t, ξ, ..].
        for xi in 0..16 {
            // SAFETY: dU_ξ is [cout, c] from xi·cout·c; dM_ξ's columns and V_ξᵀ's rows lie at
            // t·16·cout + xi·cout (resp. t·16·c + xi·c), inside dm and v for t < tc.
            unsafe {
                gemm(
                    [cout, c, tc],
                    (du[xi * cout * c..].as_mut_ptr(), c, 1),
                    acc,
                    (dm[xi * cout..].as_ptr(), 1, 16 * cout),
                    (v[xi * c..].as_ptr(), 16 * c, 1),
                    par,
                )
            }
        }
    }

    /// `dM = A dY Aᵀ` for every 2×2 gradient block of the `m` samples of `gy`, into `dm`
    /// [tiles, 16, Cout], through `gt` [2th, 2tw, Cout], one sample's gradient channels-last
    /// (positions past an odd edge stay zero: they are never written).
    #[inline(always)]
    fn gather_grads<T: Float>(&self, gy: &[T], m: usize, gt: &mut [T], dm: &mut [T]) {
        let Tiling { cout, oh, ow, th, tw, .. } = *self;
        let (tiles, w2, ohw) = (th * tw, 2 * tw, oh * ow);
        let mut h = vec![T::zero(); 8 * cout];
        for s in 0..m {
            to_channels_last(&gy[s * cout * ohw..][..cout * ohw], [cout, oh, ow], gt, w2, [0, 0]);
            for i in 0..th {
                for j in 0..tw {
                    let t = s * tiles + i * tw + j;
                    let px = |r: usize, q: usize| &gt[((2 * i + r) * w2 + 2 * j + q) * cout..][..cout];
                    grad_tile([px(0, 0), px(0, 1), px(1, 0), px(1, 1)], &mut dm[t * 16 * cout..][..16 * cout], &mut h);
                }
            }
        }
    }

    /// `V = Bᵀ d B` for every tile of the `m` samples of `x`, into `v` [tiles, 16, C], through
    /// `img`, the zero-bordered channels-last buffer of one sample.
    #[inline(always)]
    fn gather_tiles<T: Float>(&self, x: &[T], m: usize, img: &mut [T], v: &mut [T]) {
        let Tiling { c, h, wd, pad, th, tw, .. } = *self;
        let (tiles, pcol, hw) = (th * tw, 2 * tw + 2, h * wd);
        let mut r = vec![T::zero(); 16 * c];
        for s in 0..m {
            // The sample, channels-last, inside the zero border (the border is never written).
            to_channels_last(&x[s * c * hw..][..c * hw], [c, h, wd], img, pcol, pad);
            for i in 0..th {
                for j in 0..tw {
                    let t = s * tiles + i * tw + j;
                    let d: [&[T]; 16] = std::array::from_fn(|q| {
                        let (a, b) = (q / 4, q % 4);
                        &img[((2 * i + a) * pcol + 2 * j + b) * c..][..c]
                    });
                    input_tile(d, &mut v[t * 16 * c..][..16 * c], &mut r);
                }
            }
        }
    }

    /// `Y = Aᵀ M A` for every tile, from `prod` [tiles, 16, Cout], plus the bias, into `out`
    /// [m, Cout, oh, ow], every element of which it writes.
    #[inline(always)]
    fn scatter_tiles<T: Float>(
        &self,
        prod: &[T],
        bias: Option<&[T]>,
        m: usize,
        out: &mut [MaybeUninit<T>],
        yt: &mut [T],
    ) {
        let Tiling { cout, oh, ow, th, tw, .. } = *self;
        let (tiles, w2) = (th * tw, 2 * tw);
        let mut sums = vec![T::zero(); 8 * cout];
        let zeros = vec![T::zero(); cout];
        let bias = bias.unwrap_or(&zeros);
        for s in 0..m {
            // The sample's outputs channels-last in `yt` [2th, 2tw, Cout] (whole tiles), then
            // transposed into the NCHW planes.
            for i in 0..th {
                let (top, bottom) = yt[2 * i * w2 * cout..][..2 * w2 * cout].split_at_mut(w2 * cout);
                for j in 0..tw {
                    let t = s * tiles + i * tw + j;
                    let (p00, p01) = top[2 * j * cout..][..2 * cout].split_at_mut(cout);
                    let (p10, p11) = bottom[2 * j * cout..][..2 * cout].split_at_mut(cout);
                    output_tile(&prod[t * 16 * cout..][..16 * cout], bias, [p00, p01, p10, p11], &mut sums);
                }
            }
            // Each output plane is written in order (whole cache lines, a stream), its values
            // read strided from `yt`, which stays in the core's cache.
            let y = &mut out[s * cout * oh * ow..][..cout * oh * ow];
            #[cfg(target_arch = "x86_64")]
            if f32_avx512::<T>() {
                assert!(yt.len() >= ((oh - 1) * w2 + ow) * cout, "to_planes: buffer sizes out of range");
                // SAFETY: T is f32 (checked by its dtype), so both buffers hold f32; `y` is
                // [Cout, oh, ow] and `yt` reaches every pixel read (checked just above); the CPU
                // supports AVX-512F.
                unsafe {
                    to_planes_f32_avx512(yt.as_ptr().cast::<f32>(), w2, cout, [oh, ow], y.as_mut_ptr().cast::<f32>())
                };
                continue;
            }
            for (co, plane) in y.chunks_exact_mut(oh * ow).enumerate() {
                for (yy, line) in plane.chunks_exact_mut(ow).enumerate() {
                    let src = &yt[yy * w2 * cout + co..];
                    for (xx, d) in line.iter_mut().enumerate() {
                        d.write(src[xx * cout]);
                    }
                }
            }
        }
    }
}

/// `o[k] = f(a[k], b[k])` over whole rows: one loop the compiler vectorises.
#[inline(always)]
fn zip2<T: Float>(o: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
        *o = f(a, b);
    }
}

/// `o[k] = f(a[k], b[k], c[k])` over whole rows.
#[inline(always)]
fn zip3<T: Float>(o: &mut [T], a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T) {
    for (((o, &a), &b), &c) in o.iter_mut().zip(a).zip(b).zip(c) {
        *o = f(a, b, c);
    }
}

/// `V = Bᵀ d B` for one tile: `d[4a + b]` is the tile's pixel (a, b) across the C channels;
/// `v` [16, C] receives position ξ = 4 row + column; `r` [16, C] is scratch. Each step is a
/// pass over whole channel rows.
#[inline(always)]
fn input_tile<T: Float>(d: [&[T]; 16], v: &mut [T], r: &mut [T]) {
    let c = v.len() / 16;
    #[cfg(target_arch = "x86_64")]
    if c.is_multiple_of(16) && f32_avx512::<T>() {
        assert!(d.iter().all(|p| p.len() >= c) && v.len() == 16 * c);
        // SAFETY: T is f32 (checked by its dtype), the extents are checked just above, and the
        // CPU supports AVX-512F.
        return unsafe { input_tile_f32_avx512(d.map(|p| p.as_ptr().cast()), v.as_mut_ptr().cast(), c) };
    }
    // d B: each tile row a through B's columns, into r[4a + j].
    for a in 0..4 {
        let (d0, d1, d2, d3) = (d[4 * a], d[4 * a + 1], d[4 * a + 2], d[4 * a + 3]);
        let rows = &mut r[4 * a * c..][..4 * c];
        let (r0, rest) = rows.split_at_mut(c);
        let (r1, rest) = rest.split_at_mut(c);
        let (r2, r3) = rest.split_at_mut(c);
        zip2(r0, d0, d2, |x, y| x - y);
        zip2(r1, d1, d2, |x, y| x + y);
        zip2(r2, d2, d1, |x, y| x - y);
        zip2(r3, d1, d3, |x, y| x - y);
    }
    // Bᵀ (d B): the rows combined, per column j.
    let row = |q: usize| &r[q * c..][..c];
    for j in 0..4 {
        let (r0, r1, r2, r3) = (row(j), row(4 + j), row(8 + j), row(12 + j));
        zip2(&mut v[j * c..][..c], r0, r2, |x, y| x - y);
        zip2(&mut v[(4 + j) * c..][..c], r1, r2, |x, y| x + y);
        zip2(&mut v[(8 + j) * c..][..c], r2, r1, |x, y| x - y);
        zip2(&mut v[(12 + j) * c..][..c], r1, r3, |x, y| x - y);
    }
}

/// Copies `xs` [C, h, wd] channels-last into `img`: rows of `pcol` pixels of C values, inside a
/// border of `pad` that is left as it is. For f32 on AVX-512, 16 channels per step
/// ([`to_channels_last_f32_avx512`]); otherwise each input plane is read in order (a stream the
/// prefetcher follows) and its values strided into `img`, which stays in the core's cache.
#[inline(always)]
fn to_channels_last<T: Float>(xs: &[T], [c, h, wd]: [usize; 3], img: &mut [T], pcol: usize, pad: [usize; 2]) {
    #[cfg(target_arch = "x86_64")]
    if f32_avx512::<T>() && h > 0 && wd > 0 {
        let need = ((h - 1 + pad[0]) * pcol + wd - 1 + pad[1] + 1) * c;
        assert!(
            xs.len() >= c * h * wd && img.len() >= need && h * wd * 16 < i32::MAX as usize,
            "to_channels_last: buffer sizes or gather offsets out of range"
        );
        // SAFETY: T is f32 (checked by its dtype); `xs` holds the C planes and `img` reaches
        // every position written (both checked just above), the gather offsets fit in i32, and
        // the CPU supports AVX-512F.
        unsafe {
            to_channels_last_f32_avx512(
                xs.as_ptr().cast::<f32>(),
                [c, h, wd],
                img.as_mut_ptr().cast::<f32>(),
                pcol,
                pad,
            )
        };
        return;
    }
    for (ci, plane) in xs.chunks_exact(h * wd).enumerate() {
        for (y, line) in plane.chunks_exact(wd).enumerate() {
            let row = &mut img[((y + pad[0]) * pcol + pad[1]) * c + ci..];
            for (px, &val) in line.iter().enumerate() {
                row[px * c] = val;
            }
        }
    }
}

// The tile transforms are short vector loops across channels; the crate's baseline is SSE2.
crate::simd::multiversion! {
    /// [`Tiling::gather_tiles`], compiled for the widest vector extension the CPU has.
    fn gather_tiles_wide<T: Float>(t: &Tiling, x: &[T], m: usize, img: &mut [T], v: &mut [T]) => Tiling::gather_tiles
}

crate::simd::multiversion! {
    /// [`Tiling::scatter_tiles`], compiled for the widest vector extension the CPU has.
    fn scatter_tiles_wide<T: Float>(
        t: &Tiling,
        prod: &[T],
        bias: Option<&[T]>,
        m: usize,
        out: &mut [MaybeUninit<T>],
        yt: &mut [T],
    ) => Tiling::scatter_tiles
}

crate::simd::multiversion! {
    /// [`Tiling::gather_grads`], compiled for the widest vector extension the CPU has.
    fn gather_grads_wide<T: Float>(t: &Tiling, gy: &[T], m: usize, gt: &mut [T], dm: &mut [T]) => Tiling::gather_grads
}

/// Whether the f32 AVX-512 versions of the copies and transforms apply: `T` is f32 and the CPU
/// has AVX-512F (one place for the test the five call sites share).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn f32_avx512<T: Float>() -> bool {
    T::DTYPE == crate::DType::F32 && std::is_x86_feature_detected!("avx512f")
}

/// Sixteen values of `f(k)`, `k = 0 … 15`, written out (no loop, so an array of vectors built
/// from them stays in registers).
#[cfg(target_arch = "x86_64")]
macro_rules! unrolled16 {
    ($f:expr) => {{
        let f = $f;
        [f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7), f(8), f(9), f(10), f(11), f(12), f(13), f(14), f(15)]
    }};
}

/// The sample `xs` [C, h, wd] copied channels-last into `img` (rows of `pcol` pixels of `c`
/// values, inside a border of `pad`). Whole blocks of 16 channels go 16 pixels of a row at a
/// time: 16 loads (one per channel), a 16 × 16 transpose in registers, 16 stores (one per
/// pixel). The channels past the last whole block take one gather per pixel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn to_channels_last_f32_avx512(
    xs: *const f32,
    [c, h, wd]: [usize; 3],
    img: *mut f32,
    pcol: usize,
    pad: [usize; 2],
) {
    use std::arch::x86_64::*;
    let hw = h * wd;
    let whole = c / 16 * 16;
    for ci in (0..whole).step_by(16) {
        for y in 0..h {
            for x0 in (0..wd).step_by(16) {
                let len = (wd - x0).min(16);
                let lanes = lane_mask(len);
                // SAFETY: the caller guarantees the extents; masked lanes touch nothing.
                unsafe {
                    let src = xs.add(ci * hw + y * wd + x0);
                    let r = transpose16(unrolled16!(|k: usize| _mm512_maskz_loadu_ps(lanes, src.add(k * hw))));
                    let dst = img.add(((y + pad[0]) * pcol + x0 + pad[1]) * c + ci);
                    let _: [(); 16] = unrolled16!(|p: usize| {
                        if p < len {
                            _mm512_storeu_ps(dst.add(p * c), r[p])
                        }
                    });
                }
            }
        }
    }
    if whole < c {
        let offsets = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(hw as i32),
        );
        let mask = lane_mask(c - whole);
        for y in 0..h {
            for px in 0..wd {
                // SAFETY: as above.
                unsafe {
                    let src = xs.add(whole * hw + y * wd + px);
                    let val = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, offsets, src);
                    _mm512_mask_storeu_ps(img.add(((y + pad[0]) * pcol + px + pad[1]) * c + whole), mask, val);
                }
            }
        }
    }
}

/// The channels-last rows `yt` (`w2` pixels of `cout` values per row) copied into the planes
/// `out` [Cout, oh, ow]: per block of 16 channels and run of 16 pixels, 16 loads, a transpose
/// and 16 stores; channels past the last whole block one value at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn to_planes_f32_avx512(yt: *const f32, w2: usize, cout: usize, [oh, ow]: [usize; 2], out: *mut f32) {
    use std::arch::x86_64::*;
    let whole = cout / 16 * 16;
    for co in (0..whole).step_by(16) {
        for y in 0..oh {
            for x0 in (0..ow).step_by(16) {
                let len = (ow - x0).min(16);
                // SAFETY: the caller guarantees the extents; masked lanes touch nothing.
                unsafe {
                    let src = yt.add((y * w2 + x0) * cout + co);
                    let r = transpose16(unrolled16!(|p: usize| {
                        if p < len {
                            _mm512_loadu_ps(src.add(p * cout))
                        } else {
                            _mm512_setzero_ps()
                        }
                    }));
                    let (dst, lanes) = (out.add(co * oh * ow + y * ow + x0), lane_mask(len));
                    let _: [(); 16] = unrolled16!(|k: usize| _mm512_mask_storeu_ps(dst.add(k * oh * ow), lanes, r[k]));
                }
            }
        }
    }
    for co in whole..cout {
        for y in 0..oh {
            for x in 0..ow {
                // SAFETY: as above.
                unsafe { *out.add(co * oh * ow + y * ow + x) = *yt.add((y * w2 + x) * cout + co) };
            }
        }
    }
}

/// The first `len` (at most 16) lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lane_mask(len: usize) -> u16 {
    if len >= 16 {
        0xffff
    } else {
        ((1u32 << len) - 1) as u16
    }
}

/// Transposes the 16 × 16 matrix whose rows are `r`. Element (row i, column j) moves to (j, i):
/// the four bits of the row index are swapped with those of the column index, one bit per stage.
/// Swapping bit `b` pairs rows `i` and `i + 2^b` (bit `b` of `i` clear): the new row `i` keeps
/// row `i`'s columns with bit `b` clear and takes, into the columns with it set, row
/// `i + 2^b`'s columns with it clear; the new row `i + 2^b` takes the rest. One two-source
/// permutation per new row. Every index is a constant (no loop), so the rows stay in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transpose16(r: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    let [mut r0, mut r1, mut r2, mut r3, mut r4, mut r5, mut r6, mut r7, mut r8, mut r9, mut r10, mut r11, mut r12, mut r13, mut r14, mut r15] =
        r;
    macro_rules! stage {
        ($step:literal, $(($i:ident, $j:ident)),*) => {{
            // Indices 0..16 pick from the first operand, 16..32 from the second.
            let lo = _mm512_setr_epi32(
                idx_lo($step, 0), idx_lo($step, 1), idx_lo($step, 2), idx_lo($step, 3),
                idx_lo($step, 4), idx_lo($step, 5), idx_lo($step, 6), idx_lo($step, 7),
                idx_lo($step, 8), idx_lo($step, 9), idx_lo($step, 10), idx_lo($step, 11),
                idx_lo($step, 12), idx_lo($step, 13), idx_lo($step, 14), idx_lo($step, 15),
            );
            let hi = _mm512_setr_epi32(
                idx_hi($step, 0), idx_hi($step, 1), idx_hi($step, 2), idx_hi($step, 3),
                idx_hi($step, 4), idx_hi($step, 5), idx_hi($step, 6), idx_hi($step, 7),
                idx_hi($step, 8), idx_hi($step, 9), idx_hi($step, 10), idx_hi($step, 11),
                idx_hi($step, 12), idx_hi($step, 13), idx_hi($step, 14), idx_hi($step, 15),
            );
            $(
                let (a, z) = ($i, $j);
                $i = _mm512_permutex2var_ps(a, lo, z);
                $j = _mm512_permutex2var_ps(a, hi, z);
            )*
        }};
    }
    stage!(1, (r0, r1), (r2, r3), (r4, r5), (r6, r7), (r8, r9), (r10, r11), (r12, r13), (r14, r15));
    stage!(2, (r0, r2), (r1, r3), (r4, r6), (r5, r7), (r8, r10), (r9, r11), (r12, r14), (r13, r15));
    stage!(4, (r0, r4), (r1, r5), (r2, r6), (r3, r7), (r8, r12), (r9, r13), (r10, r14), (r11, r15));
    stage!(8, (r0, r8), (r1, r9), (r2, r10), (r3, r11), (r4, r12), (r5, r13), (r6, r14), (r7, r15));
    [r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15]
}

/// The permutation index of [`transpose16`]'s stage `step` for lane `c` of the lower row of a
/// pair: its own column `c` where bit `step` is clear, else the upper row's column `c − step`.
#[cfg(target_arch = "x86_64")]
const fn idx_lo(step: usize, c: usize) -> i32 {
    if c & step == 0 {
        c as i32
    } else {
        (16 + c - step) as i32
    }
}

/// As [`idx_lo`] for the upper row of the pair: the lower row's column `c + step` where bit
/// `step` is clear, else its own column `c`.
#[cfg(target_arch = "x86_64")]
const fn idx_hi(step: usize, c: usize) -> i32 {
    if c & step == 0 {
        (c + step) as i32
    } else {
        (16 + c) as i32
    }
}

/// `dM = A dY Aᵀ` for one 2×2 gradient block `g` (00, 01, 10, 11, each across the channels),
/// into `dm` [16, Cout]; `h` [8, Cout] is scratch. `A` is `Aᵀ`'s transpose: rows [1, 0],
/// [1, 1], [1, −1], [0, −1].
#[inline(always)]
fn grad_tile<T: Float>(g: [&[T]; 4], dm: &mut [T], h: &mut [T]) {
    let n = dm.len() / 16;
    #[cfg(target_arch = "x86_64")]
    if n.is_multiple_of(16) && f32_avx512::<T>() {
        assert!(g.iter().all(|p| p.len() >= n) && dm.len() == 16 * n);
        // SAFETY: T is f32 (checked by its dtype), the extents are checked just above, and the
        // CPU supports AVX-512F.
        return unsafe { grad_tile_f32_avx512(g.map(|p| p.as_ptr().cast()), dm.as_mut_ptr().cast(), n) };
    }
    // A dY: h[2a + col] for the 4 rows a and the 2 columns.
    for col in 0..2 {
        let (g0, g1) = (g[col], g[2 + col]);
        h[col * n..][..n].copy_from_slice(&g0[..n]);
        zip2(&mut h[(2 + col) * n..][..n], g0, g1, |a, b| a + b);
        zip2(&mut h[(4 + col) * n..][..n], g0, g1, |a, b| a - b);
        for (o, &b) in h[(6 + col) * n..][..n].iter_mut().zip(g1) {
            *o = -b;
        }
    }
    // (A dY) Aᵀ: row a's two columns through A, into ξ = 4a + b.
    for a in 0..4 {
        let (h0, h1) = (&h[2 * a * n..][..n], &h[(2 * a + 1) * n..][..n]);
        dm[4 * a * n..][..n].copy_from_slice(h0);
        zip2(&mut dm[(4 * a + 1) * n..][..n], h0, h1, |x, y| x + y);
        zip2(&mut dm[(4 * a + 2) * n..][..n], h0, h1, |x, y| x - y);
        for (o, &y) in dm[(4 * a + 3) * n..][..n].iter_mut().zip(h1) {
            *o = -y;
        }
    }
}

/// `Aᵀ M A` for one tile: `m` [16, Cout] holds the tile's 16 products per channel; `o`
/// receives the 2×2 outputs across the channels (00, 01, 10, 11), plus `bias` (zeros when the
/// convolution has none); `s` [8, Cout] is scratch.
#[inline(always)]
fn output_tile<T: Float>(m: &[T], bias: &[T], o: [&mut [T]; 4], s: &mut [T]) {
    let cout = m.len() / 16;
    #[cfg(target_arch = "x86_64")]
    if cout.is_multiple_of(16) && f32_avx512::<T>() {
        assert!(bias.len() >= cout && o.iter().all(|p| p.len() >= cout) && m.len() == 16 * cout);
        // SAFETY: T is f32 (checked by its dtype), the extents are checked just above, and the
        // CPU supports AVX-512F.
        return unsafe {
            output_tile_f32_avx512(m.as_ptr().cast(), bias.as_ptr().cast(), o.map(|p| p.as_mut_ptr().cast()), cout)
        };
    }
    let row = |q: usize| &m[q * cout..][..cout];
    // Aᵀ M: two rows, per column j: s[j] and s[4 + j].
    for j in 0..4 {
        let (m0, m1, m2, m3) = (row(j), row(4 + j), row(8 + j), row(12 + j));
        zip3(&mut s[j * cout..][..cout], m0, m1, m2, |a, b, c| a + b + c);
        zip3(&mut s[(4 + j) * cout..][..cout], m1, m2, m3, |a, b, c| a - b - c);
    }
    // (Aᵀ M) A, plus the bias.
    let [o00, o01, o10, o11] = o;
    for (r, (left, right)) in [(o00, o01), (o10, o11)].into_iter().enumerate() {
        let q = |j: usize| &s[(4 * r + j) * cout..][..cout];
        zip3(left, q(0), q(1), q(2), |a, b, c| a + b + c);
        for (l, &b) in left.iter_mut().zip(bias) {
            *l += b;
        }
        zip3(right, q(1), q(2), q(3), |a, b, c| a - b - c);
        for (l, &b) in right.iter_mut().zip(bias) {
            *l += b;
        }
    }
}

/// [`input_tile`] for f32 on AVX-512, `c` a multiple of 16: per block of 16 channels, the
/// tile's 16 pixels loaded once, both passes in registers, the 16 results stored once (the
/// generic version goes through a scratch buffer, one short loop per row).
///
/// # Safety
/// Each `d[q]` reaches `c` values, `v` reaches `16 c`; the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn input_tile_f32_avx512(d: [*const f32; 16], v: *mut f32, c: usize) {
    use std::arch::x86_64::*;
    for c0 in (0..c).step_by(16) {
        // SAFETY: c0 + 16 <= c, inside every d[q] and every row of v.
        unsafe {
            let x0 = _mm512_loadu_ps(d[0].add(c0));
            let x1 = _mm512_loadu_ps(d[1].add(c0));
            let x2 = _mm512_loadu_ps(d[2].add(c0));
            let x3 = _mm512_loadu_ps(d[3].add(c0));
            let x4 = _mm512_loadu_ps(d[4].add(c0));
            let x5 = _mm512_loadu_ps(d[5].add(c0));
            let x6 = _mm512_loadu_ps(d[6].add(c0));
            let x7 = _mm512_loadu_ps(d[7].add(c0));
            let x8 = _mm512_loadu_ps(d[8].add(c0));
            let x9 = _mm512_loadu_ps(d[9].add(c0));
            let x10 = _mm512_loadu_ps(d[10].add(c0));
            let x11 = _mm512_loadu_ps(d[11].add(c0));
            let x12 = _mm512_loadu_ps(d[12].add(c0));
            let x13 = _mm512_loadu_ps(d[13].add(c0));
            let x14 = _mm512_loadu_ps(d[14].add(c0));
            let x15 = _mm512_loadu_ps(d[15].add(c0));
            let r0 = _mm512_sub_ps(x0, x2);
            let r1 = _mm512_add_ps(x1, x2);
            let r2 = _mm512_sub_ps(x2, x1);
            let r3 = _mm512_sub_ps(x1, x3);
            let r4 = _mm512_sub_ps(x4, x6);
            let r5 = _mm512_add_ps(x5, x6);
            let r6 = _mm512_sub_ps(x6, x5);
            let r7 = _mm512_sub_ps(x5, x7);
            let r8 = _mm512_sub_ps(x8, x10);
            let r9 = _mm512_add_ps(x9, x10);
            let r10 = _mm512_sub_ps(x10, x9);
            let r11 = _mm512_sub_ps(x9, x11);
            let r12 = _mm512_sub_ps(x12, x14);
            let r13 = _mm512_add_ps(x13, x14);
            let r14 = _mm512_sub_ps(x14, x13);
            let r15 = _mm512_sub_ps(x13, x15);
            _mm512_storeu_ps(v.add(c0), _mm512_sub_ps(r0, r8));
            _mm512_storeu_ps(v.add(4 * c + c0), _mm512_add_ps(r4, r8));
            _mm512_storeu_ps(v.add(8 * c + c0), _mm512_sub_ps(r8, r4));
            _mm512_storeu_ps(v.add(12 * c + c0), _mm512_sub_ps(r4, r12));
            _mm512_storeu_ps(v.add(c + c0), _mm512_sub_ps(r1, r9));
            _mm512_storeu_ps(v.add(5 * c + c0), _mm512_add_ps(r5, r9));
            _mm512_storeu_ps(v.add(9 * c + c0), _mm512_sub_ps(r9, r5));
            _mm512_storeu_ps(v.add(13 * c + c0), _mm512_sub_ps(r5, r13));
            _mm512_storeu_ps(v.add(2 * c + c0), _mm512_sub_ps(r2, r10));
            _mm512_storeu_ps(v.add(6 * c + c0), _mm512_add_ps(r6, r10));
            _mm512_storeu_ps(v.add(10 * c + c0), _mm512_sub_ps(r10, r6));
            _mm512_storeu_ps(v.add(14 * c + c0), _mm512_sub_ps(r6, r14));
            _mm512_storeu_ps(v.add(3 * c + c0), _mm512_sub_ps(r3, r11));
            _mm512_storeu_ps(v.add(7 * c + c0), _mm512_add_ps(r7, r11));
            _mm512_storeu_ps(v.add(11 * c + c0), _mm512_sub_ps(r11, r7));
            _mm512_storeu_ps(v.add(15 * c + c0), _mm512_sub_ps(r7, r15));
        }
    }
}

/// [`grad_tile`] for f32 on AVX-512, `n` a multiple of 16, as [`input_tile_f32_avx512`].
///
/// # Safety
/// Each `g[q]` reaches `n` values, `dm` reaches `16 n`; the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn grad_tile_f32_avx512(g: [*const f32; 4], dm: *mut f32, n: usize) {
    use std::arch::x86_64::*;
    for c0 in (0..n).step_by(16) {
        // SAFETY: c0 + 16 <= n, inside every g[q] and every row of dm.
        unsafe {
            // −x as a flip of the sign bit (exactly the generic version's negation).
            let neg =
                |x: __m512| _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(i32::MIN)));
            let y0 = _mm512_loadu_ps(g[0].add(c0));
            let y1 = _mm512_loadu_ps(g[1].add(c0));
            let y2 = _mm512_loadu_ps(g[2].add(c0));
            let y3 = _mm512_loadu_ps(g[3].add(c0));
            let h0 = y0;
            let h2 = _mm512_add_ps(y0, y2);
            let h4 = _mm512_sub_ps(y0, y2);
            let h6 = neg(y2);
            let h1 = y1;
            let h3 = _mm512_add_ps(y1, y3);
            let h5 = _mm512_sub_ps(y1, y3);
            let h7 = neg(y3);
            _mm512_storeu_ps(dm.add(c0), h0);
            _mm512_storeu_ps(dm.add(n + c0), _mm512_add_ps(h0, h1));
            _mm512_storeu_ps(dm.add(2 * n + c0), _mm512_sub_ps(h0, h1));
            _mm512_storeu_ps(dm.add(3 * n + c0), neg(h1));
            _mm512_storeu_ps(dm.add(4 * n + c0), h2);
            _mm512_storeu_ps(dm.add(5 * n + c0), _mm512_add_ps(h2, h3));
            _mm512_storeu_ps(dm.add(6 * n + c0), _mm512_sub_ps(h2, h3));
            _mm512_storeu_ps(dm.add(7 * n + c0), neg(h3));
            _mm512_storeu_ps(dm.add(8 * n + c0), h4);
            _mm512_storeu_ps(dm.add(9 * n + c0), _mm512_add_ps(h4, h5));
            _mm512_storeu_ps(dm.add(10 * n + c0), _mm512_sub_ps(h4, h5));
            _mm512_storeu_ps(dm.add(11 * n + c0), neg(h5));
            _mm512_storeu_ps(dm.add(12 * n + c0), h6);
            _mm512_storeu_ps(dm.add(13 * n + c0), _mm512_add_ps(h6, h7));
            _mm512_storeu_ps(dm.add(14 * n + c0), _mm512_sub_ps(h6, h7));
            _mm512_storeu_ps(dm.add(15 * n + c0), neg(h7));
        }
    }
}

/// [`output_tile`] for f32 on AVX-512, `cout` a multiple of 16, as [`input_tile_f32_avx512`].
///
/// # Safety
/// `m` reaches `16 cout` values, `bias` and each `o[q]` `cout`; the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn output_tile_f32_avx512(m: *const f32, bias: *const f32, o: [*mut f32; 4], cout: usize) {
    use std::arch::x86_64::*;
    for c0 in (0..cout).step_by(16) {
        // SAFETY: c0 + 16 <= cout, inside every row of m, bias and every o[q].
        unsafe {
            let b = _mm512_loadu_ps(bias.add(c0));
            let m0 = _mm512_loadu_ps(m.add(c0));
            let m1 = _mm512_loadu_ps(m.add(cout + c0));
            let m2 = _mm512_loadu_ps(m.add(2 * cout + c0));
            let m3 = _mm512_loadu_ps(m.add(3 * cout + c0));
            let m4 = _mm512_loadu_ps(m.add(4 * cout + c0));
            let m5 = _mm512_loadu_ps(m.add(5 * cout + c0));
            let m6 = _mm512_loadu_ps(m.add(6 * cout + c0));
            let m7 = _mm512_loadu_ps(m.add(7 * cout + c0));
            let m8 = _mm512_loadu_ps(m.add(8 * cout + c0));
            let m9 = _mm512_loadu_ps(m.add(9 * cout + c0));
            let m10 = _mm512_loadu_ps(m.add(10 * cout + c0));
            let m11 = _mm512_loadu_ps(m.add(11 * cout + c0));
            let m12 = _mm512_loadu_ps(m.add(12 * cout + c0));
            let m13 = _mm512_loadu_ps(m.add(13 * cout + c0));
            let m14 = _mm512_loadu_ps(m.add(14 * cout + c0));
            let m15 = _mm512_loadu_ps(m.add(15 * cout + c0));
            let s0 = _mm512_add_ps(_mm512_add_ps(m0, m4), m8);
            let s4 = _mm512_sub_ps(_mm512_sub_ps(m4, m8), m12);
            let s1 = _mm512_add_ps(_mm512_add_ps(m1, m5), m9);
            let s5 = _mm512_sub_ps(_mm512_sub_ps(m5, m9), m13);
            let s2 = _mm512_add_ps(_mm512_add_ps(m2, m6), m10);
            let s6 = _mm512_sub_ps(_mm512_sub_ps(m6, m10), m14);
            let s3 = _mm512_add_ps(_mm512_add_ps(m3, m7), m11);
            let s7 = _mm512_sub_ps(_mm512_sub_ps(m7, m11), m15);
            let left = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), s2), b);
            let right = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s1, s2), s3), b);
            _mm512_storeu_ps(o[0].add(c0), left);
            _mm512_storeu_ps(o[1].add(c0), right);
            let left = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s4, s5), s6), b);
            let right = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s5, s6), s7), b);
            _mm512_storeu_ps(o[2].add(c0), left);
            _mm512_storeu_ps(o[3].add(c0), right);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::Im2colGeometry;

    /// The direct correlation, in f64, as the reference.
    fn direct(x: &[f64], w: &[f64], n: usize, [c, h, wd]: [usize; 3], cout: usize, pad: [usize; 2]) -> Vec<f64> {
        let (oh, ow) = (h + 2 * pad[0] - 2, wd + 2 * pad[1] - 2);
        let mut y = vec![0.0; n * cout * oh * ow];
        for s in 0..n {
            for co in 0..cout {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut acc = 0.0;
                        for ci in 0..c {
                            for a in 0..3 {
                                for b in 0..3 {
                                    let (yy, xx) =
                                        ((i + a) as isize - pad[0] as isize, (j + b) as isize - pad[1] as isize);
                                    if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                                        acc += x[((s * c + ci) * h + yy as usize) * wd + xx as usize]
                                            * w[((co * c + ci) * 3 + a) * 3 + b];
                                    }
                                }
                            }
                        }
                        y[((s * cout + co) * oh + i) * ow + j] = acc;
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::Rng::new(seed);
        (0..len).map(|_| rng.normal()).collect()
    }

    #[test]
    fn matches_the_direct_correlation_for_odd_and_even_sizes_and_every_padding() {
        // (n, c, h, w, cout, padding): odd and even outputs, padding 0..2, one sample and a
        // batch that splits into uneven chunks.
        let cases = [
            (1, 8, 6, 6, 8, [1, 1]),
            (3, 9, 7, 5, 10, [1, 1]),
            (2, 8, 5, 8, 8, [0, 0]),
            (2, 8, 4, 4, 9, [2, 2]),
            (7, 12, 9, 6, 8, [2, 0]),
            (13, 8, 14, 14, 16, [1, 1]),
            // More channels than one vector of the channels-last copy holds, the last partial.
            (2, 20, 6, 7, 8, [1, 1]),
            // Whole blocks of 16 channels in and out (the transposed copies), rows wider than 16
            // pixels, and blocks followed by a partial one.
            (3, 32, 5, 19, 48, [1, 1]),
            (2, 17, 4, 18, 33, [0, 1]),
        ];
        for (k, (n, c, h, wd, cout, pad)) in cases.into_iter().enumerate() {
            let x = values(n * c * h * wd, 10 + k as u64);
            let w = values(cout * c * 9, 20 + k as u64);
            let bias = values(cout, 30 + k as u64);
            let mut want = direct(&x, &w, n, [c, h, wd], cout, pad);
            let per = want.len() / (n * cout);
            for (i, v) in want.iter_mut().enumerate() {
                *v += bias[(i / per) % cout];
            }
            let got = conv3x3(&x, &w, Some(&bias), n, [c, h, wd], cout, pad);
            let err = got.iter().zip(&want).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 1e-12, "f64 case {k}: largest difference {err}");
            // f32: the transforms add a little rounding; stay within the direct GEMM's scale.
            let (x32, w32, b32): (Vec<f32>, Vec<f32>, Vec<f32>) = (
                x.iter().map(|&v| v as f32).collect(),
                w.iter().map(|&v| v as f32).collect(),
                bias.iter().map(|&v| v as f32).collect(),
            );
            let got32 = conv3x3(&x32, &w32, Some(&b32), n, [c, h, wd], cout, pad);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let err32 = got32.iter().zip(&want).fold(0.0f64, |m, (&a, b)| m.max((a as f64 - b).abs()));
            assert!(err32 / scale < 2e-6, "f32 case {k}: largest relative difference {}", err32 / scale);
        }
    }

    #[test]
    fn the_weight_gradient_matches_the_direct_sum() {
        // dW[co, ci, a, b] = Σ_s Σ_ij gy[s, co, i, j] · x_padded[s, ci, i + a, j + b], for odd and
        // even outputs, paddings 0..2 and batches that split into uneven chunks.
        let cases = [
            (1, 8, 6, 6, 8, [1, 1]),
            (5, 9, 7, 5, 10, [1, 1]),
            (3, 8, 5, 8, 8, [0, 2]),
            (13, 8, 14, 14, 16, [1, 1]),
            (3, 33, 5, 19, 17, [1, 1]),
            (2, 16, 6, 9, 32, [1, 1]),
        ];
        for (k, (n, c, h, wd, cout, pad)) in cases.into_iter().enumerate() {
            let im = Im2colGeometry::new("test", [c, h, wd], [3, 3], [1, 1], pad, [1, 1]).unwrap();
            let cg = ConvGeometry { im, groups: 1, cout };
            assert!(applies(&cg));
            let (oh, ow) = (im.out[0], im.out[1]);
            let x = values(n * c * h * wd, 70 + k as u64);
            let gy = values(n * cout * oh * ow, 80 + k as u64);
            let mut want = vec![0.0; cout * c * 9];
            for s in 0..n {
                for co in 0..cout {
                    for ci in 0..c {
                        for a in 0..3 {
                            for b in 0..3 {
                                let mut acc = 0.0;
                                for i in 0..oh {
                                    for j in 0..ow {
                                        let (yy, xx) =
                                            ((i + a) as isize - pad[0] as isize, (j + b) as isize - pad[1] as isize);
                                        if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < wd {
                                            acc += gy[((s * cout + co) * oh + i) * ow + j]
                                                * x[((s * c + ci) * h + yy as usize) * wd + xx as usize];
                                        }
                                    }
                                }
                                want[((co * c + ci) * 3 + a) * 3 + b] += acc;
                            }
                        }
                    }
                }
            }
            let got = grad_weight(&x, &gy, n, &cg);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let err = got.iter().zip(&want).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err / scale < 1e-12, "f64 case {k}: largest relative difference {}", err / scale);
            let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            let got32 = grad_weight(&to32(&x), &to32(&gy), n, &cg);
            let err32 = got32.iter().zip(&want).fold(0.0f64, |m, (&a, b)| m.max((a as f64 - b).abs()));
            assert!(err32 / scale < 3e-6, "f32 case {k}: largest relative difference {}", err32 / scale);
        }
    }

    #[test]
    fn the_input_gradient_is_the_adjoint_of_the_forward() {
        // <conv(x, w), g> = <x, grad_input(g, w)> for every padding the path takes.
        for (k, pad) in [[0, 0], [1, 1], [2, 1]].into_iter().enumerate() {
            let (n, c, h, wd, cout) = (3, 8, 7, 6, 9);
            let im = Im2colGeometry::new("test", [c, h, wd], [3, 3], [1, 1], pad, [1, 1]).unwrap();
            let cg = ConvGeometry { im, groups: 1, cout };
            assert!(applies(&cg));
            let x = values(n * c * h * wd, 40 + k as u64);
            let w = values(cout * c * 9, 50 + k as u64);
            let y = forward(&x, &w, None, n, &cg);
            let g = values(y.len(), 60 + k as u64);
            let gx = grad_input(&g, &w, n, &cg);
            assert_eq!(gx.len(), x.len());
            let lhs: f64 = y.iter().zip(&g).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&gx).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0), "padding {pad:?}: {lhs} vs {rhs}");
        }
    }
}
