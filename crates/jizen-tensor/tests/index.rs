//! `gather`, `scatter_add` and max pooling against their definitions, written out as loops.
//!
//! `gather` and `scatter_add` have two kernels: one for an index with the input's shape outside
//! the indexed dimension (what pooling makes) and a general one; both are compared here with
//! torch's definition (`out[i][j][k] = x[i][index[i][j][k]][k]` for `dim = 1`, and so on).
//! Max pooling finds its windows' maxima in one pass and records them as a `gather`: the values
//! must equal that gather, and ties and NaNs must follow PyTorch.

use jizen_tensor::{DType, Rng, Tensor};

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The multi-index of flat position `p` in `shape`.
fn coords(mut p: usize, shape: &[usize]) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        c[d] = p % shape[d];
        p /= shape[d];
    }
    c
}

/// The input offset that index position `p` addresses along `dim`.
fn target(p: usize, idx_shape: &[usize], ids: &[i64], x_shape: &[usize], dim: usize) -> usize {
    let mut c = coords(p, idx_shape);
    c[dim] = ids[p] as usize;
    c.iter().zip(strides(x_shape)).map(|(a, s)| a * s).sum()
}

/// A random index of `shape` into a dimension of size `size`.
fn random_index(shape: &[usize], size: usize, rng: &mut Rng) -> (Vec<i64>, Tensor) {
    let ids: Vec<i64> = (0..shape.iter().product::<usize>()).map(|_| rng.below(size as u64) as i64).collect();
    (ids.clone(), Tensor::from_vec(ids, shape).unwrap())
}

#[test]
fn gather_and_scatter_add_follow_the_definition_for_aligned_and_smaller_indices() {
    let x_shape = [3, 4, 5];
    let mut rng = Rng::new(7);
    let x = Tensor::randn(&x_shape, DType::F64, &mut rng);
    let xv = x.to_vec::<f64>().unwrap();
    for dim in 0..3 {
        // Aligned: the input's shape but along `dim` (6 picks, some repeated). Smaller: one less
        // along every other dimension, which the general kernel handles.
        let mut aligned = x_shape;
        aligned[dim] = 6;
        let smaller: Vec<usize> = (0..3).map(|q| if q == dim { 2 } else { x_shape[q] - 1 }).collect();
        for idx_shape in [aligned.to_vec(), smaller] {
            let (ids, index) = random_index(&idx_shape, x_shape[dim], &mut rng);
            let got = x.gather(dim as isize, &index).unwrap();
            assert_eq!(got.shape(), idx_shape.as_slice());
            let want: Vec<f64> = (0..ids.len()).map(|p| xv[target(p, &idx_shape, &ids, &x_shape, dim)]).collect();
            assert_eq!(got.to_vec::<f64>().unwrap(), want, "gather dim {dim}, index {idx_shape:?}");

            let src = Tensor::randn(&idx_shape, DType::F64, &mut rng);
            let sv = src.to_vec::<f64>().unwrap();
            let got = x.scatter_add(dim as isize, &index, &src).unwrap();
            let mut want = xv.clone();
            for (p, v) in sv.iter().enumerate() {
                want[target(p, &idx_shape, &ids, &x_shape, dim)] += v;
            }
            assert_eq!(got.to_vec::<f64>().unwrap(), want, "scatter_add dim {dim}, index {idx_shape:?}");
        }
    }
}

/// Input shape, then kernel, stride, padding and dilation of a pooling.
type PoolCase = ([usize; 4], [usize; 2], [usize; 2], [usize; 2], [usize; 2]);

#[test]
fn max_pool_values_are_the_gather_of_its_indices() {
    let mut rng = Rng::new(11);
    // Even and odd sizes, padding, stride and dilation; f32 and f64.
    let cases: [PoolCase; 5] = [
        ([2, 3, 8, 8], [2, 2], [2, 2], [0, 0], [1, 1]),
        ([1, 2, 7, 5], [2, 2], [2, 2], [0, 0], [1, 1]),
        ([1, 2, 7, 9], [3, 3], [2, 2], [1, 1], [1, 1]),
        ([2, 1, 9, 7], [2, 3], [1, 2], [1, 1], [2, 1]),
        ([1, 4, 5, 5], [3, 2], [3, 1], [0, 1], [1, 2]),
    ];
    for dtype in [DType::F32, DType::F64] {
        for (shape, kernel, stride, padding, dilation) in cases {
            let x = Tensor::randn(&shape, dtype, &mut rng);
            let (vals, idx) = x.max_pool2d_with_indices(kernel, stride, padding, dilation).unwrap();
            let [n, c, oh, ow] = [vals.shape()[0], vals.shape()[1], vals.shape()[2], vals.shape()[3]];
            let flat_idx = idx.reshape(&[n, c, oh * ow]).unwrap();
            let composed = x.reshape(&[n, c, shape[2] * shape[3]]).unwrap().gather(2, &flat_idx).unwrap();
            let composed = composed.reshape(&[n, c, oh, ow]).unwrap();
            let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
            assert_eq!(f64s(&vals), f64s(&composed), "{shape:?} {kernel:?}");
            // Every value is its window's maximum: no element of the window is larger.
            let (xv, vv, iv) = (f64s(&x), f64s(&vals), idx.to_vec::<i64>().unwrap());
            for (p, (&v, &at)) in vv.iter().zip(&iv).enumerate() {
                let (plane, oy, ox) = (p / (oh * ow), p % (oh * ow) / ow, p % ow);
                for ki in 0..kernel[0] {
                    for kj in 0..kernel[1] {
                        let iy = (oy * stride[0] + ki * dilation[0]) as isize - padding[0] as isize;
                        let ix = (ox * stride[1] + kj * dilation[1]) as isize - padding[1] as isize;
                        if (0..shape[2] as isize).contains(&iy) && (0..shape[3] as isize).contains(&ix) {
                            let e = xv[plane * shape[2] * shape[3] + iy as usize * shape[3] + ix as usize];
                            assert!(e <= v, "window {p}: {e} > max {v} (index {at})");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn max_pool_takes_the_first_of_ties_and_propagates_nan() {
    // One 2x4 plane, two 2x2 windows: the first all equal, the second holding a NaN.
    let x = Tensor::from_vec(vec![1.0f32, 1.0, 2.0, f32::NAN, 1.0, 1.0, 3.0, 5.0], &[1, 1, 2, 4]).unwrap();
    // Stride [2, 2] takes the 2x2 kernel's own path, stride [1, 2] (the same two windows, as the
    // plane has two rows) the general one.
    for stride in [[2, 2], [1, 2]] {
        let (vals, idx) = x.max_pool2d_with_indices([2, 2], stride, [0, 0], [1, 1]).unwrap();
        assert_eq!(idx.to_vec::<i64>().unwrap(), vec![0, 3], "stride {stride:?}");
        let v = vals.to_vec::<f32>().unwrap();
        assert_eq!(v[0], 1.0);
        assert!(v[1].is_nan(), "a NaN in the window is the window's maximum, as in PyTorch: {v:?}");
    }
}

#[test]
fn a_pooling_window_wholly_in_the_padding_is_an_error() {
    // Kernel 2 with dilation 3 and padding 1 on a 2x2 image: the one window reads rows -1 and 2.
    let x = Tensor::ones(&[1, 1, 2, 2], DType::F32);
    let err = x.max_pool2d([2, 2], [1, 1], [1, 1], [3, 3]).unwrap_err().to_string();
    assert!(err.contains("max_pool2d") && err.contains("wholly in the padding"), "{err}");
}
