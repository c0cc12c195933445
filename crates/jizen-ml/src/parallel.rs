//! The thread pool for work that splits into independent pieces (one query row each), whose
//! results do not depend on how the pieces are spread over threads.
//!
//! Its size is `JIZEN_THREADS` when that is set to a positive integer (the variable jizen's
//! tensor engine reads), else rayon's default (`RAYON_NUM_THREADS`, else every core).

use std::sync::OnceLock;

/// A pool of `JIZEN_THREADS` threads, or `None` to use rayon's global pool.
static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();

fn pool() -> Option<&'static rayon::ThreadPool> {
    POOL.get_or_init(|| {
        let n = std::env::var("JIZEN_THREADS").ok()?.trim().parse::<usize>().ok().filter(|&n| n > 0)?;
        rayon::ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("jizen-ml-{i}")).build().ok()
    })
    .as_ref()
}

/// The threads parallel work uses: `JIZEN_THREADS`, else rayon's default.
pub fn num_threads() -> usize {
    pool().map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
}

/// Runs `f` on jizen-ml's pool: parallel iterators inside it use that pool's threads.
pub(crate) fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(p) => p.install(f),
        None => f(),
    }
}
