//! `jizen`: pre-train, fine-tune, and measure the head start.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { out, seeds, quick } => demo::run(&out, seeds, quick),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jizen: error: {e}");
            ExitCode::FAILURE
        }
    }
}
