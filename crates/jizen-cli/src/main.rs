//! `jizen`: pre-train, fine-tune, and measure the head start; train, evaluate and predict.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod data;
mod datasets;
mod demo;
mod lm;
mod ml;
mod probe;
mod train;
mod transfer;

/// Tensor buffers start on a cache line (see `jizen_tensor::alloc`).
#[global_allocator]
static ALLOC: jizen_tensor::AlignedAlloc = jizen_tensor::AlignedAlloc;

#[derive(Parser)]
#[command(name = "jizen", version, about = "A deep-learning engine in Rust: pre-train once, fine-tune ahead")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pre-train on embedded data, fine-tune on another set, and report the head start.
    #[command(after_help = "Examples:\n  jizen demo\n  jizen demo --out /tmp/demo --seeds 3\n  jizen demo --quick")]
    Demo {
        /// Where the checkpoint and report.md / report.json go.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// Number of seeds per label budget.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
        seeds: u64,
        /// A much smaller run (2 pre-training epochs, 2 seeds, 100 steps) to check the pipeline.
        #[arg(long)]
        quick: bool,
    },
    /// Train a classifier: metrics, learning curves, checkpoints, early stopping, exact resume.
    #[command(after_help = "Examples:\n  \
        jizen train --model mlp --data digits --epochs 5 --out runs/digits\n  \
        jizen train --model cnn --data mnist --epochs 5 --out runs/mnist-cnn\n  \
        jizen train --model cnn --data fashion-mnist --optimizer adamw --lr 3e-3 --schedule onecycle --augment-crop 2\n  \
        jizen train --model my-net.toml --data mnist --config train.toml\n  \
        jizen train --out runs/mnist-cnn --resume        # continue from the newest checkpoint\n\n\
        Data sets are read from --data-dir, else $JIZEN_DATA/NAME, else data/NAME (see `jizen data get`).")]
    Train(Box<train::TrainArgs>),
    /// Evaluate a checkpoint: loss, accuracy, top-k, per-class accuracy, confusion matrix.
    #[command(after_help = "Examples:\n  jizen eval runs/mnist-cnn/best.safetensors\n  \
        jizen eval runs/mnist-cnn/final.safetensors --split val --json val.json")]
    Eval(train::EvalArgs),
    /// Predict with a checkpoint: labels, probabilities and top-k classes, as CSV.
    #[command(after_help = "Examples:\n  jizen predict runs/mnist-cnn/best.safetensors --limit 10\n  \
        jizen predict runs/mnist-cnn/best.safetensors --top-k 5 --out predictions.csv")]
    Predict(train::PredictArgs),
    /// Layers, parameters, FLOPs and the activation memory training holds per sample.
    #[command(after_help = "Examples:\n  jizen summary cnn\n  jizen summary resnet-cifar --input 3,32,32\n  \
        jizen summary my-net.toml\n  jizen summary runs/mnist-cnn/final.safetensors")]
    Summary(train::SummaryArgs),
    /// Pre-train a network: supervised on a source task, or as a (denoising) autoencoder.
    #[command(after_help = "Examples:\n  \
        jizen pretrain --model cnn --data mnist8x8 --epochs 5 --out runs/pre\n  \
        jizen pretrain --objective denoising --noise 0.3 --model mlp --data mnist --epochs 10 --out runs/dae\n  \
        jizen pretrain --objective denoising --greedy-epochs 10 --model mlp --data mnist --epochs 5 --out runs/sdae\n\n\
        The checkpoint records the data, the objective and the seed; `jizen finetune --from` starts from it.\n\
        --greedy-epochs trains a stacked denoising autoencoder layer by layer first (layer-1/, layer-2/, ...),\n\
        each layer reconstructing the codes of the layers below it, then the whole stack for --epochs.")]
    Pretrain(Box<transfer::PretrainArgs>),
    /// Fine-tune from a checkpoint: remap keys, new head, freeze, per-part learning rates, stages.
    #[command(after_help = "Examples:\n  \
        jizen finetune --from runs/pre/final.safetensors --data digits --epochs 5\n  \
        jizen finetune --from runs/dae/final.safetensors --data mnist --labels-per-class 100 --max-steps 500\n  \
        jizen finetune --from pre.safetensors --data digits --freeze '0.*' --lr-mult '3.*=0.1'\n  \
        jizen finetune --from pre.safetensors --data digits --probe-epochs 1 --unfreeze-every 1 --join-warmup 50\n  \
        jizen finetune --from other.safetensors --data digits --model cnn --manifest transfer.toml\n\n\
        The load report (loaded, re-initialised, skipped, missing, unexpected, mismatched keys) is printed\n\
        and written to load_report.json; the lineage goes into every checkpoint (see `jizen info`).")]
    Finetune(Box<transfer::FinetuneArgs>),
    /// The head start: fine-tune from a checkpoint and train from scratch with equal budgets, over
    /// seeds and label budgets; report.md, report.json and plots.
    #[command(after_help = "Examples:\n  \
        jizen compare --from runs/pre/final.safetensors --data digits --labels 1,5,10 --seeds 5\n  \
        jizen compare --from runs/fashion04/final.safetensors --data fashion-mnist --labels 10,100 --steps 300\n\n\
        Both arms get the same examples, data order, initialisation of the parts not loaded, optimizer\n\
        and steps. The report gives each arm's final accuracy (mean ± std), the gain, the wins, and the\n\
        step at which the pre-trained arm reached the scratch arm's final accuracy.")]
    Compare(Box<transfer::CompareArgs>),
    /// What a checkpoint holds and where its weights came from, back to the random initialisation.
    #[command(after_help = "Examples:\n  jizen info runs/finetune/final.safetensors")]
    Info(transfer::InfoArgs),
    /// Probe a checkpoint's features against its random initialisation: logistic regression and
    /// k-NN on the layer before the head, and a 2-D PCA of the features by class.
    #[command(after_help = "Examples:\n  \
        jizen probe runs/pre/final.safetensors --data digits\n  \
        jizen probe runs/dae/final.safetensors --data mnist --n-train 2000 --n-test 1000 --out runs/dae-probe\n  \
        jizen probe runs/mnist-cnn/best.safetensors --layers 8\n\n\
        The features are those of the first --layers layers (default: every layer before the last Linear;\n\
        for an autoencoder, its encoder). Writes probe.md, probe.json, probe-pca.svg and probe-pca.png.")]
    Probe(probe::ProbeArgs),
    /// Download and verify a public data set (mnist, fashion-mnist, cifar10, ptb).
    Data(data::DataArgs),
    /// LSTM language models: train (truncated BPTT, clipping, decay), eval (perplexity), sample.
    Lm(lm::LmArgs),
    /// Classical ML on flattened examples: fit, eval and predict SVMs, logistic regression, k-NN
    /// and Gaussian mixtures; PCA with a scatter plot.
    #[command(after_help = "Examples:\n  \
        jizen ml fit --algo svm --data digits --out runs/svm\n  \
        jizen ml eval --model runs/svm\n  \
        jizen ml predict --model runs/svm --limit 10\n  \
        jizen ml pca --data digits --plot pca.png\n\n\
        Run `jizen ml fit --help` for the algorithms and their settings.")]
    Ml(ml::MlArgs),
    /// Time a training step (or inference call, sgemm, epoch) on synthetic data; one JSON line.
    #[command(
        after_help = "Examples:\n  jizen bench mlp\n  JIZEN_THREADS=2 jizen bench cnn\n  jizen bench lstm\n  jizen bench gemm --quick\n  \
        jizen bench mlp --warmup 100 --steps 300 --series\n\n\
        Steps: 10 warm-up, then 50 timed (median, p10, p90 in ms); infer: µs per call; gemm: GFLOP/s;\n\
        epoch-*: one epoch over 60,000 MNIST-shaped examples, loading included (3 epochs timed).\n\
        --warmup and --steps change the counts; --series adds every timed sample, in order.\n\
        scripts/bench/compare_workloads.py runs these against PyTorch and prints the ratios."
    )]
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    // As jizen's pool threads do, so that work on this thread agrees with theirs.
    jizen_tensor::parallel::flush_subnormals_here();
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Demo { out, seeds, quick } => demo::run(&out, seeds, quick),
        Command::Train(args) => train::train(&args),
        Command::Eval(args) => train::eval(&args),
        Command::Predict(args) => train::predict(&args),
        Command::Summary(args) => train::summary(&args),
        Command::Pretrain(args) => transfer::pretrain(&args),
        Command::Finetune(args) => transfer::finetune(&args),
        Command::Info(args) => transfer::info(&args),
        Command::Compare(args) => transfer::compare(&args),
        Command::Probe(args) => probe::probe(&args),
        Command::Data(args) => data::run(&args).map_err(Into::into),
        Command::Bench(args) => bench::run(&args),
        Command::Lm(args) => lm::run(&args),
        Command::Ml(args) => ml::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jizen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;

        super::Cli::command().debug_assert();
    }
}
