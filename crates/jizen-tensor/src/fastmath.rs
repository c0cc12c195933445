//! A branch-free `exp` for f32 that the compiler vectorises, in place of a call into libm per
//! element (which made `exp` the most expensive step of softmax and cross-entropy).
//!
//! Range reduction `x = k ln2 + r` with `|r| <= ln2/2` (Cody–Waite split of ln2), the classic
//! degree-6 minimax polynomial for `e^r` (Moshier's Cephes `expf`), and `2^k` built from exponent
//! bits in two factors so that results from the subnormal range up to overflow stay exact in
//! their exponent. Accuracy: within 2 ulp of the correctly rounded value over the whole range
//! (tested against f64 `exp`); NaN stays NaN, `+inf` gives `+inf`, `-inf` gives 0.

/// `e^x` for f32, vectorisable (no branches, no calls).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let (e, ki) = reduced_exp(x.clamp(-104.0, 88.8));
    let k1 = ki >> 1;
    let k2 = ki - k1;
    let s1 = f32::from_bits(((k1 + 127) << 23) as u32);
    let s2 = f32::from_bits(((k2 + 127) << 23) as u32);
    let y = e * s1 * s2;
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `e^x` for f32 where `x <= 0` or `x = -inf`: [`exp_f32`]'s reduction and polynomial with one
/// scale factor `2^k` instead of two, no upper clamp and no NaN test (about a third fewer
/// operations, counted in the source). It serves the sums of `e^(x − max)` in softmax and cross-entropy, whose
/// arguments are never positive. Results below `2^-126` (from about `x < −87.3`) flush to 0;
/// from there up to 0 it is within 2 ulp, as `exp_f32` (tested). NaN or positive `x`: unspecified.
#[inline(always)]
pub fn exp_nonpos_f32(x: f32) -> f32 {
    // From -88 down, k rounds to -127, whose scale factor has all exponent bits clear: 0.
    let (e, ki) = reduced_exp(if x > -88.0 { x } else { -88.0 });
    e * f32::from_bits(((ki + 127) << 23) as u32)
}

/// The shared core of the two: for a clamped `x`, `(e^r, k)` with `x = k ln2 + r`, `|r| <= ln2/2`.
#[inline(always)]
fn reduced_exp(xc: f32) -> (f32, i32) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let t = xc * LOG2E + ROUND;
    let k = t - ROUND;
    // The integer k sits in the low mantissa bits of t.
    let ki = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = xc - k * LN2_HI - k * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    (p * (r * r) + r + 1.0, ki)
}

/// `tanh x` for f32, vectorisable: Cephes' odd minimax polynomial below |x| = 0.625 (where
/// `1 − 2/(e^{2|x|} + 1)` would lose digits to cancellation), that formula above, with [`exp_f32`].
/// Within 3 ulp over the whole range (tested against f64 `tanh`); NaN stays NaN.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    // tanh(9.1) rounds to 1 in f32; clamping keeps e^{2a} finite.
    let e = exp_f32(2.0 * a.min(9.1));
    let big = (1.0 - 2.0 / (e + 1.0)).copysign(x);
    let z = x * x;
    // Cephes' coefficients as printed (more digits than an f32 holds).
    #[allow(clippy::excessive_precision)]
    let p = (((-5.704_988_7e-3 * z + 2.063_908_9e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z - 3.333_328_2e-1;
    let small = x * (1.0 + z * p); // (not x + x·z·p, which loses the sign of -0)
    let y = if a < 0.625 { small } else { big };
    if x.is_nan() {
        x
    } else {
        y
    }
}

#[inline(always)]
fn exp_loop<T: crate::Float>(src: &[T], dst: &mut [T]) {
    for (o, &v) in dst.iter_mut().zip(src) {
        *o = v.exp();
    }
}

crate::simd::multiversion! {
    /// `dst[i] = exp(src[i])`, compiled for the widest vector extension the CPU has (16 or 8
    /// lanes instead of the baseline's 4).
    pub fn exp_slice<T: Float>(src: &[T], dst: &mut [T]) => exp_loop
}

#[inline(always)]
fn tanh_loop<T: crate::Float>(src: &[T], dst: &mut [T]) {
    for (o, &v) in dst.iter_mut().zip(src) {
        *o = v.tanh();
    }
}

crate::simd::multiversion! {
    /// `dst[i] = tanh(src[i])`, compiled for the widest vector extension the CPU has.
    pub fn tanh_slice<T: Float>(src: &[T], dst: &mut [T]) => tanh_loop
}

#[cfg(test)]
mod tests {
    use super::{exp_f32, exp_nonpos_f32, tanh_f32};

    fn ulp_error(x: f32) -> f64 {
        let exact = (x as f64).exp();
        let got = exp_f32(x) as f64;
        let rounded = exact as f32;
        if rounded == 0.0 || rounded.is_infinite() {
            return if (got as f32) == rounded { 0.0 } else { f64::INFINITY };
        }
        let ulp = (f32::from_bits(rounded.abs().to_bits() + 1) - rounded.abs()) as f64;
        (got - exact).abs() / ulp
    }

    #[test]
    fn within_two_ulp_over_the_whole_range() {
        let mut worst = (0.0, 0.0f32);
        let n = 2_000_000;
        for i in 0..=n {
            let x = -103.0 + (88.7 + 103.0) * i as f32 / n as f32;
            let e = ulp_error(x);
            if e > worst.0 {
                worst = (e, x);
            }
        }
        assert!(worst.0 <= 2.0, "worst error {:.2} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn special_values() {
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(-110.0), 0.0);
        assert!((exp_f32(1.0) - std::f32::consts::E).abs() <= f32::EPSILON * 3.0);
    }

    #[test]
    fn nonpositive_exp_within_two_ulp_and_flushes_below_the_normal_range() {
        let mut worst = (0.0, 0.0f32);
        let n = 2_000_000;
        for i in 0..=n {
            let x = -87.3 * i as f32 / n as f32;
            let exact = (x as f64).exp();
            let rounded = exact as f32;
            let ulp = (f32::from_bits(rounded.to_bits() + 1) - rounded) as f64;
            let e = (exp_nonpos_f32(x) as f64 - exact).abs() / ulp;
            if e > worst.0 {
                worst = (e, x);
            }
        }
        assert!(worst.0 <= 2.0, "worst error {:.2} ulp at x = {}", worst.0, worst.1);
        assert_eq!(exp_nonpos_f32(0.0), 1.0);
        assert_eq!(exp_nonpos_f32(-0.0), 1.0);
        for x in [-88.0, -95.0, -1e30, f32::NEG_INFINITY] {
            assert_eq!(exp_nonpos_f32(x), 0.0, "x = {x}");
        }
        // Where k rounds to -126 or -127: the normal result to 1e-6, or 0.
        for x in [-87.9f32, -87.5, -87.34] {
            let (got, exact) = (exp_nonpos_f32(x), (x as f64).exp());
            assert!(got == 0.0 || ((got as f64 - exact) / exact).abs() < 1e-6, "x = {x}: {got}");
        }
    }

    /// Error of `tanh_f32(x)` in units in the last place of the correctly rounded result.
    fn tanh_ulp_error(x: f32) -> f64 {
        let exact = (x as f64).tanh();
        let rounded = exact as f32;
        if rounded == 0.0 {
            return if tanh_f32(x) == 0.0 { 0.0 } else { f64::INFINITY };
        }
        let ulp = (f32::from_bits(rounded.abs().to_bits() + 1) - rounded.abs()) as f64;
        (tanh_f32(x) as f64 - exact).abs() / ulp
    }

    #[test]
    fn tanh_within_three_ulp_over_the_whole_range() {
        let mut worst = (0.0, 0.0f32);
        let n = 2_000_000;
        for i in 0..=n {
            let x = -12.0 + 24.0 * i as f32 / n as f32;
            // Near zero, tiny arguments too (the polynomial branch), logarithmically spaced.
            let tiny = 10f32.powf(-30.0 + 29.0 * i as f32 / n as f32);
            for x in [x, tiny, -tiny] {
                let e = tanh_ulp_error(x);
                if e > worst.0 {
                    worst = (e, x);
                }
            }
        }
        assert!(worst.0 <= 3.0, "worst error {:.2} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn tanh_special_values() {
        assert!(tanh_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f32(1e4), 1.0);
        assert_eq!(tanh_f32(0.0), 0.0);
        assert!(tanh_f32(-0.0).is_sign_negative());
    }
}
