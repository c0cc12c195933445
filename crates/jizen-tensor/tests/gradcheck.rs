//! Finite-difference gradient checks (f64, random cotangent) for every differentiable operation,
//! primitives and composites alike. Oracle: central differences of the forward pass itself.
//! `docs/ops.md` maps each operation to its test here.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better than `from_ref` in a table of checks

use jizen_tensor::gradcheck::{assert_gradients as check, GradCheck};
use jizen_tensor::{
    binary_cross_entropy_with_logits, cross_entropy, mse_loss, multi_margin_loss, nll_loss, ConvOptions,
    CrossEntropyOptions, DType, Reduction, Rng, Tensor,
};

/// Uniform values in ±[0.1, 1.0] times `scale`: away from the kinks of relu/abs/max at 0.
fn away(shape: &[usize], seed: u64, scale: f64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let m = 0.1 + 0.9 * rng.uniform();
            if rng.uniform() < 0.5 {
                -m * scale
            } else {
                m * scale
            }
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Positive values in [lo, hi).
fn positive(shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
    Tensor::rand(shape, lo, hi, DType::F64, &mut Rng::new(seed))
}

/// Distinct values (a shuffled ramp plus noise), so that max/min/max-pool have no ties.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - n as f64 * 0.05).collect();
    rng.shuffle(&mut v);
    Tensor::from_vec(v, shape).unwrap()
}

fn idx(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

// ------------------------------------------------------------------ unary primitives

#[test]
fn grad_unary_primitives() {
    let x = away(&[3, 4], 1, 2.0);
    check("neg", &[x.clone()], |t| t[0].neg());
    check("exp", &[x.clone()], |t| t[0].exp());
    check("tanh", &[x.clone()], |t| t[0].tanh());
    check("abs", &[x.clone()], |t| t[0].abs());
    check("relu", &[x.clone()], |t| t[0].relu());
    check("erf", &[x.clone()], |t| t[0].erf());
    let p = positive(&[3, 4], 2, 0.2, 3.0);
    check("log", &[p.clone()], |t| t[0].log());
    check("sqrt", &[p], |t| t[0].sqrt());
}

#[test]
fn grad_activations() {
    let x = away(&[2, 5], 3, 3.0);
    check("sigmoid", &[x.clone()], |t| t[0].sigmoid());
    check("gelu", &[x.clone()], |t| t[0].gelu());
    check("gelu_tanh", &[x.clone()], |t| t[0].gelu_tanh());
    check("leaky_relu", &[x.clone()], |t| t[0].leaky_relu(0.1));
    check("silu", &[x.clone()], |t| t[0].silu());
    check("softplus", &[x], |t| t[0].softplus());
}

// ------------------------------------------------------------------ binary, broadcasting

#[test]
fn grad_binary_same_shape() {
    let a = away(&[3, 4], 4, 1.0);
    let b = away(&[3, 4], 5, 1.0);
    check("add", &[a.clone(), b.clone()], |t| t[0].add(&t[1]));
    check("sub", &[a.clone(), b.clone()], |t| t[0].sub(&t[1]));
    check("mul", &[a.clone(), b.clone()], |t| t[0].mul(&t[1]));
    check("div", &[a.clone(), b.clone()], |t| t[0].div(&t[1]));
    // maximum/minimum away from ties: shift b so no pair is close.
    let b2 = b.add_scalar(0.013).unwrap();
    check("maximum", &[a.clone(), b2.clone()], |t| t[0].maximum(&t[1]));
    check("minimum", &[a.clone(), b2], |t| t[0].minimum(&t[1]));
    let base = positive(&[3, 4], 6, 0.5, 2.0);
    check("pow", &[base, b], |t| t[0].pow(&t[1]));
}

#[test]
fn grad_binary_broadcast() {
    let a = away(&[3, 4], 7, 1.0);
    let row = away(&[4], 8, 1.0);
    let col = away(&[3, 1], 9, 1.0);
    check("add [3,4]+[4]", &[a.clone(), row.clone()], |t| t[0].add(&t[1]));
    check("mul [3,4]*[3,1]", &[a.clone(), col.clone()], |t| t[0].mul(&t[1]));
    check("sub [3,1]-[4]", &[col.clone(), row.clone()], |t| t[0].sub(&t[1]));
    let d = positive(&[2, 1, 4], 10, 0.5, 2.0);
    check("div [3,1]/[2,1,4]", &[col, d], |t| t[0].div(&t[1]));
}

#[test]
fn grad_scalar_ops_and_composites() {
    let x = away(&[2, 3], 11, 1.5);
    check("add_scalar", &[x.clone()], |t| t[0].add_scalar(2.0));
    check("mul_scalar", &[x.clone()], |t| t[0].mul_scalar(-3.0));
    check("div_scalar", &[x.clone()], |t| t[0].div_scalar(4.0));
    check("square", &[x.clone()], |t| t[0].square());
    check("powf", &[x.clone()], |t| t[0].powf(3.0));
    check("recip", &[x.clone()], |t| t[0].recip());
    check("clamp", &[x.clone()], |t| t[0].clamp(-0.5, 0.5));
    let p = positive(&[2, 3], 12, 0.5, 2.0);
    check("powf fractional", &[p], |t| t[0].powf(1.5));
}

#[test]
fn grad_where() {
    let a = away(&[3, 4], 13, 1.0);
    let b = away(&[3, 4], 14, 1.0);
    let cond = away(&[3, 4], 15, 1.0).gt_scalar(0.0).unwrap();
    check("where", &[a.clone(), b], |t| Tensor::where_(&cond, &t[0], &t[1]));
    let row = away(&[4], 16, 1.0);
    check("where broadcast", &[a, row], |t| Tensor::where_(&cond, &t[0], &t[1]));
}

// ------------------------------------------------------------------ reductions

#[test]
fn grad_reductions() {
    let x = away(&[2, 3, 4], 17, 1.0);
    check("sum all", &[x.clone()], |t| t[0].sum_all());
    check("sum axis 1", &[x.clone()], |t| t[0].sum(&[1], false));
    check("sum axes 0,2 keepdim", &[x.clone()], |t| t[0].sum(&[0, 2], true));
    check("sum axis -1 of permuted", &[x.clone()], |t| t[0].permute(&[2, 0, 1])?.sum(&[-1], false));
    check("mean axis 2", &[x.clone()], |t| t[0].mean(&[2], false));
    check("mean all", &[x.clone()], |t| t[0].mean_all());
    check("var axis 1", &[x.clone()], |t| t[0].var(&[1], 1, false));
    check("var axes 0,2 keepdim", &[x.clone()], |t| t[0].var(&[0, 2], 0, true));
    check("std axis 2", &[x.clone()], |t| t[0].std(&[2], 1, false));
    let d = distinct(&[2, 3, 4], 18);
    check("max axis 1", &[d.clone()], |t| t[0].max(&[1], false));
    check("max axes 0,2 keepdim", &[d.clone()], |t| t[0].max(&[0, 2], true));
    check("max all", &[d.clone()], |t| t[0].max_all());
    check("min axis 2", &[d.clone()], |t| t[0].min(&[2], true));
    check("logsumexp axis 1", &[x.clone()], |t| t[0].logsumexp(1, false));
    check("logsumexp axis -1 keepdim", &[x], |t| t[0].logsumexp(-1, true));
}

// ------------------------------------------------------------------ matmul

#[test]
fn grad_matmul() {
    let a = away(&[3, 4], 19, 1.0);
    let b = away(&[4, 5], 20, 1.0);
    check("matmul 2-D", &[a.clone(), b.clone()], |t| t[0].matmul(&t[1]));
    let bt = away(&[5, 4], 21, 1.0);
    check("matmul transposed rhs", &[a.clone(), bt], |t| t[0].matmul(&t[1].t()?));
    let at = away(&[4, 3], 22, 1.0);
    check("matmul transposed lhs", &[at, b.clone()], |t| t[0].t()?.matmul(&t[1]));
    let ba = away(&[2, 3, 4], 23, 1.0);
    let bb = away(&[2, 4, 5], 24, 1.0);
    check("matmul batched", &[ba.clone(), bb], |t| t[0].matmul(&t[1]));
    check("matmul [2,3,4]@[4,5] (folded rows)", &[ba.clone(), b.clone()], |t| t[0].matmul(&t[1]));
    let w = away(&[3, 4], 25, 1.0);
    let cols = away(&[2, 4, 6], 26, 1.0);
    check("matmul [3,4]@[2,4,6] (broadcast lhs)", &[w, cols], |t| t[0].matmul(&t[1]));
    let p = away(&[2, 1, 3, 4], 27, 1.0);
    let q = away(&[5, 4, 2], 28, 1.0);
    check("matmul broadcast batch", &[p, q], |t| t[0].matmul(&t[1]));
    let v = away(&[4], 29, 1.0);
    check("matmul matrix-vector", &[a.clone(), v.clone()], |t| t[0].matmul(&t[1]));
    check("matmul vector-matrix", &[v.clone(), b], |t| t[0].matmul(&t[1]));
    check("matmul dot", &[v.clone(), v], |t| t[0].matmul(&t[1]));
}

#[test]
fn grad_linear() {
    let x = away(&[3, 4], 80, 1.0);
    let w = away(&[5, 4], 81, 1.0);
    let b = away(&[5], 82, 1.0);
    check("linear with bias", &[x.clone(), w.clone(), b.clone()], |t| t[0].linear(&t[1], Some(&t[2])));
    check("linear without bias", &[x.clone(), w.clone()], |t| t[0].linear(&t[1], None));
    let x3 = away(&[2, 3, 4], 83, 1.0);
    check("linear [2,3,4] (folded rows)", &[x3, w.clone(), b.clone()], |t| t[0].linear(&t[1], Some(&t[2])));
    let xt = away(&[4, 3], 84, 1.0);
    check("linear transposed input", &[xt, w, b], |t| t[0].t()?.linear(&t[1], Some(&t[2])));
}

#[test]
fn grad_lstm_sequence() {
    let gx = away(&[4, 2, 12], 85, 1.0);
    let w = away(&[12, 3], 86, 0.5);
    let (h0, c0) = (away(&[2, 3], 87, 1.0), away(&[2, 3], 88, 1.0));
    check("lstm_sequence from zero states", &[gx.clone(), w.clone()], |t| t[0].lstm_sequence(&t[1], None, None));
    check("lstm_sequence from h0, c0", &[gx.clone(), w.clone(), h0.clone(), c0.clone()], |t| {
        t[0].lstm_sequence(&t[1], Some(&t[2]), Some(&t[3]))
    });
    check("lstm_sequence from h0 only", &[gx.clone(), w.clone(), h0], |t| t[0].lstm_sequence(&t[1], Some(&t[2]), None));
    check("lstm_sequence composite", &[gx, w, c0], |t| {
        jizen_tensor::lstm_sequence_composite(&t[0], &t[1], None, Some(&t[2]))
    });
}

// ------------------------------------------------------------------ movement

#[test]
fn grad_movement() {
    let x = away(&[2, 3, 4], 30, 1.0);
    check("reshape", &[x.clone()], |t| t[0].reshape(&[6, 4]));
    check("reshape of a transposed view (copy)", &[x.clone()], |t| t[0].transpose(0, 2)?.reshape(&[4, 6]));
    check("permute", &[x.clone()], |t| t[0].permute(&[2, 0, 1]));
    check("transpose", &[x.clone()], |t| t[0].transpose(1, 2));
    check("contiguous", &[x.clone()], |t| t[0].transpose(1, 2)?.contiguous());
    check("narrow", &[x.clone()], |t| t[0].narrow(2, 1, 2));
    check("narrow at start", &[x.clone()], |t| t[0].narrow(1, 0, 2));
    check("unsqueeze/squeeze/flatten", &[x.clone()], |t| t[0].unsqueeze(1)?.squeeze(1)?.flatten(1, 2));
    let small = away(&[3, 1], 31, 1.0);
    check("expand", &[small.clone()], |t| t[0].expand(&[2, 3, 4]));
    let y = away(&[2, 2, 4], 32, 1.0);
    check("cat", &[x.clone(), y], |t| Tensor::cat(&[&t[0], &t[1]], 1));
    let z = away(&[2, 3, 4], 33, 1.0);
    check("stack", &[x.clone(), z], |t| Tensor::stack(&[&t[0], &t[1]], 0));
    check("split", &[x.clone()], |t| {
        let parts = t[0].split(3, 2)?;
        parts[0].sum(&[2], false)?.add(&parts[1].sum(&[2], false)?.mul_scalar(2.0)?)
    });
    let img = away(&[1, 2, 3, 3], 34, 1.0);
    check("pad2d", &[img], |t| t[0].pad2d([1, 2, 0, 1], 0.5));
}

#[test]
fn grad_cast_is_identity() {
    // f64 -> f32 -> f64 round trip: the gradient comes back through f32, i.e. rounded to f32.
    let x = away(&[5], 35, 1.0).requires_grad_(true);
    let y = x.to_dtype(DType::F32).unwrap().to_dtype(DType::F64).unwrap();
    let w = away(&[5], 36, 1.0);
    let g = jizen_tensor::grad(&y.mul(&w).unwrap().sum_all().unwrap(), &[&x], None, false).unwrap();
    let expect: Vec<f64> = w.to_vec::<f64>().unwrap().iter().map(|&v| v as f32 as f64).collect();
    assert_eq!(g[0].as_ref().unwrap().to_vec::<f64>().unwrap(), expect);
    assert_eq!(g[0].as_ref().unwrap().dtype(), DType::F64);
}

// ------------------------------------------------------------------ indexing

#[test]
fn grad_indexing() {
    let x = away(&[4, 3], 37, 1.0);
    let i = idx(&[2, 0, 2, 3], &[4]);
    check("index_select dim 0 (repeats)", &[x.clone()], |t| t[0].index_select(0, &i));
    let j = idx(&[1, 1, 0], &[3]);
    check("index_select dim 1", &[x.clone()], |t| t[0].index_select(1, &j));
    let src = away(&[4, 2], 38, 1.0);
    let k = idx(&[2, 0], &[2]);
    check("index_add", &[x.clone(), src], |t| t[0].index_add(1, &k, &t[1]));
    let g = idx(&[0, 2, 1, 1, 0, 0, 2, 2], &[4, 2]);
    check("gather dim 1", &[x.clone()], |t| t[0].gather(1, &g));
    let g0 = idx(&[3, 0, 1, 2, 2, 0], &[2, 3]);
    check("gather dim 0", &[x.clone()], |t| t[0].gather(0, &g0));
    let s = away(&[2, 3], 39, 1.0);
    check("scatter_add dim 0", &[x.clone(), s], |t| t[0].scatter_add(0, &g0, &t[1]));
    let table = away(&[5, 3], 40, 1.0);
    let ids = idx(&[4, 0, 4, 1, 2, 2], &[2, 3]);
    check("embedding", &[table], |t| t[0].embedding(&ids));
}

// ------------------------------------------------------------------ convolution and pooling

#[test]
fn grad_im2col_col2im() {
    let x = away(&[2, 2, 5, 4], 41, 1.0);
    check("im2col", &[x], |t| t[0].im2col([3, 2], [2, 1], [1, 1], [1, 2]));
    // 5x4 image, kernel 3x2, stride (2,1), padding 1, dilation (1,2): 3x4 windows.
    let cols = away(&[2, 2 * 3 * 2, 3 * 4], 42, 1.0);
    check("col2im", &[cols], |t| t[0].col2im([5, 4], [3, 2], [2, 1], [1, 1], [1, 2]));
}

#[test]
fn grad_conv2d() {
    let x = away(&[2, 2, 5, 5], 43, 1.0);
    let w = away(&[3, 2, 3, 3], 44, 0.5);
    let b = away(&[3], 45, 0.5);
    check("conv2d", &[x.clone(), w.clone(), b.clone()], |t| t[0].conv2d(&t[1], Some(&t[2]), ConvOptions::default()));
    check("conv2d stride 2 padding 1", &[x.clone(), w.clone()], |t| {
        t[0].conv2d(&t[1], None, ConvOptions::default().stride(2).padding(1))
    });
    check("conv2d dilation 2", &[x.clone(), w.clone()], |t| {
        t[0].conv2d(&t[1], None, ConvOptions::default().dilation(2).padding(2))
    });
    let x4 = away(&[1, 4, 4, 4], 46, 1.0);
    let wg = away(&[6, 2, 3, 3], 47, 0.5);
    check("conv2d groups 2", &[x4, wg], |t| t[0].conv2d(&t[1], None, ConvOptions::default().groups(2).padding(1)));
    let rect = ConvOptions { stride: [2, 1], padding: [0, 1], ..Default::default() };
    let wr = away(&[2, 2, 2, 3], 48, 0.5);
    check("conv2d rectangular", &[x, wr], |t| t[0].conv2d(&t[1], None, rect));
}

#[test]
fn grad_conv2d_gradient_primitives() {
    // conv2d's backward is made of these two primitives, and their own gradients are members of
    // the same family (conv2d, conv2d_grad_input, conv2d_grad_weight): gradients of gradients.
    let x = away(&[2, 2, 5, 5], 60, 1.0);
    let w = away(&[3, 2, 3, 3], 61, 0.5);
    let s2 = ConvOptions::default().stride(2).padding(1); // 5x5 -> 3x3
    let gy = away(&[2, 3, 3, 3], 62, 1.0);
    check("conv2d_grad_input stride 2 padding 1", &[gy.clone(), w.clone()], |t| {
        t[0].conv2d_grad_input(&t[1], [5, 5], s2)
    });
    check("conv2d_grad_weight stride 2 padding 1", &[x.clone(), gy], |t| t[0].conv2d_grad_weight(&t[1], [3, 3], s2));
    let d2 = ConvOptions::default().dilation(2).padding(1); // 5x5, 3x3 dilated 2 -> 3x3
    let gd = away(&[2, 3, 3, 3], 63, 1.0);
    check("conv2d_grad_input dilation 2", &[gd.clone(), w.clone()], |t| t[0].conv2d_grad_input(&t[1], [5, 5], d2));
    check("conv2d_grad_weight dilation 2", &[x.clone(), gd], |t| t[0].conv2d_grad_weight(&t[1], [3, 3], d2));
    let x4 = away(&[2, 4, 4, 3], 64, 1.0);
    let wg = away(&[6, 2, 3, 2], 65, 0.5);
    let g2 = ConvOptions { groups: 2, padding: [1, 0], ..Default::default() }; // 4x3 -> 4x2
    let gg = away(&[2, 6, 4, 2], 66, 1.0);
    check("conv2d_grad_input groups 2 rectangular", &[gg.clone(), wg.clone()], |t| {
        t[0].conv2d_grad_input(&t[1], [4, 3], g2)
    });
    check("conv2d_grad_weight groups 2 rectangular", &[x4.clone(), gg], |t| t[0].conv2d_grad_weight(&t[1], [3, 2], g2));
    // A 1x1 kernel reads the image as its own columns (no im2col).
    let w1 = away(&[3, 4, 1, 1], 67, 0.5);
    let g1 = away(&[2, 3, 4, 3], 68, 1.0);
    check("conv2d 1x1", &[x4.clone(), w1.clone()], |t| t[0].conv2d(&t[1], None, ConvOptions::default()));
    check("conv2d_grad_input 1x1", &[g1.clone(), w1], |t| {
        t[0].conv2d_grad_input(&t[1], [4, 3], ConvOptions::default())
    });
    check("conv2d_grad_weight 1x1", &[x4, g1], |t| t[0].conv2d_grad_weight(&t[1], [1, 1], ConvOptions::default()));
}

#[test]
fn grad_conv_transpose2d() {
    let x = away(&[2, 3, 3, 3], 49, 1.0);
    let w = away(&[3, 2, 3, 3], 50, 0.5);
    let b = away(&[2], 51, 0.5);
    check("conv_transpose2d", &[x.clone(), w.clone(), b], |t| {
        t[0].conv_transpose2d(&t[1], Some(&t[2]), ConvOptions::default())
    });
    check("conv_transpose2d stride 2 pad 1 out_pad 1", &[x.clone(), w], |t| {
        t[0].conv_transpose2d(&t[1], None, ConvOptions::default().stride(2).padding(1).output_padding(1))
    });
    let x4 = away(&[1, 4, 3, 3], 52, 1.0);
    let wg = away(&[4, 1, 2, 2], 53, 0.5);
    check("conv_transpose2d groups 2 dilation 2", &[x4, wg], |t| {
        t[0].conv_transpose2d(&t[1], None, ConvOptions::default().groups(2).dilation(2))
    });
}

#[test]
fn grad_pooling() {
    let x = distinct(&[2, 2, 6, 5], 54);
    check("max_pool2d 2x2", &[x.clone()], |t| t[0].max_pool2d([2, 2], [2, 2], [0, 0], [1, 1]));
    check("max_pool2d 3x3 stride 2 pad 1", &[x.clone()], |t| t[0].max_pool2d([3, 3], [2, 2], [1, 1], [1, 1]));
    check("max_pool2d dilation 2", &[x.clone()], |t| t[0].max_pool2d([2, 2], [1, 1], [0, 0], [2, 2]));
    check("avg_pool2d", &[x.clone()], |t| t[0].avg_pool2d([2, 2], [2, 2], [0, 0], true));
    check("avg_pool2d pad, count_include_pad", &[x.clone()], |t| t[0].avg_pool2d([3, 3], [2, 2], [1, 1], true));
    check("avg_pool2d pad, exclude pad", &[x.clone()], |t| t[0].avg_pool2d([3, 3], [2, 2], [1, 1], false));
    check("adaptive_avg_pool2d 1x1", &[x.clone()], |t| t[0].adaptive_avg_pool2d([1, 1]));
    check("adaptive_avg_pool2d 4x3", &[x], |t| t[0].adaptive_avg_pool2d([4, 3]));
}

// ------------------------------------------------------------------ softmax family and losses

#[test]
fn grad_softmax_family() {
    let x = away(&[3, 5], 55, 2.0);
    check("softmax axis 1", &[x.clone()], |t| t[0].softmax(1));
    check("softmax axis 0", &[x.clone()], |t| t[0].softmax(0));
    check("log_softmax", &[x.clone()], |t| t[0].log_softmax(-1));
    check("logsumexp", &[x], |t| t[0].logsumexp(1, false));
}

#[test]
fn grad_losses() {
    let logits = away(&[4, 5], 56, 2.0);
    let y = idx(&[1, 0, 4, 2], &[4]);
    check("cross_entropy", &[logits.clone()], |t| cross_entropy(&t[0], &y, CrossEntropyOptions::default()));
    let smooth = CrossEntropyOptions { label_smoothing: 0.1, ..Default::default() };
    check("cross_entropy label smoothing", &[logits.clone()], |t| cross_entropy(&t[0], &y, smooth));
    let yi = idx(&[1, -100, 4, -100], &[4]);
    let ign = CrossEntropyOptions { ignore_index: Some(-100), label_smoothing: 0.2, ..Default::default() };
    check("cross_entropy ignore_index", &[logits.clone()], |t| cross_entropy(&t[0], &yi, ign));
    let none = CrossEntropyOptions { reduction: Reduction::None, ..Default::default() };
    check("cross_entropy reduction none", &[logits.clone()], |t| cross_entropy(&t[0], &y, none));
    let l4 = away(&[2, 3, 2, 2], 57, 2.0);
    let y4 = idx(&[0, 1, 2, 2, 1, 0, 0, 1], &[2, 2, 2]);
    check("cross_entropy [N,C,H,W]", &[l4], |t| cross_entropy(&t[0], &y4, CrossEntropyOptions::default()));
    check("nll_loss", &[logits.clone()], |t| nll_loss(&t[0].log_softmax(1)?, &y, Reduction::Mean));
    check("multi_margin_loss", &[logits.clone()], |t| multi_margin_loss(&t[0], &y, 1.0, Reduction::Mean));
    let target = away(&[4, 5], 58, 1.0);
    check("mse_loss", &[logits.clone(), target.clone()], |t| mse_loss(&t[0], &t[1], Reduction::Mean));
    let p = positive(&[4, 5], 59, 0.0, 1.0);
    check("binary_cross_entropy_with_logits", &[logits, p], |t| {
        binary_cross_entropy_with_logits(&t[0], &t[1], Reduction::Sum)
    });
}

#[test]
fn grad_dropout() {
    // The same seed gives the same mask on every evaluation, so the function is deterministic.
    let x = away(&[4, 6], 60, 1.0);
    check("dropout", &[x], |t| t[0].dropout(0.3, true, &mut Rng::new(61)));
}

#[test]
fn grad_composed_mlp() {
    // Gradients through a whole small network at once.
    let x = away(&[5, 4], 62, 1.0);
    let w1 = away(&[4, 6], 63, 0.7);
    let b1 = away(&[6], 64, 0.2);
    let w2 = away(&[6, 3], 65, 0.7);
    let y = idx(&[0, 2, 1, 1, 0], &[5]);
    check("mlp", &[x, w1, b1, w2], |t| {
        let h = t[0].matmul(&t[1])?.add(&t[2])?.tanh()?;
        cross_entropy(&h.matmul(&t[3])?, &y, CrossEntropyOptions::default())
    });
}

#[test]
fn harness_catches_a_wrong_gradient() {
    // `detach` hides half of d(x*x)/dx from autograd, so analytic (x) and numeric (2x) differ:
    // the harness must say so rather than pass.
    let x = away(&[3], 66, 1.0);
    let r = GradCheck::default().run(&[x], |t| t[0].detach().mul(&t[0]));
    let msg = r.expect_err("a wrong gradient must fail the check").to_string();
    assert!(msg.contains("gradient check failed"), "{msg}");
}
