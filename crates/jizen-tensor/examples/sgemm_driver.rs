//! A prototype of a sgemm driver for large products on jizen's threads. As gemm does, it
//! computes a row-major product as its transpose (cᵀ = bᵀaᵀ): `a`'s depth block is packed once
//! into gemm's panel layout, shared by all threads, and blocks of columns of `b` are handed out
//! from a counter to whichever thread is free, each packed by the thread that takes it and
//! multiplied with gemm's own AVX2 microkernels (`gemm-f32`) and packing routines
//! (`gemm-common`). gemm's own two-thread split gives each thread a fixed half of every product,
//! so a product waits for the slower core; on this project's noisy 2-vCPU machine one vCPU has
//! run at two thirds of its speed for whole runs (BENCHMARKS.md, 2026-12-05, 18:00).
//!
//! It checks its results against a float64 reference on awkward shapes, then times 1024³
//! products against gemm's split, alternated in rounds (median of 50 products each):
//!
//! ```text
//! cargo run --release -p jizen-tensor --example sgemm_driver
//! ROUNDS=10 MC=128 JIZEN_THREADS=2 ...   rounds, columns of b per block, threads
//! PIN=1 ...                               pool thread i pinned to CPU i, to slow one CPU down
//!                                         on purpose (a busy loop pinned to it): `taskset -c 1
//!                                         sh -c 'while :; do :; done' &`
//! ```
//!
//! Not yet wired into `Tensor::matmul`; x86-64 with AVX2 and FMA only.

#[global_allocator]
static ALLOC: jizen_tensor::AlignedAlloc = jizen_tensor::AlignedAlloc;

fn main() {
    #[cfg(target_arch = "x86_64")]
    x86::main();
    #[cfg(not(target_arch = "x86_64"))]
    eprintln!("sgemm_driver: x86-64 only (gemm's AVX2 microkernels)");
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use gemm_common::pack_operands::{pack_lhs, pack_rhs};
    use gemm_common::simd::V3;
    use gemm_common::Ptr;
    use gemm_f32::microkernel::fma::f32::{MR_DIV_N, NR, UKR};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    const N: usize = 8;
    const MR: usize = MR_DIV_N * N;

    #[derive(Clone, Copy)]
    struct P(*mut f32);
    unsafe impl Send for P {}
    unsafe impl Sync for P {}
    impl P {
        fn at(self) -> *mut f32 {
            self.0
        }
    }

    // Packing buffers, kept between products. The engine's allocator (`AlignedAlloc`, above)
    // starts each on a cache line.
    thread_local! {
        static LBUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    static RBUF: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

    /// Runs `work` once per thread slot: on the calling pool thread and as jobs the others may take;
    /// a job no other thread took in time is run by the caller (and finds nothing left to do).
    fn run_all(threads: usize, work: &(dyn Fn() + Sync)) {
        rayon::scope(|s| {
            for _ in 1..threads {
                s.spawn(|_| work());
            }
            work();
        });
    }

    /// C (m×n, row-major, row stride ldc) = A (m×k, row stride lda) · B (k×n, row stride ldb),
    /// overwriting C. Computed as Cᵀ = Bᵀ·Aᵀ so that gemm's kernels write columns of Cᵀ (rows of C)
    /// contiguously.
    #[allow(clippy::too_many_arguments)] // a BLAS-shaped call: sizes, and a pointer and row stride per matrix
    unsafe fn driver(
        mc: usize,
        m: usize,
        n: usize,
        k: usize,
        c: *mut f32,
        ldc: usize,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
    ) {
        let simd = V3::try_new().expect("AVX2+FMA");
        let (a, b, c) = (P(a as *mut f32), P(b as *mut f32), P(c));
        // L = Bᵀ (n×k): L[j][p] = b[p*ldb + j]; R = Aᵀ (k×m): R[p][i] = a[i*lda + p].
        let (lm, rn) = (n, m);
        let (l_rs, l_cs) = (1isize, ldb as isize);
        let (r_rs, r_cs) = (1isize, lda as isize);
        let (d_rs, d_cs) = (1isize, ldc as isize);
        let k_iter = k.div_ceil(512);
        let kc = k.div_ceil(k_iter);
        let panels = rn.div_ceil(NR);
        let mut rbuf = RBUF.lock().unwrap();
        if rbuf.len() < kc * panels * NR {
            *rbuf = vec![0.0; kc * panels * NR];
        }
        let packed_r = P(rbuf.as_mut_ptr());
        let threads = rayon::current_num_threads();
        let blocks = lm.div_ceil(mc);
        let mut depth = 0;
        while depth < k {
            let kk = kc.min(k - depth);
            // Pack R's depth block, chunks of panels taken by whichever thread is free.
            let next_p = AtomicUsize::new(0);
            let chunk = 16;
            run_all(threads, &|| loop {
                let q = next_p.fetch_add(1, Ordering::Relaxed);
                let p0 = q * chunk;
                if p0 >= panels {
                    break;
                }
                let p1 = (p0 + chunk).min(panels);
                let col0 = p0 * NR;
                let ncols = (p1 * NR).min(rn) - col0;
                pack_rhs::<f32, 1, NR, V3>(
                    simd,
                    ncols,
                    kk,
                    Ptr(packed_r.at().add(p0 * kk * NR)),
                    Ptr(a.at().offset(depth as isize * r_rs + col0 as isize * r_cs)),
                    r_cs,
                    r_rs,
                    kk * NR,
                );
            });
            let next = AtomicUsize::new(0);
            let (alpha, status) = if depth == 0 { (0.0f32, 0u8) } else { (1.0f32, 1u8) };
            run_all(threads, &|| {
                let pl = LBUF
                    .with(|l| {
                        let mut l = l.borrow_mut();
                        if l.len() < kc * mc.next_multiple_of(MR) {
                            *l = vec![0.0; kc * mc.next_multiple_of(MR)];
                        }
                        P(l.as_mut_ptr())
                    })
                    .at();
                loop {
                    let blk = next.fetch_add(1, Ordering::Relaxed);
                    if blk >= blocks {
                        break;
                    }
                    let row0 = blk * mc;
                    let rows = mc.min(lm - row0);
                    let micro = rows.div_ceil(MR);
                    for i in 0..micro {
                        pack_lhs::<f32, N, MR, V3>(
                            simd,
                            MR.min(rows - i * MR),
                            kk,
                            Ptr(pl.add(i * kk * MR)),
                            Ptr(b.at().offset((row0 + i * MR) as isize * l_rs + depth as isize * l_cs)),
                            l_cs,
                            l_rs,
                            kk * MR,
                        );
                    }
                    for j in 0..panels {
                        let n_in = NR.min(rn - j * NR);
                        for i in 0..micro {
                            let m_in = MR.min(rows - i * MR);
                            let f = UKR[m_in.div_ceil(N) - 1][n_in - 1];
                            f(
                                m_in,
                                n_in,
                                kk,
                                c.at().offset((row0 + i * MR) as isize * d_rs + (j * NR) as isize * d_cs),
                                pl.add(i * kk * MR),
                                packed_r.at().add(j * kk * NR),
                                d_cs,
                                d_rs,
                                MR as isize,
                                NR as isize,
                                1,
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
            });
            depth += kk;
        }
    }

    pub fn main() {
        let threads: usize = std::env::var("JIZEN_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
        let mc: usize = std::env::var("MC").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
        let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
        let pin = std::env::var("PIN").is_ok();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .start_handler(move |_i| {
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                if pin {
                    // Each pool thread on its own CPU, to simulate one CPU slower than the other.
                    unsafe {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(_i, &mut set);
                        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                    }
                }
            })
            .build()
            .unwrap();
        // Correctness on awkward shapes first.
        let mut seed = 1u64;
        let mut rnd = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for &(m, n, k) in &[(1, 1, 1), (17, 13, 9), (130, 70, 600), (257, 129, 1100), (1024, 1024, 1024)] {
            let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
            let mut c = vec![f32::NAN; m * n];
            let cp = P(c.as_mut_ptr());
            pool.install(|| unsafe { driver(mc, m, n, k, cp.at(), n, a.as_ptr(), k, b.as_ptr(), n) });
            let mut worst = 0f64;
            for i in 0..m {
                for j in 0..n {
                    let r: f64 = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
                    worst = worst.max((r - c[i * n + j] as f64).abs());
                }
            }
            println!("check {m}x{n}x{k}: max |err| {worst:.2e}");
            assert!(worst < 1e-3 * (k as f64).sqrt(), "wrong result");
        }
        let s = 1024;
        let a: Vec<f32> = (0..s * s).map(|_| rnd()).collect();
        let b: Vec<f32> = (0..s * s).map(|_| rnd()).collect();
        let mut c = vec![0f32; s * s];
        let cp = P(c.as_mut_ptr());
        let flops = 2.0 * (s as f64).powi(3);
        // Median GFLOP/s of 50 products after 10 untimed ones.
        let time = |product: &dyn Fn()| -> f64 {
            let mut v = Vec::new();
            for it in 0..60 {
                let t = Instant::now();
                product();
                if it >= 10 {
                    v.push(flops / t.elapsed().as_secs_f64() / 1e9);
                }
            }
            v.sort_by(|x, y| x.total_cmp(y));
            v[v.len() / 2]
        };
        let split = || {
            pool.install(|| unsafe {
                gemm::gemm(
                    s,
                    s,
                    s,
                    cp.at(),
                    1,
                    s as isize,
                    false,
                    a.as_ptr(),
                    1,
                    s as isize,
                    b.as_ptr(),
                    1,
                    s as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(threads),
                )
            })
        };
        let ours = || pool.install(|| unsafe { driver(mc, s, s, s, cp.at(), s, a.as_ptr(), s, b.as_ptr(), s) });
        for _ in 0..rounds {
            let g = time(&split);
            let d = time(&ours);
            println!("gemm split {g:.1}  driver {d:.1} GFLOP/s");
        }
    }
}
