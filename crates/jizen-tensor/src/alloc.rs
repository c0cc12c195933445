//! A global allocator that starts every buffer of tensor size on a cache line.
//!
//! Tensor storage is a plain `Vec`, and the system allocator aligns it to 16 bytes only. An
//! AVX-512 load is 64 bytes wide: from a buffer that does not start on a 64-byte boundary, every
//! such load spans two cache lines and costs two reads of the L1 cache. Kernels bound by the
//! cache's bandwidth feel it most. Measured on the Xeon of `BENCHMARKS.md`, one thread, a
//! batch-1 product with a 784×256 weight held in the L2 cache: 5.9 µs from a 64-byte-aligned
//! weight, 9.4 µs from one 48 bytes past a line; which one a run gets depended on the
//! allocator's state, so timings changed from one process to the next. With every buffer
//! aligned, `jizen bench infer` (784-512-256-10 at batch 1, two threads) went from 17.6–18.1
//! to 11.9–12.4 µs a call (three runs before, two after).
//!
//! A library cannot choose the allocator of the program that uses it; a program opts in:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: jizen_tensor::AlignedAlloc = jizen_tensor::AlignedAlloc;
//! ```
//!
//! The `jizen` command and the engine's examples and benchmarks do.

use std::alloc::{GlobalAlloc, Layout, System};

/// The alignment given to large allocations: one cache line, one AVX-512 register.
pub const LINE: usize = 64;

/// Allocations of at least this many bytes are aligned to [`LINE`]; smaller ones (strings,
/// shapes, graph nodes) keep the system allocator's cheaper default.
pub const ALIGNED_FROM: usize = 512;

/// [`System`], with every allocation of at least [`ALIGNED_FROM`] bytes aligned to [`LINE`]
/// bytes. See the [module documentation](self).
///
/// A large block is taken from the system [`LINE`] bytes longer than asked, and handed out at
/// the first line boundary inside it; the system's address of the block is kept in the eight
/// bytes just before. Asking the system for an aligned block instead (`posix_memalign`) was
/// measured to grow the CNN benchmark's peak memory from 61 to as much as 79 MiB: glibc carves
/// such a block out of a larger free one, so a freed buffer no longer serves the next request of
/// its own size. With the header every request of one size is again one size to the system.
pub struct AlignedAlloc;

/// Whether a layout gets a header and a line-aligned start: large, and not asking for more than
/// the system's default alignment (such layouts go to the system as they are). A function of the
/// layout alone, so an allocation and its release always agree.
#[inline]
fn lined(layout: Layout) -> bool {
    layout.size() >= ALIGNED_FROM && layout.align() <= BASE_ALIGN
}

/// The alignment asked of the system for a lined block: enough room for the header before the
/// first line boundary after the block's start (the start moves by 16 to 64 bytes).
const BASE_ALIGN: usize = 16;

/// The system's layout of a lined block of `size` bytes; `None` when `size + LINE` overflows.
#[inline]
fn outer(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(LINE)?, BASE_ALIGN).ok()
}

/// How far past a block's start at `base` (aligned to `BASE_ALIGN`) its first line boundary
/// with room for the header lies: 16, 32, 48 or 64 bytes.
#[inline]
fn skip(base: *mut u8) -> usize {
    LINE - (base as usize % LINE)
}

/// The line-aligned address inside the system's block at `base`, with `base` recorded before it.
///
/// # Safety
/// `base` is a block of at least `LINE` + the caller's size bytes, aligned to `BASE_ALIGN`.
#[inline]
unsafe fn hand_out(base: *mut u8) -> *mut u8 {
    // SAFETY: `skip <= LINE`, inside the block; the header's 8 bytes lie after `base` (the skip is
    // at least 16) and are aligned (both addresses are multiples of 8).
    unsafe {
        let p = base.add(skip(base));
        p.cast::<usize>().sub(1).write(base as usize);
        p
    }
}

/// The system's block of a lined pointer handed out by [`hand_out`].
///
/// # Safety
/// `p` came from [`hand_out`].
#[inline]
unsafe fn base_of(p: *mut u8) -> *mut u8 {
    // SAFETY: `hand_out` wrote the block's address just before `p`.
    unsafe { p.cast::<usize>().sub(1).read() as *mut u8 }
}

/// A block for `layout` from `get` (the system's `alloc` or `alloc_zeroed`): the layout as it is,
/// or, when it is lined, the outer block handed out past its header; null when `get` fails.
#[inline]
fn take(layout: Layout, get: impl FnOnce(Layout) -> *mut u8) -> *mut u8 {
    if !lined(layout) {
        return get(layout);
    }
    let Some(o) = outer(layout.size()) else { return std::ptr::null_mut() };
    let base = get(o);
    if base.is_null() {
        return base;
    }
    // SAFETY: a non-null block of the outer layout: `LINE` bytes more than the caller's size, at
    // `BASE_ALIGN`.
    unsafe { hand_out(base) }
}

// SAFETY: small layouts and layouts asking for more than 16-byte alignment go to `System`
// unchanged. A lined block is `System`'s block of `size + LINE` bytes at 16-byte alignment, handed
// out at its first line boundary past the header, so `size` bytes fit after it, aligned to 64
// (>= the 16 or less asked); its release goes back to `System` with that same layout, because
// `lined` and `outer` depend on nothing but the caller's layout, which the `GlobalAlloc` contract
// makes the same at allocation and release.
unsafe impl GlobalAlloc for AlignedAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `System.alloc` gets the caller's layout or the outer one, both valid and of
        // non-zero size.
        take(layout, |l| unsafe { System.alloc(l) })
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`; a lined block is zeroed whole, its header written after.
        take(layout, |l| unsafe { System.alloc_zeroed(l) })
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if lined(layout) {
            // SAFETY: `ptr` was handed out for this layout, from a block of the outer layout
            // (which exists: the allocation succeeded).
            unsafe { System.dealloc(base_of(ptr), outer(layout.size()).unwrap_unchecked()) }
        } else {
            // SAFETY: allocated from `System` with this very layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, does not
        // overflow `isize`, which is what the unchecked constructor needs.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (lined(layout), lined(new)) {
            // SAFETY: allocated from `System` with `layout`; the result keeps its alignment.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            (true, true) => {
                let Some(o) = outer(new_size) else { return std::ptr::null_mut() };
                // SAFETY: the block of `ptr` has the outer layout of the old size; `System`
                // keeps the first bytes of it, which hold the data at the old offset from the
                // block's start. The data moves to the new block's first line boundary (the
                // two ranges may overlap: `copy`), and the header is written after the move.
                unsafe {
                    let old_base = base_of(ptr);
                    let offset = ptr as usize - old_base as usize;
                    let base = System.realloc(old_base, outer(layout.size()).unwrap_unchecked(), o.size());
                    if base.is_null() {
                        return base;
                    }
                    if skip(base) != offset {
                        std::ptr::copy(base.add(offset), base.add(skip(base)), layout.size().min(new_size));
                    }
                    hand_out(base)
                }
            }
            // The size crossed `ALIGNED_FROM`: a block of the other kind, then a copy.
            // SAFETY: `new` has a non-zero size (`GlobalAlloc::realloc` requires it); both
            // blocks hold the bytes copied; `ptr` is released with the layout it was allocated
            // with.
            _ => unsafe {
                let fresh = self.alloc(new);
                if !fresh.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                fresh
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_start_on_a_line_and_keep_their_contents_through_realloc() {
        let a = AlignedAlloc;
        unsafe {
            for size in [ALIGNED_FROM, 3136, 1 << 20] {
                let l = Layout::from_size_align(size, 4).unwrap();
                let p = a.alloc(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % LINE, 0, "{size} bytes");
                a.dealloc(p, l);
                let z = a.alloc_zeroed(l);
                assert_eq!(z as usize % LINE, 0);
                assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                a.dealloc(z, l);
            }
            // Grow from a small block across the threshold and shrink back: the contents stay,
            // and the large block is aligned.
            let small = Layout::from_size_align(100, 4).unwrap();
            let p = a.alloc(small);
            for i in 0..100 {
                *p.add(i) = i as u8;
            }
            let big = a.realloc(p, small, 5000);
            assert_eq!(big as usize % LINE, 0);
            for i in 0..100 {
                assert_eq!(*big.add(i), i as u8);
            }
            for i in 0..5000 {
                *big.add(i) = (i % 251) as u8;
            }
            // Large to large, many times: the data moves with the block and stays aligned.
            let (mut p, mut size) = (big, 5000);
            for grow in [9000, 700_000, 6000, 513, 40_000] {
                p = a.realloc(p, Layout::from_size_align(size, 4).unwrap(), grow);
                assert_eq!(p as usize % LINE, 0, "{size} -> {grow}");
                for i in 0..size.min(grow).min(5000) {
                    assert_eq!(*p.add(i), (i % 251) as u8, "byte {i} after {size} -> {grow}");
                }
                size = grow;
            }
            let grown = p;
            assert_eq!(size, 40_000);
            for i in 0..100 {
                *grown.add(i) = i as u8;
            }
            let back = a.realloc(grown, Layout::from_size_align(40_000, 4).unwrap(), 60);
            for i in 0..60 {
                assert_eq!(*back.add(i), i as u8);
            }
            a.dealloc(back, Layout::from_size_align(60, 4).unwrap());
        }
    }

    #[test]
    fn larger_alignments_asked_for_are_kept() {
        let a = AlignedAlloc;
        unsafe {
            for align in [32, 64, 4096] {
                let l = Layout::from_size_align(4096, align).unwrap();
                let p = a.alloc(l);
                assert_eq!(p as usize % align, 0);
                let q = a.realloc(p, l, 100_000);
                assert_eq!(q as usize % align, 0);
                a.dealloc(q, Layout::from_size_align(100_000, align).unwrap());
            }
        }
    }
}
