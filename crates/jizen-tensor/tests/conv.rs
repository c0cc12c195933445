//! The convolution primitives (`conv2d`, `conv2d_grad_input`, `conv2d_grad_weight`, per-sample
//! kernels split across threads) against their definition composed from `im2col`, matmul and
//! `col2im` (oracle: that composite), on batches large enough to take the multi-threaded path.

use jizen_tensor::{grad, ConvOptions, DType, Rng, Tensor};

/// conv2d composed: columns [N, C*kh*kw, L], one matmul per group.
fn conv2d_composite(x: &Tensor, w: &Tensor, o: ConvOptions) -> Tensor {
    let [n, c, _, _] = x.shape().try_into().unwrap();
    let [cout, cin_g, kh, kw] = w.shape().try_into().unwrap();
    let g = o.groups;
    let cols = x.im2col([kh, kw], o.stride, o.padding, o.dilation).unwrap(); // [N, C*kh*kw, L]
    let l = cols.shape()[2];
    let cols = cols.reshape(&[n, g, cin_g * kh * kw, l]).unwrap();
    let wg = w.reshape(&[1, g, cout / g, cin_g * kh * kw]).unwrap();
    let y = wg.matmul(&cols).unwrap(); // [N, g, Cout/g, L]
    let _ = c;
    let oh = (x.shape()[2] + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
    y.reshape(&[n, cout, oh, l / oh]).unwrap()
}

fn close(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f64::max);
    assert!(worst <= tol, "{what}: largest relative difference {worst:e}");
}

#[test]
fn conv2d_family_matches_im2col_matmul_composite() {
    let mut rng = Rng::new(9);
    let o = ConvOptions::default;
    let cases: Vec<(&str, [usize; 4], [usize; 4], ConvOptions)> = vec![
        ("3x3 pad 1", [8, 6, 12, 12], [10, 6, 3, 3], o().padding(1)),
        ("1 channel", [16, 1, 14, 14], [8, 1, 3, 3], o().padding(1)),
        ("stride 2 dilation 2", [8, 4, 13, 11], [6, 4, 3, 3], o().stride(2).dilation(2).padding(2)),
        ("groups 2 rect", [8, 4, 10, 9], [6, 2, 2, 3], ConvOptions { groups: 2, padding: [1, 0], ..o() }),
        ("dilation 2, same size", [8, 4, 13, 11], [6, 4, 3, 3], o().dilation(2).padding(2)),
        ("2x3 kernel, same width", [8, 3, 7, 9], [4, 3, 2, 3], o().padding(1)),
        ("5x5 pad 1, narrower", [4, 3, 9, 9], [4, 3, 5, 5], o().padding(1)),
        ("1x1", [8, 8, 9, 9], [12, 8, 1, 1], o()),
        ("1x1 stride 2", [8, 8, 9, 9], [12, 8, 1, 1], o().stride(2)),
        ("batch 1", [1, 16, 20, 20], [16, 16, 3, 3], o().padding(1)),
    ];
    for (name, xs, ws, opts) in cases {
        for dtype in [DType::F64, DType::F32] {
            // f32: 3×3, stride-1 convolutions with 8 or more channels take Winograd's F(2×2, 3×3),
            // whose transforms add a few roundings per output (measured here: 1.01e-5 at most, on
            // the batch-1 case's output); the tolerance leaves room for that.
            let tol = if dtype == DType::F64 { 1e-12 } else { 3e-5 };
            let x = Tensor::randn(&xs, dtype, &mut rng).requires_grad_(true);
            let w = Tensor::randn(&ws, dtype, &mut rng).requires_grad_(true);
            let b = Tensor::randn(&[ws[0]], dtype, &mut rng).requires_grad_(true);
            let y = x.conv2d(&w, Some(&b), opts).unwrap();
            let yc = conv2d_composite(&x, &w, opts).add(&b.reshape(&[1, ws[0], 1, 1]).unwrap()).unwrap();
            close(&y, &yc, tol, &format!("{name} {dtype}: output"));
            let cot = Tensor::randn(y.shape(), dtype, &mut rng);
            let g = grad(&y, &[&x, &w, &b], Some(&cot), false).unwrap();
            let gc = grad(&yc, &[&x, &w, &b], Some(&cot), false).unwrap();
            for (i, what) in ["input", "weight", "bias"].into_iter().enumerate() {
                let (a, e) = (g[i].as_ref().unwrap(), gc[i].as_ref().unwrap());
                close(a, e, tol, &format!("{name} {dtype}: {what} gradient"));
            }
        }
    }
}

#[test]
fn conv2d_second_derivatives_match_composite() {
    // d/dw of <grad_x, v> and d/dx of <grad_w, u>: the backward of conv2d_grad_input and
    // conv2d_grad_weight, against the same through the composite.
    let mut rng = Rng::new(10);
    let opts = ConvOptions::default().padding(1).stride(2);
    let x = Tensor::randn(&[6, 3, 9, 9], DType::F64, &mut rng).requires_grad_(true);
    let w = Tensor::randn(&[5, 3, 3, 3], DType::F64, &mut rng).requires_grad_(true);
    let run = |f: &dyn Fn(&Tensor, &Tensor) -> Tensor| -> Vec<Tensor> {
        let y = f(&x, &w);
        let cot = Tensor::randn(y.shape(), DType::F64, &mut Rng::new(11));
        let g = grad(&y, &[&x, &w], Some(&cot), true).unwrap();
        let (gx, gw) = (g[0].clone().unwrap(), g[1].clone().unwrap());
        let v = Tensor::randn(gx.shape(), DType::F64, &mut Rng::new(12));
        let u = Tensor::randn(gw.shape(), DType::F64, &mut Rng::new(13));
        let s = gx.mul(&v).unwrap().sum_all().unwrap().add(&gw.mul(&u).unwrap().sum_all().unwrap()).unwrap();
        grad(&s, &[&x, &w], None, false).unwrap().into_iter().map(|t| t.unwrap()).collect()
    };
    let a = run(&|x, w| x.conv2d(w, None, opts).unwrap());
    let b = run(&|x, w| conv2d_composite(x, w, opts));
    close(&a[0], &b[0], 1e-12, "second derivative in x");
    close(&a[1], &b[1], 1e-12, "second derivative in w");
}
