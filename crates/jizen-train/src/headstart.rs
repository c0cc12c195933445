//! The head-start experiment behind `jizen demo`: pre-train an MLP on one digit set, save it,
//! load it into a fresh network, fine-tune on a few labels of another digit set, and compare
//! with the same network trained from scratch on the same labels, over several seeds.
//!
//! Source: 20,000 MNIST training digits converted to the UCI 8×8 format. Target: the UCI 8×8
//! digits, split once and for all into a labelled pool (even indices) and a test set (odd
//! indices). Both arms of a comparison get the same examples, optimizer and number of steps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use jizen_data::Digits;
use jizen_nn::{load_state_dict, mlp, state_dict, Adam, AdamConfig, Module, Optimizer};
use jizen_tensor::{cross_entropy, no_grad, safetensors, CrossEntropyOptions, DType, Rng, Tensor};
use serde::Serialize;

use crate::compare::{charts, summarise, tables_markdown};
pub use crate::compare::{BudgetSummary, SeedResult};
use crate::plot::Chart;
use crate::{Error, Result};

/// What the demo runs.
#[derive(Clone, Debug, Serialize)]
pub struct HeadStartConfig {
    /// Layer sizes of the MLP, input first.
    pub sizes: Vec<usize>,
    pub pretrain_epochs: usize,
    pub pretrain_batch: usize,
    pub lr: f64,
    /// Full-batch fine-tuning steps, the same for both arms.
    pub finetune_steps: usize,
    /// Test accuracy is recorded every this many steps (for the curves).
    pub eval_every: usize,
    pub labels_per_class: Vec<usize>,
    pub seeds: Vec<u64>,
}

impl Default for HeadStartConfig {
    fn default() -> Self {
        HeadStartConfig {
            sizes: vec![64, 128, 64, 10],
            pretrain_epochs: 10,
            pretrain_batch: 128,
            lr: 1e-3,
            finetune_steps: 300,
            eval_every: 25,
            labels_per_class: vec![1, 5, 10],
            seeds: (0..5).collect(),
        }
    }
}

/// Everything the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct HeadStartReport {
    pub config: HeadStartConfig,
    pub source: String,
    pub target: String,
    pub pretrain_final_loss: f64,
    /// The pre-trained network on the target's test set before any fine-tuning.
    pub pretrained_zero_shot: f64,
    pub pretrain_seconds: f64,
    pub finetune_seconds: f64,
    pub checkpoint: PathBuf,
    pub runs: Vec<SeedResult>,
    pub summary: Vec<BudgetSummary>,
}

/// Fraction of correct predictions of `model` on `(x, y)`.
pub fn accuracy(model: &dyn Module, x: &Tensor, y: &Tensor) -> Result<f64> {
    let pred = no_grad(|| model.forward(x))?.argmax(1, false)?.to_vec::<i64>()?;
    let truth = y.to_vec::<i64>()?;
    Ok(pred.iter().zip(&truth).filter(|(a, b)| a == b).count() as f64 / truth.len().max(1) as f64)
}

/// One optimisation step on a batch; returns the loss.
fn train_step(model: &dyn Module, opt: &mut Adam, x: &Tensor, y: &Tensor) -> Result<f64> {
    jizen_tensor::parallel::on_pool(|| train_step_here(model, opt, x, y))
}

/// [`train_step`] on the calling thread.
fn train_step_here(model: &dyn Module, opt: &mut Adam, x: &Tensor, y: &Tensor) -> Result<f64> {
    opt.zero_grad();
    let loss = cross_entropy(&model.forward(x)?, y, CrossEntropyOptions::default())?;
    loss.backward_free_graph()?;
    let v = loss.item()?;
    if !v.is_finite() {
        return Err(Error::Msg(format!("loss became {v}; stopping")));
    }
    opt.step()?;
    Ok(v)
}

/// `k` indices per class from `pool`, drawn with `rng` (stratified).
fn stratified_sample(labels: &[u8], pool: &[usize], k: usize, rng: &mut Rng) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(10 * k);
    for class in 0..10u8 {
        let mut members: Vec<usize> = pool.iter().copied().filter(|&i| labels[i] == class).collect();
        if members.len() < k {
            return Err(Error::Msg(format!("class {class} has {} examples in the pool, {k} asked", members.len())));
        }
        rng.shuffle(&mut members);
        out.extend_from_slice(&members[..k]);
    }
    Ok(out)
}

/// Fine-tunes `model` full-batch on `(x, y)` and returns the test-accuracy curve.
fn finetune(
    model: &dyn Module,
    cfg: &HeadStartConfig,
    train: (&Tensor, &Tensor),
    test: (&Tensor, &Tensor),
) -> Result<Vec<(usize, f64)>> {
    let mut opt = Adam::new(model.parameters(), AdamConfig { lr: cfg.lr, ..Default::default() });
    let mut curve = vec![(0, accuracy(model, test.0, test.1)?)];
    for step in 1..=cfg.finetune_steps {
        train_step(model, &mut opt, train.0, train.1)?;
        if step % cfg.eval_every == 0 || step == cfg.finetune_steps {
            curve.push((step, accuracy(model, test.0, test.1)?));
        }
    }
    Ok(curve)
}

/// Maps `f` over `items` on up to `threads` scoped threads, keeping the order of `items`.
fn parallel_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<R>>>> = items.iter().map(|_| Default::default()).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(f(item));
            });
        }
    });
    results.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()).expect("every job ran")).collect()
}

/// Runs the whole experiment, writing the pre-trained checkpoint into `out_dir`. `log` receives
/// progress lines.
pub fn run(cfg: &HeadStartConfig, out_dir: &Path, log: &mut dyn FnMut(&str)) -> Result<HeadStartReport> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::Io { path: out_dir.to_path_buf(), source: e })?;
    let source = Digits::mnist8x8();
    let target = Digits::uci8x8();
    let (src_x, src_y) = source.tensors(&(0..source.len()).collect::<Vec<_>>(), DType::F32)?;
    let pool: Vec<usize> = (0..target.len()).step_by(2).collect();
    let test_idx: Vec<usize> = (1..target.len()).step_by(2).collect();
    let (test_x, test_y) = target.tensors(&test_idx, DType::F32)?;

    // 1. Pre-train on the source set.
    let t0 = Instant::now();
    let mut rng = Rng::new(0);
    let model = mlp(&cfg.sizes, DType::F32, &mut rng);
    let mut opt = Adam::new(model.parameters(), AdamConfig { lr: cfg.lr, ..Default::default() });
    let mut order: Vec<usize> = (0..source.len()).collect();
    let mut last_loss = f64::NAN;
    for epoch in 1..=cfg.pretrain_epochs {
        rng.shuffle(&mut order);
        let mut total = 0.0;
        let mut batches = 0;
        for chunk in order.chunks(cfg.pretrain_batch) {
            let idx = Tensor::from_vec(chunk.iter().map(|&i| i as i64).collect(), &[chunk.len()])?;
            let (x, y) = (src_x.index_select(0, &idx)?, src_y.index_select(0, &idx)?);
            total += train_step(&model, &mut opt, &x, &y)?;
            batches += 1;
        }
        last_loss = total / batches as f64;
        log(&format!("pre-train epoch {epoch:>2}/{}: loss {last_loss:.4}", cfg.pretrain_epochs));
    }
    let pretrain_seconds = t0.elapsed().as_secs_f64();

    // 2. Save, then load into fresh networks: the path a user's checkpoint takes.
    let checkpoint = out_dir.join("pretrained.safetensors");
    let meta: HashMap<String, String> = [
        ("jizen.objective", "supervised".to_string()),
        ("jizen.data", format!("{} ({} examples)", source.name, source.len())),
        ("jizen.model", format!("mlp {:?}", cfg.sizes)),
        ("jizen.epochs", cfg.pretrain_epochs.to_string()),
        ("jizen.version", env!("CARGO_PKG_VERSION").to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let state = state_dict(&model); // parameters and buffers, by PyTorch's names
    safetensors::save(state.iter().map(|(n, t)| (n.as_str(), t)), Some(&meta), &checkpoint)?;
    let weights = safetensors::load(&checkpoint)?;
    let zero_shot = accuracy(&model, &test_x, &test_y)?;
    log(&format!(
        "saved {} ({} parameters); before fine-tuning it scores {:.1}% on the target test set",
        checkpoint.display(),
        model.num_parameters(),
        100.0 * zero_shot
    ));

    // 3. Fine-tune both arms for every (label budget, seed), on parallel threads; each job is
    //    self-contained and seeded, so the result does not depend on the thread count. Plain
    //    scoped threads, not a work-stealing pool: autograd's grad mode is per thread, and a
    //    stolen job must never run inside another job's `no_grad` scope.
    let t1 = Instant::now();
    let jobs: Vec<(usize, u64)> =
        cfg.labels_per_class.iter().flat_map(|&k| cfg.seeds.iter().map(move |&s| (k, s))).collect();
    let one = |&(k, seed): &(usize, u64)| -> Result<SeedResult> {
        let mut rng = Rng::new(1000 + seed);
        let picked = stratified_sample(&target.labels, &pool, k, &mut rng)?;
        let (x, y) = target.tensors(&picked, DType::F32)?;
        let mut init_rng = Rng::new(2000 + seed);
        let scratch = mlp(&cfg.sizes, DType::F32, &mut init_rng);
        let pretrained = mlp(&cfg.sizes, DType::F32, &mut init_rng);
        load_state_dict(&pretrained, &weights, true)?;
        let sc = finetune(&scratch, cfg, (&x, &y), (&test_x, &test_y))?;
        let pc = finetune(&pretrained, cfg, (&x, &y), (&test_x, &test_y))?;
        let (s_final, p_final) = (sc.last().expect("curve").1, pc.last().expect("curve").1);
        let steps_to_match = pc.iter().find(|(_, a)| *a >= s_final).map(|(s, _)| *s);
        Ok(SeedResult {
            labels_per_class: k,
            seed,
            scratch: s_final,
            pretrained: p_final,
            scratch_curve: sc,
            pretrained_curve: pc,
            steps_to_match,
        })
    };
    let runs = parallel_map(&jobs, jizen_tensor::num_threads(), one)?;
    let finetune_seconds = t1.elapsed().as_secs_f64();

    let summary = summarise(&runs, &cfg.labels_per_class);
    Ok(HeadStartReport {
        config: cfg.clone(),
        source: source.name.clone(),
        target: target.name.clone(),
        pretrain_final_loss: last_loss,
        pretrained_zero_shot: zero_shot,
        pretrain_seconds,
        finetune_seconds,
        checkpoint,
        runs,
        summary,
    })
}

impl HeadStartReport {
    /// The report's plots, as `(file name, chart)`: test accuracy against fine-tuning steps for
    /// each label budget (mean with a ±1 std band over seeds), and final accuracy against the
    /// number of labels per class.
    pub fn charts(&self) -> Vec<(String, Chart)> {
        charts(
            &self.runs,
            &self.summary,
            &self.config.labels_per_class,
            self.config.seeds.len(),
            self.config.finetune_steps,
        )
    }

    /// The per-seed and summary tables as Markdown.
    pub fn to_markdown(&self) -> String {
        let pct = |v: f64| format!("{:.1}", 100.0 * v);
        let mut s = String::new();
        s += "# Head start from pre-training\n\n";
        s += &format!(
            "Pre-trained an MLP {:?} on {} for {} epochs ({:.1} s, final loss {:.4}); before any \
             fine-tuning it scores {}% on the target test set.\n",
            self.config.sizes,
            self.source,
            self.config.pretrain_epochs,
            self.pretrain_seconds,
            self.pretrain_final_loss,
            pct(self.pretrained_zero_shot)
        );
        s += &format!(
            "Fine-tuned on {} with k labels per class, {} full-batch Adam steps (lr {}) for both arms, \
             tested on 898 held-out digits ({:.1} s for all runs).\n\n",
            self.target, self.config.finetune_steps, self.config.lr, self.finetune_seconds
        );
        s += &tables_markdown(&self.summary, &self.runs, self.config.finetune_steps);
        s
    }
}
