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
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Freed blocks that ask for more than the system's default alignment, from this many bytes up
/// to [`KEEP_TO`], are kept for the next request of the same layout once [`keep_freed_blocks`] has
/// been called.
///
/// Such blocks are the matrix products' packing buffers (`gemm` asks for 128-byte alignment),
/// requested and freed again by every product, on two threads at once when a product's columns
/// are split. glibc carves an aligned block out of a larger free one (`posix_memalign`), leaving
/// pieces that later requests fill differently from one run to the next. Measured on `jizen
/// bench mlp` at two threads (AMD EPYC, 2026-12-05; 36 runs each way, alternated in series of
/// 12): without keeping them the peak resident memory ranged over 17.7–22.8 MiB, 7 runs above
/// 20; with them kept, 18.0–19.7 MiB. Keeping every freed block of these sizes instead, aligned
/// or not, made the spread smaller still but grew `cnn`'s peak from 59 to 79 MiB and slowed the
/// LSTM step by a tenth: a block kept for its size cannot serve a request of another size, which
/// glibc's free memory can, and kept blocks handed out zeroed have to be cleared.
pub const KEEP_FROM: usize = 64 << 10;

/// The largest block kept (larger ones are few per step and cost little to ask for again).
pub const KEEP_TO: usize = 4 << 20;

/// How many freed blocks are kept at most.
const KEPT_SLOTS: usize = 64;

/// How many bytes the kept blocks may hold in all.
pub const KEPT_BYTES: usize = 32 << 20;

/// The kept blocks: `(size, align, address)` of the system's layout, a null address for an empty
/// slot; behind a spin lock (an allocator cannot wait on anything that allocates), held for one
/// scan of the slots.
struct Kept {
    lock: AtomicBool,
    slots: UnsafeCell<Slots>,
}

/// The slots and the bytes their blocks hold.
type Slots = ([(usize, usize, *mut u8); KEPT_SLOTS], usize);

// SAFETY: `slots` is read and written only with `lock` held (`Kept::with`).
unsafe impl Sync for Kept {}

static KEPT: Kept =
    Kept { lock: AtomicBool::new(false), slots: UnsafeCell::new(([(0, 0, std::ptr::null_mut()); KEPT_SLOTS], 0)) };

/// Whether freed blocks are kept ([`keep_freed_blocks`]).
static KEEPING: AtomicBool = AtomicBool::new(false);

impl Kept {
    fn with<R>(&self, f: impl FnOnce(&mut Slots) -> R) -> R {
        while self.lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so no other thread touches the slots.
        let r = f(unsafe { &mut *self.slots.get() });
        self.lock.store(false, Ordering::Release);
        r
    }

    /// A kept block of layout `l`, taken out of its slot.
    fn take(&self, l: Layout) -> Option<*mut u8> {
        self.with(|(slots, bytes)| {
            let slot = slots.iter_mut().find(|s| !s.2.is_null() && s.0 == l.size() && s.1 == l.align())?;
            *bytes -= l.size();
            Some(std::mem::replace(&mut slot.2, std::ptr::null_mut()))
        })
    }

    /// Keeps the block `p` of layout `l`; false when there is no room (the caller frees it).
    fn put(&self, p: *mut u8, l: Layout) -> bool {
        self.with(|(slots, bytes)| {
            if *bytes + l.size() > KEPT_BYTES {
                return false;
            }
            let Some(slot) = slots.iter_mut().find(|s| s.2.is_null()) else { return false };
            *slot = (l.size(), l.align(), p);
            *bytes += l.size();
            true
        })
    }
}

/// Whether a system block of layout `l` is kept when freed: an alignment above the system's
/// default (`lined` blocks ask for [`BASE_ALIGN`]) and a size in the kept range.
#[inline]
fn kept_size(l: Layout) -> bool {
    l.align() > BASE_ALIGN && (KEEP_FROM..=KEEP_TO).contains(&l.size()) && KEEPING.load(Ordering::Relaxed)
}

/// Starts keeping freed blocks of [`KEEP_FROM`] to [`KEEP_TO`] bytes that ask for more than the
/// default alignment, for the next request of their layout (at most [`KEPT_BYTES`] in all), for
/// the rest of the process. jizen's thread pool turns it on when it starts (unless
/// `JIZEN_KEEP_FREED_BLOCKS=0`); it only has an effect in programs that use [`AlignedAlloc`].
pub fn keep_freed_blocks() {
    KEEPING.store(true, Ordering::Relaxed);
}

/// A system block of layout `l` (zeroed when asked): a kept one of the same layout if there is
/// one, else the system's.
///
/// # Safety
/// As `GlobalAlloc::alloc`: `l` has a non-zero size.
#[inline]
unsafe fn system_alloc(l: Layout, zeroed: bool) -> *mut u8 {
    if kept_size(l) {
        if let Some(p) = KEPT.take(l) {
            if zeroed {
                // SAFETY: the block holds `l.size()` bytes.
                unsafe { p.write_bytes(0, l.size()) };
            }
            return p;
        }
    }
    // SAFETY: the caller's guarantee.
    unsafe {
        if zeroed {
            System.alloc_zeroed(l)
        } else {
            System.alloc(l)
        }
    }
}

/// Frees the system block `p` of layout `l`: kept when its size is kept and there is room, else
/// given back to the system.
///
/// # Safety
/// `p` came from [`system_alloc`] (or `System`) with layout `l` and is freed once.
#[inline]
unsafe fn system_dealloc(p: *mut u8, l: Layout) {
    if kept_size(l) && KEPT.put(p, l) {
        return;
    }
    // SAFETY: the caller's guarantee.
    unsafe { System.dealloc(p, l) }
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
        take(layout, |l| unsafe { system_alloc(l, false) })
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`; a lined block is zeroed whole, its header written after.
        take(layout, |l| unsafe { system_alloc(l, true) })
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if lined(layout) {
            // SAFETY: `ptr` was handed out for this layout, from a block of the outer layout
            // (which exists: the allocation succeeded).
            unsafe { system_dealloc(base_of(ptr), outer(layout.size()).unwrap_unchecked()) }
        } else {
            // SAFETY: allocated from `System` with this very layout.
            unsafe { system_dealloc(ptr, layout) }
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
    fn a_freed_packing_buffer_serves_the_next_request_of_its_layout() {
        let a = AlignedAlloc;
        keep_freed_blocks();
        // Sizes no other test asks for, so no other thread takes the kept block in between.
        let l = Layout::from_size_align(KEEP_FROM + 4_160, 128).unwrap();
        let other = Layout::from_size_align(KEEP_FROM + 8_320, 128).unwrap();
        let unaligned = Layout::from_size_align(KEEP_FROM + 4_160, 8).unwrap();
        unsafe {
            let p = a.alloc(l);
            assert_eq!(p as usize % 128, 0);
            p.write_bytes(7, l.size());
            a.dealloc(p, l);
            // Another size does not get it; the same layout does, zeroed when asked.
            let q = a.alloc(other);
            assert_ne!(q, p);
            let r = a.alloc_zeroed(l);
            assert_eq!(r, p);
            assert!(std::slice::from_raw_parts(r, l.size()).iter().all(|&b| b == 0));
            a.dealloc(q, other);
            a.dealloc(r, l);
            // Blocks with the default alignment are not kept: they go back to the system.
            let u = a.alloc(unaligned);
            let base = base_of(u);
            a.dealloc(u, unaligned);
            assert!(KEPT.with(|(slots, _)| !slots.iter().any(|s| s.2 == base)));
            // Nothing past the budget is kept.
            assert!(KEPT.with(|(_, bytes)| *bytes <= KEPT_BYTES));
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
