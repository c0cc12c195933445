//! A reduction whose kept axes form one run in a contiguous tensor (a convolution's bias gradient:
//! the sum of [N, C, H, W] over N, H and W) folds the runs in place instead of taking the general
//! path. Its results must equal the general path's, which a permuted copy of the same values
//! takes, for sum, max and min, in f32 and f64, with kept runs at the start, middle and end.
//! Reductions over leading axes of a large tensor (a decoder's bias gradient) split the kept
//! columns over threads; they are checked the same way.

use jizen_tensor::{DType, Rng, Tensor};

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap()
}

#[test]
fn folding_runs_in_place_matches_the_general_path() {
    let mut rng = Rng::new(11);
    // (shape, reduced axes): kept axes are one run with reduced axes around them.
    let cases: [(&[usize], &[isize]); 8] = [
        (&[4, 3, 5, 6], &[0, 2, 3]),
        (&[2, 7, 3], &[0, 2]),
        (&[5, 2, 3, 4], &[2, 3]),
        (&[3, 4, 2, 5], &[0, 3]),
        (&[1, 9, 1, 1], &[0, 2, 3]),
        // Leading axes, large enough to be split by columns over threads.
        (&[120, 1000], &[0]),
        (&[4, 30, 333], &[0, 1]),
        (&[3, 20001], &[0]),
    ];
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        for (shape, axes) in cases {
            let x = Tensor::randn(shape, dtype, &mut rng);
            // The same values in another memory order: reversing the axes twice gives a view with
            // x's shape that is not contiguous, so the reduction takes the general path.
            let rank = shape.len();
            let rev: Vec<usize> = (0..rank).rev().collect();
            let flipped = x.permute(&rev).unwrap().contiguous().unwrap().permute(&rev).unwrap();
            if shape.iter().filter(|&&d| d > 1).count() > 1 {
                assert!(!flipped.is_contiguous(), "{shape:?}: the reference must take the general path");
            }
            type Reduce = fn(&Tensor, &[isize], bool) -> jizen_tensor::Result<Tensor>;
            let ops: [(&str, Reduce); 3] = [("sum", Tensor::sum), ("max", Tensor::max), ("min", Tensor::min)];
            for (name, op) in ops {
                for keepdim in [false, true] {
                    let fast = op(&x, axes, keepdim).unwrap();
                    let general = op(&flipped, axes, keepdim).unwrap();
                    assert_eq!(fast.shape(), general.shape(), "{name} {shape:?} {axes:?}");
                    let (a, b) = (values(&fast), values(&general));
                    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                    let diff = a.iter().zip(&b).fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
                    assert!(diff / scale < tol, "{name} {dtype} {shape:?} over {axes:?}: {diff}");
                }
            }
        }
    }
}
