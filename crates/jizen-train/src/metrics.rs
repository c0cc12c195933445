//! The metrics of a run, written as it goes to `metrics.jsonl` (one JSON object per line) and
//! `metrics.csv` (the same records as columns), and read back for plots.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One measurement: a stretch of training steps or a validation pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Optimizer steps taken when it was measured.
    pub step: u64,
    /// Epoch (0-based) it belongs to.
    pub epoch: u64,
    /// `train` (mean over the steps since the last record) or `val`.
    pub split: String,
    /// Mean loss.
    pub loss: f64,
    /// Accuracy in [0, 1] (`None` for objectives without one, such as reconstruction).
    pub accuracy: Option<f64>,
    /// Learning rate of the first parameter group.
    pub lr: f64,
    /// Global gradient norm before clipping (mean over the steps), train records only.
    pub grad_norm: Option<f64>,
    /// Training throughput, train records only.
    pub examples_per_s: Option<f64>,
    /// Seconds of training so far (resumed runs continue the count).
    pub elapsed_s: f64,
}

const CSV_HEADER: &str = "step,epoch,split,loss,accuracy,lr,grad_norm,examples_per_s,elapsed_s";

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io { path: path.to_path_buf(), source: e }
}

/// Appends records to `metrics.jsonl` and `metrics.csv` in a run directory.
pub struct MetricsLog {
    jsonl: PathBuf,
    csv: PathBuf,
}

impl MetricsLog {
    /// Opens the log of `dir`. With `keep_up_to = Some(step)` (a resumed run), records after
    /// that step (written by the interrupted run after its last checkpoint) are dropped, so the
    /// log reads as if the run had never stopped; with `None` the log starts empty.
    pub fn open(dir: &Path, keep_up_to: Option<u64>) -> Result<MetricsLog> {
        let log = MetricsLog { jsonl: dir.join("metrics.jsonl"), csv: dir.join("metrics.csv") };
        let kept = match keep_up_to {
            Some(step) => read_records(&log.jsonl)?.into_iter().filter(|r| r.step <= step).collect(),
            None => Vec::new(),
        };
        let mut j = File::create(&log.jsonl).map_err(io(&log.jsonl))?;
        let mut c = File::create(&log.csv).map_err(io(&log.csv))?;
        writeln!(c, "{CSV_HEADER}").map_err(io(&log.csv))?;
        for r in &kept {
            writeln!(j, "{}", json_line(r)).map_err(io(&log.jsonl))?;
            writeln!(c, "{}", csv_line(r)).map_err(io(&log.csv))?;
        }
        Ok(log)
    }

    /// Appends one record to both files.
    pub fn write(&self, r: &Record) -> Result<()> {
        let append = |path: &Path, line: String| -> Result<()> {
            let mut f = OpenOptions::new().append(true).open(path).map_err(io(path))?;
            writeln!(f, "{line}").map_err(io(path))
        };
        append(&self.jsonl, json_line(r))?;
        append(&self.csv, csv_line(r))
    }

    /// The path of the JSONL file.
    pub fn jsonl_path(&self) -> &Path {
        &self.jsonl
    }
}

fn json_line(r: &Record) -> String {
    serde_json::to_string(r).expect("records serialise")
}

fn csv_line(r: &Record) -> String {
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{},{},{}",
        r.step,
        r.epoch,
        r.split,
        r.loss,
        opt(r.accuracy),
        r.lr,
        opt(r.grad_norm),
        opt(r.examples_per_s),
        r.elapsed_s
    )
}

/// The records of a `metrics.jsonl` file (none if it does not exist). A line that does not
/// parse is an error naming the file and the line: a log is never silently half-read.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io(path)(e)),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        // A run killed mid-write can leave a torn last line; that one alone is skipped.
        match serde_json::from_str(&line) {
            Ok(r) => out.push(r),
            Err(_) if line.ends_with('}') => {
                return Err(Error::Msg(format!("{}: line {} is not a metrics record", path.display(), i + 1)))
            }
            Err(_) => {}
        }
    }
    Ok(out)
}
