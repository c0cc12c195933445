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
            .build()
            .expect("failed to start jizen's thread pool")
    })
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
fn keep_freed_memory() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
