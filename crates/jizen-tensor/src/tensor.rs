//! `Tensor`: a cheap handle (an `Arc`) to shared storage plus a layout, and, when it takes part
//! in a differentiable computation, the [`Op`] that produced it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::autograd::is_grad_enabled;
use crate::dtype::{DType, Element, Float};
use crate::error::{dtype_err, invalid, shape_err, Result};
use crate::layout::{Layout, Rows};
use crate::op::Op;
use crate::rng::Rng;
use crate::storage::{Storage, StorageElement};

/// A unique id per tensor handle created by an operation (views get their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

pub(crate) struct TensorImpl {
    id: TensorId,
    storage: Arc<RwLock<Storage>>,
    layout: Layout,
    dtype: DType,
    /// How this tensor was computed; `None` for leaves, for results nobody differentiates, and
    /// once a backward pass that frees the graph ([`Tensor::backward_free_graph`]) is past it.
    op: Mutex<Option<Arc<Op>>>,
    /// A leaf whose gradient is wanted (a parameter, or an input under test). Atomic so that a
    /// parameter can be frozen and unfrozen in place.
    is_variable: AtomicBool,
    /// Accumulated gradient of a variable (`backward` adds to it until `zero_grad`).
    grad: Mutex<Option<Tensor>>,
}

/// An n-dimensional array of `f32`, `f64` or `i64` with reverse-mode autodiff.
///
/// Cloning is cheap (reference counted); views (reshape of contiguous data, permute, transpose,
/// narrow, expand) share storage.
///
/// ```
/// use jizen_tensor::{Tensor, DType};
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap().requires_grad_(true);
/// let y = (&x * &x).unwrap().sum_all().unwrap();
/// let grads = y.backward().unwrap();
/// assert_eq!(grads.get(&x).unwrap().to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<TensorImpl>);

impl Tensor {
    // ---------------------------------------------------------------- construction (internal)

    /// A new contiguous tensor owning `storage`, with no history.
    pub(crate) fn from_storage(storage: Storage, shape: &[usize]) -> Tensor {
        debug_assert_eq!(storage.len(), shape.iter().product::<usize>());
        let dtype = storage.dtype();
        Tensor(Arc::new(TensorImpl {
            id: TensorId::fresh(),
            storage: Arc::new(RwLock::new(storage)),
            layout: Layout::contiguous(shape),
            dtype,
            op: Mutex::new(None),
            is_variable: AtomicBool::new(false),
            grad: Mutex::new(None),
        }))
    }

    /// The result of an operation: records `op` when gradients are enabled and any input needs one.
    pub(crate) fn from_op(storage: Storage, shape: &[usize], op: impl FnOnce() -> Op) -> Tensor {
        let t = Tensor::from_storage(storage, shape);
        t.with_op(op)
    }

    /// Attaches history to a freshly made tensor if any of the op's inputs requires a gradient.
    pub(crate) fn with_op(self, op: impl FnOnce() -> Op) -> Tensor {
        if !is_grad_enabled() {
            return self;
        }
        let op = op();
        if !op.inputs().iter().any(|t| t.requires_grad()) {
            return self;
        }
        let mut inner = Arc::try_unwrap(self.0).unwrap_or_else(|_| unreachable!("fresh tensor is unshared"));
        *inner.op.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(op));
        Tensor(Arc::new(inner))
    }

    /// A view of the same storage with another layout.
    pub(crate) fn view(&self, layout: Layout, op: impl FnOnce() -> Op) -> Tensor {
        let t = Tensor(Arc::new(TensorImpl {
            id: TensorId::fresh(),
            storage: self.0.storage.clone(),
            layout,
            dtype: self.0.dtype,
            op: Mutex::new(None),
            is_variable: AtomicBool::new(false),
            grad: Mutex::new(None),
        }));
        t.with_op(op)
    }

    pub(crate) fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }

    /// An identity of the storage buffer (shared by all views of it) and its size in bytes.
    pub(crate) fn storage_identity(&self) -> (usize, usize) {
        let bytes = self.storage().len() * self.dtype().size_in_bytes();
        (Arc::as_ptr(&self.0.storage) as *const () as usize, bytes)
    }

    pub(crate) fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }

    // ---------------------------------------------------------------- public constructors

    /// A tensor of the given shape from row-major data.
    pub fn from_vec<T: StorageElement>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(shape_err(
                "from_vec",
                format!("{} elements do not fill shape {shape:?} ({n} elements)", data.len()),
            ));
        }
        Ok(Tensor::from_storage(T::wrap(data), shape))
    }

    /// A tensor of the given shape copied from a slice.
    pub fn from_slice<T: StorageElement>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A 0-dimensional tensor.
    pub fn scalar(v: f64, dtype: DType) -> Tensor {
        Tensor::full(&[], v, dtype)
    }

    /// Filled with `v` (converted to `dtype`).
    pub fn full(shape: &[usize], v: f64, dtype: DType) -> Tensor {
        let n = shape.iter().product();
        let s = match dtype {
            DType::F32 => Storage::F32(vec![v as f32; n]),
            DType::F64 => Storage::F64(vec![v; n]),
            DType::I64 => Storage::I64(vec![v as i64; n]),
        };
        Tensor::from_storage(s, shape)
    }

    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }

    pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape(), self.dtype())
    }

    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape(), self.dtype())
    }

    pub fn full_like(&self, v: f64) -> Tensor {
        Tensor::full(self.shape(), v, self.dtype())
    }

    /// `start, start + step, ...` up to (excluding) `end`, like `torch.arange`.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(invalid("arange", format!("invalid range {start}..{end} step {step}")));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let vals: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Ok(Tensor::from_f64_vec(vals, &[n], dtype))
    }

    /// The identity matrix.
    pub fn eye(n: usize, dtype: DType) -> Tensor {
        let mut v = vec![0.0; n * n];
        for i in 0..n {
            v[i * n + i] = 1.0;
        }
        Tensor::from_f64_vec(v, &[n, n], dtype)
    }

    /// Uniform in `[lo, hi)`, from a seeded generator.
    pub fn rand(shape: &[usize], lo: f64, hi: f64, dtype: DType, rng: &mut Rng) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_f64_iter((0..n).map(|_| lo + (hi - lo) * rng.uniform()), shape, dtype)
    }

    /// Normal with mean 0 and standard deviation 1, from a seeded generator.
    pub fn randn(shape: &[usize], dtype: DType, rng: &mut Rng) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_f64_iter((0..n).map(|_| rng.normal()), shape, dtype)
    }

    /// A tensor of `dtype` from f64 values converted as they come (no f64 copy of the whole
    /// tensor: initialising a large layer should not touch twice its memory).
    fn from_f64_iter(values: impl Iterator<Item = f64>, shape: &[usize], dtype: DType) -> Tensor {
        let s = match dtype {
            DType::F32 => Storage::F32(values.map(|x| x as f32).collect()),
            DType::F64 => Storage::F64(values.collect()),
            DType::I64 => Storage::I64(values.map(|x| x as i64).collect()),
        };
        debug_assert_eq!(s.len(), shape.iter().product::<usize>());
        Tensor::from_storage(s, shape)
    }

    /// A tensor of `dtype` from f64 values, converted.
    pub fn from_f64(values: Vec<f64>, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != values.len() {
            return Err(shape_err(
                "from_f64",
                format!("{} values do not fill shape {shape:?} ({n} elements)", values.len()),
            ));
        }
        Ok(Tensor::from_f64_vec(values, shape, dtype))
    }

    pub(crate) fn from_f64_vec(v: Vec<f64>, shape: &[usize], dtype: DType) -> Tensor {
        match dtype {
            DType::F64 => Tensor::from_storage(Storage::F64(v), shape),
            _ => Tensor::from_f64_iter(v.into_iter(), shape, dtype),
        }
    }

    // ---------------------------------------------------------------- accessors

    pub fn id(&self) -> TensorId {
        self.0.id
    }

    pub fn shape(&self) -> &[usize] {
        self.0.layout.shape()
    }

    /// Alias of [`Tensor::shape`].
    pub fn dims(&self) -> &[usize] {
        self.shape()
    }

    pub fn rank(&self) -> usize {
        self.0.layout.rank()
    }

    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// The size of dimension `dim`; negative counts from the end.
    pub fn dim(&self, dim: isize) -> Result<usize> {
        Ok(self.shape()[self.axis("dim", dim)?])
    }

    /// Resolves a possibly negative axis against this tensor's rank.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let r = self.rank() as isize;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r.max(1) || (r == 0 && a != 0) {
            return Err(invalid(op, format!("axis {axis} is out of range for a tensor of shape {:?}", self.shape())));
        }
        Ok(a as usize)
    }

    /// The operation that produced this tensor, if it is part of a differentiable graph.
    pub fn op(&self) -> Option<Arc<Op>> {
        self.op_slot().clone()
    }

    fn op_slot(&self) -> MutexGuard<'_, Option<Arc<Op>>> {
        self.0.op.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the record of how this tensor was computed, and with it the references to its
    /// inputs and saved tensors: what a backward pass that frees the graph does at each node.
    pub(crate) fn release_op(&self) {
        // Taken out first, dropped after the lock is released: dropping it may free a long chain.
        let op = self.op_slot().take();
        drop(op);
    }

    // ---------------------------------------------------------------- data out

    /// The elements in row-major order. `T` must be the tensor's dtype.
    pub fn to_vec<T: StorageElement>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            return Err(dtype_err("to_vec", format!("tensor is {}, asked for {}", self.dtype(), T::DTYPE)));
        }
        let s = self.storage();
        Ok(strided_copy(T::slice(&s), self.layout()))
    }

    /// The elements converted to f64, in row-major order.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        crate::with_any!(self.dtype(), |T| {
            let s = self.storage();
            strided_copy(T::slice(&s), self.layout()).into_iter().map(|x| x.to_f64()).collect()
        })
    }

    /// The value of a one-element tensor, as f64.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(shape_err("item", format!("expected one element, got shape {:?}", self.shape())));
        }
        Ok(self.to_f64_vec()[0])
    }

    // ---------------------------------------------------------------- autograd flags

    /// Whether gradients flow to or through this tensor.
    pub fn requires_grad(&self) -> bool {
        self.is_variable() || self.op_slot().is_some()
    }

    /// Whether this tensor is a leaf variable (its gradient is accumulated in [`Tensor::grad`]).
    pub fn is_variable(&self) -> bool {
        self.0.is_variable.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes (`true`) a leaf in place: operations recorded afterwards
    /// see the new setting. Computed tensors keep their history; this is for parameters.
    pub fn set_requires_grad(&self, on: bool) -> Result<()> {
        if self.op().is_some() {
            return Err(invalid(
                "set_requires_grad",
                "only leaf tensors can be frozen or unfrozen; use detach() for computed ones",
            ));
        }
        if on && !self.dtype().is_float() {
            return Err(dtype_err("set_requires_grad", format!("{} tensors cannot require a gradient", self.dtype())));
        }
        self.0.is_variable.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// A leaf sharing this tensor's storage that does (or does not) require a gradient.
    pub fn requires_grad_(self, on: bool) -> Tensor {
        if on && !self.dtype().is_float() {
            // Integer tensors cannot carry gradients; stay a constant, as PyTorch would refuse.
            return self;
        }
        Tensor(Arc::new(TensorImpl {
            id: TensorId::fresh(),
            storage: self.0.storage.clone(),
            layout: self.0.layout.clone(),
            dtype: self.0.dtype,
            op: Mutex::new(None),
            is_variable: AtomicBool::new(on),
            grad: Mutex::new(None),
        }))
    }

    /// The same values, cut off from the graph (shares storage).
    pub fn detach(&self) -> Tensor {
        if !self.requires_grad() {
            return self.clone();
        }
        self.clone().requires_grad_(false)
    }

    /// The gradient accumulated by `backward` calls since the last `zero_grad`.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Clears the accumulated gradient.
    pub fn zero_grad(&self) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Replaces the accumulated gradient (for gradient clipping and the like); it must have this
    /// tensor's shape and dtype.
    pub fn replace_grad(&self, g: Tensor) -> Result<()> {
        if g.shape() != self.shape() || g.dtype() != self.dtype() {
            return Err(shape_err(
                "replace_grad",
                format!("gradient {:?} {} for a tensor {:?} {}", g.shape(), g.dtype(), self.shape(), self.dtype()),
            ));
        }
        self.set_grad(Some(g.detach()));
        Ok(())
    }

    pub(crate) fn set_grad(&self, g: Option<Tensor>) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = g;
    }

    // ---------------------------------------------------------------- in-place updates

    /// Overwrites this tensor's elements with `src`'s (same shape and dtype). For optimizers and
    /// checkpoint loading; it bypasses autograd, as parameter updates must.
    pub fn copy_from_(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() || src.dtype() != self.dtype() {
            return Err(shape_err(
                "copy_from_",
                format!(
                    "destination {:?} {} and source {:?} {} differ",
                    self.shape(),
                    self.dtype(),
                    src.shape(),
                    src.dtype()
                ),
            ));
        }
        crate::with_any!(self.dtype(), |T| {
            let data: Vec<T> = src.to_vec()?;
            self.update_::<T>(|dst| dst.copy_from_slice(&data))
        })
    }

    /// Runs `f` on this tensor's elements in place. The tensor must be contiguous and of dtype `T`.
    pub fn update_<T: StorageElement>(&self, f: impl FnOnce(&mut [T])) -> Result<()> {
        let Some(range) = self.layout().contiguous_range() else {
            return Err(invalid(
                "update_",
                format!("in-place update needs a contiguous tensor, got strides {:?}", self.layout().strides()),
            ));
        };
        if T::DTYPE != self.dtype() {
            return Err(dtype_err("update_", format!("tensor is {}, update is for {}", self.dtype(), T::DTYPE)));
        }
        let mut s = self.storage_mut();
        f(&mut T::slice_mut(&mut s)[range]);
        Ok(())
    }

    /// Reads this tensor's elements as a contiguous slice (copying only if it is a view).
    pub fn with_data<T: StorageElement, R>(&self, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        if T::DTYPE != self.dtype() {
            return Err(dtype_err("with_data", format!("tensor is {}, asked for {}", self.dtype(), T::DTYPE)));
        }
        let s = self.storage();
        let all = T::slice(&s);
        Ok(match self.layout().contiguous_range() {
            Some(r) => f(&all[r]),
            None => f(&strided_copy(all, self.layout())),
        })
    }
}

/// Copies the elements a layout addresses into a new row-major vector.
pub(crate) fn strided_copy<T: StorageElement>(src: &[T], layout: &Layout) -> Vec<T> {
    if let Some(r) = layout.contiguous_range() {
        return src[r].to_vec();
    }
    let rows = Rows::new(layout.shape(), [layout]);
    let s = rows.inner_strides[0];
    let mut out = crate::storage::zeroed::<T>(layout.numel());
    crate::ops::fill_rows(&mut out, &rows, |o, [at], _| {
        if s == 1 {
            o.copy_from_slice(&src[at..at + o.len()]);
        } else {
            o.iter_mut().enumerate().for_each(|(i, d)| *d = src[at + i * s]);
        }
    });
    out
}

/// Whether all values of a float tensor are finite.
pub fn all_finite(t: &Tensor) -> bool {
    match t.dtype() {
        DType::I64 => true,
        _ => t.to_f64_vec().iter().all(|v| v.is_finite()),
    }
}

#[allow(dead_code)]
fn _assert_float_bounds<T: Float>() {}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor[{:?}, {}", self.shape(), self.dtype())?;
        if let Some(op) = self.op() {
            write!(f, ", grad_fn={}", op.name())?;
        } else if self.is_variable() {
            write!(f, ", requires_grad")?;
        }
        write!(f, "]")
    }
}
