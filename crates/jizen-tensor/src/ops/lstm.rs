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
//! `[4H, N] × [N, H]` added one by one. This primitive keeps the activated gates (`[T·N, 4H]`,
//! rows padded to a multiple of 16) beside its output, and its backward pass walks the steps in
//! reverse with one product per step (`dh_{t−1} = da_t W_hh`) and an elementwise pass:
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
use crate::storage::{zeroed, StorageElement};
use crate::Tensor;

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
    /// Rows of the time-major buffers: one per (step, batch row).
    fn tn(&self) -> usize {
        self.t * self.n
    }
    /// The gates' padded width: 4H rounded up to 16.
    fn gp(&self) -> usize {
        self.g4().next_multiple_of(16)
    }
    /// The carried `dh`'s padded width: H rounded up to 16.
    fn hp(&self) -> usize {
        self.h.next_multiple_of(16)
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

/// `w` `[rows, cols]` transposed into `[cols, width]` (`width ≥ rows`), the columns past `rows`
/// zero. Used for the recurrent weight, once per pass.
fn transposed_padded<T: Float + StorageElement>(w: &[T], rows: usize, cols: usize, width: usize) -> Vec<T> {
    let mut out = zeroed::<T>(cols * width);
    for (r, row) in w.chunks_exact(cols).take(rows).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * width + r] = v;
        }
    }
    out
}

/// `w` `[rows, cols]` with each row padded to `width ≥ cols` by zeros.
fn padded_rows<T: Float + StorageElement>(w: &[T], cols: usize, width: usize) -> Vec<T> {
    if width == cols {
        return w.to_vec();
    }
    let mut out = zeroed::<T>(w.len() / cols.max(1) * width);
    for (o, row) in out.chunks_exact_mut(width).zip(w.chunks_exact(cols)) {
        o[..cols].copy_from_slice(row);
    }
    out
}

// The kernels keep every per-step quantity time-major, as the operands and the output already
// are: step `t`'s rows are the block `t·N..(t+1)·N` of a `[T·N, F]` matrix. Both recurrent
// products then have a feature dimension as gemm's contiguous (vectorised) dimension, padded to
// a multiple of 16 so that gemm reads its operand in place instead of packing it every step:
// the gates as `[T·N, G]` (`G` = 4H rounded up, for `a_t += h_{t−1} W_hhᵀ` against `W_hhᵀ`
// `[H, G]`) and the carried `dh` as `[N, Hp]` (for `dh_{t−1} = da_t W_hh` against `W_hh`
// `[4H, Hp]`). The elementwise passes run along contiguous runs of H values.

/// Lanes per block of the elementwise passes: each run of H values is taken 16 at a time, the
/// last block through padded copies, so that every operation is one vector instruction per block.
const L: usize = 16;

/// Up to `L` values from `s`, zero-padded.
#[inline(always)]
fn load<T: Float>(s: &[T]) -> [T; L] {
    match <&[T; L]>::try_from(s) {
        Ok(full) => *full,
        Err(_) => {
            let mut a = [T::zero(); L];
            a[..s.len()].copy_from_slice(s);
            a
        }
    }
}

/// The first `s.len()` (at most `L`) values of `a` into `s`.
#[inline(always)]
fn store<T: Float>(a: &[T; L], s: &mut [T]) {
    let len = s.len();
    match <&mut [T; L]>::try_from(&mut *s) {
        Ok(full) => *full = *a,
        Err(_) => s.copy_from_slice(&a[..len]),
    }
}

/// Activates one row's gates in place (`[4H]` of `a_t`: σ, σ, tanh, σ) and writes the row's `c`
/// and `h` from `c_prev` (`None`: a zero state).
#[inline(always)]
fn forward_row<T: Float>(gates: &mut [T], c_prev: Option<&[T]>, c: &mut [T], h: &mut [T]) {
    let hs = c.len();
    for j0 in (0..hs).step_by(L) {
        let len = (hs - j0).min(L);
        let at = |k: usize| k * hs + j0..k * hs + j0 + len;
        let (mut i, mut f) = (load(&gates[at(0)]), load(&gates[at(1)]));
        let (mut g, mut o) = (load(&gates[at(2)]), load(&gates[at(3)]));
        let cp = c_prev.map(|cp| load(&cp[j0..j0 + len]));
        let (mut c_new, mut h_new) = ([T::zero(); L], [T::zero(); L]);
        for q in 0..L {
            (i[q], f[q], g[q], o[q]) = (sigmoid(i[q]), sigmoid(f[q]), g[q].tanh(), sigmoid(o[q]));
            c_new[q] = match &cp {
                Some(cp) => f[q] * cp[q] + i[q] * g[q],
                None => i[q] * g[q],
            };
            h_new[q] = o[q] * c_new[q].tanh();
        }
        store(&i, &mut gates[at(0)]);
        store(&f, &mut gates[at(1)]);
        store(&g, &mut gates[at(2)]);
        store(&o, &mut gates[at(3)]);
        store(&c_new, &mut c[j0..j0 + len]);
        store(&h_new, &mut h[j0..j0 + len]);
    }
}

/// One row of a backward step: from the row's activated gates (`[4H]`), `c_t`, `c_{t−1}`
/// (`None`: zero), the output gradients `∂h_t`, `∂c_t` and the carried `dh_t` (`[gh, gc, dh]`,
/// all `[H]`), writes the row's `da` (`[4H]`) and replaces the carried `dc_t` by `dc_{t−1}`.
#[inline(always)]
fn backward_row<T: Float>(
    gates: &[T],
    c: &[T],
    c_prev: Option<&[T]>,
    [gh, gc, dh]: [&[T]; 3],
    dc_carry: &mut [T],
    da: &mut [T],
) {
    let (hs, one) = (c.len(), T::one());
    for j0 in (0..hs).step_by(L) {
        let len = (hs - j0).min(L);
        let at = |k: usize| k * hs + j0..k * hs + j0 + len;
        let run = j0..j0 + len;
        let (i, f, g, o) = (load(&gates[at(0)]), load(&gates[at(1)]), load(&gates[at(2)]), load(&gates[at(3)]));
        let (c_t, gh, gc) = (load(&c[run.clone()]), load(&gh[run.clone()]), load(&gc[run.clone()]));
        let (dh, mut dc_c) = (load(&dh[run.clone()]), load(&dc_carry[run.clone()]));
        let cp = c_prev.map_or([T::zero(); L], |cp| load(&cp[run.clone()]));
        let (mut dai, mut daf, mut dag, mut dao) = ([T::zero(); L], [T::zero(); L], [T::zero(); L], [T::zero(); L]);
        for q in 0..L {
            let tc = c_t[q].tanh();
            let dh_q = gh[q] + dh[q];
            let dc = gc[q] + dc_c[q] + dh_q * o[q] * (one - tc * tc);
            dai[q] = dc * g[q] * i[q] * (one - i[q]);
            daf[q] = dc * cp[q] * f[q] * (one - f[q]);
            dag[q] = dc * i[q] * (one - g[q] * g[q]);
            dao[q] = dh_q * tc * o[q] * (one - o[q]);
            dc_c[q] = dc * f[q];
        }
        store(&dai, &mut da[at(0)]);
        store(&daf, &mut da[at(1)]);
        store(&dag, &mut da[at(2)]);
        store(&dao, &mut da[at(3)]);
        store(&dc_c, &mut dc_carry[run]);
    }
}

/// The elementwise half of forward step `t`: activates the gates of its `N` rows in place and
/// writes its `h` and `c` rows (`h`, `c`: `[T·N, H]`).
#[inline(always)]
fn forward_step<T: Float>(gates: &mut [T], h: &mut [T], c: &mut [T], c0: Option<&[T]>, d: Dims, t: usize) {
    let (n, hs, gp) = (d.n, d.h, d.gp());
    let (before, now) = c.split_at_mut(t * n * hs);
    let prev = if t == 0 { c0 } else { Some(&before[(t - 1) * n * hs..]) };
    let rows = gates[t * n * gp..(t + 1) * n * gp].chunks_exact_mut(gp);
    let outs = now[..n * hs].chunks_exact_mut(hs).zip(h[t * n * hs..(t + 1) * n * hs].chunks_exact_mut(hs));
    for (r, (g, (c_row, h_row))) in rows.zip(outs).enumerate() {
        forward_row(&mut g[..4 * hs], prev.map(|p| &p[r * hs..(r + 1) * hs]), c_row, h_row);
    }
}

/// What the backward pass reads: the activated gates (`[T·N, G]`), every step's `c`, the output
/// gradients `gh` and `gc` (`[T·N, H]`) and `c₀` (`[N, H]`, or a zero state).
#[derive(Clone, Copy)]
struct Saved<'a, T> {
    gates: &'a [T],
    c: &'a [T],
    c0: Option<&'a [T]>,
    gh: &'a [T],
    gc: &'a [T],
}

/// The elementwise half of backward step `t`: writes its rows of `da` (`[T·N, 4H]`) from `s` and
/// the carried `dh` (`[N, Hp]`), and replaces the carried `dc` (`[N, H]`) by `dc_{t−1}`.
#[inline(always)]
fn backward_step<T: Float>(s: Saved<'_, T>, dh: &[T], dc: &mut [T], da: &mut [T], d: Dims, t: usize) {
    let (n, hs, g4, gp, hp) = (d.n, d.h, d.g4(), d.gp(), d.hp());
    for r in 0..n {
        let row = (t * n + r) * hs..(t * n + r + 1) * hs;
        let prev = if t == 0 {
            s.c0.map(|c0| &c0[r * hs..(r + 1) * hs])
        } else {
            Some(&s.c[row.start - n * hs..row.end - n * hs])
        };
        backward_row(
            &s.gates[(t * n + r) * gp..][..g4],
            &s.c[row.clone()],
            prev,
            [&s.gh[row.clone()], &s.gc[row], &dh[r * hp..r * hp + hs]],
            &mut dc[r * hs..(r + 1) * hs],
            &mut da[(t * n + r) * g4..(t * n + r + 1) * g4],
        );
    }
}

crate::simd::multiversion! {
    /// [`forward_step`], compiled for the widest vector extension the CPU has.
    fn forward_step_wide<T: Float>(gates: &mut [T], h: &mut [T], c: &mut [T], c0: Option<&[T]>, d: Dims, t: usize) => forward_step
}

crate::simd::multiversion! {
    /// [`backward_step`], compiled for the widest vector extension the CPU has.
    fn backward_step_wide<T: Float>(s: Saved<'_, T>, dh: &[T], dc: &mut [T], da: &mut [T], d: Dims, t: usize) => backward_step
}

/// `(out [2, T, N, H], gates [T·N, G])` from `gx` `[T, N, 4H]`.
fn forward_kernel<T: Float + StorageElement>(
    gx: &[T],
    w: &[T],
    h0: Option<&[T]>,
    c0: Option<&[T]>,
    d: Dims,
) -> (Vec<T>, Vec<T>) {
    let (n, hs, g4, gp, tn) = (d.n, d.h, d.g4(), d.gp(), d.tn());
    let wt = transposed_padded(w, g4, hs, gp); // W_hhᵀ [H, G]
    let mut gates = padded_rows(gx, g4, gp); // [T·N, G], a_t's rows
    let mut out = zeroed::<T>(2 * tn * hs);
    let (h, c) = out.split_at_mut(tn * hs);
    let par = d.step_par();
    in_pool(par, || {
        for t in 0..d.t {
            // a_t [N, G] += h_{t−1} [N, H] × W_hhᵀ [H, G], all row-major.
            let lhs = if t == 0 { h0.map(<[T]>::as_ptr) } else { Some(h[(t - 1) * n * hs..].as_ptr()) };
            if let Some(lhs) = lhs {
                // SAFETY: gates' step block is [N, G], h_{t−1} (or h₀) [N, H], W_hhᵀ [H, G]; the
                // destination does not overlap the operands.
                unsafe {
                    gemm(
                        [n, gp, hs],
                        (gates[t * n * gp..].as_mut_ptr(), gp, 1),
                        true,
                        (lhs, hs, 1),
                        (wt.as_ptr(), gp, 1),
                        par,
                    )
                }
            }
            forward_step_wide(&mut gates, h, c, c0, d, t);
        }
    });
    (out, gates)
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
    let (n, hs, g4, hp, tn) = (d.n, d.h, d.g4(), d.hp(), d.tn());
    let (h, c) = out.split_at(tn * hs);
    let (gh, gc) = g.split_at(tn * hs);
    let saved = Saved { gates, c, c0, gh, gc };
    let wp = padded_rows(w, hs, hp); // W_hh [4H, Hp]
    let mut da = zeroed::<T>(tn * g4); // [T·N, 4H]: each step writes its rows
    let mut dh = zeroed::<T>(n * hp); // [N, Hp]
    let mut dc = zeroed::<T>(n * hs); // [N, H]
    let par = d.step_par();
    in_pool(par, || {
        for t in (0..d.t).rev() {
            backward_step_wide(saved, &dh, &mut dc, &mut da, d, t);
            if t > 0 || h0.is_some() {
                // dh_{t−1} [N, Hp] = da_t [N, 4H] × W_hh [4H, Hp].
                // SAFETY: in bounds of da, wp and dh; no overlap.
                unsafe {
                    gemm(
                        [n, hp, g4],
                        (dh.as_mut_ptr(), hp, 1),
                        false,
                        (da[t * n * g4..].as_ptr(), g4, 1),
                        (wp.as_ptr(), hp, 1),
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
                // Σ_{t ≥ 1} da_tᵀ h_{t−1}: rows N.. of da [T·N, 4H] against rows ..(T−1)·N of h
                // [T·N, H], one product with inner dimension (T−1)·N.
                // SAFETY: da[N.., :]ᵀ as [4H, k] (1, 4H); h[..k, :] as [k, H] (H, 1).
                unsafe {
                    gemm(
                        [g4, hs, k],
                        (dw.as_mut_ptr(), hs, 1),
                        false,
                        (da[n * g4..].as_ptr(), 1, g4),
                        (h.as_ptr(), hs, 1),
                        par,
                    )
                }
            }
            if let Some(h0) = h0 {
                // SAFETY: da[..N, :]ᵀ as [4H, N] (1, 4H); h₀ [N, H] row-major.
                unsafe {
                    gemm([g4, hs, n], (dw.as_mut_ptr(), hs, 1), k > 0, (da.as_ptr(), 1, g4), (h0.as_ptr(), hs, 1), par)
                }
            }
        });
        dw
    });
    let dh0 = dh.chunks_exact(hp).flat_map(|row| &row[..hs]).copied().collect();
    (da, dw, dh0, dc)
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
            let gates = Tensor::from_storage(T::wrap(gates), &[d.tn(), d.gp()]);
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
