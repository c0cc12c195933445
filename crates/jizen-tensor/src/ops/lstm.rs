//! A whole LSTM layer over a sequence as one primitive, `Op::LstmSequence`.
//!
//! From the input projections `gx` `[T, N, 4H]` (`x W_ihᵀ + b_ih + b_hh` for every step, gate
//! order i, f, g, o as in PyTorch), the recurrent weight `W_hh` `[4H, H]` and optional initial
//! states `h₀`, `c₀` `[N, H]` (zeros when absent), for `t = 0 … T−1`:
//!
//! ```text
//! a_t = gx_t + h_{t−1} W_hhᵀ                       [N, 4H]
//! i, f, o = σ(a_t[i]), σ(a_t[f]), σ(a_t[o]);  g = tanh(a_t[g])
//! c_t = f·c_{t−1} + i·g,   h_t = o·tanh(c_t)
//! ```
//!
//! The output is `[2, T, N, H]`: every `h_t`, then every `c_t` (so the layer's output sequence
//! `[T, N, H]` is a contiguous view of it, and the final state is its last step).
//!
//! As a composite (a matmul, an add, four gate views, three sigmoids, two tanh and four products
//! per step, each with its own backward rule) a step records about twenty tensors of `[N, 4H]`
//! or `[N, H]`, and the backward pass computes `W_hh`'s gradient as `T` separate outer products
//! `[4H, N] × [N, H]` added one by one. This primitive keeps the activated gates (feature-major)
//! beside its output, and its backward pass walks the steps in reverse with one product per
//! step (`dh_{t−1} = da_t W_hh`) and an elementwise pass:
//!
//! ```text
//! dh = ∂h_t + dh_t,   dc = ∂c_t + dc_t + dh·o·(1 − tanh²c_t)
//! da[i] = dc·g·i(1−i),  da[f] = dc·c_{t−1}·f(1−f),  da[g] = dc·i·(1−g²),  da[o] = dh·tanh(c_t)·o(1−o)
//! dc_{t−1} = dc·f,   dh_{t−1} = da W_hh
//! ```
//!
//! then `W_hh`'s gradient as one product over all steps, `Σ_t da_tᵀ h_{t−1}`, whose inner
//! dimension is `T·N`. `gx`'s gradient is `da` itself.
//!
//! When the backward pass is recorded (`create_graph`), the gradient is that of the composite
//! ([`lstm_sequence_composite`]), so second derivatives are exact; `tests/lstm.rs` checks the
//! primitive against the composite (outputs, gradients, a Hessian-vector product) and
//! `tests/gradcheck.rs` against finite differences.

use std::collections::HashSet;

use crate::dtype::Float;
use crate::error::{dtype_err, shape_err, Result};
use crate::op::Op;
use crate::ops::conv_tiled::gemm;
use crate::parallel::{num_threads, pool};
use crate::storage::{assume_init, uninit, zeroed, StorageElement};
use crate::Tensor;
use std::mem::MaybeUninit;

/// Steps whose product has fewer multiply-adds than this run it on one thread.
const PAR_FLOPS: usize = 1 << 18;

#[inline(always)]
fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// The sizes of a sequence: steps, batch, hidden.
#[derive(Clone, Copy)]
struct Dims {
    t: usize,
    n: usize,
    h: usize,
}

impl Dims {
    fn g4(&self) -> usize {
        4 * self.h
    }
    /// Columns of the feature-major buffers: one per (step, row).
    fn tn(&self) -> usize {
        self.t * self.n
    }
    /// How each step's `[N, H] × [H, 4H]` product is spread over threads.
    fn step_par(&self) -> gemm::Parallelism {
        par_for(self.n * self.h * self.g4())
    }
}

fn par_for(flops: usize) -> gemm::Parallelism {
    let threads = num_threads();
    if threads > 1 && flops >= PAR_FLOPS {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// Runs `f` inside jizen's pool when `par` uses threads (so gemm's rayon calls land there).
fn in_pool<R: Send>(par: gemm::Parallelism, f: impl FnOnce() -> R + Send) -> R {
    if matches!(par, gemm::Parallelism::Rayon(_)) {
        pool().install(f)
    } else {
        f()
    }
}

/// `dst [cols, rows]` = `src [rows, cols]` transposed, in 16 × 16 tiles (both sides stay in
/// cache; the inner loop writes a contiguous run of `dst`). Writes every one of `dst`'s first
/// `rows · cols` slots.
fn transpose_into<T: Copy>(src: &[T], rows: usize, cols: usize, dst: &mut [MaybeUninit<T>]) {
    const B: usize = 16;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    for c0 in (0..cols).step_by(B) {
        let c1 = (c0 + B).min(cols);
        for r0 in (0..rows).step_by(B) {
            let r1 = (r0 + B).min(rows);
            for c in c0..c1 {
                let out = &mut dst[c * rows + r0..c * rows + r1];
                for (k, o) in out.iter_mut().enumerate() {
                    // SAFETY: r0 + k < rows and c < cols, so the index is below rows·cols.
                    o.write(unsafe { *src.get_unchecked((r0 + k) * cols + c) });
                }
            }
        }
    }
}

/// `src [rows, cols]` transposed into a new buffer (written once, not filled first).
fn transposed<T: Float + StorageElement>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = uninit::<T>(rows * cols);
    transpose_into(src, rows, cols, &mut out);
    // SAFETY: transpose_into wrote all rows · cols slots.
    unsafe { assume_init(out) }
}

// The kernels keep every per-step quantity feature-major: a logical `[T, N, F]` is stored as
// `[F, T·N]`, column `t·N + r` for row `r` of step `t`. Then a step's `[N, F]` block is a
// column-major matrix (leading dimension `T·N`) that gemm reads and writes in place: neither the
// recurrent product nor its gradient packs `W_hh`, which for N = 20 would cost as much as the
// product itself. The elementwise passes run along contiguous rows of `N` values.

/// Where `c_{t−1}` comes from: the previous columns of the `c` buffer itself, `c₀` (`[H, N]`),
/// or nowhere (zero).
#[derive(Clone, Copy)]
enum Prev<'a, T> {
    InBuffer,
    Initial(&'a [T]),
    Zero,
}

/// Activates the gates of the step at columns `col..col+N` in place (σ, σ, tanh, σ) and writes
/// its `c` and `h` columns.
#[inline(always)]
fn forward_step<T: Float>(gates: &mut [T], c: &mut [T], h: &mut [T], prev: Prev<'_, T>, d: Dims, col: usize) {
    let (n, hs, tn) = (d.n, d.h, d.tn());
    for (j, row) in gates.chunks_exact_mut(tn).enumerate() {
        let row = &mut row[col..col + n];
        if (2 * hs..3 * hs).contains(&j) {
            row.iter_mut().for_each(|v| *v = v.tanh());
        } else {
            row.iter_mut().for_each(|v| *v = sigmoid(*v));
        }
    }
    let gates = &*gates;
    for (j, (c_row, h_row)) in c.chunks_exact_mut(tn).zip(h.chunks_exact_mut(tn)).enumerate() {
        let at = |k: usize| &gates[(k * hs + j) * tn + col..(k * hs + j) * tn + col + n];
        let (i, f, g, o) = (at(0), at(1), at(2), at(3));
        let (before, rest) = c_row.split_at_mut(col);
        let c_out = &mut rest[..n];
        let cp = match prev {
            Prev::InBuffer => Some(&before[col - n..]),
            Prev::Initial(c0) => Some(&c0[j * n..(j + 1) * n]),
            Prev::Zero => None,
        };
        match cp {
            Some(cp) => {
                for ((((c, &i), &f), &g), &cp) in c_out.iter_mut().zip(i).zip(f).zip(g).zip(cp) {
                    *c = f * cp + i * g;
                }
            }
            None => {
                for ((c, &i), &g) in c_out.iter_mut().zip(i).zip(g) {
                    *c = i * g;
                }
            }
        }
        for ((h, &o), &c) in h_row[col..col + n].iter_mut().zip(o).zip(&*c_out) {
            *h = o * c.tanh();
        }
    }
}

/// One backward step over columns `col..col+N`: from the activated gates, `c` (`[H, T·N]`), the
/// output gradients `gh`, `gc` (`[H, T·N]`) and the carried `dh_t`, `dc_t` (`[H, N]`), writes the
/// step's columns of `da` (`[4H, T·N]`) and replaces `dc_carry` by `dc_{t−1}`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_step<T: Float>(
    gates: &[T],
    c: &[T],
    prev: Prev<'_, T>,
    gh: &[T],
    gc: &[T],
    dh_carry: &[T],
    dc_carry: &mut [T],
    da: &mut [T],
    d: Dims,
    col: usize,
) {
    let (n, hs, tn) = (d.n, d.h, d.tn());
    let one = T::one();
    let zeros = [T::zero(); 64];
    for j in 0..hs {
        let span = |k: usize| (k * hs + j) * tn + col..(k * hs + j) * tn + col + n;
        let (gi, gf, gg, go) = (&gates[span(0)], &gates[span(1)], &gates[span(2)], &gates[span(3)]);
        let cols = span(0);
        let (c_t, gh, gc) = (&c[cols.clone()], &gh[cols.clone()], &gc[cols]);
        let dh = &dh_carry[j * n..(j + 1) * n];
        let dc_c = &mut dc_carry[j * n..(j + 1) * n];
        let (dai, daf, dag, dao) = split4(da, [span(0), span(1), span(2), span(3)]);
        // c_{t−1} in chunks of up to 64 (a zero state reads a block of zeros).
        for r0 in (0..n).step_by(64) {
            let len = (n - r0).min(64);
            let cp: &[T] = match prev {
                Prev::InBuffer => &c[j * tn + col - n + r0..j * tn + col - n + r0 + len],
                Prev::Initial(c0) => &c0[j * n + r0..j * n + r0 + len],
                Prev::Zero => &zeros[..len],
            };
            for (q, &cpv) in cp.iter().enumerate() {
                let r = r0 + q;
                let (i, f, g, o) = (gi[r], gf[r], gg[r], go[r]);
                let tc = c_t[r].tanh();
                let dh_r = gh[r] + dh[r];
                let dc = gc[r] + dc_c[r] + dh_r * o * (one - tc * tc);
                dai[r] = dc * g * i * (one - i);
                daf[r] = dc * cpv * f * (one - f);
                dag[r] = dc * i * (one - g * g);
                dao[r] = dh_r * tc * o * (one - o);
                dc_c[r] = dc * f;
            }
        }
    }
}

/// Four disjoint, increasing ranges of `x` as mutable slices.
fn split4<T>(x: &mut [T], r: [std::ops::Range<usize>; 4]) -> (&mut [T], &mut [T], &mut [T], &mut [T]) {
    let (a, rest) = x[r[0].start..].split_at_mut(r[0].len());
    let (b, rest) = rest[r[1].start - r[0].end..].split_at_mut(r[1].len());
    let (c, rest) = rest[r[2].start - r[1].end..].split_at_mut(r[2].len());
    let d = &mut rest[r[3].start - r[2].end..][..r[3].len()];
    (a, b, c, d)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn forward_step_avx512<T: Float>(
    gates: &mut [T],
    c: &mut [T],
    h: &mut [T],
    prev: Prev<'_, T>,
    d: Dims,
    col: usize,
) {
    forward_step(gates, c, h, prev, d, col)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn backward_step_avx512<T: Float>(
    gates: &[T],
    c: &[T],
    prev: Prev<'_, T>,
    gh: &[T],
    gc: &[T],
    dh_carry: &[T],
    dc_carry: &mut [T],
    da: &mut [T],
    d: Dims,
    col: usize,
) {
    backward_step(gates, c, prev, gh, gc, dh_carry, dc_carry, da, d, col)
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx512f");
    #[allow(unreachable_code)]
    false
}

/// `(out [2, T, N, H], gates [4H, T·N])` from `gx` `[T, N, 4H]`.
fn forward_kernel<T: Float + StorageElement>(
    gx: &[T],
    w: &[T],
    h0: Option<&[T]>,
    c0: Option<&[T]>,
    d: Dims,
) -> (Vec<T>, Vec<T>) {
    let (n, hs, g4, tn) = (d.n, d.h, d.g4(), d.tn());
    let mut gates = transposed(gx, tn, g4); // [4H, T·N]
    let c0t = c0.map(|c| transposed(c, n, hs)); // [H, N]
    let (mut h, mut c) = (zeroed::<T>(hs * tn), zeroed::<T>(hs * tn));
    let (par, wide) = (d.step_par(), avx512());
    in_pool(par, || {
        for t in 0..d.t {
            let col = t * n;
            // a_t += h_{t−1} W_hhᵀ with every [N, ·] block column-major: a_t and h_{t−1} have
            // strides (1, T·N), h₀ [N, H] is row-major, W_hhᵀ [H, 4H] is weight_hh read as (1, H).
            let lhs = match (t, h0) {
                (0, None) => None,
                (0, Some(h0)) => Some((h0.as_ptr(), hs, 1)),
                _ => Some((h[col - n..].as_ptr(), 1, tn)),
            };
            if let Some(lhs) = lhs {
                // SAFETY: the strides stay inside gates [4H, T·N], h [H, T·N] (or h₀) and w [4H, H];
                // the destination does not overlap the operands.
                unsafe { gemm([n, g4, hs], (gates[col..].as_mut_ptr(), 1, tn), true, lhs, (w.as_ptr(), 1, hs), par) }
            }
            let prev = match (t, &c0t) {
                (0, Some(c0)) => Prev::Initial(c0),
                (0, None) => Prev::Zero,
                _ => Prev::InBuffer,
            };
            if wide {
                // SAFETY: the CPU has AVX-512F.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    forward_step_avx512(&mut gates, &mut c, &mut h, prev, d, col)
                }
            } else {
                forward_step(&mut gates, &mut c, &mut h, prev, d, col)
            }
        }
    });
    let mut out = uninit::<T>(2 * hs * tn);
    let (oh, oc) = out.split_at_mut(hs * tn);
    transpose_into(&h, hs, tn, oh);
    transpose_into(&c, hs, tn, oc);
    // SAFETY: the two transposes wrote both halves, every slot.
    (unsafe { assume_init(out) }, gates)
}

/// Gradients from the output's gradient `g` `[2, T, N, H]`, the output and the activated gates:
/// `(dgx [T, N, 4H], dW_hh [4H, H], dh₀ [N, H], dc₀ [N, H])`.
#[allow(clippy::too_many_arguments)]
fn backward_kernel<T: Float + StorageElement>(
    g: &[T],
    w: &[T],
    h0: Option<&[T]>,
    c0: Option<&[T]>,
    out: &[T],
    gates: &[T],
    d: Dims,
    want_w: bool,
) -> (Vec<T>, Option<Vec<T>>, Vec<T>, Vec<T>) {
    let (n, hs, g4, tn) = (d.n, d.h, d.g4(), d.tn());
    // The steps' h [T·N, H] stays as the output holds it (W_hh's gradient reads it row-major).
    let h = &out[..hs * tn];
    let [c, gh, gc] = [&out[hs * tn..], &g[..hs * tn], &g[hs * tn..]].map(|x| transposed(x, tn, hs));
    let c0t = c0.map(|c| transposed(c, n, hs));
    let mut da = zeroed::<T>(g4 * tn); // [4H, T·N]
    let mut dh_carry = zeroed::<T>(hs * n); // [H, N]
    let mut dc_carry = zeroed::<T>(hs * n);
    let (par, wide) = (d.step_par(), avx512());
    in_pool(par, || {
        for t in (0..d.t).rev() {
            let col = t * n;
            let prev = match (t, &c0t) {
                (0, Some(c0)) => Prev::Initial(c0),
                (0, None) => Prev::Zero,
                _ => Prev::InBuffer,
            };
            if wide {
                // SAFETY: the CPU has AVX-512F.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    backward_step_avx512(gates, &c, prev, &gh, &gc, &dh_carry, &mut dc_carry, &mut da, d, col)
                }
            } else {
                backward_step(gates, &c, prev, &gh, &gc, &dh_carry, &mut dc_carry, &mut da, d, col)
            }
            if t > 0 || h0.is_some() {
                // dh_{t−1} [N, H] (stored [H, N]) = da_t [N, 4H] (strides (1, T·N)) × W_hh [4H, H].
                // SAFETY: in bounds of da, w and dh_carry; no overlap.
                unsafe {
                    gemm(
                        [n, hs, g4],
                        (dh_carry.as_mut_ptr(), 1, n),
                        false,
                        (da[col..].as_ptr(), 1, tn),
                        (w.as_ptr(), hs, 1),
                        par,
                    )
                }
            }
        }
    });
    let dw = want_w.then(|| {
        let mut dw = zeroed::<T>(g4 * hs);
        let k = (d.t - 1) * n;
        let par = par_for(g4 * hs * tn);
        in_pool(par, || {
            if k > 0 {
                // Σ_{t ≥ 1} da_tᵀ h_{t−1}: columns N.. of da [4H, T·N] against columns ..(T−1)·N of
                // the steps' h [T·N, H], one product with inner dimension (T−1)·N.
                // SAFETY: da[:, N..] as [4H, k] (T·N, 1); h[..k, :] as [k, H] (H, 1).
                unsafe {
                    gemm(
                        [g4, hs, k],
                        (dw.as_mut_ptr(), hs, 1),
                        false,
                        (da[n..].as_ptr(), tn, 1),
                        (h.as_ptr(), hs, 1),
                        par,
                    )
                }
            }
            if let Some(h0) = h0 {
                // SAFETY: da[:, ..N] as [4H, N] (T·N, 1); h₀ [N, H] row-major.
                unsafe {
                    gemm([g4, hs, n], (dw.as_mut_ptr(), hs, 1), k > 0, (da.as_ptr(), tn, 1), (h0.as_ptr(), hs, 1), par)
                }
            }
        });
        dw
    });
    let dgx = transposed(&da, g4, tn);
    let (dh0, dc0) = (transposed(&dh_carry, hs, n), transposed(&dc_carry, hs, n));
    (dgx, dw, dh0, dc0)
}

/// Checks the operands of an LSTM sequence; returns its sizes.
fn check(gx: &Tensor, w_hh: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<Dims> {
    let op = "lstm_sequence";
    let (t, n, g4) = match gx.shape() {
        &[t, n, g4] => (t, n, g4),
        s => return Err(shape_err(op, format!("gates input must be [T, N, 4H], got {s:?}"))),
    };
    let h = g4 / 4;
    if g4 % 4 != 0 || w_hh.shape() != [g4, h] {
        return Err(shape_err(
            op,
            format!(
                "gates input {:?} needs a recurrent weight [4H, H] = [{g4}, {h}], got {:?}",
                gx.shape(),
                w_hh.shape()
            ),
        ));
    }
    for (what, s) in [("h0", h0), ("c0", c0)] {
        if let Some(s) = s {
            if s.shape() != [n, h] {
                return Err(shape_err(op, format!("{what} must be [N, H] = [{n}, {h}], got {:?}", s.shape())));
            }
        }
    }
    for x in [Some(w_hh), h0, c0].into_iter().flatten() {
        if x.dtype() != gx.dtype() {
            return Err(dtype_err(op, format!("operands are {} and {}", gx.dtype(), x.dtype())));
        }
    }
    if t == 0 {
        return Err(shape_err(op, format!("gates input {:?} has no time steps", gx.shape())));
    }
    Ok(Dims { t, n, h })
}

impl Tensor {
    /// A whole LSTM layer over a sequence (see the module docs): `self` holds the input
    /// projections `[T, N, 4H]` (biases included, gates i, f, g, o), `w_hh` is `[4H, H]`, `h0`
    /// and `c0` are `[N, H]` (`None`: zeros). Returns `[2, T, N, H]`: every step's `h`, then
    /// every step's `c`.
    ///
    /// ```
    /// use jizen_tensor::{DType, Rng, Tensor};
    /// let mut rng = Rng::new(0);
    /// let gx = Tensor::randn(&[5, 2, 12], DType::F32, &mut rng); // T = 5, N = 2, H = 3
    /// let w_hh = Tensor::randn(&[12, 3], DType::F32, &mut rng);
    /// let hc = gx.lstm_sequence(&w_hh, None, None)?;
    /// let h = hc.narrow(0, 0, 1)?.squeeze(0)?; // [T, N, H], the layer's output
    /// assert_eq!(h.shape(), &[5, 2, 3]);
    /// # Ok::<(), jizen_tensor::Error>(())
    /// ```
    pub fn lstm_sequence(&self, w_hh: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<Tensor> {
        let d = check(self, w_hh, h0, c0)?;
        let (gx, w) = (self.contiguous()?, w_hh.contiguous()?);
        let (h0, c0) = (h0.map(Tensor::contiguous).transpose()?, c0.map(Tensor::contiguous).transpose()?);
        crate::with_float!(gx.dtype(), "lstm_sequence", |T| {
            let guards = [Some(&gx), Some(&w), h0.as_ref(), c0.as_ref()].map(|t| t.map(|t| (t, t.storage())));
            let [x, w_, h0v, c0v] = guards.each_ref().map(|g| g.as_ref().map(|(t, s)| elements::<T>(t, s)));
            let (out, gates) = forward_kernel::<T>(x.expect("gx"), w_.expect("w_hh"), h0v, c0v, d);
            drop(guards);
            let gates = Tensor::from_storage(T::wrap(gates), &[d.g4(), d.tn()]);
            Ok(Tensor::from_op(T::wrap(out), &[2, d.t, d.n, d.h], || Op::LstmSequence { gx, w_hh: w, h0, c0, gates }))
        })
    }
}

/// The elements of a contiguous tensor, from its storage guard.
fn elements<'a, T: StorageElement>(t: &Tensor, s: &'a crate::storage::Storage) -> &'a [T] {
    debug_assert!(t.is_contiguous());
    &T::slice(s)[t.layout().offset()..][..t.numel()]
}

/// [`Tensor::lstm_sequence`] composed of differentiable primitives, one step at a time: the
/// definition the fused kernel is tested against, and the graph its gradients are taken from
/// when a backward pass is recorded.
pub fn lstm_sequence_composite(gx: &Tensor, w_hh: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<Tensor> {
    let d = check(gx, w_hh, h0, c0)?;
    let w_t = w_hh.t()?; // [H, 4H]
    let (mut hp, mut cp) = (h0.cloned(), c0.cloned());
    let (mut hs, mut cs) = (Vec::with_capacity(d.t), Vec::with_capacity(d.t));
    for t in 0..d.t {
        let mut a = gx.narrow(0, t, 1)?.squeeze(0)?; // [N, 4H]
        if let Some(hp) = &hp {
            a = a.add(&hp.matmul(&w_t)?)?;
        }
        let gate = |k: usize| a.narrow(1, k * d.h, d.h);
        let (i, f, g, o) = (gate(0)?.sigmoid()?, gate(1)?.sigmoid()?, gate(2)?.tanh()?, gate(3)?.sigmoid()?);
        let c = match &cp {
            Some(cp) => f.mul(cp)?.add(&i.mul(&g)?)?,
            None => i.mul(&g)?,
        };
        let h = o.mul(&c.tanh()?)?;
        hs.push(h.clone());
        cs.push(c.clone());
        (hp, cp) = (Some(h), Some(c));
    }
    let stack = |v: &[Tensor]| Tensor::stack(&v.iter().collect::<Vec<_>>(), 0);
    Tensor::stack(&[&stack(&hs)?, &stack(&cs)?], 0)
}

/// Gradients of `Op::LstmSequence` for `g` `[2, T, N, H]`, in the order of its inputs
/// (`gx`, `w_hh`, then `h0` and `c0` where present).
pub(crate) fn backward(op: &Op, out: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let Op::LstmSequence { gx, w_hh, h0, c0, gates } = op else {
        unreachable!("lstm::backward called for {}", op.name())
    };
    let inputs: Vec<&Tensor> = op.inputs();
    if crate::autograd::is_grad_enabled() {
        // Recorded backward: the composite's gradient, a function of the same inputs.
        let composite = lstm_sequence_composite(gx, w_hh, h0.as_ref(), c0.as_ref())?;
        let wanted: HashSet<_> = inputs.iter().filter(|t| t.requires_grad()).map(|t| t.id()).collect();
        let wanted: Vec<&Tensor> = inputs.iter().copied().filter(|t| wanted.contains(&t.id())).collect();
        let mut grads = crate::autograd::grad(&composite, &wanted, Some(g), true)?.into_iter();
        return Ok(inputs.iter().map(|t| if t.requires_grad() { grads.next().flatten() } else { None }).collect());
    }
    let d = check(gx, w_hh, h0.as_ref(), c0.as_ref())?;
    let g = g.contiguous()?;
    crate::with_float!(gx.dtype(), "lstm_sequence backward", |T| {
        let guards = [Some(&g), Some(w_hh), h0.as_ref(), c0.as_ref(), Some(out), Some(gates)]
            .map(|t| t.map(|t| (t, t.storage())));
        let [gv, wv, h0v, c0v, ov, av] = guards.each_ref().map(|g| g.as_ref().map(|(t, s)| elements::<T>(t, s)));
        let (da, dw, dh0, dc0) = backward_kernel::<T>(
            gv.expect("g"),
            wv.expect("w_hh"),
            h0v,
            c0v,
            ov.expect("output"),
            av.expect("gates"),
            d,
            w_hh.requires_grad(),
        );
        drop(guards);
        let mut grads = vec![
            gx.requires_grad().then(|| Tensor::from_storage(T::wrap(da), &[d.t, d.n, d.g4()])),
            dw.map(|dw| Tensor::from_storage(T::wrap(dw), &[d.g4(), d.h])),
        ];
        if let Some(h0) = h0 {
            grads.push(h0.requires_grad().then(|| Tensor::from_storage(T::wrap(dh0), &[d.n, d.h])));
        }
        if let Some(c0) = c0 {
            grads.push(c0.requires_grad().then(|| Tensor::from_storage(T::wrap(dc0), &[d.n, d.h])));
        }
        Ok(grads)
    })
}
