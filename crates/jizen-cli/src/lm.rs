//! `jizen lm train | eval | sample`: LSTM language models on Penn Treebank (words or
//! characters) and Tiny Shakespeare.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use jizen_data::{batchify, read_tokens, LmBatches, Tokens, Vocab};
use jizen_train::lm::{self, LanguageModel};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Arguments of `jizen lm`.
#[derive(Args)]
pub struct LmArgs {
    #[command(subcommand)]
    command: LmCommand,
}

#[derive(Subcommand)]
enum LmCommand {
    /// Train a language model with truncated BPTT, clipping and learning-rate decay.
    #[command(after_help = "Examples:\n  jizen lm train --data ptb --config small --out runs/lm-small\n  \
        jizen lm train --data ptb --config medium --out runs/lm-medium      # hours on 2 cores\n  \
        jizen lm train --data tinyshakespeare --config small --epochs 5 --out runs/shakespeare\n  \
        jizen lm train --data ptb --resume --out runs/lm-medium            # continue after the last epoch\n\n\
        A checkpoint is written after every epoch; --resume continues a stopped run from it with its\n\
        own settings (--epochs may extend it) and ends as an uninterrupted run would.\n\
        Data: ptb (words), ptb-char (characters), tinyshakespeare (characters), from --data-dir,\n\
        else $JIZEN_DATA/<set>. The configurations are Zaremba et al. (2014)'s small, medium, large.")]
    Train {
        /// ptb, ptb-char or tinyshakespeare.
        #[arg(long)]
        data: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// small, medium or large.
        #[arg(long, default_value = "small")]
        config: String,
        /// Override the number of epochs.
        #[arg(long)]
        epochs: Option<u64>,
        /// Tie the decoder's weight to the embedding.
        #[arg(long)]
        tie: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Continue the run in --out after its last finished epoch, with its saved settings.
        #[arg(long, conflicts_with_all = ["config", "tie", "seed"])]
        resume: bool,
        #[arg(long, default_value = "runs/lm")]
        out: PathBuf,
    },
    /// Perplexity of a trained model on the validation and test text.
    Eval {
        /// The run directory of `jizen lm train` (holds lm.safetensors and vocab.json).
        run: PathBuf,
        #[arg(long)]
        data: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Generate text from a trained model.
    #[command(after_help = "Examples:\n  jizen lm sample runs/lm-small --prompt \"the company said\" --tokens 30\n  \
        jizen lm sample runs/shakespeare --prompt \"ROMEO:\" --temperature 0.8 --top-k 20")]
    Sample {
        /// The run directory of `jizen lm train`.
        run: PathBuf,
        /// The text to continue.
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 50)]
        tokens: usize,
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        #[arg(long)]
        top_k: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// A corpus split into its three files and how it is tokenised.
struct Corpus {
    tokens: Tokens,
    files: [PathBuf; 3],
}

fn corpus(name: &str, dir: Option<&Path>) -> Result<Corpus> {
    let folder = |set: &str| -> Result<PathBuf> {
        let d = match (dir, std::env::var_os("JIZEN_DATA")) {
            (Some(d), _) => d.to_path_buf(),
            (None, Some(root)) => PathBuf::from(root).join(set),
            (None, None) => PathBuf::from("data").join(set),
        };
        if d.is_dir() {
            Ok(d)
        } else {
            Err(format!("{name}: no data at {}\n  hint: point --data-dir (or JIZEN_DATA) at it", d.display()).into())
        }
    };
    match name {
        "ptb" => {
            let d = folder("ptb")?;
            Ok(Corpus {
                tokens: Tokens::Words,
                files: ["train", "valid", "test"].map(|s| d.join(format!("ptb.{s}.txt"))),
            })
        }
        "ptb-char" => {
            let d = folder("ptb")?;
            Ok(Corpus {
                tokens: Tokens::Words,
                files: ["train", "valid", "test"].map(|s| d.join(format!("ptb.char.{s}.txt"))),
            })
        }
        "tinyshakespeare" => {
            // One file: the first 90% trains, the next 5% validates, the last 5% tests.
            let d = folder("tinyshakespeare")?;
            Ok(Corpus { tokens: Tokens::Chars, files: [d.join("input.txt"), d.join("input.txt"), d.join("input.txt")] })
        }
        other => Err(format!("unknown corpus {other:?}: use ptb, ptb-char or tinyshakespeare").into()),
    }
}

/// The token streams of a corpus's three splits.
fn splits(name: &str, c: &Corpus) -> Result<[Vec<String>; 3]> {
    if name == "tinyshakespeare" {
        let all = read_tokens(&c.files[0], c.tokens)?;
        let (a, b) = (all.len() * 90 / 100, all.len() * 95 / 100);
        return Ok([all[..a].to_vec(), all[a..b].to_vec(), all[b..].to_vec()]);
    }
    Ok([read_tokens(&c.files[0], c.tokens)?, read_tokens(&c.files[1], c.tokens)?, read_tokens(&c.files[2], c.tokens)?])
}

/// Ids of `tokens`, reporting how many fell outside the vocabulary.
fn encode(vocab: &Vocab, tokens: &[String], what: &str) -> Vec<u32> {
    let e = vocab.encode(tokens);
    if e.unknown > 0 {
        println!(
            "  {what}: {} of {} tokens are outside the vocabulary and were mapped to <unk>",
            e.unknown,
            tokens.len()
        );
    }
    e.ids
}

fn batches(ids: &[u32], batch: usize, steps: usize) -> Result<LmBatches> {
    Ok(batchify(ids, batch, steps)?)
}

/// The vocabulary as a JSON array of tokens in id order (JSON, because character vocabularies
/// hold newlines and spaces).
fn save_vocab(vocab: &Vocab, path: &Path) -> Result<()> {
    std::fs::write(path, serde_json::to_string(vocab.tokens())?).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn load_vocab(path: &Path) -> Result<Vocab> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tokens: Vec<String> =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a vocabulary: {e}", path.display()))?;
    let vocab = Vocab::build(&tokens);
    if vocab.tokens() != tokens.as_slice() {
        return Err(format!("{}: the vocabulary repeats tokens or lacks <unk>", path.display()).into());
    }
    Ok(vocab)
}

/// The model, settings and progress of the stopped run in `out`, checked against the vocabulary
/// of the data it is to continue on.
fn resume_run(out: &Path, vocab: &Vocab) -> Result<(LanguageModel, lm::LmTrainConfig, lm::LmProgress)> {
    let path = lm::checkpoint_path(out);
    if !path.is_file() {
        return Err(format!(
            "--resume: {} does not exist\n  hint: --out must name the directory of an earlier jizen lm train",
            path.display()
        )
        .into());
    }
    let run = lm::load_run(&path)?;
    let train = run
        .train
        .ok_or_else(|| format!("--resume: {} holds weights only (written before runs could resume)", path.display()))?;
    let saved = load_vocab(&out.join("vocab.json"))?;
    if saved.tokens() != vocab.tokens() {
        return Err(format!(
            "--resume: the vocabulary of {} ({} tokens) is not the one this data gives ({} tokens): another corpus?",
            out.display(),
            saved.len(),
            vocab.len()
        )
        .into());
    }
    Ok((run.model, train, run.progress))
}

/// `jizen lm`.
pub fn run(a: &LmArgs) -> Result<()> {
    match &a.command {
        LmCommand::Train { data, data_dir, config, epochs, tie, seed, resume, out } => {
            let c = corpus(data, data_dir.as_deref())?;
            let [train, valid, test] = splits(data, &c)?;
            let vocab = Vocab::build(&train);
            let (model, mut train_cfg, progress) = if *resume {
                resume_run(out, &vocab)?
            } else {
                let (mut model_cfg, mut train_cfg) = lm::preset(config, vocab.len())?;
                model_cfg.tie_weights = *tie;
                train_cfg.seed = *seed;
                let model = LanguageModel::new(model_cfg, jizen_tensor::DType::F32, train_cfg.seed)?;
                (model, train_cfg, lm::LmProgress::default())
            };
            if let Some(e) = epochs {
                train_cfg.epochs = *e;
            }
            let model_cfg = &model.config;
            println!(
                "jizen lm train: {data} ({} training tokens, vocabulary {}), {} layers of {}, \
                 dropout {}, batch {}, {} steps unrolled, lr {} (x{} per epoch after {}), clip {}, {} epochs, {} threads",
                train.len(),
                vocab.len(),
                model_cfg.layers,
                model_cfg.hidden,
                model_cfg.dropout,
                train_cfg.batch,
                train_cfg.steps,
                train_cfg.lr,
                train_cfg.decay,
                train_cfg.decay_after,
                train_cfg.clip,
                train_cfg.epochs,
                jizen_tensor::num_threads()
            );
            if let Some(last) = progress.history.last() {
                println!(
                    "  resuming {} after epoch {} (valid perplexity {:.2}, {} windows, {:.0} s so far)",
                    out.display(),
                    last.epoch,
                    last.valid_ppl,
                    progress.step,
                    last.elapsed_s
                );
            }
            let ids = [encode(&vocab, &train, "train"), encode(&vocab, &valid, "valid"), encode(&vocab, &test, "test")];
            let (b, s) = (train_cfg.batch, train_cfg.steps);
            let (tb, vb, sb) = (batches(&ids[0], b, s)?, batches(&ids[1], b, s)?, batches(&ids[2], b, s)?);
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
            save_vocab(&vocab, &out.join("vocab.json"))?;
            let history = lm::train(&model, &train_cfg, progress, &tb, &vb, out, &mut |line| println!("  {line}"))?;
            let test_ppl = lm::perplexity(&model, &sb)?;
            let valid_ppl = history.last().map_or(f64::NAN, |e| e.valid_ppl);
            let report = serde_json::json!({
                "data": data, "model": model.config, "train": train_cfg,
                "epochs": history, "valid_perplexity": valid_ppl, "test_perplexity": test_ppl,
            });
            std::fs::write(out.join("lm.json"), serde_json::to_string_pretty(&report)?)?;
            let bits = if c.tokens == Tokens::Chars || data == "ptb-char" {
                format!(" ({:.3} bits per character)", test_ppl.log2())
            } else {
                String::new()
            };
            println!("valid perplexity {valid_ppl:.2}, test perplexity {test_ppl:.2}{bits}");
            println!(
                "wrote {0}/lm.safetensors, {0}/vocab.json, {0}/lm.json, {0}/metrics.jsonl, {0}/curves.svg",
                out.display()
            );
            Ok(())
        }
        LmCommand::Eval { run, data, data_dir } => {
            let model = lm::load(&run.join("lm.safetensors"))?;
            let vocab = load_vocab(&run.join("vocab.json"))?;
            if vocab.len() != model.config.vocab {
                return Err(format!(
                    "{}: the vocabulary has {} tokens but the model was trained with {}",
                    run.display(),
                    vocab.len(),
                    model.config.vocab
                )
                .into());
            }
            let c = corpus(data, data_dir.as_deref())?;
            let [_, valid, test] = splits(data, &c)?;
            for (name, tokens) in [("valid", valid), ("test", test)] {
                let ids = encode(&vocab, &tokens, name);
                println!("{name} perplexity {:.2}", lm::perplexity(&model, &batches(&ids, 20, 35)?)?);
            }
            Ok(())
        }
        LmCommand::Sample { run, prompt, tokens, temperature, top_k, seed } => {
            let model = lm::load(&run.join("lm.safetensors"))?;
            let vocab = load_vocab(&run.join("vocab.json"))?;
            let chars = vocab.tokens().iter().all(|t| t.chars().count() == 1 || t.starts_with('<'));
            let mode = if chars { Tokens::Chars } else { Tokens::Words };
            let mut words = jizen_data::text::tokenize(prompt, mode);
            if mode == Tokens::Words {
                words.pop(); // tokenize ends a line with <eos>; keep the prompt open
            }
            let ids: Vec<i64> = vocab.encode(&words).ids.iter().map(|&i| i as i64).collect();
            let out = lm::sample(&model, &ids, *tokens, *temperature, *top_k, *seed)?;
            let text: Vec<&str> = out.iter().map(|&i| vocab.token(i as u32).unwrap_or("<unk>")).collect();
            let sep = if chars { "" } else { " " };
            println!("{prompt}{sep}{}", text.join(sep));
            Ok(())
        }
    }
}
