//! Accelerated proximal gradient (FISTA) for `f(x) + λ Σ_{j ∈ P} |x_j|` with a smooth `f` and an
//! L1 penalty on a subset `P` of the coordinates (Beck & Teboulle, "A fast iterative
//! shrinkage-thresholding algorithm for linear inverse problems", SIAM J. Imaging Sciences 2009,
//! with backtracking), restarted whenever the objective rises (O'Donoghue & Candès, "Adaptive
//! restart for accelerated gradient schemes", 2015), which restores linear convergence on
//! strongly convex problems.
//!
//! The proximal step of the L1 term is soft thresholding, so coordinates that the optimum puts
//! at zero become exactly zero.

use crate::error::{MlError, Result};

/// Settings of [`minimize_l1`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FistaConfig {
    /// The most iterations (proximal steps).
    pub max_iter: usize,
    /// Stop when the optimality residual (the smallest subgradient of the objective, in the
    /// largest coordinate) is at most `tol`: the L1 analogue of a gradient test.
    pub tol: f64,
}

/// Where [`minimize_l1`] stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct FistaReport {
    /// The last iterate.
    pub x: Vec<f64>,
    /// The objective `f(x) + λ ‖x_P‖₁` there.
    pub objective: f64,
    /// The optimality residual there.
    pub residual: f64,
    /// Iterations taken.
    pub n_iter: usize,
    /// Whether the residual reached `tol`.
    pub converged: bool,
}

/// `sign(v) max(|v| − t, 0)`: the proximal map of `t |·|`.
fn soft_threshold(v: f64, t: f64) -> f64 {
    if v > t {
        v - t
    } else if v < -t {
        v + t
    } else {
        0.0
    }
}

/// The largest entry of the minimum-norm subgradient of `f + λ‖x_P‖₁` at `x`, given `∇f(x)`:
/// zero exactly at an optimum.
fn residual(x: &[f64], g: &[f64], lambda: f64, penalized: &[bool]) -> f64 {
    x.iter()
        .zip(g)
        .zip(penalized)
        .map(|((&xj, &gj), &p)| {
            if !p {
                gj.abs()
            } else if xj != 0.0 {
                (gj + lambda * xj.signum()).abs()
            } else {
                (gj.abs() - lambda).max(0.0)
            }
        })
        .fold(0.0, f64::max)
}

/// Minimises `f(x) + lambda Σ_{j: penalized[j]} |x_j|` from `x0`. `f(x, grad)` returns the smooth
/// part at `x` and writes its gradient into `grad`. Errors when `f` is not finite at `x0`.
pub fn minimize_l1<F>(mut f: F, x0: Vec<f64>, lambda: f64, penalized: &[bool], cfg: &FistaConfig) -> Result<FistaReport>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    const WHAT: &str = "fista";
    let n = x0.len();
    let l1 = |x: &[f64]| lambda * x.iter().zip(penalized).filter(|(_, &p)| p).map(|(v, _)| v.abs()).sum::<f64>();
    let mut x = x0;
    let mut gx = vec![0.0; n];
    let fx0 = f(&x, &mut gx);
    if !fx0.is_finite() || gx.iter().any(|v| !v.is_finite()) {
        return Err(MlError::Numerical {
            what: WHAT,
            detail: format!("objective {fx0} or its gradient is not finite at the start"),
        });
    }
    let mut obj = fx0 + l1(&x);
    let mut res = residual(&x, &gx, lambda, penalized);
    // The extrapolated point y, its smooth value and gradient; the momentum t.
    let (mut y, mut fy, mut gy) = (x.clone(), fx0, gx.clone());
    let mut t: f64 = 1.0;
    // The Lipschitz estimate: doubled until the quadratic upper bound holds, shrunk slightly
    // after every step so that a too-cautious early estimate does not slow the whole run.
    let mut lip = 1.0;
    let (mut xn, mut gn) = (vec![0.0; n], vec![0.0; n]);
    let mut n_iter = 0;
    while res > cfg.tol && n_iter < cfg.max_iter {
        n_iter += 1;
        let mut fn_;
        loop {
            for j in 0..n {
                let step = y[j] - gy[j] / lip;
                xn[j] = if penalized[j] { soft_threshold(step, lambda / lip) } else { step };
            }
            fn_ = f(&xn, &mut gn);
            let (mut lin, mut sq, mut curv) = (0.0, 0.0, 0.0);
            for j in 0..n {
                let d = xn[j] - y[j];
                lin += gy[j] * d;
                sq += d * d;
                curv += (gn[j] - gy[j]) * d;
            }
            // Two tests of the step 1 / lip: the quadratic upper bound of f (up to rounding in
            // f), and the curvature along the step from the gradients, which stays accurate near
            // the optimum where differences of f are lost to rounding (TFOCS's safeguard).
            let bound = fy + lin + 0.5 * lip * sq + 16.0 * f64::EPSILON * fy.abs();
            if fn_.is_finite() && gn.iter().all(|v| v.is_finite()) && fn_ <= bound && curv <= lip * sq {
                break;
            }
            lip *= 2.0;
            if !lip.is_finite() {
                return Err(MlError::Numerical { what: WHAT, detail: "the step size underflowed".into() });
            }
        }
        let obj_new = fn_ + l1(&xn);
        let t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        if obj_new > obj && t > 1.0 {
            // Momentum carried us uphill: restart from the last iterate without it. (A plain
            // step, t = 1, that rises is rounding at the optimum and is taken.)
            t = 1.0;
            y.copy_from_slice(&x);
            fy = f(&y, &mut gy);
            continue;
        }
        let beta = (t - 1.0) / t_next;
        for j in 0..n {
            y[j] = xn[j] + beta * (xn[j] - x[j]);
        }
        std::mem::swap(&mut x, &mut xn);
        std::mem::swap(&mut gx, &mut gn);
        obj = obj_new;
        res = residual(&x, &gx, lambda, penalized);
        t = t_next;
        fy = if beta == 0.0 {
            gy.copy_from_slice(&gx);
            fn_
        } else {
            f(&y, &mut gy)
        };
        lip *= 0.95;
    }
    Ok(FistaReport { x, objective: obj, residual: res, n_iter, converged: res <= cfg.tol })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_separable_lasso_exactly() {
        // f = 0.5 Σ a_j (x_j − b_j)²: the minimiser of f + λ|x| is soft_threshold(b, λ / a).
        let (a, b, lambda) = ([1.0, 4.0, 0.5, 2.0], [3.0, 0.1, -2.0, -0.2], 0.5);
        let f = |x: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for j in 0..4 {
                g[j] = a[j] * (x[j] - b[j]);
                v += 0.5 * a[j] * (x[j] - b[j]).powi(2);
            }
            v
        };
        let cfg = FistaConfig { max_iter: 10_000, tol: 1e-12 };
        let r = minimize_l1(f, vec![0.0; 4], lambda, &[true, true, true, false], &cfg).unwrap();
        assert!(r.converged, "{r:?}");
        let want = [2.5, 0.0, -1.0, -0.2];
        assert!(r.x.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-10), "{:?}", r.x);
        assert_eq!(r.x[1], 0.0, "a coordinate the optimum zeroes is exactly zero");
    }
}
