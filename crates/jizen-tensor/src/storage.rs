//! Storage: the flat buffer of elements behind one or more tensor views.

use std::mem::MaybeUninit;

use crate::dtype::{DType, Element};

/// A flat, typed buffer. Tensors share it through `Arc<RwLock<Storage>>`; views differ only in
/// their [`Layout`](crate::Layout).
#[derive(Clone, Debug)]
pub enum Storage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::F64(_) => DType::F64,
            Storage::I64(_) => DType::I64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
            Storage::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A zero-filled buffer of `n` elements.
    pub fn zeros(dtype: DType, n: usize) -> Storage {
        match dtype {
            DType::F32 => Storage::F32(zeroed(n)),
            DType::F64 => Storage::F64(zeroed(n)),
            DType::I64 => Storage::I64(zeroed(n)),
        }
    }
}

/// A zero-filled buffer of `n` elements. Kernels that write every element of their output take
/// [`uninit`] instead and skip the filling.
pub fn zeroed<T: StorageElement>(n: usize) -> Vec<T> {
    vec![T::zero(); n]
}

/// `n` slots for a kernel that writes every one before anything reads them: nothing is filled
/// first. A training step's outputs are megabytes each; filling them with zeros only to overwrite
/// them was a pass over each, 5–9% of a step (BENCHMARKS.md, "2026-12-04 evening"). The kernel
/// writes through `MaybeUninit::write`, [`fill_uninit`], or a raw pointer (GEMM outputs), then
/// calls [`assume_init`].
pub(crate) fn uninit<T>(n: usize) -> Vec<MaybeUninit<T>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: `MaybeUninit<T>` needs no initialisation, and the capacity is `n`.
    unsafe { v.set_len(n) };
    v
}

/// The elements of `v` once every one has been written.
///
/// # Safety
/// Every element of `v` must have been initialised.
pub(crate) unsafe fn assume_init<T>(v: Vec<MaybeUninit<T>>) -> Vec<T> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: `MaybeUninit<T>` has the layout of `T`; the caller guarantees every element is
    // initialised; pointer, length and capacity come from a vector that is not dropped.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
}

/// Writes `value` into every slot of `s` and returns them as initialised elements: for a kernel
/// that accumulates into its output, or writes only part of it, chunk by chunk while the chunk is
/// in cache.
pub(crate) fn fill_uninit<T: Copy>(s: &mut [MaybeUninit<T>], value: T) -> &mut [T] {
    for slot in s.iter_mut() {
        slot.write(value);
    }
    // SAFETY: every element was just written; `MaybeUninit<T>` has the layout of `T`.
    unsafe { &mut *(s as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// Typed access to a [`Storage`]; implemented for every [`Element`].
pub trait StorageElement: Element {
    fn wrap(v: Vec<Self>) -> Storage;
    fn slice(s: &Storage) -> &[Self];
    fn slice_mut(s: &mut Storage) -> &mut [Self];
}

macro_rules! storage_elem {
    ($t:ty, $v:ident) => {
        impl StorageElement for $t {
            fn wrap(v: Vec<Self>) -> Storage {
                Storage::$v(v)
            }
            fn slice(s: &Storage) -> &[Self] {
                match s {
                    Storage::$v(v) => v,
                    other => panic!(
                        "internal dtype error: storage is {}, expected {}",
                        other.dtype(),
                        <$t as Element>::DTYPE
                    ),
                }
            }
            fn slice_mut(s: &mut Storage) -> &mut [Self] {
                match s {
                    Storage::$v(v) => v,
                    other => panic!(
                        "internal dtype error: storage is {}, expected {}",
                        other.dtype(),
                        <$t as Element>::DTYPE
                    ),
                }
            }
        }
    };
}
storage_elem!(f32, F32);
storage_elem!(f64, F64);
storage_elem!(i64, I64);

/// Runs `$body` with `$T` bound to the Rust float type of `$dtype`; i64 is an error naming `$op`.
#[macro_export]
#[doc(hidden)]
macro_rules! with_float {
    ($dtype:expr, $op:expr, |$T:ident| $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            d => Err($crate::Error::DType { op: $op, msg: format!("expected a float tensor (f32 or f64), got {d}") }),
        }
    };
}

/// Runs `$body` with `$T` bound to the Rust type of `$dtype` (any dtype).
#[macro_export]
#[doc(hidden)]
macro_rules! with_any {
    ($dtype:expr, |$T:ident| $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
        }
    };
}
