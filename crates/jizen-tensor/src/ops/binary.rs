//! Elementwise functions of two tensors (with NumPy broadcasting), comparisons and `where`.
//!
//! Broadcasting is lowered to explicit [`Tensor::expand`] views before the primitive runs, so the
//! primitives here always see operands of one shape, and the gradient of a broadcast operand is
//! summed back to its shape by the expand's own backward rule.

use crate::dtype::Float;
use crate::error::{dtype_err, Result};
use crate::layout::{broadcast_shapes, Rows};
use crate::op::{BinaryOp, CmpOp, Op};
use crate::storage::StorageElement;
use crate::Tensor;

use super::{fill_rows, map1, map2};

/// Applies `f` to two operands already expanded to one shape, with fast paths for a broadcast
/// scalar on either side.
fn zip_kernel<T: StorageElement, U: StorageElement>(
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(T, T) -> U + Sync + Send,
) -> Vec<U> {
    let (sa, sb) = (a.storage(), b.storage());
    let (xa, xb) = (T::slice(&sa), T::slice(&sb));
    let (la, lb) = (a.layout(), b.layout());
    let is_scalar = |l: &crate::Layout| l.strides().iter().all(|&s| s == 0);
    if is_scalar(lb) && la.is_contiguous() {
        let y = xb[lb.offset()];
        return map1(xa, la, |x| f(x, y));
    }
    if is_scalar(la) && lb.is_contiguous() {
        let x = xa[la.offset()];
        return map1(xb, lb, |y| f(x, y));
    }
    map2(xa, la, xb, lb, f)
}

/// Expands two tensors to their common broadcast shape (views; no copy).
pub(crate) fn broadcast_pair(op: &'static str, a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
    if a.shape() == b.shape() {
        return Ok((a.clone(), b.clone()));
    }
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    Ok((a.expand(&shape)?, b.expand(&shape)?))
}

fn check_same_dtype(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(dtype_err(
            op,
            format!(
                "operands have different dtypes: lhs {} {:?}, rhs {} {:?}",
                a.dtype(),
                a.shape(),
                b.dtype(),
                b.shape()
            ),
        ));
    }
    Ok(())
}

fn float_kernel<T: Float + StorageElement>(op: BinaryOp, a: &Tensor, b: &Tensor) -> Vec<T> {
    match op {
        BinaryOp::Add => zip_kernel(a, b, |x: T, y: T| x + y),
        BinaryOp::Sub => zip_kernel(a, b, |x: T, y: T| x - y),
        BinaryOp::Mul => zip_kernel(a, b, |x: T, y: T| x * y),
        BinaryOp::Div => zip_kernel(a, b, |x: T, y: T| x / y),
        BinaryOp::Pow => zip_kernel(a, b, |x: T, y: T| x.powf(y)),
        BinaryOp::Maximum => zip_kernel(a, b, |x: T, y: T| x.max(y)),
        BinaryOp::Minimum => zip_kernel(a, b, |x: T, y: T| x.min(y)),
    }
}

impl Tensor {
    fn binary(&self, rhs: &Tensor, op: BinaryOp, name: &'static str) -> Result<Tensor> {
        check_same_dtype(name, self, rhs)?;
        let (a, b) = broadcast_pair(name, self, rhs)?;
        crate::with_float!(a.dtype(), name, |T| {
            let data = float_kernel::<T>(op, &a, &b);
            Ok(Tensor::from_op(T::wrap(data), a.shape(), || Op::Binary(op, a.clone(), b.clone())))
        })
    }

    /// A 0-d tensor of this tensor's dtype.
    fn scalar_like(&self, v: f64) -> Tensor {
        Tensor::scalar(v, self.dtype())
    }

    /// `self + rhs`, broadcasting.
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Add, "add")
    }

    /// `self - rhs`, broadcasting.
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Sub, "sub")
    }

    /// `self * rhs` elementwise, broadcasting.
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Mul, "mul")
    }

    /// `self / rhs` elementwise, broadcasting.
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Div, "div")
    }

    /// `self ^ rhs` elementwise, broadcasting.
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Pow, "pow")
    }

    /// Elementwise maximum (ties split the gradient equally, as PyTorch does).
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Maximum, "maximum")
    }

    /// Elementwise minimum (ties split the gradient equally).
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Minimum, "minimum")
    }

    pub fn add_scalar(&self, v: f64) -> Result<Tensor> {
        self.add(&self.scalar_like(v))
    }

    pub fn sub_scalar(&self, v: f64) -> Result<Tensor> {
        self.sub(&self.scalar_like(v))
    }

    pub fn mul_scalar(&self, v: f64) -> Result<Tensor> {
        self.mul(&self.scalar_like(v))
    }

    pub fn div_scalar(&self, v: f64) -> Result<Tensor> {
        self.div(&self.scalar_like(v))
    }

    /// `self ^ e` for a constant exponent.
    pub fn powf(&self, e: f64) -> Result<Tensor> {
        self.pow(&self.scalar_like(e))
    }

    /// `self * self`.
    pub fn square(&self) -> Result<Tensor> {
        self.mul(self)
    }

    /// `1 / self`.
    pub fn recip(&self) -> Result<Tensor> {
        self.scalar_like(1.0).div(self)
    }

    /// `max(self, v)` elementwise.
    pub fn maximum_scalar(&self, v: f64) -> Result<Tensor> {
        self.maximum(&self.scalar_like(v))
    }

    /// Clamps into `[lo, hi]`.
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Tensor> {
        self.maximum(&self.scalar_like(lo))?.minimum(&self.scalar_like(hi))
    }

    // ------------------------------------------------------------------ comparisons

    fn compare(&self, rhs: &Tensor, op: CmpOp, name: &'static str) -> Result<Tensor> {
        check_same_dtype(name, self, rhs)?;
        let (a, b) = broadcast_pair(name, self, rhs)?;
        fn k<T: StorageElement>(op: CmpOp, a: &Tensor, b: &Tensor) -> Vec<T> {
            let (one, zero) = (T::one(), T::zero());
            let pick = move |c: bool| if c { one } else { zero };
            match op {
                CmpOp::Eq => zip_kernel(a, b, move |x: T, y: T| pick(x == y)),
                CmpOp::Ne => zip_kernel(a, b, move |x: T, y: T| pick(x != y)),
                CmpOp::Lt => zip_kernel(a, b, move |x: T, y: T| pick(x < y)),
                CmpOp::Le => zip_kernel(a, b, move |x: T, y: T| pick(x <= y)),
                CmpOp::Gt => zip_kernel(a, b, move |x: T, y: T| pick(x > y)),
                CmpOp::Ge => zip_kernel(a, b, move |x: T, y: T| pick(x >= y)),
            }
        }
        let data = crate::with_any!(a.dtype(), |T| T::wrap(k::<T>(op, &a, &b)));
        Ok(Tensor::from_storage(data, a.shape()))
    }

    /// 1 where `self == rhs`, else 0 (in this tensor's dtype; no gradient).
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Eq, "eq")
    }

    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Ne, "ne")
    }

    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Lt, "lt")
    }

    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Le, "le")
    }

    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Gt, "gt")
    }

    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, CmpOp::Ge, "ge")
    }

    pub fn gt_scalar(&self, v: f64) -> Result<Tensor> {
        self.gt(&self.scalar_like(v))
    }

    pub fn lt_scalar(&self, v: f64) -> Result<Tensor> {
        self.lt(&self.scalar_like(v))
    }

    pub fn eq_scalar(&self, v: f64) -> Result<Tensor> {
        self.eq(&self.scalar_like(v))
    }

    pub fn ne_scalar(&self, v: f64) -> Result<Tensor> {
        self.ne(&self.scalar_like(v))
    }

    /// -1, 0 or 1 by the sign of each element (no gradient).
    pub fn sign(&self) -> Result<Tensor> {
        self.gt_scalar(0.0)?.sub(&self.lt_scalar(0.0)?)
    }

    /// Picks `on_true` where `cond` is non-zero, else `on_false` (all three broadcast together).
    pub fn where_(cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        check_same_dtype("where", on_true, on_false)?;
        let shape =
            broadcast_shapes("where", cond.shape(), &broadcast_shapes("where", on_true.shape(), on_false.shape())?)?;
        let (c, a, b) = (cond.expand(&shape)?.detach(), on_true.expand(&shape)?, on_false.expand(&shape)?);
        fn k<C: StorageElement, T: StorageElement>(c: &Tensor, a: &Tensor, b: &Tensor) -> Vec<T> {
            let (sc, sa, sb) = (c.storage(), a.storage(), b.storage());
            let (xc, xa, xb) = (C::slice(&sc), T::slice(&sa), T::slice(&sb));
            let rows = Rows::new(c.shape(), [c.layout(), a.layout(), b.layout()]);
            let [s0, s1, s2] = rows.inner_strides;
            let mut out = crate::storage::zeroed::<T>(c.numel());
            fill_rows(&mut out, &rows, |o, [oc, oa, ob], _| {
                for (i, dst) in o.iter_mut().enumerate() {
                    *dst = if xc[oc + i * s0] != C::zero() { xa[oa + i * s1] } else { xb[ob + i * s2] };
                }
            });
            out
        }
        let data = crate::with_any!(a.dtype(), |T| {
            let v: Vec<T> = crate::with_any!(c.dtype(), |C| k::<C, T>(&c, &a, &b));
            T::wrap(v)
        });
        Ok(Tensor::from_op(data, &shape, || Op::Where(c.clone(), a.clone(), b.clone())))
    }
}

/// Gradients of `out = op(x, y)` (operands of one shape) given `g`, for the inputs that need one.
pub(crate) fn backward(
    op: BinaryOp,
    x: &Tensor,
    y: &Tensor,
    out: &Tensor,
    g: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let (nx, ny) = (x.requires_grad(), y.requires_grad());
    let when = |need: bool, f: &dyn Fn() -> Result<Tensor>| -> Result<Option<Tensor>> {
        if need {
            f().map(Some)
        } else {
            Ok(None)
        }
    };
    match op {
        BinaryOp::Add => Ok((when(nx, &|| Ok(g.clone()))?, when(ny, &|| Ok(g.clone()))?)),
        BinaryOp::Sub => Ok((when(nx, &|| Ok(g.clone()))?, when(ny, &|| g.neg())?)),
        BinaryOp::Mul => Ok((when(nx, &|| g.mul(y))?, when(ny, &|| g.mul(x))?)),
        // d(x/y)/dy = -x/y^2 = -out/y
        BinaryOp::Div => Ok((when(nx, &|| g.div(y))?, when(ny, &|| g.mul(out)?.div(y)?.neg())?)),
        // d(x^y)/dx = y x^(y-1); d(x^y)/dy = x^y ln x
        BinaryOp::Pow => Ok((
            when(nx, &|| g.mul(&y.mul(&x.pow(&y.sub_scalar(1.0)?)?)?))?,
            when(ny, &|| g.mul(&out.mul(&x.log()?)?))?,
        )),
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let wins = if op == BinaryOp::Maximum { x.gt(y)? } else { x.lt(y)? };
            let share_x = wins.add(&x.eq(y)?.mul_scalar(0.5)?)?;
            Ok((when(nx, &|| g.mul(&share_x))?, when(ny, &|| g.mul(&share_x.neg()?.add_scalar(1.0)?))?))
        }
    }
}

/// Gradients of `where(c, a, b)`: `g` goes to `a` where `c` holds and to `b` elsewhere.
pub(crate) fn where_backward(
    c: &Tensor,
    a: &Tensor,
    b: &Tensor,
    g: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let zero = Tensor::scalar(0.0, g.dtype());
    let ga = if a.requires_grad() { Some(Tensor::where_(c, g, &zero)?) } else { None };
    let gb = if b.requires_grad() { Some(Tensor::where_(c, &zero, g)?) } else { None };
    Ok((ga, gb))
}
