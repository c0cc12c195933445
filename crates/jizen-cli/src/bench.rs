//! `jizen bench WORKLOAD`: a training step (forward, backward, optimizer update) on synthetic
//! data of the right shape, f32, fixed seeds; 10 warm-up steps, then 50 timed (`--warmup`,
//! `--steps`); one JSON line with the median, p10 and p90, the peak resident memory, the threads,
//! the vector extension the kernels ran with and the cores' round-trip latency before and after
//! the timed samples, and with `--series` every timed sample. The
//! PyTorch twin is `scripts/bench/torch_workloads.py`; `scripts/bench/compare_workloads.py` runs
//! both.

use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use jizen_data::{Compose, DataLoader, Dataset, ImageSet, LoaderConfig, Transformed};
use jizen_models::{zoo, Model};
use jizen_nn::{Adam, AdamConfig, Module, Optimizer, Sgd, SgdConfig};
use jizen_tensor::{cross_entropy, no_grad, DType, Rng, Tensor};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// 784-512-256-10 ReLU MLP, batch 128, cross-entropy, SGD momentum 0.9, lr 0.05.
    Mlp,
    /// The zoo CNN on 1×28×28, batch 64, Adam 1e-3.
    Cnn,
    /// Word LM step: vocabulary 10,000, embedding 200, 2-layer LSTM of 200, 35 steps × batch 20,
    /// decoder to 10,000, cross-entropy over 700 positions, SGD lr 1, clipping at 5.
    Lstm,
    /// The `mlp` forward pass at batch 1 without gradient tracking (microseconds per call).
    Infer,
    /// sgemm 1024×1024×1024 (GFLOP/s).
    Gemm,
    /// One epoch of `mlp` over 60,000 MNIST-shaped examples, data loading included.
    EpochMlp,
    /// One epoch of `cnn` over 60,000 MNIST-shaped examples, data loading included.
    EpochCnn,
}

/// Arguments of `jizen bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    workload: Workload,
    /// 2 warm-up and 5 timed steps (to check that the benchmark runs, not to measure).
    #[arg(long)]
    quick: bool,
    /// Untimed samples before the timed ones (default 10; epochs: 0; with --quick 2).
    #[arg(long, value_name = "N")]
    warmup: Option<usize>,
    /// Timed samples: steps, calls, products or epochs (default 50; epochs: 3; with --quick 5,
    /// epochs 1).
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Also print every timed sample, in the order taken (`"series"`), to see warm-up or drift.
    #[arg(long)]
    series: bool,
    /// `lstm` only: embedding and hidden size (200: PTB small; 650: the medium configuration).
    #[arg(long, default_value_t = 200)]
    hidden: usize,
}

/// Median, p10 and p90 of `v` (nearest rank).
fn percentiles(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    (at(0.5), at(0.1), at(0.9))
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The median time, in nanoseconds, for two threads to pass a cache line to each other and back
/// (three runs of 10,000 round trips), or `None` with fewer than 2 CPUs or when a round trip
/// stalls (threads sharing a core).
///
/// The threads are not pinned: they land where the benchmark's own busy threads land. On this
/// project's 2-core KVM machine a round trip took 31–116 ns (mostly 48–76) in some periods and
/// 386–560 ns in others (the two virtual cores placed near each other on the host or far apart:
/// 192 readings from this probe on 2026-12-05), and the
/// `mlp` step at 2 threads ran about 20% slower in the far periods (BENCHMARKS.md). A benchmark
/// reports it before and after its timed steps so that each run says which it met.
fn core_to_core_ns() -> Option<f64> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    #[repr(align(128))]
    struct Line(AtomicU64);
    const TRIPS: u64 = 10_000;
    const RUNS: u64 = 3;
    let line = Line(AtomicU64::new(0));
    let gave_up = AtomicBool::new(false);
    // Waits until the line holds `v`; false when that took over 0.2 s or the other side gave up.
    let wait_for = |v: u64| {
        let start = Instant::now();
        let mut spins = 0u32;
        while line.0.load(Acquire) != v {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) && (gave_up.load(Relaxed) || start.elapsed().as_millis() > 200) {
                gave_up.store(true, Relaxed);
                return false;
            }
            std::hint::spin_loop();
        }
        true
    };
    let mut times = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..TRIPS * RUNS {
                if !wait_for(2 * i + 1) {
                    return;
                }
                line.0.store(2 * i + 2, Release);
            }
        });
        for run in 0..RUNS {
            let t = Instant::now();
            for i in run * TRIPS..(run + 1) * TRIPS {
                line.0.store(2 * i + 1, Release);
                if !wait_for(2 * i + 2) {
                    return;
                }
            }
            times.push(t.elapsed().as_nanos() as f64 / TRIPS as f64);
        }
    });
    // The measuring side returns early only after `wait_for` has set `gave_up`.
    if gave_up.load(Relaxed) {
        return None;
    }
    times.sort_by(f64::total_cmp);
    Some(times[times.len() / 2])
}

/// Runs one step on jizen's pool, as the trainer does (`parallel::on_pool`).
fn on_pool(step: &mut (impl FnMut() -> Result<()> + Send)) -> Result<()> {
    Ok(jizen_tensor::parallel::on_pool(|| step().map_err(|e| e.to_string()))?)
}

/// Times `step` after `warmup` untimed calls; milliseconds per call. Training steps run on
/// jizen's pool as the trainer runs them (`pool`); inference and the product on the caller's
/// thread, as an application would call them.
fn time_steps(
    warmup: usize,
    timed: usize,
    pool: bool,
    mut step: impl FnMut() -> Result<()> + Send,
) -> Result<Vec<f64>> {
    let mut run = || if pool { on_pool(&mut step) } else { step() };
    for _ in 0..warmup {
        run()?;
    }
    let mut out = Vec::with_capacity(timed);
    for _ in 0..timed {
        let t = Instant::now();
        run()?;
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

/// A training step of `model` on `(x, y)`.
fn train_step(model: &dyn Module, opt: &mut dyn Optimizer, x: &Tensor, y: &Tensor) -> Result<()> {
    opt.zero_grad();
    let loss = cross_entropy(&model.forward(x)?, y, Default::default())?;
    loss.backward_free_graph()?;
    opt.step()?;
    Ok(())
}

fn mlp_model() -> Result<Model> {
    Ok(Model::build(&zoo("mlp", &[784], 10)?, DType::F32, 0)?)
}

fn cnn_model() -> Result<Model> {
    Ok(Model::build(&zoo("cnn", &[1, 28, 28], 10)?, DType::F32, 0)?)
}

fn sgd(model: &Model) -> Sgd {
    Sgd::new(model.parameters(), SgdConfig { lr: 0.05, momentum: 0.9, ..Default::default() })
}

fn adam(model: &Model) -> Adam {
    Adam::new(model.parameters(), AdamConfig { lr: 1e-3, ..Default::default() })
}

/// 60,000 random MNIST-shaped images with labels (seeded).
fn synthetic_mnist() -> ImageSet {
    let mut rng = Rng::new(0);
    let n = 60_000;
    let pixels = (0..n * 784).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|_| rng.below(10) as u8).collect();
    ImageSet { rows: 28, cols: 28, pixels, labels }
}

/// One epoch over `data` in batches of `batch` (shuffled, prefetched), in milliseconds.
fn epoch(model: &Model, opt: &mut dyn Optimizer, data: Arc<dyn Dataset>, batch: usize) -> Result<f64> {
    let loader = DataLoader::new(
        Arc::new(jizen_train::SharedDataset(data)),
        LoaderConfig { batch_size: batch, ..Default::default() },
    )?;
    let t = Instant::now();
    for b in loader.epoch(0, 0) {
        let (x, y) = b?;
        on_pool(&mut || train_step(model, opt, &x, &y))?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// `jizen bench`.
pub fn run(a: &BenchArgs) -> Result<()> {
    let epochs = matches!(a.workload, Workload::EpochMlp | Workload::EpochCnn);
    let (warmup, timed) = match (a.quick, epochs) {
        (true, false) => (2, 5),
        (false, false) => (10, 50),
        (true, true) => (0, 1),
        (false, true) => (0, 3),
    };
    let (warmup, timed) = (a.warmup.unwrap_or(warmup), a.steps.unwrap_or(timed));
    if timed == 0 {
        return Err("--steps must be at least 1".into());
    }
    if a.hidden != 200 && a.workload != Workload::Lstm {
        return Err("--hidden applies to the lstm workload only".into());
    }
    if a.hidden == 0 {
        return Err("--hidden must be positive".into());
    }
    // The pool first: starting it sets the allocator to one arena for all threads, which only
    // holds for threads started after it (the probe's thread, started first, gave the workers
    // an arena of their own and raised `lstm`'s peak from 132 to 262 MiB).
    jizen_tensor::num_threads();
    let c2c_before = core_to_core_ns();
    let mut rng = Rng::new(0);
    let labels = |n: usize, rng: &mut Rng| -> Result<Tensor> {
        Ok(Tensor::from_vec((0..n).map(|_| rng.below(10) as i64).collect::<Vec<_>>(), &[n])?)
    };
    let (name, unit, mut samples): (&str, &str, Vec<f64>) = match a.workload {
        Workload::Mlp => {
            let model = mlp_model()?;
            let mut opt = sgd(&model);
            let (x, y) = (Tensor::randn(&[128, 784], DType::F32, &mut rng), labels(128, &mut rng)?);
            ("mlp", "ms/step", time_steps(warmup, timed, true, || train_step(&model, &mut opt, &x, &y))?)
        }
        Workload::Cnn => {
            let model = cnn_model()?;
            let mut opt = adam(&model);
            let (x, y) = (Tensor::randn(&[64, 1, 28, 28], DType::F32, &mut rng), labels(64, &mut rng)?);
            ("cnn", "ms/step", time_steps(warmup, timed, true, || train_step(&model, &mut opt, &x, &y))?)
        }
        Workload::Lstm => {
            use jizen_train::lm::{LanguageModel, LmConfig};
            let config = LmConfig {
                vocab: 10_000,
                hidden: a.hidden,
                layers: 2,
                dropout: 0.0,
                tie_weights: false,
                init_range: 0.1,
            };
            let model = LanguageModel::new(config, DType::F32, 0)?;
            let params = model.parameters();
            let mut opt = Sgd::new(params.clone(), SgdConfig { lr: 1.0, ..Default::default() });
            let ids = |rng: &mut Rng| -> Result<Tensor> {
                Ok(Tensor::from_vec((0..700).map(|_| rng.below(10_000) as i64).collect::<Vec<_>>(), &[20, 35])?)
            };
            let (x, y) = (ids(&mut rng)?, ids(&mut rng)?.transpose(0, 1)?.contiguous()?.reshape(&[700])?);
            let step = || -> Result<()> {
                opt.zero_grad();
                let (logits, _) = model.forward_window(&x, None)?;
                cross_entropy(&logits, &y, Default::default())?.backward_free_graph()?;
                jizen_nn::clip_grad_norm(&params, 5.0)?;
                opt.step()?;
                Ok(())
            };
            ("lstm", "ms/step", time_steps(warmup, timed, true, step)?)
        }
        Workload::Infer => {
            let model = mlp_model()?;
            model.set_training(false);
            let x = Tensor::randn(&[1, 784], DType::F32, &mut rng);
            // Each sample is the mean of 100 calls: one call is too short to time alone.
            let calls = 100;
            let ms = time_steps(warmup, timed, false, || {
                for _ in 0..calls {
                    no_grad(|| model.forward(&x))?;
                }
                Ok(())
            })?;
            ("infer", "us/call", ms.into_iter().map(|m| m * 1e3 / calls as f64).collect())
        }
        Workload::Gemm => {
            let (a_, b_) = (
                Tensor::randn(&[1024, 1024], DType::F32, &mut rng),
                Tensor::randn(&[1024, 1024], DType::F32, &mut rng),
            );
            let ms = time_steps(warmup, timed, false, || {
                a_.matmul(&b_)?;
                Ok(())
            })?;
            let flops = 2.0 * 1024f64.powi(3);
            ("gemm", "GFLOP/s", ms.into_iter().map(|m| flops / (m * 1e-3) / 1e9).collect())
        }
        Workload::EpochMlp | Workload::EpochCnn => {
            let cnn = a.workload == Workload::EpochCnn;
            let set = Arc::new(synthetic_mnist());
            let (model, batch) = if cnn { (cnn_model()?, 64) } else { (mlp_model()?, 128) };
            let mut opt: Box<dyn Optimizer> = if cnn { Box::new(adam(&model)) } else { Box::new(sgd(&model)) };
            let data: Arc<dyn Dataset> = if cnn { Arc::new(Transformed::new(set, Compose::new(), 0)) } else { set };
            for _ in 0..warmup {
                epoch(&model, opt.as_mut(), data.clone(), batch)?;
            }
            let mut v = Vec::new();
            for _ in 0..timed {
                v.push(epoch(&model, opt.as_mut(), data.clone(), batch)?);
            }
            (if cnn { "epoch-cnn" } else { "epoch-mlp" }, "ms/epoch", v)
        }
    };
    let c2c_after = core_to_core_ns();
    let series = a.series.then(|| samples.clone());
    let (median, p10, p90) = percentiles(&mut samples);
    let name = if a.hidden != 200 { format!("{name}-{}", a.hidden) } else { name.to_string() };
    let mut json = serde_json::json!({
        "workload": name,
        "framework": "jizen",
        "unit": unit,
        "median": median,
        "p10": p10,
        "p90": p90,
        "samples": samples.len(),
        "peak_rss_mib": peak_rss_mib(),
        "threads": jizen_tensor::num_threads(),
        // The vector extension jizen's own loops ran with ("avx512", "avx2" or "base").
        "isa": format!("{:?}", jizen_tensor::simd::isa()).to_lowercase(),
        // Two threads' round trip through one cache line, before and after the timed samples
        // (null with one CPU): which placement of the cores this run met.
        "core_to_core_ns": [c2c_before.map(|v| v.round()), c2c_after.map(|v| v.round())],
    });
    if let Some(series) = series {
        json["series"] = serde_json::json!(series);
    }
    println!("{json}");
    Ok(())
}
