//! Storage: the flat buffer of elements behind one or more tensor views.

use std::collections::HashMap;
use std::sync::Mutex;

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

    /// A zero-filled buffer of `n` elements, recycled when possible: buffers return to the
    /// [cache](buffer) when dropped, so they should come from it too (zero tensors are made every
    /// step, e.g. for the gradient of a narrowed view).
    pub fn zeros(dtype: DType, n: usize) -> Storage {
        match dtype {
            DType::F32 => Storage::F32(zeroed(n)),
            DType::F64 => Storage::F64(zeroed(n)),
            DType::I64 => Storage::I64(zeroed(n)),
        }
    }
}

impl Drop for Storage {
    /// Large buffers go back to the [buffer cache](buffer) instead of the allocator.
    fn drop(&mut self) {
        let buf = match self {
            Storage::F32(v) => Buf::F32(std::mem::take(v)),
            Storage::F64(v) => Buf::F64(std::mem::take(v)),
            Storage::I64(v) => Buf::I64(std::mem::take(v)),
        };
        recycle(buf);
    }
}

/// A buffer in the cache (no `Drop` of its own, unlike [`Storage`]).
pub enum Buf {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl Buf {
    fn key(&self) -> (DType, usize) {
        match self {
            Buf::F32(v) => (DType::F32, v.len()),
            Buf::F64(v) => (DType::F64, v.len()),
            Buf::I64(v) => (DType::I64, v.len()),
        }
    }
}

/// Buffers shorter than this are left to the allocator.
const MIN_CACHED: usize = 1 << 12;
/// At most this many bytes are kept, and at most `PER_SIZE` buffers of one size.
const MAX_CACHED_BYTES: usize = 1 << 30;
const PER_SIZE: usize = 8;

#[derive(Default)]
struct Cache {
    free: HashMap<(DType, usize), Vec<Buf>>,
    bytes: usize,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn recycle(buf: Buf) {
    let (dtype, len) = buf.key();
    if len < MIN_CACHED {
        return;
    }
    let bytes = len * dtype.size_in_bytes();
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(Cache::default);
    if cache.bytes + bytes > MAX_CACHED_BYTES {
        return;
    }
    let list = cache.free.entry((dtype, len)).or_default();
    if list.len() < PER_SIZE {
        list.push(buf);
        cache.bytes += bytes;
    }
}

/// A buffer of `n` elements whose contents are unspecified (but initialised): the caller must
/// overwrite every element. Training steps allocate the same sizes every step; recycling them
/// saves the allocator's work, the kernel's page faults, and zero-filling.
pub fn buffer<T: StorageElement>(n: usize) -> Vec<T> {
    if n >= MIN_CACHED {
        let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cache) = guard.as_mut() {
            if let Some(buf) = cache.free.get_mut(&(T::DTYPE, n)).and_then(|l| l.pop()) {
                cache.bytes -= n * T::DTYPE.size_in_bytes();
                return T::from_buf(buf).expect("cache keyed by dtype");
            }
        }
    }
    vec![T::zero(); n]
}

/// A zero-filled buffer of `n` elements (recycled when possible).
pub fn zeroed<T: StorageElement>(n: usize) -> Vec<T> {
    let mut v = buffer::<T>(n);
    v.fill(T::zero());
    v
}

/// Typed access to a [`Storage`]; implemented for every [`Element`].
pub trait StorageElement: Element {
    fn wrap(v: Vec<Self>) -> Storage;
    #[doc(hidden)]
    fn from_buf(b: Buf) -> Option<Vec<Self>>;
    fn slice(s: &Storage) -> &[Self];
    fn slice_mut(s: &mut Storage) -> &mut [Self];
}

macro_rules! storage_elem {
    ($t:ty, $v:ident) => {
        impl StorageElement for $t {
            fn wrap(v: Vec<Self>) -> Storage {
                Storage::$v(v)
            }
            fn from_buf(b: Buf) -> Option<Vec<Self>> {
                match b {
                    Buf::$v(v) => Some(v),
                    _ => None,
                }
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
