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
