//! Times forward + backward of the PTB-small language model's recurrent part: a 2-layer LSTM,
//! 200 inputs and 200 hidden units, batch 20, 35 steps, float32, from a carried (zero) state.
//!
//! ```sh
//! JIZEN_THREADS=2 cargo run --release -p jizen-nn --example lstm_timing
//! /root/venvs/ref/bin/python scripts/bench/torch_lstm_timing.py --threads 2   # PyTorch's nn.LSTM, same work
//! ```
//!
//! The loss is `sum(out * cot)` with a fixed random cotangent, so the backward pass is the full
//! one an LM's loss would start. Prints the median over the timed iterations (after warm-up) of
//! the forward pass, the backward pass and both. Numbers from a busy machine mean nothing: check
//! `uptime` first.

use std::time::Instant;

use jizen_nn::{Lstm, LstmState, Module, RnnConfig};
use jizen_tensor::{num_threads, DType, Rng, Tensor};

/// Tensor buffers start on a cache line (see `jizen_tensor::alloc`).
#[global_allocator]
static ALLOC: jizen_tensor::AlignedAlloc = jizen_tensor::AlignedAlloc;

const T: usize = 35;
const N: usize = 20;
const H: usize = 200;
const LAYERS: usize = 2;
const WARMUP: usize = 5;
const ITERS: usize = 30;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> jizen_tensor::Result<()> {
    let mut rng = Rng::new(0);
    let lstm = Lstm::new(RnnConfig::new(H, H).num_layers(LAYERS), DType::F32, &mut rng)?;
    // The embedding's output in an LM: a tensor that needs its gradient.
    let x = Tensor::randn(&[T, N, H], DType::F32, &mut rng).requires_grad_(true); // [T, N, in]
    let cot = Tensor::randn(&[T, N, H], DType::F32, &mut rng); // [T, N, H]
    let state = LstmState::zeros(LAYERS, N, H, DType::F32);
    let (mut fwd, mut bwd, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..WARMUP + ITERS {
        for p in lstm.parameters() {
            p.zero_grad();
        }
        let t0 = Instant::now();
        let (out, next) = lstm.forward_with_state(&x, Some(&state))?;
        let t1 = Instant::now();
        let grads = out.mul(&cot)?.sum_all()?.backward()?;
        let t2 = Instant::now();
        assert!(grads.get(&x).is_some() && next.h.shape() == [LAYERS, N, H]);
        if i >= WARMUP {
            fwd.push((t1 - t0).as_secs_f64() * 1e3);
            bwd.push((t2 - t1).as_secs_f64() * 1e3);
            total.push((t2 - t0).as_secs_f64() * 1e3);
        }
    }
    println!(
        "jizen Lstm {LAYERS}x{H}, batch {N}, {T} steps, {} threads: forward {:.2} ms, backward {:.2} ms, \
         forward+backward {:.2} ms (median of {ITERS})",
        num_threads(),
        median(fwd),
        median(bwd),
        median(total)
    );
    Ok(())
}
