//! The primitive families. Each file keeps its forward kernels and its backward rules together.

pub mod binary;
pub mod conv;
pub mod conv_tiled;
mod conv_winograd;
pub mod cross_entropy;
pub mod index;
pub mod lstm;
pub mod matmul;
pub mod movement;
pub mod norm;
pub mod reduce;
mod sgemm;
pub mod softmax;
pub mod unary;

use rayon::prelude::*;

use crate::layout::{Layout, Rows};
use crate::parallel::{pool, worth_parallel};
use crate::storage::{zeroed, StorageElement};

/// Elements per parallel task in elementwise kernels.
const TASK: usize = 1 << 14;

/// Maps the elements of one strided operand into a new row-major vector.
pub(crate) fn map1<T: Copy + Send + Sync, U: StorageElement>(
    src: &[T],
    layout: &Layout,
    f: impl Fn(T) -> U + Sync + Send,
) -> Vec<U> {
    let n = layout.numel();
    if let Some(r) = layout.contiguous_range() {
        // Collected, so the output is written once, never filled first.
        let src = &src[r];
        if !worth_parallel(n) {
            return src.iter().map(|&v| f(v)).collect();
        }
        let mut out = Vec::with_capacity(n);
        pool().install(|| src.par_iter().with_min_len(TASK).map(|&v| f(v)).collect_into_vec(&mut out));
        return out;
    }
    let rows = Rows::new(layout.shape(), [layout]);
    let mut out = zeroed::<U>(n);
    fill_rows(&mut out, &rows, |o, offs, _row| {
        let s = rows.inner_strides[0];
        for (i, dst) in o.iter_mut().enumerate() {
            *dst = f(src[offs[0] + i * s]);
        }
    });
    out
}

/// Maps pairs of elements of two strided operands of the same shape into a new row-major vector.
pub(crate) fn map2<T: Copy + Send + Sync, U: StorageElement>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    f: impl Fn(T, T) -> U + Sync + Send,
) -> Vec<U> {
    let n = la.numel();
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        let (a, b) = (&a[ra], &b[rb]);
        if !worth_parallel(n) {
            return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
        }
        let mut out = Vec::with_capacity(n);
        pool().install(|| {
            a.par_iter().zip(b.par_iter()).with_min_len(TASK).map(|(&x, &y)| f(x, y)).collect_into_vec(&mut out)
        });
        return out;
    }
    let rows = Rows::new(la.shape(), [la, lb]);
    let mut out = zeroed::<U>(n);
    let [sa, sb] = rows.inner_strides;
    fill_rows(&mut out, &rows, |o, [oa, ob], _row| match (sa, sb) {
        (1, 1) => {
            for (i, dst) in o.iter_mut().enumerate() {
                *dst = f(a[oa + i], b[ob + i]);
            }
        }
        (1, 0) => {
            let y = b[ob];
            for (i, dst) in o.iter_mut().enumerate() {
                *dst = f(a[oa + i], y);
            }
        }
        (0, 1) => {
            let x = a[oa];
            for (i, dst) in o.iter_mut().enumerate() {
                *dst = f(x, b[ob + i]);
            }
        }
        _ => {
            for (i, dst) in o.iter_mut().enumerate() {
                *dst = f(a[oa + i * sa], b[ob + i * sb]);
            }
        }
    });
    out
}

/// Runs `f(row_slice, offsets, row)` for every row of a row-major output, in parallel chunks of
/// rows when the output is large.
pub(crate) fn fill_rows<U: Send, const N: usize>(
    out: &mut [U],
    rows: &Rows<N>,
    f: impl Fn(&mut [U], [usize; N], usize) + Sync + Send,
) {
    let inner = rows.inner;
    let nrows = rows.rows();
    if nrows == 0 || inner == 0 {
        return;
    }
    if worth_parallel(out.len()) && nrows > 1 {
        let per_task = (nrows / (4 * crate::parallel::num_threads())).max(1);
        pool().install(|| {
            out.par_chunks_mut(per_task * inner).enumerate().for_each(|(c, chunk)| {
                let start = c * per_task;
                let end = (start + per_task).min(nrows);
                let mut chunks = chunk.chunks_mut(inner);
                rows.for_each(start..end, |row, offs| f(chunks.next().expect("row chunk"), offs, row));
            })
        });
    } else {
        let mut chunks = out.chunks_mut(inner);
        rows.for_each(0..nrows, |row, offs| f(chunks.next().expect("row chunk"), offs, row));
    }
}
