//! Threads: one rayon pool sized by `JIZEN_THREADS` (else all cores), used only for work large
//! enough to pay for it. Small operations stay on the calling thread.

use std::sync::OnceLock;

/// Elementwise work below this many elements runs on one thread.
pub const PAR_ELEMENTS: usize = 1 << 15;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

/// The number of threads jizen uses: `JIZEN_THREADS` if set to a positive integer, else the
/// number of cores.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

pub(crate) fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| {
        keep_freed_memory();
        let n = std::env::var("JIZEN_THREADS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("jizen-{i}"))
            .start_handler(|_| flush_subnormals_here())
            .build()
            .expect("failed to start jizen's thread pool")
    })
}

/// Makes the calling thread treat subnormal floating-point numbers (magnitudes below 1.2e-38 in
/// f32, 2.2e-308 in f64) as zero, in its inputs and its results (the x86 MXCSR's
/// denormals-are-zero and flush-to-zero bits); a no-op on other architectures, or when
/// `JIZEN_SUBNORMALS=keep` is set. jizen's own threads do this when they start; a program calls
/// it on its main thread so that work done there agrees with work done on the pool.
///
/// An x86 core takes a slow microcode path for every operation with a subnormal input or
/// result. Training can make them: Adam's first moment, for one, decays by 0.9 a step wherever a
/// gradient stays zero, and from 1e-3 it enters the subnormal range after about 760 steps.
/// Measured on this project's Xeon: `perf` put 22% of an epoch of the `cnn` benchmark's training
/// (60,000 examples, `jizen bench epoch-cnn --quick`) in Adam's update, and the epoch took 20.4 s
/// with subnormals and 15.8 s flushed, the time of its 938 steps. Deep
/// learning frameworks commonly flush them on their threads for this reason; the precision lost
/// is that of numbers 10^38 times smaller than the ones that move the weights.
pub fn flush_subnormals_here() {
    static KEEP: OnceLock<bool> = OnceLock::new();
    if *KEEP.get_or_init(|| std::env::var("JIZEN_SUBNORMALS").is_ok_and(|v| v.trim() == "keep")) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // Bit 15: flush to zero (results); bit 6: denormals are zero (inputs).
        const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
        let mut csr = 0u32;
        // SAFETY: reading and writing MXCSR touches only this thread's floating-point control
        // state; setting these two bits is valid on every x86-64 CPU (SSE2 is baseline).
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            csr |= FTZ_DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
        }
    }
}

/// Whether work of `n` elements should be split across threads.
pub(crate) fn worth_parallel(n: usize) -> bool {
    n >= PAR_ELEMENTS && num_threads() > 1
}

/// Training allocates and frees the same large buffers every step (activations, im2col columns,
/// gradients). glibc's defaults hand freed memory back to the kernel (trimming the heap, or
/// unmapping large blocks) and fault it in again, zero page by zero page, on the next step; on a
/// convolution step that was a third of the time. Raising the trim and mmap thresholds keeps the
/// memory in the process for reuse. Process-wide, once; `JIZEN_KEEP_FREED_MEMORY=0` opts out.
/// Freed packing buffers of the products are also kept for the next request of their size
/// ([`crate::alloc::keep_freed_blocks`]; `JIZEN_KEEP_FREED_BLOCKS=0` opts out of that alone).
fn keep_freed_memory() {
    if !std::env::var("JIZEN_KEEP_FREED_BLOCKS").is_ok_and(|v| v.trim() == "0") {
        crate::alloc::keep_freed_blocks();
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var("JIZEN_KEEP_FREED_MEMORY").is_ok_and(|v| v.trim() == "0") {
            return;
        }
        // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            // One arena for all threads: the kernels' worker threads allocate little, and each
            // arena of its own would keep its freed memory resident beside the main one.
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Runs `f` on matching chunks of the `muts` slices and of `read` (all of one length), in place:
/// on jizen's threads, one run of chunks each, when the slices are long enough to pay
/// ([`PAR_ELEMENTS`]), else once on the calling thread. Each element is computed the same way
/// either way, so the results do not depend on the thread count. For elementwise work outside
/// the tensor ops, such as an optimizer's update of a parameter and its state.
pub fn par_update<T: Send + Sync, const M: usize>(
    muts: [&mut [T]; M],
    read: &[T],
    f: impl Fn([&mut [T]; M], &[T]) + Sync + Send,
) {
    use rayon::prelude::*;
    let n = read.len();
    assert!(muts.iter().all(|s| s.len() == n), "par_update: slices of different lengths");
    if !worth_parallel(n) {
        return f(muts, read);
    }
    let chunk = n.div_ceil(num_threads()).max(PAR_ELEMENTS / 4);
    let mut iters = muts.map(|s| s.chunks_mut(chunk));
    let tasks: Vec<[&mut [T]; M]> = (0..n.div_ceil(chunk))
        .map(|_| std::array::from_fn(|k| iters[k].next().expect("as many chunks as read's")))
        .collect();
    pool().install(|| tasks.into_par_iter().zip(read.par_chunks(chunk)).for_each(|(m, r)| f(m, r)));
}

/// Elements per part of [`par_sum`]: fixed, so that the parts, and the sum, do not depend on the
/// thread count.
const SUM_CHUNK: usize = 1 << 14;

/// `f(part₀) + f(part₁) + …` over consecutive parts of `read` of [`SUM_CHUNK`] elements, added in
/// order: on jizen's threads when `read` is long enough to pay ([`PAR_ELEMENTS`]), else on the
/// calling thread, with the same result either way. For reductions outside the tensor ops, such
/// as a gradient's norm.
pub fn par_sum<T: Sync>(read: &[T], f: impl Fn(&[T]) -> f64 + Sync + Send) -> f64 {
    use rayon::prelude::*;
    if !worth_parallel(read.len()) {
        return read.chunks(SUM_CHUNK).map(&f).sum();
    }
    let parts: Vec<f64> = pool().install(|| read.par_chunks(SUM_CHUNK).map(&f).collect());
    parts.into_iter().sum()
}

/// Runs `f` on a thread of jizen's pool and returns its result, with the caller's
/// history-recording setting ([`crate::no_grad`]), while the pool's other threads wait for work
/// awake. For a training step: its many parallel operations start on a worker, which keeps a
/// share of each and hands the rest to the other workers.
///
/// Started from the calling thread instead, every operation is handed to the pool whole while
/// the caller sleeps until it is done: two thread wake-ups per operation, which on this
/// project's 2-core machine put about 17% of an `mlp` step's `perf` samples in the kernel's
/// scheduling and wake-up path. Even on the pool, a worker with nothing to do sleeps after a few
/// microseconds, and the step's next product (after a short serial operation: an activation, a
/// loss) has to wake it again. So for the length of `f` each other worker runs a job that takes
/// whatever work appears ([`rayon::yield_now`]) and otherwise spins, as OpenMP runtimes keep
/// their threads spinning between parallel regions. Measured (`jizen bench`, two threads,
/// medians of seven runs; `lstm` one run): `mlp` 2.06 → 1.65 ms a step, `cnn` 16.9 → 15.8 ms,
/// `lstm` 89 → 78 ms. The price is a core kept busy for the length of a step even where the step
/// has nothing for it.
///
/// A spinner gives its thread back every [`SPIN_SLICE`] and queues a fresh one in its place. A
/// worker waiting on a join can pick up any queued job, a spinner included, and resumes its own
/// work only when that job returns; a spinner that ran until its step ended would hold the work
/// beneath it that long, and two steps started from two threads, each worker holding the other
/// step's spinner above its own step, would wait for each other forever.
///
/// Within the pool already, `f` runs in place (with spinners of its own for its length).
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    let grad = crate::is_grad_enabled();
    if num_threads() <= 1 {
        return pool().install(move || crate::autograd::with_grad_mode(grad, f));
    }
    let stop = AtomicBool::new(false);
    /// Stops the spinners when `f` returns or unwinds (the scope waits for them).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    /// Queues a spinner: on a thread other than `owner` it takes work or spins for at most
    /// `SPIN_SLICE`, then queues its successor, until `stop`.
    fn spinner<'s>(s: &rayon::Scope<'s>, stop: &'s AtomicBool, owner: Option<usize>) {
        s.spawn(move |s| {
            // Taken by the thread running `f` (while it waits on a join of its own): it has
            // better things to do.
            if rayon::current_thread_index() == owner {
                return;
            }
            let start = std::time::Instant::now();
            let mut turns = 0u32;
            while !stop.load(Ordering::Acquire) {
                if rayon::yield_now() == Some(rayon::Yield::Idle) {
                    std::hint::spin_loop();
                }
                turns += 1;
                if turns.is_multiple_of(64) && start.elapsed() >= SPIN_SLICE {
                    return spinner(s, stop, owner);
                }
            }
        });
    }
    pool().install(|| {
        let owner = rayon::current_thread_index();
        rayon::scope(|s| {
            for _ in 1..num_threads() {
                spinner(s, &stop, owner);
            }
            let _stop = Stop(&stop);
            crate::autograd::with_grad_mode(grad, f)
        })
    })
}

/// How long a spinner of [`on_pool`] keeps its thread before it queues its successor.
const SPIN_SLICE: std::time::Duration = std::time::Duration::from_micros(200);

/// Runs `f(i, n)` for every part `i` of `n` at once, for latency-bound work (a batch-1 product):
/// `n` is jizen's thread count, part 0 runs on the calling thread and part `i` always on the same
/// helper thread, so that what a part reads (its slice of a weight matrix) stays in that core's
/// cache from one call to the next.
///
/// rayon's pool suits throughput: its idle threads sleep, and each job is taken by whichever
/// thread gets there first. A batch-1 layer takes a few microseconds, less than waking a sleeping
/// thread, and a layer's weights (a megabyte or two) fit in the cores' L2 caches only if each
/// core reads the same part every time. The helpers here spin for a short while after each job
/// ([`SPIN`]) before they sleep, as OpenMP runtimes do, so back-to-back layers find them awake.
///
/// When another caller is using the helpers (tests run on several threads), the calling thread
/// runs the whole work itself as `f(0, 1)`.
pub fn split_pinned(f: &(dyn Fn(usize, usize) + Sync)) {
    let n = num_threads();
    if n <= 1 {
        return f(0, 1);
    }
    let crew = pinned_crew();
    let Ok(_guard) = crew.busy.try_lock() else {
        return f(0, 1);
    };
    crew.run(n, f);
}

/// How long a helper of [`split_pinned`] spins for the next job before it sleeps.
const SPIN: std::time::Duration = std::time::Duration::from_micros(100);

mod pinned {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Instant;

    /// The job of the current epoch: a borrowed closure, valid until every helper has reported.
    #[derive(Clone, Copy)]
    struct Job(*const (dyn Fn(usize, usize) + Sync));
    // SAFETY: the closure is `Sync`, and `Crew::run` does not return before every helper is done
    // with it.
    unsafe impl Send for Job {}

    struct Shared {
        /// Bumped once per job; a helper runs a job when it sees a new value.
        epoch: AtomicU64,
        /// The number of parts of the current job (helper `i` runs part `i + 1`).
        parts: AtomicUsize,
        /// Helpers done with the current job.
        done: AtomicUsize,
        /// Helpers asleep (or about to be) on `wake`.
        sleepers: AtomicUsize,
        job: Mutex<Option<Job>>,
        lock: Mutex<()>,
        wake: Condvar,
        /// A helper's part panicked: the caller re-raises it.
        panicked: AtomicBool,
    }

    pub(crate) struct Crew {
        pub(crate) busy: Mutex<()>,
        shared: Arc<Shared>,
    }

    impl Crew {
        pub(crate) fn new(helpers: usize) -> Crew {
            let shared = Arc::new(Shared {
                epoch: AtomicU64::new(0),
                parts: AtomicUsize::new(0),
                done: AtomicUsize::new(0),
                sleepers: AtomicUsize::new(0),
                job: Mutex::new(None),
                lock: Mutex::new(()),
                wake: Condvar::new(),
                panicked: AtomicBool::new(false),
            });
            for i in 0..helpers {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("jizen-pinned-{}", i + 1))
                    .spawn(move || helper(i, &shared))
                    .expect("failed to start a jizen helper thread");
            }
            Crew { busy: Mutex::new(()), shared }
        }

        /// Runs the parts; the caller holds `busy`.
        pub(crate) fn run(&self, parts: usize, f: &(dyn Fn(usize, usize) + Sync)) {
            let s = &*self.shared;
            // SAFETY (lifetime): the pointer is only dereferenced by helpers between the epoch
            // bump below and their `done` increment, and this function waits for all of those.
            let job: *const (dyn Fn(usize, usize) + Sync + '_) = f;
            let job = Job(unsafe {
                std::mem::transmute::<*const (dyn Fn(usize, usize) + Sync + '_), *const (dyn Fn(usize, usize) + Sync)>(
                    job,
                )
            });
            *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
            s.parts.store(parts, Relaxed);
            s.done.store(0, Relaxed);
            s.epoch.fetch_add(1, SeqCst);
            if s.sleepers.load(SeqCst) > 0 {
                let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.wake.notify_all();
            }
            let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0, parts)));
            while s.done.load(Acquire) < parts - 1 {
                std::hint::spin_loop();
            }
            *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
            if let Err(p) = mine {
                std::panic::resume_unwind(p);
            }
            if s.panicked.swap(false, Relaxed) {
                panic!("a part of a pinned split panicked on a helper thread");
            }
        }
    }

    fn helper(i: usize, s: &Shared) {
        super::flush_subnormals_here();
        let mut seen = 0u64;
        loop {
            // Wait for the next job: spin, then sleep.
            let start = Instant::now();
            let mut spins = 0u32;
            let epoch = loop {
                let e = s.epoch.load(Acquire);
                if e != seen {
                    break e;
                }
                spins += 1;
                if !spins.is_multiple_of(64) || start.elapsed() < super::SPIN {
                    std::hint::spin_loop();
                    continue;
                }
                let mut l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, SeqCst);
                while s.epoch.load(SeqCst) == seen {
                    l = s.wake.wait(l).unwrap_or_else(|e| e.into_inner());
                }
                s.sleepers.fetch_sub(1, SeqCst);
                drop(l);
                spins = 0;
            };
            seen = epoch;
            let parts = s.parts.load(Relaxed);
            if i + 1 < parts {
                let job = s.job.lock().unwrap_or_else(|e| e.into_inner()).expect("a job with its epoch");
                // SAFETY: `Crew::run` keeps the closure alive until `done` counts this helper.
                let f = unsafe { &*job.0 };
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i + 1, parts))).is_err() {
                    s.panicked.store(true, Relaxed);
                }
                s.done.fetch_add(1, Release);
            }
        }
    }
}

fn pinned_crew() -> &'static pinned::Crew {
    static CREW: OnceLock<pinned::Crew> = OnceLock::new();
    CREW.get_or_init(|| pinned::Crew::new(num_threads() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_pool_returns_after_a_panic_and_when_nested() {
        // A panic in the work stops the spinners (else the scope would wait for them forever)
        // and reaches the caller; the pool works afterwards, also from within itself.
        let r = std::panic::catch_unwind(|| on_pool(|| panic!("a failing step")));
        assert!(r.is_err());
        let sum = on_pool(|| {
            let inner = on_pool(|| par_sum(&vec![1.0f32; 1 << 18], |c| c.iter().map(|&v| f64::from(v)).sum()));
            inner + 1.0
        });
        assert_eq!(sum, f64::from(1u32 << 18) + 1.0);
    }

    #[test]
    fn steps_started_from_several_threads_at_once_all_finish() {
        // Each step joins on the pool, so a worker waiting on a join can pick up another
        // step's spinner; the spinners' time slices keep that from holding either step for
        // good. (Spinners that ran until their own step ended passed this test too, 3 runs of
        // 800 steps: the two workers must each take the other's spinner at the same moment.)
        let data = vec![1.0f32; 1 << 17];
        std::thread::scope(|sc| {
            for t in 0..4 {
                let data = &data;
                sc.spawn(move || {
                    for round in 0..200 {
                        let (a, b) = on_pool(|| {
                            rayon::join(
                                || par_sum(data, |c| c.iter().map(|&v| f64::from(v)).sum()),
                                || par_sum(&data[round..], |c| c.len() as f64),
                            )
                        });
                        assert_eq!((a, b), (data.len() as f64, (data.len() - round) as f64), "thread {t}");
                    }
                });
            }
        });
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_pool_flushes_subnormals() {
        if std::env::var("JIZEN_SUBNORMALS").is_ok_and(|v| v.trim() == "keep") {
            eprintln!("skipped: JIZEN_SUBNORMALS=keep");
            return;
        }
        use std::hint::black_box;
        let (input, product) = pool()
            .install(|| (black_box(f32::from_bits(1)) + black_box(0.0f32), black_box(1e-30f32) * black_box(1e-10f32)));
        assert_eq!((input, product), (0.0, 0.0), "a subnormal input and a subnormal result");
    }

    #[test]
    fn split_pinned_runs_every_part_once_from_many_callers() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;
        // Several threads split at once (one gets the helpers, the others run the whole work
        // themselves); the parts of every call run once each and cover 0..n exactly.
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    for round in 0..300 {
                        let seen = Mutex::new(Vec::new());
                        let calls = AtomicUsize::new(0);
                        split_pinned(&|i, n| {
                            calls.fetch_add(1, Ordering::Relaxed);
                            seen.lock().unwrap().push((i, n));
                        });
                        let mut seen = seen.into_inner().unwrap();
                        seen.sort();
                        let n = seen[0].1;
                        assert!(n == 1 || n == num_threads(), "{n} parts");
                        assert_eq!(seen, (0..n).map(|i| (i, n)).collect::<Vec<_>>());
                        assert_eq!(calls.load(Ordering::Relaxed), n);
                        if round % 100 == 0 {
                            // Let the helpers fall asleep now and then, so waking them is tested.
                            std::thread::sleep(2 * SPIN);
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn par_update_covers_every_element_once_in_matching_chunks() {
        // Long enough to split (when there is more than one thread), and not a multiple of the
        // chunk; each element is updated from its own position in all three slices.
        for n in [10, PAR_ELEMENTS + 7, 5 * PAR_ELEMENTS + 3] {
            let read: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let (mut a, mut b) = (vec![1.0; n], vec![0.5; n]);
            par_update([&mut a[..], &mut b[..]], &read, |[a, b], r| {
                for ((x, y), &v) in a.iter_mut().zip(b.iter_mut()).zip(r) {
                    *x += v;
                    *y *= v;
                }
            });
            for i in 0..n {
                assert_eq!((a[i], b[i]), (1.0 + i as f64, 0.5 * i as f64), "n {n}, element {i}");
            }
        }
    }
}
