//! A single-row product (batch-1 inference) takes its own kernel, not `gemm`: its results must
//! match the same row computed by `gemm` as part of a two-row product, for both layouts of the
//! right operand (a transposed `[n, k]` weight and a row-major `[k, n]` matrix), with and without
//! a bias, in f32 and f64, at sizes on either side of the threaded split. A product whose right
//! operand is a transposed weight splits its output's columns over the threads instead of
//! letting gemm split it; its results are checked against the definition. Large f32 products,
//! which may take jizen's own sgemm driver, are checked against the same products in f64.

use jizen_tensor::{DType, Rng, Tensor};

/// Largest |a − b| relative to the largest |b|.
fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap()
}

#[test]
fn a_single_row_matches_the_same_row_of_a_two_row_product() {
    let mut rng = Rng::new(3);
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        // (k, n): tiny, odd and not a multiple of the lanes, and large enough to be threaded.
        for (k, n) in [(1, 1), (3, 5), (70, 33), (784, 512), (512, 256), (129, 1000)] {
            let x = Tensor::randn(&[1, k], dtype, &mut rng);
            let other = Tensor::randn(&[1, k], dtype, &mut rng);
            let pair = Tensor::cat(&[&x, &other], 0).unwrap(); // [2, k]: through gemm
            let weight = Tensor::randn(&[n, k], dtype, &mut rng); // linear's layout
            let matrix = Tensor::randn(&[k, n], dtype, &mut rng); // row-major
            let bias = Tensor::randn(&[n], dtype, &mut rng);
            let first_row = |t: Tensor| values(&t.narrow(0, 0, 1).unwrap());

            let got = values(&x.linear(&weight, Some(&bias)).unwrap());
            let want = first_row(pair.linear(&weight, Some(&bias)).unwrap());
            assert!(rel_diff(&got, &want) < tol, "linear {dtype} k={k} n={n}: {}", rel_diff(&got, &want));

            let got = values(&x.linear(&weight, None).unwrap());
            let want = first_row(pair.linear(&weight, None).unwrap());
            assert!(rel_diff(&got, &want) < tol, "linear without bias {dtype} k={k} n={n}");

            let got = values(&x.matmul(&matrix).unwrap());
            let want = first_row(pair.matmul(&matrix).unwrap());
            assert!(rel_diff(&got, &want) < tol, "matmul row-major {dtype} k={k} n={n}");

            let transposed = weight.transpose(0, 1).unwrap(); // [k, n], columns contiguous
            let got = values(&x.matmul(&transposed).unwrap());
            let want = first_row(pair.matmul(&transposed).unwrap());
            assert!(rel_diff(&got, &want) < tol, "matmul transposed {dtype} k={k} n={n}");

            // A 1-D vector on the left is a single row too.
            let v = x.reshape(&[k]).unwrap();
            let got = values(&v.matmul(&matrix).unwrap());
            let want = first_row(pair.matmul(&matrix).unwrap());
            assert!(rel_diff(&got, &want) < tol, "vector @ matrix {dtype} k={k} n={n}");
        }
    }
}

#[test]
fn a_single_row_of_a_strided_left_operand_still_multiplies_right() {
    // The row is a column of a larger matrix (stride 3): not contiguous, so gemm handles it.
    let mut rng = Rng::new(4);
    let big = Tensor::randn(&[40, 3], DType::F64, &mut rng);
    let col = big.narrow(1, 1, 1).unwrap().transpose(0, 1).unwrap(); // [1, 40], stride 3
    let w = Tensor::randn(&[40, 7], DType::F64, &mut rng);
    let got = values(&col.matmul(&w).unwrap());
    let want = values(&col.contiguous().unwrap().matmul(&w).unwrap());
    assert!(rel_diff(&got, &want) < 1e-12);
}

/// Naive f64 product of `a` [m, k] and `b` [k, n], plus `bias` [n] if given.
fn naive(a: &[f64], b: &[f64], bias: Option<&[f64]>, m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            out[i * n + j] = dot + bias.map_or(0.0, |b| b[j]);
        }
    }
    out
}

#[test]
fn a_product_with_a_transposed_right_operand_split_by_columns_matches_the_definition() {
    // Large enough that the output's columns are split over the threads (one gemm each), with
    // column counts that split evenly and unevenly.
    let mut rng = Rng::new(5);
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        for (m, k, n) in [(70, 300, 130), (128, 784, 512), (9, 1000, 33)] {
            let x = Tensor::randn(&[m, k], dtype, &mut rng);
            let weight = Tensor::randn(&[n, k], dtype, &mut rng);
            let bias = Tensor::randn(&[n], dtype, &mut rng);
            let wt = values(&weight.t().unwrap().contiguous().unwrap()); // [k, n]
            let (xv, bv) = (values(&x), values(&bias));
            let got = values(&x.linear(&weight, Some(&bias)).unwrap());
            let want = naive(&xv, &wt, Some(&bv), m, k, n);
            assert!(rel_diff(&got, &want) < tol, "linear {dtype} {m}x{k}x{n}: {}", rel_diff(&got, &want));
            let got = values(&x.matmul(&weight.t().unwrap()).unwrap());
            let want = naive(&xv, &wt, None, m, k, n);
            assert!(rel_diff(&got, &want) < tol, "matmul {dtype} {m}x{k}x{n}: {}", rel_diff(&got, &want));
        }
    }
}

/// Large f32 products (at least 2^24 multiply-adds) go through jizen's own sgemm driver on a
/// machine with AVX2 (not AVX-512) and several threads, gemm's split elsewhere and where the
/// left operand is strided along its rows (a weight gradient, `gᵀ @ x`): either way they must
/// agree with the same product computed in f64, for a row-major and a transposed right operand,
/// a transposed left one, batched, accumulated onto a bias (`linear` with a weight whose
/// transpose is contiguous), and at the sizes of the `mlp` benchmark's smaller layer (`linear`
/// and both gradients).
#[test]
fn large_f32_products_match_float64() {
    let mut rng = Rng::new(11);
    let (m, k, n) = (128, 1040, 512);
    let f64_of = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    let check = |what: &str, got: Tensor, want: Tensor| {
        let d = rel_diff(&values(&got), &values(&want));
        assert!(d < 1e-5, "{what}: relative difference {d}");
    };
    let a = Tensor::randn(&[m, k], DType::F32, &mut rng);
    let b = Tensor::randn(&[k, n], DType::F32, &mut rng);
    check("row-major", a.matmul(&b).unwrap(), f64_of(&a).matmul(&f64_of(&b)).unwrap());

    let bt = Tensor::randn(&[n, k], DType::F32, &mut rng).transpose(0, 1).unwrap();
    check("transposed rhs", a.matmul(&bt).unwrap(), f64_of(&a).matmul(&f64_of(&bt)).unwrap());

    let a2 = Tensor::randn(&[2, m, k], DType::F32, &mut rng);
    let b2 = Tensor::randn(&[2, k, n], DType::F32, &mut rng);
    check("batched", a2.matmul(&b2).unwrap(), f64_of(&a2).matmul(&f64_of(&b2)).unwrap());

    // weight [n, k] as a view of a [k, n] matrix: linear reads its transpose, which is contiguous.
    let w = Tensor::randn(&[k, n], DType::F32, &mut rng).transpose(0, 1).unwrap();
    let bias = Tensor::randn(&[n], DType::F32, &mut rng);
    check(
        "linear with bias",
        a.linear(&w, Some(&bias)).unwrap(),
        f64_of(&a).linear(&f64_of(&w), Some(&f64_of(&bias))).unwrap(),
    );

    let g = Tensor::randn(&[k, m], DType::F32, &mut rng);
    let gt = g.transpose(0, 1).unwrap();
    check("transposed lhs", gt.matmul(&b).unwrap(), f64_of(&gt).matmul(&f64_of(&b)).unwrap());

    // A 512 → 256 layer at batch 128: x @ wᵀ, then gᵀ @ x and g @ w.
    let (batch, inp, out) = (128, 512, 256);
    let x = Tensor::randn(&[batch, inp], DType::F32, &mut rng);
    let w = Tensor::randn(&[out, inp], DType::F32, &mut rng);
    let bias = Tensor::randn(&[out], DType::F32, &mut rng);
    let g = Tensor::randn(&[batch, out], DType::F32, &mut rng);
    check(
        "layer forward",
        x.linear(&w, Some(&bias)).unwrap(),
        f64_of(&x).linear(&f64_of(&w), Some(&f64_of(&bias))).unwrap(),
    );
    let gt = g.transpose(0, 1).unwrap();
    check("layer weight gradient", gt.matmul(&x).unwrap(), f64_of(&gt).matmul(&f64_of(&x)).unwrap());
    check("layer input gradient", g.matmul(&w).unwrap(), f64_of(&g).matmul(&f64_of(&w)).unwrap());
}
