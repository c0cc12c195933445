//! Sequential minimal optimisation for the dual of the binary C-SVM:
//!
//! ```text
//! min_α  f(α) = ½ αᵀQα − eᵀα   subject to  0 ≤ αₜ ≤ C,  yᵀα = 0,   Qₛₜ = yₛ yₜ k(xₛ, xₜ)
//! ```
//!
//! Each iteration picks two variables with the second-order working-set selection of Fan, Chen &
//! Lin, "Working set selection using second order information for training SVM" (JMLR 2005):
//! `i` maximises `−yₜ ∇f(α)ₜ` over the variables that may move up, and `j` maximises the
//! decrease of the two-variable quadratic, `b²/a`, among those that form a violating pair with
//! `i`. The pair's subproblem is solved exactly and clipped to the box. The solver stops when
//! the maximal violation `m(α) − M(α)` is below `tol`.
//!
//! Shrinking (Joachims 1999, in the form of Fan et al. §5): every `min(l, 1000)` iterations,
//! bounded variables that cannot form a violating pair with anyone are set aside, so the
//! selection, the gradient update and the kernel rows cover only the active ones. The gradient
//! of a set-aside variable is rebuilt from `Ḡ` (the contribution of the variables at the upper
//! bound, kept up to date) before the final optimality check, and once when the violation first
//! drops below `10 tol`. Kernel rows come from an LRU [`RowCache`] with a memory budget.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::svm::cache::RowCache;
use crate::svm::kernel::{dot, KernelFn};

/// Curvature used when `a = Kᵢᵢ + Kⱼⱼ − 2Kᵢⱼ` is not positive (a non-PSD kernel or duplicate
/// points): the step is then limited by the box alone.
const TAU: f64 = 1e-12;

/// Settings of one binary solve.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmoConfig {
    pub c: f64,
    pub tol: f64,
    pub shrinking: bool,
    pub cache_bytes: usize,
    pub max_iter: Option<usize>,
}

/// The solution of one binary problem, in the caller's sample order.
#[derive(Debug, Clone)]
pub(crate) struct SmoSolution {
    /// The dual variables, `0 ≤ αₜ ≤ C`.
    pub alpha: Vec<f64>,
    /// The offset: the decision function is `Σₜ αₜ yₜ k(xₜ, x) − rho`.
    pub rho: f64,
    /// `f(α)` at the solution.
    pub objective: f64,
    /// Iterations (pairs optimised).
    pub n_iter: usize,
    /// Whether the violation fell below `tol` before `max_iter`.
    pub converged: bool,
    /// The fewest active variables shrinking left at any time (`l` without shrinking).
    #[cfg_attr(not(test), allow(dead_code))]
    pub min_active: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Lower,
    Upper,
    Free,
}

/// The samples in the solver's order (shrinking swaps them), and what a `Q` row needs.
struct Samples {
    kernel: KernelFn,
    d: usize,
    /// Row-major `[l, d]`.
    x: Vec<f64>,
    sq: Vec<f64>,
    y: Vec<f64>,
}

impl Samples {
    /// `Q[p, from..to]` into `out[from..to]`. The dot products `X[from..to] xₚ` are one
    /// matrix-vector product (faer picks the widest SIMD the CPU has at run time).
    fn fill(&self, p: usize, from: usize, to: usize, out: &mut [f64]) {
        let d = self.d;
        let rows = MatRef::from_row_major_slice(&self.x[from * d..to * d], to - from, d);
        let xp = MatRef::from_column_major_slice(&self.x[p * d..(p + 1) * d], d, 1);
        let dots = MatMut::from_column_major_slice_mut(&mut out[from..to], to - from, 1);
        matmul(dots, Accum::Replace, rows, xp, 1.0, Par::Seq);
        let (sq_p, y_p) = (self.sq[p], self.y[p]);
        for (t, o) in out.iter_mut().enumerate().take(to).skip(from) {
            *o = y_p * self.y[t] * self.kernel.eval(*o, sq_p, self.sq[t]);
        }
    }

    fn swap(&mut self, i: usize, j: usize) {
        let d = self.d;
        for f in 0..d {
            self.x.swap(i * d + f, j * d + f);
        }
        self.sq.swap(i, j);
        self.y.swap(i, j);
    }
}

struct Solver {
    samples: Samples,
    cache: RowCache,
    c: f64,
    tol: f64,
    alpha: Vec<f64>,
    /// `∇f(α) = Qα − e`, exact on the active variables.
    grad: Vec<f64>,
    /// `Ḡₜ = C Σ_{αₛ = C} Qₜₛ`, over all variables.
    grad_bar: Vec<f64>,
    status: Vec<Bound>,
    /// `Qₜₜ = k(xₜ, xₜ)`.
    qd: Vec<f64>,
    /// The caller's index of the sample at each position.
    orig: Vec<usize>,
    /// Variables `0..active` are active; the rest are shrunk.
    active: usize,
}

/// Solves the dual for samples `x` (row-major `[l, d]`) with labels `y` in {+1, −1}.
pub(crate) fn solve(x: Vec<f64>, d: usize, y: Vec<f64>, kernel: KernelFn, cfg: &SmoConfig) -> SmoSolution {
    let l = y.len();
    let sq: Vec<f64> = (0..l).map(|p| dot(&x[p * d..(p + 1) * d], &x[p * d..(p + 1) * d])).collect();
    let qd = (0..l).map(|p| kernel.eval(sq[p], sq[p], sq[p])).collect();
    let mut s = Solver {
        samples: Samples { kernel, d, x, sq, y },
        cache: RowCache::new(l, cfg.cache_bytes),
        c: cfg.c,
        tol: cfg.tol,
        alpha: vec![0.0; l],
        grad: vec![-1.0; l],
        grad_bar: vec![0.0; l],
        status: vec![Bound::Lower; l],
        qd,
        orig: (0..l).collect(),
        active: l,
    };
    // Without a limit from the caller, a generous one (libsvm's) still guarantees an end when
    // rounding keeps a tiny violation alive.
    let limit = cfg.max_iter.unwrap_or_else(|| (100 * l).max(10_000_000));
    let period = l.min(1000);
    let mut countdown = period;
    let mut unshrunk = false;
    let mut n_iter = 0;
    let mut converged = true;
    let mut min_active = l;
    loop {
        if n_iter >= limit {
            converged = false;
            break;
        }
        if cfg.shrinking {
            countdown -= 1;
            if countdown == 0 {
                countdown = period;
                s.shrink(&mut unshrunk);
                min_active = min_active.min(s.active);
            }
        }
        let pair = match s.select() {
            Some(pair) => pair,
            None if s.active < l => {
                // Optimal on the active set: bring every variable back and look again.
                s.reconstruct_gradient();
                s.active = l;
                match s.select() {
                    Some(pair) => {
                        countdown = 1;
                        pair
                    }
                    None => break,
                }
            }
            None => break,
        };
        n_iter += 1;
        s.update(pair.0, pair.1);
    }
    s.reconstruct_gradient();
    s.active = l;
    let rho = s.rho();
    let objective = 0.5 * s.alpha.iter().zip(&s.grad).map(|(a, g)| a * (g - 1.0)).sum::<f64>();
    let mut alpha = vec![0.0; l];
    for (p, &o) in s.orig.iter().enumerate() {
        alpha[o] = s.alpha[p];
    }
    SmoSolution { alpha, rho, objective, n_iter, converged, min_active }
}

impl Solver {
    /// Makes `Q[p, ..len]` available in the cache without evicting row `pinned`.
    fn ensure_row(&mut self, p: usize, len: usize, pinned: Option<usize>) {
        let from = self.cache.prepare(p, len, pinned);
        if from < len {
            self.samples.fill(p, from, len, self.cache.row_mut(p));
        }
    }

    /// Whether variable `t` may increase along `yₜ` (the set I_up of Fan et al.).
    fn in_up(&self, t: usize) -> bool {
        if self.samples.y[t] > 0.0 {
            self.status[t] != Bound::Upper
        } else {
            self.status[t] != Bound::Lower
        }
    }

    /// Whether variable `t` may decrease along `yₜ` (the set I_low).
    fn in_low(&self, t: usize) -> bool {
        if self.samples.y[t] > 0.0 {
            self.status[t] != Bound::Lower
        } else {
            self.status[t] != Bound::Upper
        }
    }

    /// `−yₜ ∇f(α)ₜ`.
    fn violation(&self, t: usize) -> f64 {
        -self.samples.y[t] * self.grad[t]
    }

    /// The second-order working set `(i, j)`, or `None` when the active variables satisfy the
    /// stopping condition `m(α) − M(α) < tol`.
    fn select(&mut self) -> Option<(usize, usize)> {
        let mut m_up = f64::NEG_INFINITY;
        let mut i = None;
        for t in 0..self.active {
            if self.in_up(t) {
                let v = self.violation(t);
                if v >= m_up {
                    m_up = v;
                    i = Some(t);
                }
            }
        }
        let i = i?;
        self.ensure_row(i, self.active, None);
        let qi = self.cache.row(i);
        let y_i = self.samples.y[i];
        // max over I_low of yₜ∇fₜ, i.e. −M(α).
        let mut neg_m_low = f64::NEG_INFINITY;
        let mut best = f64::INFINITY;
        let mut j = None;
        for (t, &q_it) in qi.iter().enumerate().take(self.active) {
            if !self.in_low(t) {
                continue;
            }
            let v = self.violation(t);
            neg_m_low = neg_m_low.max(-v);
            let b = m_up - v;
            if b > 0.0 {
                let a = self.qd[i] + self.qd[t] - 2.0 * y_i * self.samples.y[t] * q_it;
                let decrease = -b * b / if a > 0.0 { a } else { TAU };
                if decrease <= best {
                    best = decrease;
                    j = Some(t);
                }
            }
        }
        if m_up + neg_m_low < self.tol {
            return None;
        }
        j.map(|j| (i, j))
    }

    /// Moves `αᵢ` by `yᵢ t` and `αⱼ` by `−yⱼ t` (which keeps `yᵀα`), with `t` the minimiser of
    /// the objective along that direction clipped to the box, and updates the gradients.
    fn update(&mut self, i: usize, j: usize) {
        let active = self.active;
        self.ensure_row(i, active, None);
        self.ensure_row(j, active, Some(i));
        let (y_i, y_j, c) = (self.samples.y[i], self.samples.y[j], self.c);
        let qi = self.cache.row(i);
        let qj = self.cache.row(j);
        let a = self.qd[i] + self.qd[j] - 2.0 * y_i * y_j * qi[j];
        let a = if a > 0.0 { a } else { TAU };
        let b = self.violation(i) - self.violation(j);
        // How far each variable may go in its direction before it hits the box.
        let room_i = if y_i > 0.0 { c - self.alpha[i] } else { self.alpha[i] };
        let room_j = if y_j > 0.0 { self.alpha[j] } else { c - self.alpha[j] };
        let step = (b / a).min(room_i).min(room_j);
        let (old_i, old_j) = (self.status[i], self.status[j]);
        self.alpha[i] = if step == room_i {
            if y_i > 0.0 {
                c
            } else {
                0.0
            }
        } else {
            (self.alpha[i] + y_i * step).clamp(0.0, c)
        };
        self.alpha[j] = if step == room_j {
            if y_j > 0.0 {
                0.0
            } else {
                c
            }
        } else {
            (self.alpha[j] - y_j * step).clamp(0.0, c)
        };
        for ((g, &q_i), &q_j) in self.grad[..active].iter_mut().zip(&qi[..active]).zip(&qj[..active]) {
            *g += step * (y_i * q_i - y_j * q_j);
        }
        self.status[i] = self.bound_of(self.alpha[i]);
        self.status[j] = self.bound_of(self.alpha[j]);
        for (p, old) in [(i, old_i), (j, old_j)] {
            let (was, is) = (old == Bound::Upper, self.status[p] == Bound::Upper);
            if was != is {
                let l = self.alpha.len();
                self.ensure_row(p, l, None);
                let sign = if is { c } else { -c };
                for (gb, q) in self.grad_bar.iter_mut().zip(self.cache.row(p)) {
                    *gb += sign * q;
                }
            }
        }
    }

    fn bound_of(&self, a: f64) -> Bound {
        if a >= self.c {
            Bound::Upper
        } else if a <= 0.0 {
            Bound::Lower
        } else {
            Bound::Free
        }
    }

    /// Sets aside the bounded variables that cannot form a violating pair: those that may only
    /// move up with `−y∇f < M(α)`, and those that may only move down with `−y∇f > m(α)`.
    fn shrink(&mut self, unshrunk: &mut bool) {
        let (mut m_up, mut neg_m_low) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for t in 0..self.active {
            let v = self.violation(t);
            if self.in_up(t) {
                m_up = m_up.max(v);
            }
            if self.in_low(t) {
                neg_m_low = neg_m_low.max(-v);
            }
        }
        if !*unshrunk && m_up + neg_m_low <= 10.0 * self.tol {
            // Close to the end: give every variable one more chance with an exact gradient.
            *unshrunk = true;
            self.reconstruct_gradient();
            self.active = self.alpha.len();
        }
        let removable = |s: &Solver, t: usize| -> bool {
            if s.status[t] == Bound::Free {
                false
            } else if s.in_up(t) {
                s.violation(t) < -neg_m_low
            } else {
                s.violation(t) > m_up
            }
        };
        let mut t = 0;
        while t < self.active {
            if removable(self, t) {
                self.active -= 1;
                while self.active > t {
                    if !removable(self, self.active) {
                        self.swap(t, self.active);
                        break;
                    }
                    self.active -= 1;
                }
            }
            t += 1;
        }
    }

    fn swap(&mut self, i: usize, j: usize) {
        self.samples.swap(i, j);
        self.cache.swap(i, j);
        self.alpha.swap(i, j);
        self.grad.swap(i, j);
        self.grad_bar.swap(i, j);
        self.status.swap(i, j);
        self.qd.swap(i, j);
        self.orig.swap(i, j);
    }

    /// Recomputes `∇f` of the shrunk variables: `Ḡₜ − 1 + Σ_{s free} Qₜₛ αₛ` (free variables are
    /// never shrunk). Reads whichever rows are fewer values: those of the free variables, or the
    /// active part of those of the shrunk ones.
    fn reconstruct_gradient(&mut self) {
        let (active, l) = (self.active, self.alpha.len());
        if active == l {
            return;
        }
        for t in active..l {
            self.grad[t] = self.grad_bar[t] - 1.0;
        }
        let free: Vec<usize> = (0..active).filter(|&t| self.status[t] == Bound::Free).collect();
        if free.len() * l > 2 * active * (l - active) {
            for t in active..l {
                self.ensure_row(t, active, None);
                let qt = self.cache.row(t);
                self.grad[t] += free.iter().map(|&s| self.alpha[s] * qt[s]).sum::<f64>();
            }
        } else {
            for &s in &free {
                self.ensure_row(s, l, None);
                let (qs, a) = (self.cache.row(s), self.alpha[s]);
                for (g, q) in self.grad[active..].iter_mut().zip(&qs[active..]) {
                    *g += a * q;
                }
            }
        }
    }

    /// The offset `rho`: at the optimum `yₜ∇fₜ = rho` for every free variable, so it is their
    /// mean; without free variables, the midpoint of the interval the bounded ones allow.
    fn rho(&self) -> f64 {
        let (mut sum, mut n_free) = (0.0, 0usize);
        let (mut upper, mut lower) = (f64::INFINITY, f64::NEG_INFINITY);
        for t in 0..self.alpha.len() {
            let yg = self.samples.y[t] * self.grad[t];
            let pos = self.samples.y[t] > 0.0;
            match self.status[t] {
                Bound::Free => {
                    sum += yg;
                    n_free += 1;
                }
                Bound::Lower if pos => upper = upper.min(yg),
                Bound::Upper if !pos => upper = upper.min(yg),
                _ => lower = lower.max(yg),
            }
        }
        if n_free > 0 {
            sum / n_free as f64
        } else {
            (upper + lower) / 2.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(shrinking: bool, cache_bytes: usize) -> SmoConfig {
        SmoConfig { c: 1.0, tol: 1e-6, shrinking, cache_bytes, max_iter: None }
    }

    #[test]
    fn shrinking_sets_variables_aside_and_reaches_the_same_optimum() {
        // 300 noisy points on a line, labels by the sign of a sine: many iterations with a large
        // C, and most variables settle at a bound early.
        let l = 300;
        let x: Vec<f64> = (0..l).map(|t| t as f64 / 30.0).collect();
        let y: Vec<f64> = (0..l)
            .map(|t| if ((t as f64 / 30.0).sin() + ((t * 7919 % 13) as f64 - 6.0) / 20.0) > 0.0 { 1.0 } else { -1.0 })
            .collect();
        let kernel = KernelFn::Rbf { gamma: 2.0 };
        let big_c = |shrinking| SmoConfig { c: 100.0, ..cfg(shrinking, 1 << 20) };
        let on = solve(x.clone(), 1, y.clone(), kernel, &big_c(true));
        let off = solve(x, 1, y, kernel, &big_c(false));
        println!(
            "shrinking: {} iterations, at least {} of {l} active; without: {} iterations",
            on.n_iter, on.min_active, off.n_iter
        );
        assert!(on.converged && off.converged);
        assert!(on.min_active < l / 2, "shrinking left {} of {l} variables active", on.min_active);
        assert_eq!(off.min_active, l);
        assert!((on.objective - off.objective).abs() < 1e-8 * off.objective.abs());
    }

    #[test]
    fn two_points_have_the_closed_form_solution() {
        // x = ±1 on a line, linear kernel: α = 0.5 each, w = 1, rho = 0; objective = −0.5.
        let s = solve(vec![1.0, -1.0], 1, vec![1.0, -1.0], KernelFn::Linear, &cfg(true, 1 << 20));
        assert!(s.converged);
        assert!((s.alpha[0] - 0.5).abs() < 1e-12 && (s.alpha[1] - 0.5).abs() < 1e-12);
        assert!(s.rho.abs() < 1e-12 && (s.objective + 0.5).abs() < 1e-12);
    }

    #[test]
    fn solution_satisfies_the_constraints_and_kkt_conditions() {
        // 40 points of two overlapping clouds, so some α sit at C, some are free, most are 0.
        let l = 40;
        let x: Vec<f64> =
            (0..l * 2).map(|k| ((k * 37 % 101) as f64 / 50.0 - 1.0) + if k % 4 < 2 { 0.6 } else { 0.0 }).collect();
        let y: Vec<f64> = (0..l).map(|t| if t % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let kernel = KernelFn::Rbf { gamma: 0.8 };
        let s = solve(x.clone(), 2, y.clone(), kernel, &cfg(true, 1 << 20));
        assert!(s.converged);
        let ya: f64 = s.alpha.iter().zip(&y).map(|(a, y)| a * y).sum();
        assert!(ya.abs() < 1e-10, "yᵀα = {ya}");
        // y f(x) ≥ 1 − tol at α = 0, ≈ 1 when free, ≤ 1 + tol at C.
        for t in 0..l {
            let f: f64 = (0..l)
                .map(|s_| {
                    let d2 = (x[2 * t] - x[2 * s_]).powi(2) + (x[2 * t + 1] - x[2 * s_ + 1]).powi(2);
                    s.alpha[s_] * y[s_] * (-0.8 * d2).exp()
                })
                .sum::<f64>()
                - s.rho;
            let margin = y[t] * f;
            let a = s.alpha[t];
            let ok = if a <= 0.0 {
                margin >= 1.0 - 1e-5
            } else if a >= 1.0 {
                margin <= 1.0 + 1e-5
            } else {
                (margin - 1.0).abs() < 1e-5
            };
            assert!(ok, "sample {t}: α {a}, y f(x) {margin}");
        }
        let shrunk_off = solve(x.clone(), 2, y.clone(), kernel, &cfg(false, 1 << 20));
        let tiny_cache = solve(x, 2, y, kernel, &cfg(true, 0));
        for other in [shrunk_off, tiny_cache] {
            assert!((other.objective - s.objective).abs() < 1e-8, "{} vs {}", other.objective, s.objective);
            assert!((other.rho - s.rho).abs() < 1e-4);
        }
    }
}
