//! Finite-difference gradient checking, in f64.
//!
//! The analytic gradient of `L = sum(f(inputs) * w)`, with a random cotangent `w` (a plain sum
//! would hide transposition bugs, because it weighs every output alike), is compared with
//! central differences `(L(x + eps) - L(x - eps)) / 2eps` for every element of every input.

use crate::autograd::{grad, no_grad};
use crate::dtype::DType;
use crate::error::{invalid, Error, Result};
use crate::rng::Rng;
use crate::Tensor;

/// Tolerances and the seed of the cotangent.
#[derive(Clone, Copy, Debug)]
pub struct GradCheck {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck { eps: 1e-6, atol: 1e-6, rtol: 1e-5, seed: 0 }
    }
}

/// What a successful check measured.
#[derive(Clone, Debug)]
pub struct GradCheckReport {
    /// Largest |analytic - numeric| over all checked elements.
    pub max_abs_error: f64,
    /// Number of elements checked.
    pub checked: usize,
}

impl GradCheck {
    /// Checks every f64 input of `f` (i64 inputs are passed through as constants).
    pub fn run(&self, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<GradCheckReport> {
        if inputs.iter().any(|t| t.dtype() == DType::F32) {
            return Err(invalid("gradcheck", "inputs must be f64 (finite differences in f32 are too coarse)"));
        }
        let vars: Vec<Tensor> = inputs
            .iter()
            .map(|t| if t.dtype().is_float() { t.detach().requires_grad_(true) } else { t.clone() })
            .collect();
        let out = f(&vars)?;
        let mut rng = Rng::new(self.seed);
        let w = Tensor::randn(out.shape(), DType::F64, &mut rng);
        let loss = out.mul(&w)?.sum_all()?;
        let wrt: Vec<&Tensor> = vars.iter().filter(|t| t.dtype().is_float()).collect();
        let analytic = grad(&loss, &wrt, None, false)?;

        let objective = |xs: &[Tensor]| -> Result<f64> { no_grad(|| f(xs)?.mul(&w)?.sum_all()?.item()) };
        let mut max_abs_error: f64 = 0.0;
        let mut checked = 0;
        let mut k = 0; // index into `wrt` / `analytic`
        for (i, x) in inputs.iter().enumerate() {
            if !x.dtype().is_float() {
                continue;
            }
            let a = match &analytic[k] {
                Some(g) => g.to_f64_vec(),
                None => vec![0.0; x.numel()], // the output does not depend on this input
            };
            k += 1;
            let base = x.to_f64_vec();
            for j in 0..base.len() {
                let eval = |delta: f64| -> Result<f64> {
                    let mut v = base.clone();
                    v[j] += delta;
                    let mut xs: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
                    xs[i] = Tensor::from_vec(v, x.shape())?;
                    objective(&xs)
                };
                let numeric = (eval(self.eps)? - eval(-self.eps)?) / (2.0 * self.eps);
                let err = (a[j] - numeric).abs();
                if err.is_nan() || err > self.atol + self.rtol * numeric.abs() {
                    return Err(Error::Autograd(format!(
                        "gradient check failed for input {i} (shape {:?}) at element {j}: analytic {:.9e}, numeric {:.9e}, difference {err:.3e}",
                        x.shape(),
                        a[j],
                        numeric
                    )));
                }
                max_abs_error = max_abs_error.max(err);
                checked += 1;
            }
        }
        Ok(GradCheckReport { max_abs_error, checked })
    }
}

/// Checks `f` at `inputs` with the default tolerances.
pub fn check_gradients(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<GradCheckReport> {
    GradCheck::default().run(inputs, f)
}

/// For tests: checks `f` at `inputs` with the default tolerances, prints what was checked
/// (visible with `--nocapture`), and panics with `name` and the first mismatch on failure.
#[track_caller]
pub fn assert_gradients(name: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    match GradCheck::default().run(inputs, f) {
        Ok(r) => println!("{name}: {} elements, max |analytic - numeric| = {:.2e}", r.checked, r.max_abs_error),
        Err(e) => panic!("{name}: {e}"),
    }
}
