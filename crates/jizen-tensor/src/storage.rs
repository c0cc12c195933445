//! Storage: the flat buffer of elements behind one or more tensor views.

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
            DType::F32 => Storage::F32(vec![0.0; n]),
            DType::F64 => Storage::F64(vec![0.0; n]),
            DType::I64 => Storage::I64(vec![0; n]),
        }
    }
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
