//! Kernel benchmarks: the hot paths of training, each with a PyTorch twin of the same shapes in
//! `scripts/bench/torch_kernels.py` (compare both with `scripts/bench/compare_kernels.py`).
//!
//! ```text
//! JIZEN_THREADS=2 cargo bench -p jizen-tensor --bench kernels
//! JIZEN_THREADS=2 cargo bench -p jizen-tensor --bench kernels -- sgemm      # one group
//! ```
//!
//! | id                          | what is timed                                                   |
//! |-----------------------------|-----------------------------------------------------------------|
//! | `sgemm/1024`                | f32 `[1024,1024] @ [1024,1024]` (throughput = 2·1024³ FLOP)      |
//! | `conv2d_fwd/mnist{1,2}`     | `conv2d` with bias, padding 1, no graph recorded                 |
//! | `conv2d_fwd_bwd/mnist{1,2}` | the same, plus gradients for input, weight and bias             |
//! | `softmax/128x10000`         | softmax over the last axis, forward only                        |
//! | `cross_entropy/128x10000`   | mean cross-entropy from logits (i64 targets) + its gradient     |
//!
//! `mnist1`: x [64,1,28,28], w [32,1,3,3]; `mnist2`: x [64,32,14,14], w [64,32,3,3].
//! Backward passes use `jizen_tensor::grad(out, inputs, Some(cot), false)`, i.e. the gradient of
//! `(out * cot).sum()` without the extra product and sum; the PyTorch twin does the same with
//! `torch.autograd.grad(out, inputs, cot)`.
//!
//! Sample counts are modest (whole bench ≈ 1 minute). Criterion's command-line flags override
//! them, e.g. `-- --warm-up-time 0.05 --measurement-time 0.1` for a smoke test; results land in
//! `target/criterion/<group>/<bench>/new/estimates.json`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jizen_tensor::{cross_entropy, grad, ConvOptions, CrossEntropyOptions, DType, Rng, Tensor};

/// Tensor buffers start on a cache line (see `jizen_tensor::alloc`).
#[global_allocator]
static ALLOC: jizen_tensor::AlignedAlloc = jizen_tensor::AlignedAlloc;

/// Standard-normal f32 tensor, optionally a variable.
fn randn(shape: &[usize], rng: &mut Rng, variable: bool) -> Tensor {
    Tensor::randn(shape, DType::F32, rng).requires_grad_(variable)
}

fn sgemm(c: &mut Criterion) {
    const N: usize = 1024;
    let mut rng = Rng::new(1);
    let a = randn(&[N, N], &mut rng, false);
    let b = randn(&[N, N], &mut rng, false);
    // A few entries against an f64 dot product, so that a broken kernel cannot look fast.
    let out = a.matmul(&b).unwrap();
    let (va, vb, vc) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap(), out.to_vec::<f32>().unwrap());
    for t in 0..8 {
        let (i, j) = (rng.below(N as u64) as usize, rng.below(N as u64) as usize);
        let want: f64 = (0..N).map(|k| va[i * N + k] as f64 * vb[k * N + j] as f64).sum();
        let got = vc[i * N + j] as f64;
        assert!(
            (got - want).abs() <= 1e-3 * (1.0 + want.abs()),
            "sgemm check {t}: c[{i},{j}] = {got}, expected {want}"
        );
    }

    let mut g = c.benchmark_group("sgemm");
    g.throughput(Throughput::Elements(2 * (N as u64).pow(3)));
    g.bench_function("1024", |bch| bch.iter(|| black_box(a.matmul(black_box(&b)).unwrap())));
    g.finish();
}

/// (name, input shape, weight shape) of the convolution workloads.
const CONVS: [(&str, [usize; 4], [usize; 4]); 2] =
    [("mnist1", [64, 1, 28, 28], [32, 1, 3, 3]), ("mnist2", [64, 32, 14, 14], [64, 32, 3, 3])];

fn conv_opts() -> ConvOptions {
    ConvOptions::default().padding(1)
}

fn conv2d_fwd(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv2d_fwd");
    for (name, xs, ws) in CONVS {
        let mut rng = Rng::new(2);
        let x = randn(&xs, &mut rng, false);
        let w = randn(&ws, &mut rng, false).mul_scalar(0.1).unwrap();
        let b = randn(&[ws[0]], &mut rng, false);
        g.bench_function(name, |bch| bch.iter(|| black_box(x.conv2d(&w, Some(&b), conv_opts()).unwrap())));
    }
    g.finish();
}

fn conv2d_fwd_bwd(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv2d_fwd_bwd");
    for (name, xs, ws) in CONVS {
        let mut rng = Rng::new(3);
        let x = randn(&xs, &mut rng, true);
        let w = randn(&ws, &mut rng, false).mul_scalar(0.1).unwrap().requires_grad_(true);
        let b = randn(&[ws[0]], &mut rng, true);
        let out_shape = [xs[0], ws[0], xs[2], xs[3]]; // padding 1, 3x3, stride 1: same size
        let cot = randn(&out_shape, &mut rng, false);
        let step = || {
            let out = x.conv2d(&w, Some(&b), conv_opts()).unwrap();
            grad(&out, &[&x, &w, &b], Some(&cot), false).unwrap()
        };
        let gs = step();
        for (t, gt) in [&x, &w, &b].into_iter().zip(&gs) {
            let gt = gt.as_ref().expect("conv2d_fwd_bwd: missing gradient");
            assert_eq!(gt.shape(), t.shape(), "conv2d_fwd_bwd/{name}: gradient shape");
        }
        g.bench_function(name, |bch| bch.iter(|| black_box(step())));
    }
    g.finish();
}

const ROWS: usize = 128;
const CLASSES: usize = 10_000;

fn softmax(c: &mut Criterion) {
    let mut rng = Rng::new(4);
    let x = randn(&[ROWS, CLASSES], &mut rng, false);
    let mut g = c.benchmark_group("softmax");
    g.bench_function("128x10000", |bch| bch.iter(|| black_box(x.softmax(-1).unwrap())));
    g.finish();
}

fn cross_entropy_fwd_bwd(c: &mut Criterion) {
    let mut rng = Rng::new(5);
    let logits = randn(&[ROWS, CLASSES], &mut rng, true);
    let y: Vec<i64> = (0..ROWS).map(|_| rng.below(CLASSES as u64) as i64).collect();
    let targets = Tensor::from_vec(y, &[ROWS]).unwrap();
    let step = || {
        let loss = cross_entropy(&logits, &targets, CrossEntropyOptions::default()).unwrap();
        let g = grad(&loss, &[&logits], None, false).unwrap();
        (loss, g)
    };
    let (_, g0) = step();
    assert_eq!(g0[0].as_ref().expect("cross_entropy: missing gradient").shape(), &[ROWS, CLASSES]);
    let mut g = c.benchmark_group("cross_entropy");
    g.bench_function("128x10000", |bch| bch.iter(|| black_box(step())));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_millis(1000))
        .measurement_time(Duration::from_secs(3))
        .noise_threshold(0.03)
}

criterion_group! {
    name = kernels;
    config = config();
    targets = sgemm, conv2d_fwd, conv2d_fwd_bwd, softmax, cross_entropy_fwd_bwd
}
criterion_main!(kernels);
