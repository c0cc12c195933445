//! Word- and character-level language models: an embedding, a multi-layer LSTM and a decoder to
//! the vocabulary (optionally tied to the embedding), trained with truncated backpropagation
//! through time — the hidden state is carried across windows and detached between them — with
//! gradient-norm clipping and a learning-rate decay, measured in perplexity. The presets are the
//! small, medium and large configurations of Zaremba, Sutskever & Vinyals (2014).

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use jizen_data::LmBatches;
use jizen_nn::module::join;
use jizen_nn::{clip_grad_norm, Dropout, Lstm, LstmState, Module, Optimizer, RnnConfig, Sgd, SgdConfig};
use jizen_tensor::{cross_entropy, no_grad, DType, Result as TResult, Rng, Tensor};
use serde::{Deserialize, Serialize};

use crate::metrics::{MetricsLog, Record};
use crate::{Error, Result};

/// The shape of a language model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Embedding size and LSTM hidden size.
    pub hidden: usize,
    /// LSTM layers.
    pub layers: usize,
    /// Dropout on the embedding output, between LSTM layers and before the decoder.
    pub dropout: f64,
    /// Share the decoder's weight with the embedding (Press & Wolf, 2017).
    pub tie_weights: bool,
    /// Every parameter starts uniform in `[-init_range, init_range]`.
    pub init_range: f64,
}

/// How a language model trains (Zaremba et al.'s schedule: a constant rate for `decay_after`
/// epochs, then multiplied by `decay` every epoch). As in their code, the loss whose gradient
/// SGD follows is the sum over the window's time steps of the batch-mean cross-entropy, so `lr`
/// and `clip` mean what they mean there; perplexities are per token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmTrainConfig {
    /// Rows of the batch (parallel streams of text).
    pub batch: usize,
    /// Window length of truncated backpropagation through time.
    pub steps: usize,
    /// Initial learning rate of plain SGD.
    pub lr: f64,
    /// Epochs at the initial rate.
    pub decay_after: u64,
    /// Factor applied to the rate at every later epoch.
    pub decay: f64,
    /// Passes over the training text.
    pub epochs: u64,
    /// Clip the global gradient norm to this.
    pub clip: f64,
    /// Seeds initialisation and dropout.
    pub seed: u64,
    /// Log a train record every this many windows.
    pub log_every: u64,
}

/// A named preset: `small`, `medium` or `large` (Zaremba et al. 2014, their Table 1 settings).
pub fn preset(name: &str, vocab: usize) -> Result<(LmConfig, LmTrainConfig)> {
    let (hidden, dropout, init, steps, decay_after, decay, epochs, clip) = match name {
        "small" => (200, 0.0, 0.1, 20, 4, 0.5, 13, 5.0),
        "medium" => (650, 0.5, 0.05, 35, 6, 0.8, 39, 5.0),
        "large" => (1500, 0.65, 0.04, 35, 14, 1.0 / 1.15, 55, 10.0),
        other => return Err(Error::Msg(format!("unknown configuration {other:?}: use small, medium or large"))),
    };
    Ok((
        LmConfig { vocab, hidden, layers: 2, dropout, tie_weights: false, init_range: init },
        LmTrainConfig { batch: 20, steps, lr: 1.0, decay_after, decay, epochs, clip, seed: 0, log_every: 100 },
    ))
}

/// Embedding → dropout → LSTM (dropout between layers) → dropout → decoder. Parameter names
/// follow PyTorch's word-language-model example: `encoder.weight`, `rnn.weight_ih_l0`, …,
/// `decoder.weight`, `decoder.bias`.
pub struct LanguageModel {
    /// The model's shape.
    pub config: LmConfig,
    embedding: Tensor,
    drop_in: Dropout,
    rnn: Lstm,
    drop_out: Dropout,
    decoder_weight: Option<Tensor>,
    decoder_bias: Tensor,
}

impl LanguageModel {
    /// A model with every parameter drawn uniformly from `[-init_range, init_range]`.
    pub fn new(config: LmConfig, dtype: DType, seed: u64) -> Result<LanguageModel> {
        if config.vocab == 0 || config.hidden == 0 || config.layers == 0 {
            return Err(Error::Msg(format!("language model: vocab, hidden and layers must be positive ({config:?})")));
        }
        let mut rng = Rng::new(seed);
        let r = config.init_range;
        let uniform = |shape: &[usize], rng: &mut Rng| Tensor::rand(shape, -r, r, dtype, rng).requires_grad_(true);
        let embedding = uniform(&[config.vocab, config.hidden], &mut rng);
        let rnn_config = RnnConfig::new(config.hidden, config.hidden)
            .num_layers(config.layers)
            .dropout(config.dropout, rng.next_u64());
        let rnn = Lstm::new(rnn_config, dtype, &mut rng)?;
        no_grad(|| -> TResult<()> {
            for p in rnn.parameters() {
                p.copy_from_(&Tensor::rand(p.shape(), -r, r, dtype, &mut rng))?;
            }
            Ok(())
        })?;
        let decoder_weight = (!config.tie_weights).then(|| uniform(&[config.vocab, config.hidden], &mut rng));
        let decoder_bias = Tensor::zeros(&[config.vocab], dtype).requires_grad_(true);
        Ok(LanguageModel {
            drop_in: Dropout::new(config.dropout, rng.next_u64())?,
            drop_out: Dropout::new(config.dropout, rng.next_u64())?,
            config,
            embedding,
            rnn,
            decoder_weight,
            decoder_bias,
        })
    }

    /// Logits `[T·N, vocab]` for the i64 ids `x` `[N, T]` (rows are streams, time-major inside),
    /// and the state after the window.
    pub fn forward_window(&self, x: &Tensor, state: Option<&LstmState>) -> Result<(Tensor, LstmState)> {
        let ids = x.transpose(0, 1)?.contiguous()?; // [T, N]
        let (t, n) = (ids.shape()[0], ids.shape()[1]);
        if let Some(bad) = ids.to_vec::<i64>()?.into_iter().find(|&i| i < 0 || i as usize >= self.config.vocab) {
            return Err(Error::Msg(format!("token id {bad} is outside the vocabulary of {}", self.config.vocab)));
        }
        let emb = self.drop_in.forward(&self.embedding.embedding(&ids)?)?; // [T, N, H]
        let (out, state) = self.rnn.forward_with_state(&emb, state)?; // [T, N, H]
        let h = self.drop_out.forward(&out)?.reshape(&[t * n, self.config.hidden])?;
        let w = self.decoder_weight.as_ref().unwrap_or(&self.embedding);
        let logits = h.linear(w, Some(&self.decoder_bias))?; // [T·N, V]
        Ok((logits, state))
    }

    /// A fresh all-zero state for `n` streams.
    pub fn zero_state(&self, n: usize) -> LstmState {
        LstmState::zeros(self.config.layers, n, self.config.hidden, self.embedding.dtype())
    }
}

impl Module for LanguageModel {
    /// Logits for `x` `[N, T]` from a zero state.
    fn forward(&self, x: &Tensor) -> TResult<Tensor> {
        self.forward_window(x, None)
            .map(|(l, _)| l)
            .map_err(|e| jizen_tensor::Error::invalid("LanguageModel", e.to_string()))
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        f(join(prefix, "encoder.weight"), &self.embedding);
        self.rnn.visit_parameters(&join(prefix, "rnn"), f);
        if let Some(w) = &self.decoder_weight {
            f(join(prefix, "decoder.weight"), w);
        }
        f(join(prefix, "decoder.bias"), &self.decoder_bias);
    }

    fn set_training(&self, training: bool) {
        self.drop_in.set_training(training);
        self.rnn.set_training(training);
        self.drop_out.set_training(training);
    }

    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(String, &Mutex<Rng>)) {
        self.drop_in.visit_rngs(&join(prefix, "drop_in"), f);
        self.rnn.visit_rngs(&join(prefix, "rnn"), f);
        self.drop_out.visit_rngs(&join(prefix, "drop_out"), f);
    }
}

/// Perplexity of `model` on `data`: exp of the mean cross-entropy per token, the state carried
/// across windows, in inference mode.
pub fn perplexity(model: &LanguageModel, data: &LmBatches) -> Result<f64> {
    model.set_training(false);
    let mut state: Option<LstmState> = None;
    let (mut total, mut tokens) = (0.0, 0usize);
    for window in data.iter() {
        let (x, y) = window?;
        let n = y.numel();
        let (loss, next) = no_grad(|| -> Result<(f64, LstmState)> {
            let (logits, next) = model.forward_window(&x, state.as_ref())?;
            let y = y.transpose(0, 1)?.contiguous()?.reshape(&[n])?;
            Ok((cross_entropy(&logits, &y, Default::default())?.item()?, next))
        })?;
        total += loss * n as f64;
        tokens += n;
        state = Some(next);
    }
    Ok((total / tokens.max(1) as f64).exp())
}

/// What a training run measured per epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmEpoch {
    /// 1-based epoch.
    pub epoch: u64,
    /// The learning rate during the epoch.
    pub lr: f64,
    /// Training perplexity (with dropout on).
    pub train_ppl: f64,
    /// Validation perplexity.
    pub valid_ppl: f64,
    /// Mean global gradient norm before clipping.
    pub grad_norm: f64,
    /// Seconds of training so far.
    pub elapsed_s: f64,
}

/// Where a run stands after its last finished epoch: what a resumed run continues from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LmProgress {
    /// Windows (optimizer steps) trained so far.
    pub step: u64,
    /// One entry per finished epoch.
    pub history: Vec<LmEpoch>,
}

/// A run as its checkpoint left it: the model (weights and dropout generators), how it trains
/// and how far it got.
pub struct LmRun {
    /// The model after the last finished epoch.
    pub model: LanguageModel,
    /// The run's training settings (`None` for files written before runs could resume).
    pub train: Option<LmTrainConfig>,
    /// The epochs already done.
    pub progress: LmProgress,
}

const META_MODEL: &str = "jizen.lm";
const META_TRAIN: &str = "jizen.lm.train";
const META_PROGRESS: &str = "jizen.lm.progress";

/// The checkpoint file of a run directory.
pub fn checkpoint_path(out: &Path) -> std::path::PathBuf {
    out.join("lm.safetensors")
}

/// Trains `model` on `train` with truncated BPTT, validating on `valid` after each epoch; writes
/// `metrics.jsonl`/`.csv` (the gradient norm before clipping goes into every train record) and,
/// after every epoch, the checkpoint `lm.safetensors` (weights, dropout generators, settings and
/// progress, written atomically) into `out`.
///
/// `from` is [`LmProgress::default`] for a new run, or the progress of a run loaded with
/// [`load_run`]: training continues with the next epoch, and since every epoch starts from a
/// zero state and the windows come in a fixed order, the result equals an uninterrupted run's.
pub fn train(
    model: &LanguageModel,
    cfg: &LmTrainConfig,
    from: LmProgress,
    train: &LmBatches,
    valid: &LmBatches,
    out: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<LmEpoch>> {
    std::fs::create_dir_all(out).map_err(|e| Error::Io { path: out.to_path_buf(), source: e })?;
    let resumed = !from.history.is_empty();
    let metrics = MetricsLog::open(out, resumed.then_some(from.step))?;
    let params = model.parameters();
    let mut opt = Sgd::new(params.clone(), SgdConfig { lr: cfg.lr, ..Default::default() });
    let earlier_s = from.history.last().map_or(0.0, |e| e.elapsed_s);
    let start = Instant::now() - std::time::Duration::from_secs_f64(earlier_s);
    let LmProgress { mut step, mut history } = from;
    for epoch in history.len() as u64 + 1..=cfg.epochs {
        let lr = cfg.lr * cfg.decay.powi(epoch.saturating_sub(cfg.decay_after) as i32);
        opt.set_lr(lr);
        model.set_training(true);
        let mut state: Option<LstmState> = None;
        let (mut loss_sum, mut tokens, mut norm_sum, mut windows) = (0.0, 0usize, 0.0, 0u64);
        let (mut win_loss, mut win_tokens, mut win_norm, mut win_n) = (0.0, 0usize, 0.0, 0u64);
        let mut win_start = Instant::now();
        for window in train.iter() {
            let (x, y) = window?;
            let n = y.numel();
            // The step's compute on jizen's pool (`parallel::on_pool`); a non-finite loss stops it
            // before the backward pass.
            let (value, norm, next) = jizen_tensor::parallel::on_pool(|| -> Result<_> {
                opt.zero_grad();
                // Truncated BPTT: the state carries over, its history does not.
                let (logits, next) = model.forward_window(&x, state.as_ref().map(|s| s.detach()).as_ref())?;
                let y = y.transpose(0, 1)?.contiguous()?.reshape(&[n])?;
                let loss = cross_entropy(&logits, &y, Default::default())?;
                let value = loss.item()?;
                if !value.is_finite() {
                    return Ok((value, 0.0, None));
                }
                // Zaremba et al. sum the per-step losses over the window (each a mean over the
                // batch); their learning rate and clipping threshold are meant for that scale.
                let t = x.shape()[1] as f64;
                loss.mul_scalar(t)?.backward_free_graph()?;
                let norm = clip_grad_norm(&params, cfg.clip)?;
                opt.step()?;
                Ok((value, norm, Some(next)))
            })?;
            let Some(next) = next else {
                return Err(Error::Msg(format!(
                    "the loss became {value} at window {windows} of epoch {epoch}; lower the learning rate or the clip"
                )));
            };
            state = Some(next);
            step += 1;
            windows += 1;
            (loss_sum, tokens, norm_sum) = (loss_sum + value * n as f64, tokens + n, norm_sum + norm);
            (win_loss, win_tokens, win_norm, win_n) =
                (win_loss + value * n as f64, win_tokens + n, win_norm + norm, win_n + 1);
            if step.is_multiple_of(cfg.log_every.max(1)) {
                let ppl = (win_loss / win_tokens as f64).exp();
                metrics.write(&Record {
                    step,
                    epoch: epoch - 1,
                    split: "train".into(),
                    loss: win_loss / win_tokens as f64,
                    accuracy: None,
                    lr,
                    grad_norm: Some(win_norm / win_n as f64),
                    examples_per_s: Some(win_tokens as f64 / win_start.elapsed().as_secs_f64().max(1e-9)),
                    elapsed_s: start.elapsed().as_secs_f64(),
                })?;
                log(&format!(
                    "epoch {epoch} window {windows}/{}: train perplexity {ppl:.1}, gradient norm {:.2}, {:.0} s",
                    train.len(),
                    win_norm / win_n as f64,
                    start.elapsed().as_secs_f64()
                ));
                (win_loss, win_tokens, win_norm, win_n) = (0.0, 0, 0.0, 0);
                win_start = Instant::now();
            }
        }
        let valid_ppl = perplexity(model, valid)?;
        let e = LmEpoch {
            epoch,
            lr,
            train_ppl: (loss_sum / tokens.max(1) as f64).exp(),
            valid_ppl,
            grad_norm: norm_sum / windows.max(1) as f64,
            elapsed_s: start.elapsed().as_secs_f64(),
        };
        metrics.write(&Record {
            step,
            epoch: epoch - 1,
            split: "val".into(),
            loss: valid_ppl.ln(),
            accuracy: None,
            lr,
            grad_norm: None,
            examples_per_s: None,
            elapsed_s: e.elapsed_s,
        })?;
        log(&format!(
            "epoch {epoch}: lr {lr:.4}, train perplexity {:.2}, valid perplexity {valid_ppl:.2} ({:.0} s)",
            e.train_ppl, e.elapsed_s
        ));
        history.push(e);
        save_run(model, cfg, &LmProgress { step, history: history.clone() }, &checkpoint_path(out))?;
    }
    crate::curves::write(out)?;
    Ok(history)
}

/// Writes the weights, the dropout generators, the settings and the progress atomically.
fn save_run(model: &LanguageModel, cfg: &LmTrainConfig, progress: &LmProgress, path: &Path) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = jizen_nn::state_dict(model).into_iter().collect();
    tensors.extend(crate::checkpoint::rng_tensors(&crate::checkpoint::rng_states(model))?);
    let meta = std::collections::HashMap::from([
        (META_MODEL.to_string(), to_json(&model.config)?),
        (META_TRAIN.to_string(), to_json(cfg)?),
        (META_PROGRESS.to_string(), to_json(progress)?),
    ]);
    jizen_tensor::safetensors::save(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(&meta), path)?;
    Ok(())
}

/// The metadata entry `key` read as JSON, if present.
fn meta_json<T: serde::de::DeserializeOwned>(
    meta: &std::collections::HashMap<String, String>,
    key: &str,
    path: &Path,
) -> Result<Option<T>> {
    meta.get(key)
        .map(|json| serde_json::from_str(json))
        .transpose()
        .map_err(|e| Error::Msg(format!("{}: the {key} metadata is not valid ({e})", path.display())))
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Msg(e.to_string()))
}

/// Loads a model saved by [`train`].
pub fn load(path: &Path) -> Result<LanguageModel> {
    load_run(path).map(|run| run.model)
}

/// Loads a run saved by [`train`]: the model with its dropout generators, and the settings and
/// progress a resumed run continues with.
pub fn load_run(path: &Path) -> Result<LmRun> {
    let (mut tensors, meta) = jizen_tensor::safetensors::load_with_metadata(path)?;
    let config: LmConfig = meta_json(&meta, META_MODEL, path)?
        .ok_or_else(|| Error::Msg(format!("{}: not a jizen language model (no jizen.lm metadata)", path.display())))?;
    let train = meta_json(&meta, META_TRAIN, path)?;
    let progress = meta_json(&meta, META_PROGRESS, path)?.unwrap_or_default();
    let rngs = crate::checkpoint::take_rngs(&mut tensors, path)?;
    let model = LanguageModel::new(config, DType::F32, 0)?;
    jizen_nn::load_state_dict(&model, &tensors, true)
        .map_err(|e| Error::Msg(format!("{}: does not fit its own configuration: {e}", path.display())))?;
    crate::checkpoint::restore_rngs(&model, &rngs);
    Ok(LmRun { model, train, progress })
}

/// Generates `n` tokens after `prompt` (ids), sampling from the softmax at `temperature`,
/// restricted to the `top_k` most likely tokens when given.
pub fn sample(
    model: &LanguageModel,
    prompt: &[i64],
    n: usize,
    temperature: f64,
    top_k: Option<usize>,
    seed: u64,
) -> Result<Vec<i64>> {
    if prompt.is_empty() {
        return Err(Error::Msg("sampling needs a prompt of at least one token".into()));
    }
    if temperature.is_nan() || temperature <= 0.0 {
        return Err(Error::Msg(format!("temperature {temperature} must be positive")));
    }
    model.set_training(false);
    let mut rng = Rng::new(seed);
    let x = Tensor::from_vec(prompt.to_vec(), &[1, prompt.len()])?;
    let (mut logits, mut state) = no_grad(|| model.forward_window(&x, None))?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let last = logits.narrow(0, logits.shape()[0] - 1, 1)?.to_dtype(DType::F64)?.to_vec::<f64>()?;
        let mut idx: Vec<usize> = (0..last.len()).collect();
        idx.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
        idx.truncate(top_k.unwrap_or(last.len()).max(1));
        let m = last[idx[0]];
        let weights: Vec<f64> = idx.iter().map(|&i| ((last[i] - m) / temperature).exp()).collect();
        let mut u = rng.uniform() * weights.iter().sum::<f64>();
        let mut pick = idx[idx.len() - 1];
        for (&i, w) in idx.iter().zip(&weights) {
            if u < *w {
                pick = i;
                break;
            }
            u -= w;
        }
        out.push(pick as i64);
        let x = Tensor::from_vec(vec![pick as i64], &[1, 1])?;
        (logits, state) = no_grad(|| model.forward_window(&x, Some(&state)))?;
    }
    Ok(out)
}
