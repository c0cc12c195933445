//! Limited-memory BFGS for smooth unconstrained minimisation (Nocedal & Wright, *Numerical
//! Optimization*, algorithms 7.4 and 7.5), with a bisection line search for the weak Wolfe
//! conditions (Lewis & Overton's bracketing rule).

use crate::error::{MlError, Result};

/// Settings of [`minimize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbfgsConfig {
    /// How many (step, gradient change) pairs approximate the inverse Hessian.
    pub memory: usize,
    /// The most iterations (line searches).
    pub max_iter: usize,
    /// Stop when the largest gradient entry is at most `tol` (SciPy's `pgtol`).
    pub tol: f64,
    /// Stop when an iteration lowers f by at most `ftol * max(|f_old|, |f_new|, 1)` (SciPy's
    /// `factr * eps`); 0 turns this test off, leaving the gradient test, the iteration limit and
    /// a line search that finds no decrease.
    pub ftol: f64,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig { memory: 10, max_iter: 100, tol: 1e-5, ftol: 64.0 * f64::EPSILON }
    }
}

/// Where [`minimize`] stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct LbfgsReport {
    /// The last iterate.
    pub x: Vec<f64>,
    /// The objective there.
    pub f: f64,
    /// The largest gradient entry there, in absolute value.
    pub grad_max: f64,
    /// Iterations taken.
    pub n_iter: usize,
    /// Whether the gradient or function-decrease test was met (not the iteration limit or a
    /// line search that could make no progress).
    pub converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Minimises `f` from `x0`. `f(x, grad)` returns the objective at `x` and writes its gradient
/// into `grad`. Errors when the objective or gradient is not finite at `x0`; afterwards, trial
/// points with a non-finite objective or gradient are treated as too long a step.
pub fn minimize<F>(mut f: F, x0: Vec<f64>, cfg: &LbfgsConfig) -> Result<LbfgsReport>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    const WHAT: &str = "lbfgs";
    let n = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    if !fx.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return Err(MlError::Numerical {
            what: WHAT,
            detail: format!("objective {fx} or its gradient is not finite at the start"),
        });
    }
    // History of s = x_{k+1} - x_k, y = g_{k+1} - g_k and 1 / (y·s), oldest first.
    let mut hist: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = std::collections::VecDeque::new();
    let (mut xt, mut gt, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut alpha = vec![0.0; cfg.memory.max(1)];
    let mut n_iter = 0;
    let mut converged = max_abs(&g) <= cfg.tol;
    while !converged && n_iter < cfg.max_iter {
        n_iter += 1;
        // Two-loop recursion: d = -H g.
        d.copy_from_slice(&g);
        for (i, (s, y, rho)) in hist.iter().enumerate().rev() {
            alpha[i] = rho * dot(s, &d);
            d.iter_mut().zip(y).for_each(|(di, yi)| *di -= alpha[i] * yi);
        }
        let gamma = hist.back().map_or(1.0 / max_abs(&g).max(1.0), |(s, y, _)| dot(s, y) / dot(y, y));
        d.iter_mut().for_each(|v| *v *= gamma);
        for (i, (s, y, rho)) in hist.iter().enumerate() {
            let beta = rho * dot(y, &d);
            d.iter_mut().zip(s).for_each(|(di, si)| *di += (alpha[i] - beta) * si);
        }
        d.iter_mut().for_each(|v| *v = -*v);
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction (rounding in a stale history): restart from steepest descent.
            hist.clear();
            d.iter_mut().zip(&g).for_each(|(di, gi)| *di = -gi / max_abs(&g).max(1.0));
            slope = dot(&g, &d);
        }
        // Weak Wolfe line search by bracketing and bisection.
        let (c1, c2) = (1e-4, 0.9);
        let (mut lo, mut hi, mut t) = (0.0, f64::INFINITY, 1.0);
        let (mut accepted, mut wolfe) = (None, false);
        for _ in 0..60 {
            xt.iter_mut().zip(&x).zip(&d).for_each(|((xt, x), d)| *xt = x + t * d);
            let ft = f(&xt, &mut gt);
            if !ft.is_finite() || gt.iter().any(|v| !v.is_finite()) || ft > fx + c1 * t * slope {
                hi = t;
            } else if dot(&gt, &d) < c2 * slope {
                lo = t;
                accepted = Some(ft); // a decrease, in case the bracket collapses
            } else {
                (accepted, wolfe) = (Some(ft), true);
                break;
            }
            t = if hi.is_finite() { 0.5 * (lo + hi) } else { 2.0 * lo };
            if hi.is_finite() && hi - lo <= 1e-16 * hi {
                break;
            }
        }
        let Some(mut ft) = accepted else { break }; // no decrease along d: as good as it gets
        if !wolfe {
            // The bracket collapsed: fall back to the longest step that decreased f.
            xt.iter_mut().zip(&x).zip(&d).for_each(|((xt, x), d)| *xt = x + lo * d);
            ft = f(&xt, &mut gt);
        }
        let s: Vec<f64> = xt.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gt.iter().zip(&g).map(|(a, b)| a - b).collect();
        let ys = dot(&y, &s);
        if ys > f64::EPSILON * dot(&y, &y) {
            if hist.len() == cfg.memory.max(1) {
                hist.pop_front();
            }
            hist.push_back((s, y, 1.0 / ys));
        }
        let decrease = fx - ft;
        std::mem::swap(&mut x, &mut xt);
        std::mem::swap(&mut g, &mut gt);
        let f_old = fx;
        fx = ft;
        converged =
            max_abs(&g) <= cfg.tol || cfg.ftol > 0.0 && decrease <= cfg.ftol * f_old.abs().max(fx.abs()).max(1.0);
    }
    let grad_max = max_abs(&g);
    Ok(LbfgsReport { x, f: fx, grad_max, n_iter, converged })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_the_rosenbrock_function() {
        let rosen = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let cfg = LbfgsConfig { max_iter: 500, tol: 1e-10, ftol: 0.0, ..Default::default() };
        let r = minimize(rosen, vec![-1.2, 1.0], &cfg).unwrap();
        assert!(r.converged, "{r:?}");
        assert!((r.x[0] - 1.0).abs() < 1e-8 && (r.x[1] - 1.0).abs() < 1e-8, "{r:?}");
    }

    #[test]
    fn solves_a_quadratic_exactly() {
        // f = 0.5 xᵀ A x - bᵀ x with A = diag(1, 10, 100): minimum at b / diag(A).
        let q = |x: &[f64], g: &mut [f64]| {
            let a = [1.0, 10.0, 100.0];
            let b = [1.0, 2.0, 3.0];
            let mut f = 0.0;
            for i in 0..3 {
                g[i] = a[i] * x[i] - b[i];
                f += 0.5 * a[i] * x[i] * x[i] - b[i] * x[i];
            }
            f
        };
        let r = minimize(q, vec![0.0; 3], &LbfgsConfig { tol: 1e-12, ftol: 0.0, ..Default::default() }).unwrap();
        assert!(r.converged && (r.x[2] - 0.03).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn a_non_finite_start_is_an_error() {
        let bad = |_: &[f64], g: &mut [f64]| {
            g[0] = 0.0;
            f64::NAN
        };
        assert!(matches!(minimize(bad, vec![0.0], &LbfgsConfig::default()), Err(MlError::Numerical { .. })));
    }
}
