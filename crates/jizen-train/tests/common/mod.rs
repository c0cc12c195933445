//! What the jizen-train tests share: the embedded UCI digits split in two, and fresh scratch
//! directories.

#![allow(dead_code)] // each test file uses the helpers it needs

use std::path::PathBuf;
use std::sync::Arc;

use jizen_data::{Dataset, Digits, Subset};

/// The embedded UCI digits: examples 0..1400 to train on, 1400..1797 held out.
pub fn digits_split() -> (Arc<dyn Dataset>, Arc<dyn Dataset>) {
    let d: Arc<dyn Dataset> = Arc::new(Digits::uci8x8());
    let part =
        |r: std::ops::Range<usize>| -> Arc<dyn Dataset> { Arc::new(Subset::new(d.clone(), r.collect()).unwrap()) };
    (part(0..1400), part(1400..1797))
}

/// An empty scratch path `jizen-<test>-<name>-<pid>` under the temporary directory.
pub fn tmp(test: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jizen-{test}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
