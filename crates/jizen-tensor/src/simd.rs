//! Which vector extension the kernels run with, chosen at run time.
//!
//! The crate is compiled for the x86-64 baseline (SSE2: four f32 lanes), so that one binary runs
//! on every x86-64 CPU. The loops that dominate a step (elementwise passes, softmax rows, the
//! LSTM gates, the convolution transforms) are written once, generically, and compiled again for
//! AVX-512 and for AVX2 with FMA; [`multiversion!`] makes the entry point that picks the widest
//! copy the CPU runs. Rust does not contract `a * b + c` into a fused multiply-add on its own, so
//! the three copies of a generic loop compute the same values; only the hand-written intrinsics
//! (the single-row product's dot products) round differently from one extension to the next.

/// The widest vector extension the kernels were compiled for that this CPU has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 16 f32 lanes.
    Avx512,
    /// AVX2 with FMA (x86-64-v3, e.g. AMD Zen 1–3 and Intel's client cores): 8 f32 lanes.
    Avx2,
    /// The baseline the crate is compiled for.
    Base,
}

/// The widest extension available (the standard library caches the CPU's answer, so this is a
/// couple of loads).
#[inline]
pub fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Base
}

/// Defines `fn NAME<T: Float>(ARGS) -> RET` that calls the `#[inline(always)]` function `BODY`
/// with the same arguments, compiled for the widest extension of [`isa`]:
///
/// ```ignore
/// multiversion! {
///     /// `dst[i] = exp(src[i])`.
///     pub fn exp_slice<T: Float>(src: &[T], dst: &mut [T]) => exp_loop
/// }
/// ```
macro_rules! multiversion {
    ($(#[$attr:meta])* $vis:vis fn $name:ident<T: Float>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$attr])*
        $vis fn $name<T: $crate::dtype::Float>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512<T: $crate::dtype::Float>($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2<T: $crate::dtype::Float>($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                match $crate::simd::isa() {
                    // SAFETY: `isa` found AVX-512F on this CPU.
                    $crate::simd::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: `isa` found AVX2 and FMA on this CPU.
                    $crate::simd::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::simd::Isa::Base => {}
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(always)]
    fn scaled_sum<T: crate::Float>(x: &[T], s: T) -> T {
        x.iter().fold(T::zero(), |acc, &v| acc + v * s)
    }

    multiversion! {
        fn scaled_sum_wide<T: Float>(x: &[T], s: T) -> T => scaled_sum
    }

    #[test]
    fn every_copy_computes_what_the_generic_code_does() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        assert_eq!(scaled_sum_wide(&x, 1.7f32).to_bits(), scaled_sum(&x, 1.7f32).to_bits());
        let isa = isa();
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            assert_ne!(isa, Isa::Base);
        }
        println!("this CPU's kernels: {isa:?}");
    }
}
