//! Times batch-1 inference of the benchmark's MLP (784-512-256-10, ReLU) written with tensor
//! ops, without gradient tracking: the `infer` workload of `jizen bench` without the nn layer.
//!
//! ```text
//! JIZEN_THREADS=2 cargo run --release -p jizen-tensor --example infer_step [-- ROUNDS]
//! ```

use std::time::Instant;

use jizen_tensor::{no_grad, DType, Rng, Tensor};

/// Tensor buffers start on a cache line (see `jizen_tensor::alloc`).
#[global_allocator]
static ALLOC: jizen_tensor::AlignedAlloc = jizen_tensor::AlignedAlloc;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(21);
    let mut rng = Rng::new(0);
    let r = |s: &[usize], rng: &mut Rng| Tensor::randn(s, DType::F32, rng);
    let layers: Vec<(Tensor, Tensor)> =
        [(784, 512), (512, 256), (256, 10)].iter().map(|&(i, o)| (r(&[o, i], &mut rng), r(&[o], &mut rng))).collect();
    let x = r(&[1, 784], &mut rng);
    let forward = || {
        no_grad(|| {
            let mut h = x.clone();
            for (i, (w, b)) in layers.iter().enumerate() {
                h = h.linear(w, Some(b)).unwrap();
                if i + 1 < layers.len() {
                    h = h.relu().unwrap();
                }
            }
            h
        })
    };
    let calls = 2000;
    for _ in 0..calls {
        forward();
    }
    let mut us: Vec<f64> = (0..rounds)
        .map(|_| {
            let s = Instant::now();
            for _ in 0..calls {
                forward();
            }
            s.elapsed().as_secs_f64() * 1e6 / calls as f64
        })
        .collect();
    us.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "infer 784-512-256-10 batch 1: {:.2} us/call (p10 {:.2}, p90 {:.2}), {} threads",
        us[rounds / 2],
        us[rounds / 10],
        us[rounds * 9 / 10],
        jizen_tensor::num_threads()
    );
}
