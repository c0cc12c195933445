//! Optimizers. Each keeps its state as tensors beside the parameters and updates parameters in
//! place from their accumulated gradients (`Tensor::grad`), outside autograd.

mod adam;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use sgd::{Sgd, SgdConfig};

use jizen_tensor::{DType, Error, Float, Result, Tensor};

/// A rule that updates parameters from their gradients.
pub trait Optimizer {
    /// Applies one update to every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;

    /// Clears the gradients of all parameters.
    fn zero_grad(&self);

    /// The current learning rate.
    fn lr(&self) -> f64;

    /// Sets the learning rate (for schedules).
    fn set_lr(&mut self, lr: f64);
}

/// Runs `f` on the data of a parameter and two state tensors of the same shape, all in place.
pub(crate) fn update3<T: jizen_tensor::storage::StorageElement>(
    p: &Tensor,
    a: &Tensor,
    b: &Tensor,
    f: impl FnOnce(&mut [T], &mut [T], &mut [T]),
) -> Result<()> {
    let mut inner_b: Result<()> = Ok(());
    let mut inner_p: Result<()> = Ok(());
    a.update_::<T>(|sa| {
        inner_b = b.update_::<T>(|sb| {
            inner_p = p.update_::<T>(|w| f(w, sa, sb));
        });
    })?;
    inner_b?;
    inner_p
}

/// A copy of the gradient of `p` (contiguous), or `None` if it has none.
pub(crate) fn grad_data<T: jizen_tensor::storage::StorageElement>(p: &Tensor) -> Result<Option<Vec<T>>> {
    match p.grad() {
        None => Ok(None),
        Some(g) => g.with_data::<T, _>(|d| d.to_vec()).map(Some),
    }
}

/// The per-parameter update of an optimizer, generic over the float type.
pub(crate) trait Rule {
    const NAME: &'static str;
    fn params(&self) -> &[Tensor];
    fn update<T: Float>(&mut self, i: usize) -> Result<()>;
}

/// Applies `rule` to every parameter, by the parameter's dtype.
pub(crate) fn update_all<R: Rule>(rule: &mut R) -> Result<()> {
    for i in 0..rule.params().len() {
        match rule.params()[i].dtype() {
            DType::F32 => rule.update::<f32>(i)?,
            DType::F64 => rule.update::<f64>(i)?,
            d => return Err(Error::DType { op: R::NAME, msg: format!("cannot optimise a {d} parameter") }),
        }
    }
    Ok(())
}
