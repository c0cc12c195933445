//! Matrix products through the `gemm` crate. Operands may be strided (a transposed view is
//! passed to the kernel as strides, never copied); batch dimensions broadcast.

use rayon::prelude::*;

use crate::dtype::Float;
use crate::error::{dtype_err, shape_err, Result};
use crate::layout::broadcast_shapes;
use crate::op::Op;
use crate::parallel::{num_threads, pool, worth_parallel};
use crate::storage::StorageElement;
use crate::Tensor;

/// Products with fewer multiply-adds than this run on one thread.
const PAR_FLOPS: usize = 1 << 18;

struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn at(&self, i: usize) -> *mut T {
        unsafe { self.0.add(i) }
    }
}

/// Single-row products with at least this many multiply-adds split their output columns over
/// the threads.
const ROW_PAR_FLOPS: usize = 1 << 17;

/// `a @ b` for one row `a` (`k` contiguous values) and `b` `[k, n]` at strides `(b_rs, b_cs)`,
/// one of them 1, into `out` `[n]` (added to what `out` holds when `acc`: the bias).
///
/// `gemm` packs both operands even for a single row, which costs as much as the product; at
/// batch 1 (inference, sampling) a product is bound by reading `b`, so this reads every value of
/// `b` once, in memory order: `n` dot products when `b` is a transposed `[n, k]` weight (its
/// columns contiguous), else `k` scaled rows of `b` added up.
fn row_times_matrix<T: Float>(a: &[T], b: &[T], (b_rs, b_cs): (usize, usize), acc: bool, out: &mut [T]) {
    let k = a.len();
    let work = |j0: usize, out: &mut [T]| {
        if b_rs == 1 {
            let col = |j: usize| &b[(j0 + j) * b_cs..][..k];
            // Eight columns at a time share each read of `a`; the rest one by one.
            const G: usize = 8;
            let done = out.len() / G * G;
            let mut groups = out.chunks_exact_mut(G);
            for (g, o) in (&mut groups).enumerate() {
                let d = dots(a, std::array::from_fn::<_, G, _>(|c| col(G * g + c)));
                o.iter_mut().zip(d).for_each(|(o, d)| *o = if acc { *o + d } else { d });
            }
            for (j, o) in groups.into_remainder().iter_mut().enumerate() {
                let [d] = dots(a, [col(done + j)]);
                *o = if acc { *o + d } else { d };
            }
        } else {
            if !acc {
                out.fill(T::zero());
            }
            for (kk, &av) in a.iter().enumerate() {
                let row = &b[kk * b_rs + j0..][..out.len()];
                out.iter_mut().zip(row).for_each(|(o, &bv)| *o += av * bv);
            }
        }
    };
    if num_threads() > 1 && k * out.len() >= ROW_PAR_FLOPS {
        // One run of whole cache lines of output per thread, the same run on the same thread
        // every call: each core keeps its part of `b` in its cache (see `split_pinned`).
        let len = out.len();
        let dst = SendPtr(out.as_mut_ptr());
        crate::parallel::split_pinned(&|i, parts| {
            let chunk = len.div_ceil(parts).next_multiple_of(16);
            let (j0, j1) = ((i * chunk).min(len), ((i + 1) * chunk).min(len));
            // SAFETY: the parts' ranges `j0..j1` are disjoint and inside `out`, which outlives
            // the split.
            work(j0, unsafe { std::slice::from_raw_parts_mut(dst.at(j0), j1 - j0) });
        });
    } else {
        work(0, out);
    }
}

/// `C` dot products `Σ a[i] b_c[i]` sharing the reads of `a`. Each column's sum is computed the
/// same way whatever `C` is, so a result does not depend on how the columns were grouped (or on
/// the threads).
fn dots<T: Float, const C: usize>(a: &[T], b: [&[T]; C]) -> [T; C] {
    #[cfg(target_arch = "x86_64")]
    if T::DTYPE == crate::DType::F32 {
        use crate::simd::Isa;
        // SAFETY: T is f32 (checked by its dtype, so the casts only rename the type), and the
        // CPU has the extension of the kernel called (`isa` checked it).
        unsafe {
            let f = |s: &[T]| std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len());
            let d = match crate::simd::isa() {
                Isa::Avx512 => Some(dots_f32_avx512(f(a), b.map(f))),
                Isa::Avx2 => Some(dots_f32_avx2(f(a), b.map(f))),
                Isa::Base => None,
            };
            if let Some(d) = d {
                return d.map(|v| T::from_f64(f64::from(v)));
            }
        }
    }
    b.map(|col| dot(a, col))
}

/// [`dots`] for f32 on AVX-512: one 16-lane fused multiply-add accumulator per column (`C` of
/// them in flight hide the instruction's latency), the tail under a mask, a tree sum at the end.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots_f32_avx512<const C: usize>(a: &[f32], b: [&[f32]; C]) -> [f32; C] {
    use std::arch::x86_64::*;
    let k = a.len();
    assert!(b.iter().all(|col| col.len() == k), "dots: columns of different lengths");
    let body = k / 16 * 16;
    let mut acc = [_mm512_setzero_ps(); C];
    let mut i = 0;
    while i < body {
        // SAFETY: i + 16 <= body <= k, the length of `a` and of every column.
        unsafe {
            let x = _mm512_loadu_ps(a.as_ptr().add(i));
            for c in 0..C {
                acc[c] = _mm512_fmadd_ps(x, _mm512_loadu_ps(b[c].as_ptr().add(i)), acc[c]);
            }
        }
        i += 16;
    }
    if body < k {
        let mask = ((1u32 << (k - body)) - 1) as __mmask16;
        // SAFETY: the masked loads read only the k - body < 16 values left.
        unsafe {
            let x = _mm512_maskz_loadu_ps(mask, a.as_ptr().add(body));
            for c in 0..C {
                acc[c] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(mask, b[c].as_ptr().add(body)), acc[c]);
            }
        }
    }
    acc.map(|v| _mm512_reduce_add_ps(v))
}

/// [`dots`] for f32 on AVX2 with FMA: one 8-lane fused multiply-add accumulator per column, the
/// tail under a mask, a tree sum at the end.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_f32_avx2<const C: usize>(a: &[f32], b: [&[f32]; C]) -> [f32; C] {
    use std::arch::x86_64::*;
    let k = a.len();
    assert!(b.iter().all(|col| col.len() == k), "dots: columns of different lengths");
    let body = k / 8 * 8;
    let mut acc = [_mm256_setzero_ps(); C];
    let mut i = 0;
    while i < body {
        // SAFETY: i + 8 <= body <= k, the length of `a` and of every column.
        unsafe {
            let x = _mm256_loadu_ps(a.as_ptr().add(i));
            for c in 0..C {
                acc[c] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[c].as_ptr().add(i)), acc[c]);
            }
        }
        i += 8;
    }
    if body < k {
        // Lane l is loaded when its mask element is negative: l < k - body.
        let left = (k - body) as i32;
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        // SAFETY: the masked loads read only the k - body < 8 values left.
        unsafe {
            let x = _mm256_maskload_ps(a.as_ptr().add(body), mask);
            for c in 0..C {
                acc[c] = _mm256_fmadd_ps(x, _mm256_maskload_ps(b[c].as_ptr().add(body), mask), acc[c]);
            }
        }
    }
    acc.map(|v| {
        // (lanes 0–3 + 4–7), then pairs, then the last two.
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let d = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(d, _mm_shuffle_ps::<0b01>(d, d)))
    })
}

/// `Σ a[i] b[i]` in 64 independent lanes (four AVX-512 registers of f32), compiled for the
/// widest vector extension the CPU has: one running sum would wait on each addition's latency.
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    crate::simd::multiversion! {
        fn wide<T: Float>(a: &[T], b: &[T]) -> T => lanes
    }
    #[inline(always)]
    fn lanes<T: Float>(a: &[T], b: &[T]) -> T {
        const L: usize = 64;
        let mut acc = [T::zero(); L];
        let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
        let mut s = T::zero();
        for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
            s += *x * *y;
        }
        for (x, y) in ca.zip(cb) {
            for l in 0..L {
                acc[l] += x[l] * y[l];
            }
        }
        // Pairwise: halve the lanes until one is left.
        let mut width = L;
        while width > 1 {
            width /= 2;
            let (low, high) = acc.split_at_mut(width);
            for (a, &b) in low.iter_mut().zip(&high[..width]) {
                *a += b;
            }
        }
        acc[0] + s
    }
    wide(a, b)
}

/// Batched product of `a` [batch.., m, k] and `b` [batch.., k, n] with identical batch dims;
/// with `bias` [n], every output row starts from it and the GEMM accumulates onto it.
fn kernel<T: Float + StorageElement>(a: &Tensor, b: &Tensor, bias: Option<&[T]>) -> Vec<T> {
    let r = a.rank();
    let (m, k, n) = (a.shape()[r - 2], a.shape()[r - 1], b.shape()[r - 1]);
    let batch_shape = &a.shape()[..r - 2];
    let nb: usize = batch_shape.iter().product();
    if m == 0 || n == 0 || k == 0 {
        let mut out = crate::storage::zeroed(nb * m * n);
        if let Some(bias) = bias {
            out.chunks_exact_mut(n.max(1)).for_each(|row| row.copy_from_slice(bias));
        }
        return out;
    }
    let (sa, sb) = (a.storage(), b.storage());
    let (xa, xb) = (T::slice(&sa), T::slice(&sb));
    let (la, lb) = (a.layout(), b.layout());
    let (a_rs, a_cs) = (la.strides()[r - 2] as isize, la.strides()[r - 1] as isize);
    let (b_rs, b_cs) = (lb.strides()[r - 2] as isize, lb.strides()[r - 1] as isize);
    let read_dst = bias.is_some();
    if nb == 1 && m == 1 && (a_cs == 1 || k == 1) && (b_rs == 1 || b_cs == 1) {
        // A single row (batch-1 inference): its kernel accumulates onto the bias or onto zeros.
        let mut out = bias.map_or_else(|| crate::storage::zeroed::<T>(n), <[T]>::to_vec);
        let a_row = &xa[la.offset()..][..k];
        row_times_matrix(a_row, &xb[lb.offset()..], (b_rs as usize, b_cs as usize), read_dst, &mut out);
        return out;
    }
    // Without a bias gemm overwrites every element (read_dst = false), so the output is not
    // filled first. With one, the rows are seeded with it and gemm adds the product.
    let mut out = crate::storage::uninit::<T>(nb * m * n);
    if let Some(bias) = bias {
        let seed = |rows: &mut [std::mem::MaybeUninit<T>]| {
            rows.chunks_exact_mut(n).for_each(|row| {
                row.iter_mut().zip(bias).for_each(|(o, &v)| {
                    o.write(v);
                })
            })
        };
        // A language model's decoder output ([700, 10000]) is 28 MB: seeding it is memory-bound
        // work worth both threads.
        if worth_parallel(out.len()) && nb * m > 1 {
            let rows = (nb * m).div_ceil(num_threads());
            pool().install(|| out.par_chunks_mut(rows * n).for_each(seed));
        } else {
            seed(&mut out);
        }
    }
    // Storage offset of batch `i` in an operand.
    let batch_offset = |strides: &[usize], base: usize, mut i: usize| -> usize {
        let mut off = base;
        for d in (0..r - 2).rev() {
            off += (i % batch_shape[d]) * strides[d];
            i /= batch_shape[d];
        }
        off
    };
    let flops = m * n * k;
    let threads = num_threads();
    // Columns `cols` of product `i` into `dst` (that product's first element).
    let run = |i: usize, dst: *mut T, cols: std::ops::Range<usize>, par: gemm::Parallelism| unsafe {
        let ao = batch_offset(la.strides(), la.offset(), i);
        let bo = batch_offset(lb.strides(), lb.offset(), i);
        gemm::gemm(
            m,
            cols.len(),
            k,
            dst.add(cols.start),
            1,
            n as isize,
            read_dst,
            xa.as_ptr().add(ao),
            a_cs,
            a_rs,
            xb.as_ptr().offset(bo as isize + cols.start as isize * b_cs),
            b_cs,
            b_rs,
            if read_dst { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            par,
        )
    };
    let base = SendPtr(out.as_mut_ptr().cast::<T>());
    // A large f32 product on an AVX2 machine goes through jizen's own driver when it applies
    // (ops/sgemm.rs), before any of the splits below: its threads share the work dynamically,
    // and it packs less. Whether it applies depends only on sizes and strides, the same for
    // every product of the batch.
    let driven = |i: usize| {
        T::DTYPE == crate::DType::F32 && {
            let ao = batch_offset(la.strides(), la.offset(), i);
            let bo = batch_offset(lb.strides(), lb.offset(), i);
            // SAFETY: T is f32 (its dtype says so), the offsets and strides address the
            // operands' storage as for gemm below, and product i's output is `m × n` at
            // `i·m·n`, written by nobody else.
            unsafe {
                super::sgemm::try_sgemm(super::sgemm::Product {
                    m,
                    n,
                    k,
                    c: base.at(i * m * n).cast::<f32>(),
                    c_rs: n,
                    a: xa.as_ptr().add(ao).cast::<f32>(),
                    a_rs: a_rs as usize,
                    a_cs: a_cs as usize,
                    b: xb.as_ptr().add(bo).cast::<f32>(),
                    b_rs: b_rs as usize,
                    b_cs: b_cs as usize,
                    accumulate: read_dst,
                })
            }
        }
    };
    if (0..nb).all(driven) {
        // SAFETY: as below; the driver wrote every element.
        return unsafe { crate::storage::assume_init(out) };
    }
    if threads > 1 && nb >= threads && flops * nb >= PAR_FLOPS && flops < PAR_FLOPS * 16 {
        // Many small products: one per task.
        pool().install(|| {
            out.par_chunks_mut(m * n)
                .enumerate()
                .for_each(|(i, c)| run(i, c.as_mut_ptr().cast::<T>(), 0..n, gemm::Parallelism::None));
        });
    } else if threads > 1 && nb == 1 && flops >= PAR_FLOPS && b_cs != 1 && n >= 32 {
        // `b` not contiguous along n (a layer's weight, read transposed: `x @ wᵀ`), where the
        // driver does not apply: gemm would pack all of `b` on this thread before splitting the
        // product, while the others wait. Split the output's columns instead, one
        // single-threaded product per thread, each packing its own share of `b` (an `mlp`
        // forward product before the driver took it: 469 → 368 µs at 2 threads).
        let per = n.div_ceil(threads).next_multiple_of(16);
        pool().install(|| {
            (0..n.div_ceil(per))
                .into_par_iter()
                .for_each(|p| run(0, base.at(0), p * per..((p + 1) * per).min(n), gemm::Parallelism::None))
        });
    } else {
        let par =
            if threads > 1 && flops >= PAR_FLOPS { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        let go = || {
            for i in 0..nb {
                run(i, base.at(i * m * n), 0..n, par);
            }
        };
        if matches!(par, gemm::Parallelism::Rayon(_)) {
            pool().install(go);
        } else {
            go();
        }
    }
    // SAFETY: gemm wrote every element of every product (m, n, k > 0 here): over the bias it
    // seeded, or, with read_dst = false, without reading what was there.
    unsafe { crate::storage::assume_init(out) }
}

/// Makes a matrix operand safe for the kernel: a stretched (stride-0) matrix dimension is copied.
fn kernel_ready(t: &Tensor) -> Result<Tensor> {
    let r = t.rank();
    let s = t.layout().strides();
    let bad = |d: usize| s[d] == 0 && t.shape()[d] > 1;
    if bad(r - 1) || bad(r - 2) {
        t.contiguous()
    } else {
        Ok(t.clone())
    }
}

impl Tensor {
    /// The primitive: operands with equal batch dimensions.
    fn matmul_batched(a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let (a, b) = (kernel_ready(a)?, kernel_ready(b)?);
        let r = a.rank();
        let mut shape = a.shape().to_vec();
        shape[r - 1] = b.shape()[r - 1];
        crate::with_float!(a.dtype(), "matmul", |T| {
            let data = kernel::<T>(&a, &b, None);
            Ok(Tensor::from_op(T::wrap(data), &shape, || Op::Matmul(a.clone(), b.clone())))
        })
    }

    /// `x @ weightᵀ + bias` for `x` `[.., in]`, `weight` `[out, in]` and `bias` `[out]`, like
    /// `torch.nn.functional.linear`: one primitive whose GEMM accumulates onto the bias, so the
    /// graph keeps no separate bias-free product (it would be as large as the output).
    ///
    /// ```
    /// use jizen_tensor::{Tensor, DType};
    /// let x = Tensor::ones(&[2, 3], DType::F32);
    /// let w = Tensor::ones(&[4, 3], DType::F32);
    /// let b = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], &[4]).unwrap();
    /// assert_eq!(x.linear(&w, Some(&b)).unwrap().to_vec::<f32>().unwrap(), [3., 4., 5., 6., 3., 4., 5., 6.]);
    /// ```
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let (out_f, in_f) = match weight.shape() {
            &[o, i] => (o, i),
            s => return Err(shape_err("linear", format!("weight must be [out, in], got {s:?}"))),
        };
        if self.rank() == 0 || self.shape()[self.rank() - 1] != in_f {
            return Err(shape_err(
                "linear",
                format!("input {:?} must end in the weight's {in_f} input features", self.shape()),
            ));
        }
        if let Some(b) = bias {
            if b.shape() != [out_f] {
                return Err(shape_err("linear", format!("bias {:?} must be [{out_f}]", b.shape())));
            }
            if b.dtype() != self.dtype() {
                return Err(dtype_err("linear", format!("input is {} and bias is {}", self.dtype(), b.dtype())));
            }
        }
        if self.dtype() != weight.dtype() {
            return Err(dtype_err("linear", format!("input is {} and weight is {}", self.dtype(), weight.dtype())));
        }
        if self.rank() != 2 {
            // [.., in]: fold the leading dimensions into rows (a copy only if they are strided).
            let rows = self.numel() / in_f.max(1);
            let mut shape = self.shape().to_vec();
            *shape.last_mut().expect("rank checked") = out_f;
            return self.reshape(&[rows, in_f])?.linear(weight, bias)?.reshape(&shape);
        }
        let (x, wt) = (kernel_ready(self)?, kernel_ready(&weight.transpose(0, 1)?)?);
        let bias = bias.map(|b| b.contiguous()).transpose()?;
        crate::with_float!(x.dtype(), "linear", |T| {
            let data = match &bias {
                Some(b) => b.with_data::<T, _>(|bv| kernel::<T>(&x, &wt, Some(bv)))?,
                None => kernel::<T>(&x, &wt, None),
            };
            Ok(Tensor::from_op(T::wrap(data), &[x.shape()[0], out_f], || {
                Op::Linear(x.clone(), weight.clone(), bias.clone())
            }))
        })
    }

    /// Matrix product with NumPy semantics: 1-D operands are promoted (and the added dimension
    /// removed again), batch dimensions broadcast.
    ///
    /// ```
    /// use jizen_tensor::{Tensor, DType};
    /// let a = Tensor::ones(&[2, 3], DType::F32);
    /// let b = Tensor::ones(&[4, 5], DType::F32);
    /// let e = a.matmul(&b).unwrap_err().to_string();
    /// assert_eq!(e, "matmul: lhs [2, 3] and rhs [4, 5] do not agree on the inner dimension");
    /// ```
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        if self.dtype() != rhs.dtype() {
            return Err(dtype_err("matmul", format!("lhs is {} and rhs is {}", self.dtype(), rhs.dtype())));
        }
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(shape_err(
                "matmul",
                format!(
                    "operands must have at least one dimension, got lhs {:?} and rhs {:?}",
                    self.shape(),
                    rhs.shape()
                ),
            ));
        }
        let a = if self.rank() == 1 { self.unsqueeze(0)? } else { self.clone() };
        let b = if rhs.rank() == 1 { rhs.unsqueeze(-1)? } else { rhs.clone() };
        let (ra, rb) = (a.rank(), b.rank());
        let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
        let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
        if k != k2 {
            return Err(shape_err(
                "matmul",
                format!("lhs {:?} and rhs {:?} do not agree on the inner dimension", self.shape(), rhs.shape()),
            ));
        }
        let out = if rb == 2 && ra > 2 && a.is_contiguous() {
            // [batch.., m, k] @ [k, n]: one product with the batch folded into the rows.
            let rows: usize = a.shape()[..ra - 1].iter().product();
            let flat = Tensor::matmul_batched(&a.reshape(&[rows, k])?, &b)?;
            let mut shape = a.shape()[..ra - 1].to_vec();
            shape.push(n);
            flat.reshape(&shape)?
        } else {
            let batch = broadcast_shapes("matmul", &a.shape()[..ra - 2], &b.shape()[..rb - 2])?;
            let sa: Vec<usize> = batch.iter().copied().chain([m, k]).collect();
            let sb: Vec<usize> = batch.iter().copied().chain([k, n]).collect();
            Tensor::matmul_batched(&a.expand(&sa)?, &b.expand(&sb)?)?
        };
        match (self.rank(), rhs.rank()) {
            (1, 1) => out.reshape(&[]),
            (1, _) => out.squeeze(-2),
            (_, 1) => out.squeeze(-1),
            _ => Ok(out),
        }
    }
}

/// Gradients of `x @ wᵀ + b` in `x` `[m, in]`, `w` `[out, in]` and `b`: `g @ w`, `gᵀ @ x` and
/// the column sums of `g`.
pub(crate) fn linear_backward(x: &Tensor, w: &Tensor, b: Option<&Tensor>, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let gx = if x.requires_grad() { Some(Tensor::matmul_batched(g, w)?) } else { None };
    let gw = if w.requires_grad() { Some(Tensor::matmul_batched(&g.transpose(0, 1)?, x)?) } else { None };
    let mut out = vec![gx, gw];
    if let Some(b) = b {
        out.push(if b.requires_grad() { Some(g.sum(&[0], false)?) } else { None });
    }
    Ok(out)
}

/// Gradients of `a @ b` (equal batch dims): `g @ bᵀ` and `aᵀ @ g`, transposes as views.
pub(crate) fn backward(a: &Tensor, b: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let ga = if a.requires_grad() { Some(Tensor::matmul_batched(g, &b.transpose(-1, -2)?)?) } else { None };
    let gb = if b.requires_grad() { Some(Tensor::matmul_batched(&a.transpose(-1, -2)?, g)?) } else { None };
    Ok((ga, gb))
}
