//! Times the convolution kernels alone and one training step of a small MNIST CNN written with
//! tensor ops (conv 1→32, relu, 2×2 max-pool, conv 32→64, relu, 2×2 max-pool, linear 3136→128,
//! relu, linear 128→10, cross-entropy; batch 64).
//!
//! ```text
//! JIZEN_THREADS=2 cargo run --release -p jizen-tensor --example conv_step [-- ROUNDS]
//! JIZEN_CONV=batched ...   # the whole-batch im2col + one GEMM composite, for comparison
//! ```

use std::time::Instant;

use jizen_tensor::{cross_entropy, grad, ConvOptions, DType, Rng, Tensor};

/// Tensor buffers start on a cache line (see `jizen_tensor::alloc`).
#[global_allocator]
static ALLOC: jizen_tensor::AlignedAlloc = jizen_tensor::AlignedAlloc;

/// Median milliseconds of `reps` runs of `f` (after two warm-up runs).
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[reps / 2]
}

fn main() {
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let mut rng = Rng::new(0);
    let o = ConvOptions::default().padding(1);
    let r = |s: &[usize], rng: &mut Rng, v: bool| Tensor::randn(s, DType::F32, rng).requires_grad_(v);
    for (name, xs, ws) in [("mnist1", [64, 1, 28, 28], [32, 1, 3, 3]), ("mnist2", [64, 32, 14, 14], [64, 32, 3, 3])] {
        let x = r(&xs, &mut rng, true);
        let w = r(&ws, &mut rng, true);
        let y = x.conv2d(&w, None, o).unwrap();
        let gy = r(y.shape(), &mut rng, false);
        let f = time(reps, || {
            jizen_tensor::no_grad(|| x.conv2d(&w, None, o).unwrap());
        });
        let gi = time(reps, || {
            gy.conv2d_grad_input(&w, [xs[2], xs[3]], o).unwrap();
        });
        let gw = time(reps, || {
            x.conv2d_grad_weight(&gy, [3, 3], o).unwrap();
        });
        let fb = time(reps, || {
            let y = x.conv2d(&w, None, o).unwrap();
            grad(&y, &[&x, &w], Some(&gy), false).unwrap();
        });
        println!("{name}: fwd {f:.3} ms, grad_input {gi:.3} ms, grad_weight {gw:.3} ms, fwd+bwd (x, w) {fb:.3} ms");
    }
    // The CNN step.
    let p = |s: &[usize], scale: f64, rng: &mut Rng| {
        Tensor::randn(s, DType::F32, rng).mul_scalar(scale).unwrap().requires_grad_(true)
    };
    let (w1, b1) = (p(&[32, 1, 3, 3], 0.3, &mut rng), p(&[32], 0.1, &mut rng));
    let (w2, b2) = (p(&[64, 32, 3, 3], 0.06, &mut rng), p(&[64], 0.1, &mut rng));
    let (w3, b3) = (p(&[128, 3136], 0.02, &mut rng), p(&[128], 0.1, &mut rng));
    let (w4, b4) = (p(&[10, 128], 0.1, &mut rng), p(&[10], 0.1, &mut rng));
    let x = Tensor::randn(&[64, 1, 28, 28], DType::F32, &mut rng);
    let y = Tensor::from_vec((0..64).map(|i| i % 10).collect::<Vec<i64>>(), &[64]).unwrap();
    let params = [&w1, &b1, &w2, &b2, &w3, &b3, &w4, &b4];
    let step = || {
        let pool = |t: Tensor| t.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1]).unwrap();
        let h = pool(x.conv2d(&w1, Some(&b1), o).unwrap().relu().unwrap());
        let h = pool(h.conv2d(&w2, Some(&b2), o).unwrap().relu().unwrap());
        let h = h.reshape(&[64, 3136]).unwrap();
        let h = h.matmul(&w3.t().unwrap()).unwrap().add(&b3).unwrap().relu().unwrap();
        let logits = h.matmul(&w4.t().unwrap()).unwrap().add(&b4).unwrap();
        let loss = cross_entropy(&logits, &y, Default::default()).unwrap();
        grad(&loss, &params, None, false).unwrap();
    };
    println!("cnn step (fwd + bwd, batch 64): {:.3} ms", time(reps, step));
}
