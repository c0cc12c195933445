//! `jizen data`: download the public data sets, verified against their published checksums.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use jizen_data::download::{self, GetOptions};

/// Arguments of `jizen data`.
#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The `jizen data` subcommands.
#[derive(Subcommand)]
pub enum DataCommand {
    /// Download a data set into DIR/NAME, verify every file's checksum, resume partial downloads.
    #[command(after_help = "Examples:\n  jizen data get mnist\n  jizen data get cifar10 --dir /data\n  \
                            jizen data get ptb --mirror http://localhost:8000\n\n\
                            A mirror serves MIRROR/NAME/FILE; the environment variable JIZEN_DATA_MIRROR sets one \
                            for every call.")]
    Get {
        /// The data set.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(download::NAMES))]
        name: String,
        /// The folder that receives NAME/ with the set's files.
        #[arg(long, default_value = "data")]
        dir: PathBuf,
        /// Base address replacing the canonical one (files at MIRROR/NAME/FILE).
        #[arg(long)]
        mirror: Option<String>,
    },
}

/// Runs `jizen data`.
pub fn run(args: &DataArgs) -> Result<(), String> {
    match &args.command {
        DataCommand::Get { name, dir, mirror } => {
            let options = GetOptions { mirror: mirror.clone(), ..Default::default() };
            let report = download::get(name, dir, &options).map_err(|e| {
                format!(
                    "{e}\n  hint: a partial download is kept and resumed by running the command again; \
                     --mirror URL (or JIZEN_DATA_MIRROR) picks another server"
                )
            })?;
            for file in &report.present {
                println!("{file}: already there, checksum verified");
            }
            for file in &report.downloaded {
                println!("{file}: downloaded, checksum verified");
            }
            for file in &report.extracted {
                println!("{file}: extracted");
            }
            println!("jizen data: {name} is ready in {}", report.dir.display());
            Ok(())
        }
    }
}
