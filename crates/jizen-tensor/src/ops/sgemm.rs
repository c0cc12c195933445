//! Large f32 products on AVX2 machines with several threads: a driver around gemm's own
//! microkernels (`gemm-f32`) and packing routine (`gemm-common`) whose threads take their work
//! from a counter instead of being handed fixed halves.
//!
//! gemm splits a product over its threads once, evenly, so a product ends when the slowest
//! thread's share does. On a machine with virtual CPUs, one of them has run at two thirds of its
//! speed for a whole benchmark run while the host served someone else (BENCHMARKS.md, "where a slow
//! sgemm call's time goes"); the fast thread then waits. Here each thread claims blocks of
//! output columns from an atomic counter until none are left, blocks that shrink as the end
//! nears (guided scheduling), so a slowed thread simply takes fewer of them. Each thread starts
//! on a home range of its own, an equal share in thread order, and claims from the others' only
//! once that is done: the columns of a weight's product that a thread computes are then those
//! whose rows it updated in the last optimizer step, so the weight does not cross between the
//! cores.
//!
//! Like gemm, the driver computes the row-major product `C = A·B` as its transpose,
//! `Cᵀ = Bᵀ·Aᵀ`, so that the microkernels write short runs of `C`'s rows: the "left" operand
//! `L = Bᵀ` (`n × k`) is packed by the thread that claims a block of its rows, one depth block
//! (`KC`) at a time, into gemm's panel layout; the "right" operand `R = Aᵀ` is read where it lies,
//! as gemm reads it (the microkernel broadcasts its elements one by one, at any strides). The
//! blocking follows gemm's for this machine class: a packed block of `L` (`MC × KC`, 256 KiB)
//! stays in the core's L2 cache while every 6-column panel of `R` passes through the L1.
//!
//! `JIZEN_SGEMM=gemm` turns the driver off (every product then goes through gemm's split), for
//! comparisons and as a way out should it misbehave.

/// Products with fewer multiply-adds than this keep gemm's split: a small product is over
/// before the vCPUs' speeds could drift apart, and gemm handles its many shapes well. It is low
/// enough to take the `mlp` benchmark's forward products and its input gradient (the smallest
/// `128 × 256 × 512`), and with the driver tried before gemm's column split, the LSTM step's
/// input projections (`700 × 800 × 200`) and decoder forward (`700 × 10000 × 200`), whose
/// transposed weights sent them to that split before, and the `cnn` step's input gradient of its
/// 3136 → 128 layer (`64 × 3136 × 128`). In the split each thread packs into buffers of
/// its own on every call, and gemm's own threading keeps 1 MiB a thread; the driver packs into
/// one 256 KiB buffer a thread and reads `A` in place. Measured at two threads against the
/// previous rule (2^26, `2 · threads · MC` columns, after the column split; BENCHMARKS.md,
/// 2026-12-06): `mlp` peak resident memory 19.0 MiB against 19.6 (medians of 50 alternated
/// runs), the LSTM step's 119.8 against 130.2 MiB (10 runs; largest 122.9 against 180.9), the
/// `cnn` step's 59.8 against 59.0 (12 runs); step times the same within the noise.
const DRIVER_FLOPS: usize = 1 << 24;

/// Whether the driver may be used at all: `JIZEN_SGEMM` is not `gemm` (read once).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("JIZEN_SGEMM").map_or(true, |v| v.trim() != "gemm"))
}

/// One product `C = A·B`, or `C += A·B` when `accumulate`: sizes, and a pointer and strides per
/// matrix. `C` is `m × n`, row-major with row stride `c_rs`; `A` is `m × k` and `B` `k × n`, each
/// at any non-negative strides (`_rs` between rows, `_cs` between columns).
#[derive(Clone, Copy)]
pub(super) struct Product {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub c: *mut f32,
    pub c_rs: usize,
    pub a: *const f32,
    pub a_rs: usize,
    pub a_cs: usize,
    pub b: *const f32,
    pub b_rs: usize,
    pub b_cs: usize,
    pub accumulate: bool,
}

// SAFETY: the threads of one product read `A` and `B` and each writes only the part of `C` it
// claimed; whoever builds a `Product` vouches for its pointers (`try_sgemm`'s contract).
unsafe impl Send for Product {}
unsafe impl Sync for Product {}

/// Computes `p` on jizen's pool and returns `true`, or returns `false`, having touched nothing,
/// where the driver does not apply; the caller then uses gemm. It applies on x86-64 with AVX2 and
/// FMA but not AVX-512 (gemm has wider kernels for that), with two threads or more, to products
/// of at least [`DRIVER_FLOPS`] multiply-adds whose `C` has at least `threads · MC` columns (a
/// full block for every thread: fewer would make few, unequal blocks, each reading all of `A`),
/// `A` contiguous along its rows, unless `JIZEN_SGEMM=gemm`. The driver itself reads `A` at any
/// strides (so that `x86::drive` is right for every `Product`), but a weight gradient's
/// `gᵀ @ x` (`A` strided along its rows) read in place measured 10% slower than gemm at
/// `512 × 784 × 128` (each depth step of a panel of `R` lies in another cache line, and pages
/// apart); copying each panel contiguous first, or all of `A` once per product, was slower than
/// gemm too. An LSTM decoder's input gradient (`[700, 10000] @ [10000, 200]`) is one that keeps
/// gemm: measured, the driver's blocks of 200 columns made its step 3% slower.
///
/// # Safety
/// The pointers must address matrices of the given sizes and strides, `C` not overlapping `A`
/// or `B`, and nothing else may touch `C` during the call.
pub(super) unsafe fn try_sgemm(p: Product) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let threads = crate::parallel::num_threads();
        let fits = threads > 1
            && p.m.saturating_mul(p.n).saturating_mul(p.k) >= DRIVER_FLOPS
            && p.n >= threads * x86::MC
            && p.m >= x86::NR
            && enabled()
            && p.a_cs == 1
            && crate::simd::isa() == crate::simd::Isa::Avx2;
        if fits {
            // SAFETY: AVX2 and FMA are present (`isa`); the caller vouches for the matrices.
            unsafe { x86::drive(threads, p) };
            return true;
        }
    }
    let _ = p;
    false
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::Product;
    use gemm_common::pack_operands::pack_lhs;
    use gemm_common::simd::V3;
    use gemm_common::Ptr;
    use gemm_f32::microkernel::fma::f32::{MR_DIV_N, NR as KERNEL_NR, UKR};
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// f32 lanes of an AVX2 register.
    const N: usize = 8;
    /// Rows of `L` per microkernel call (two registers) and columns of `R` (broadcasts).
    pub(super) const MR: usize = MR_DIV_N * N;
    pub(super) const NR: usize = KERNEL_NR;
    /// Depth of a packed block, and the most rows of `L` a thread claims at once: gemm's
    /// blocking for a 32 KiB, 8-way L1 and a 512 KiB L2 (`gemm_common::cache::kernel_params`).
    const KC: usize = 512;
    pub(super) const MC: usize = 128;

    thread_local! {
        /// The packed block of `L`, kept by each pool thread between products (`MC × KC` f32,
        /// 256 KiB).
        static PACKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }

    /// Each thread's home range of `L`'s `n` rows, as the counter its claims advance and the
    /// range's end: equal shares of whole microkernel tiles, in thread order.
    fn home_ranges(n: usize, threads: usize) -> (Vec<AtomicUsize>, Vec<usize>) {
        let per = n.div_ceil(threads).next_multiple_of(MR);
        (
            (0..threads).map(|t| AtomicUsize::new((t * per).min(n))).collect(),
            (0..threads).map(|t| ((t + 1) * per).min(n)).collect(),
        )
    }

    /// The next block of `L`'s rows for thread `me`: from its home range (`nexts[me]` up to
    /// `ends[me]`) while any is left, then from the other threads' ranges, so that a thread slowed
    /// by the host leaves the rest of its range to the others.
    fn claim(nexts: &[AtomicUsize], ends: &[usize], me: usize) -> Option<(usize, usize)> {
        let threads = nexts.len();
        (0..threads).find_map(|d| {
            let t = (me + d) % threads;
            claim_in(&nexts[t], ends[t], threads)
        })
    }

    /// The next block of one range, `(first, count)`: a share of what is left, `1 / (2·threads)`
    /// of it, rounded up to whole microkernel rows, at least two of them and at most `MC`, so the
    /// blocks shrink toward the range's end and the threads finish close together. Every block
    /// reads all of `R` once, so blocks are not made smaller than that: a block of one microkernel
    /// row would stream `R` from memory for little work.
    fn claim_in(next: &AtomicUsize, end: usize, threads: usize) -> Option<(usize, usize)> {
        let mut at = next.load(Ordering::Relaxed);
        loop {
            let left = end.checked_sub(at).filter(|&l| l > 0)?;
            let take = left.div_ceil(2 * threads).next_multiple_of(MR).clamp(2 * MR, MC).min(left);
            match next.compare_exchange_weak(at, at + take, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some((at, take)),
                Err(now) => at = now,
            }
        }
    }

    /// `p` on `threads` workers of jizen's pool (`A` at any strides).
    ///
    /// # Safety
    /// As [`super::try_sgemm`], and the CPU has AVX2 and FMA.
    pub(in crate::ops) unsafe fn drive(threads: usize, p: Product) {
        let simd = V3::try_new().expect("drive: AVX2 and FMA checked by the caller");
        let Product { m, n, k, c_rs, a_rs, a_cs, b_rs, b_cs, accumulate, .. } = p;
        // L = Bᵀ (n × k): L[i][q] = B[q][i]. R = Aᵀ (k × m): R[q][j] = A[j][q], read in place.
        // D = Cᵀ (n × m): D[i][j] = C[j][i], so its rows are contiguous (stride 1).
        let (l_rs, l_cs) = (b_cs as isize, b_rs as isize);
        let (r_rs, r_cs) = (a_cs as isize, a_rs as isize);
        let d_cs = c_rs as isize;
        let k_blocks = k.div_ceil(KC);
        let kc = k.div_ceil(k_blocks);
        let panels = m.div_ceil(NR);
        // Home ranges: equal shares in thread order, the calling thread's first. The optimizer's
        // and the elementwise passes' parallel splits hand out equal contiguous shares the same
        // way, so a weight's rows that a thread updated are the ones it packs in the next forward
        // product, still in its own caches (BENCHMARKS.md, "2026-12-06, 02:15": with the vCPUs
        // far apart this made the `mlp` step 7% faster, and changed nothing measurable near).
        let (nexts, ends) = home_ranges(n, threads);
        let work = |me: usize| {
            // Borrowing `p` whole (it is `Sync`; its raw pointers alone are not).
            let whole = &p;
            let Product { a, b, c, .. } = *whole;
            PACKED.with(|buf| {
                let mut buf = buf.borrow_mut();
                if buf.len() < KC * MC {
                    *buf = vec![0.0; KC * MC];
                }
                let packed = buf.as_mut_ptr();
                while let Some((row0, rows)) = claim(&nexts, &ends, me) {
                    let micro = rows.div_ceil(MR);
                    let mut depth = 0;
                    while depth < k {
                        let kk = kc.min(k - depth);
                        // The first depth block overwrites C (status 0) unless accumulating.
                        let (alpha, status) = if depth > 0 || accumulate { (1.0f32, 1u8) } else { (0.0, 0) };
                        for j in 0..panels {
                            let cols = NR.min(m - j * NR);
                            for i in 0..micro {
                                let m_in = MR.min(rows - i * MR);
                                // SAFETY: every offset below stays inside its matrix (row0 + i·MR
                                // + m_in <= n, j·NR + cols <= m, depth + kk <= k) or inside the
                                // packed buffer (micro·kk·MR <= MC·KC); this thread alone writes
                                // the rows row0..row0 + rows of D (its claim).
                                unsafe {
                                    let lhs = packed.add(i * kk * MR);
                                    if j == 0 {
                                        // Packed just before its first use, while it is hot.
                                        pack_lhs::<f32, N, MR, V3>(
                                            simd,
                                            m_in,
                                            kk,
                                            Ptr(lhs),
                                            Ptr(b
                                                .cast_mut()
                                                .offset((row0 + i * MR) as isize * l_rs + depth as isize * l_cs)),
                                            l_cs,
                                            l_rs,
                                            kk * MR,
                                        );
                                    }
                                    UKR[m_in.div_ceil(N) - 1][cols - 1](
                                        m_in,
                                        cols,
                                        kk,
                                        c.offset((row0 + i * MR) as isize + (j * NR) as isize * d_cs),
                                        lhs,
                                        a.offset((j * NR) as isize * r_cs + depth as isize * r_rs),
                                        d_cs,
                                        1,
                                        MR as isize,
                                        r_rs,
                                        r_cs,
                                        alpha,
                                        1.0,
                                        status,
                                        false,
                                        false,
                                        false,
                                        std::ptr::null(),
                                    );
                                }
                            }
                        }
                        depth += kk;
                    }
                }
            })
        };
        // One job per other thread; whichever threads are free run them, and a job that starts
        // after the counter ran out returns at once.
        crate::parallel::pool().install(|| {
            rayon::scope(|s| {
                for t in 1..threads {
                    let work = &work;
                    s.spawn(move |_| work(t));
                }
                work(0);
            })
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn lcg(seed: &mut u64) -> f32 {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        }

        /// The driver against a float64 reference: edge sizes (partial microkernel rows and
        /// panels, several depth blocks), `A` and `B` each row-major and transposed, overwriting
        /// and accumulating, with spare columns in `C`'s rows left alone.
        #[test]
        fn matches_a_float64_reference() {
            if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
                eprintln!("skipped: no AVX2 and FMA on this CPU");
                return;
            }
            let mut seed = 7;
            for &(m, n, k) in &[(1, 1, 1), (7, 17, 9), (13, 130, 600), (70, 257, 1100), (6, 16, 512), (97, 300, 1025)] {
                for (a_transposed, b_transposed) in [(false, false), (false, true), (true, false), (true, true)] {
                    for accumulate in [false, true] {
                        for threads in [1, 2, 3] {
                            let a: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
                            // A[i][p] lives at i·a_rs + p·a_cs (transposed: a weight gradient's `gᵀ`).
                            let (a_rs, a_cs) = if a_transposed { (1, m) } else { (k, 1) };
                            let a_at = |i: usize, p: usize| a[i * a_rs + p * a_cs];
                            let bm: Vec<f32> = (0..k * n).map(|_| lcg(&mut seed)).collect();
                            // B[p][j] lives at p·b_rs + j·b_cs.
                            let (b_rs, b_cs) = if b_transposed { (1, k) } else { (n, 1) };
                            let b_at = |p: usize, j: usize| bm[p * b_rs + j * b_cs];
                            let c_rs = n + 3;
                            let c0: Vec<f32> = (0..m * c_rs).map(|_| lcg(&mut seed)).collect();
                            let mut c = c0.clone();
                            // SAFETY: the sizes and strides describe the buffers; AVX2+FMA checked.
                            unsafe {
                                drive(
                                    threads,
                                    Product {
                                        m,
                                        n,
                                        k,
                                        c: c.as_mut_ptr(),
                                        c_rs,
                                        a: a.as_ptr(),
                                        a_rs,
                                        a_cs,
                                        b: bm.as_ptr(),
                                        b_rs,
                                        b_cs,
                                        accumulate,
                                    },
                                )
                            };
                            for i in 0..m {
                                for j in 0..c_rs {
                                    let got = f64::from(c[i * c_rs + j]);
                                    let base = f64::from(c0[i * c_rs + j]);
                                    if j >= n {
                                        assert_eq!(got, base, "{m}x{n}x{k}: spare column {j} of row {i} written");
                                        continue;
                                    }
                                    let dot: f64 = (0..k).map(|p| f64::from(a_at(i, p)) * f64::from(b_at(p, j))).sum();
                                    let want = if accumulate { base + dot } else { dot };
                                    let tol = 1e-5 * (k as f64).sqrt() + 1e-6;
                                    assert!(
                                        (got - want).abs() <= tol,
                                        "{m}x{n}x{k} at={a_transposed} bt={b_transposed} acc={accumulate} t={threads}: \
                                         c[{i}][{j}] = {got}, want {want}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }

        /// Claims cover every row exactly once, in blocks of whole microkernel rows (but a
        /// range's last) no larger than `MC`, shrinking toward each range's end; each thread
        /// starts at home.
        #[test]
        fn claims_cover_the_rows_home_ranges_first() {
            for &(total, threads) in &[(1, 2), (16, 2), (200, 2), (1024, 2), (1000, 3), (4096, 8), (512, 2)] {
                // Thread 0 claims alone until its range is done, then the threads take turns from
                // thread 1 on (thread 0, with nothing left at home, takes from the others): the
                // blocks must tile 0..total once, thread 0's first claims come from its own range,
                // and within a range blocks follow each other without growing.
                let (nexts, ends) = home_ranges(total, threads);
                let starts: Vec<usize> = nexts.iter().map(|a| a.load(Ordering::Relaxed)).collect();
                let mut got = vec![];
                while let Some(c) = claim(&nexts, &ends, 0) {
                    got.push((0, c));
                    if c.0 + c.1 == ends[0] {
                        break;
                    }
                }
                assert!(got.iter().all(|&(_, (first, _))| first < ends[0]), "thread 0 left its range early");
                let mut me = 1 % threads;
                while let Some(c) = claim(&nexts, &ends, me) {
                    got.push((me, c));
                    me = (me + 1) % threads;
                }
                let mut blocks: Vec<(usize, usize)> = got.iter().map(|&(_, c)| c).collect();
                blocks.sort();
                let mut at = 0;
                for &(first, rows) in &blocks {
                    assert_eq!(first, at, "{total} rows, {threads} threads: gap or overlap");
                    assert!(rows > 0 && rows <= MC);
                    if !ends.contains(&(first + rows)) {
                        assert_eq!(rows % MR, 0, "a block inside a range is whole tiles");
                    }
                    at += rows;
                }
                assert_eq!(at, total);
                for t in 0..threads {
                    let mut in_range: Vec<(usize, usize)> =
                        blocks.iter().copied().filter(|&(f, _)| f >= starts[t] && f < ends[t]).collect();
                    in_range.sort();
                    assert!(in_range.windows(2).all(|w| w[1].1 <= w[0].1), "blocks grow in range {t}");
                }
                // Each other thread's first claim starts its own range (thread 0 kept to its own).
                for t in 1..threads {
                    if let Some(&(_, (first, _))) = got.iter().find(|&&(who, _)| who == t) {
                        if starts[t] < ends[t] {
                            assert_eq!(first, starts[t], "thread {t} did not start at home");
                        }
                    }
                }
            }
        }
    }
}
