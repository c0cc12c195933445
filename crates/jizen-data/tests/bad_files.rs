//! Broken files in every format give an error that names the file, what was expected and what
//! was found. Each format's own test file covers its details; this one fills the IDX gaps (labels
//! file with the wrong magic, trailing bytes, truncated gzip) and checks the shared promise that
//! the path is in the message.

use std::io::Write;
use std::path::{Path, PathBuf};

use jizen_data::{load_cifar, load_csv, load_mnist, read_tokens, Cifar, CsvOptions, Split, Tokens};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jizen-bad-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx(ndims: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, ndims];
    dims.iter().for_each(|d| v.extend_from_slice(&d.to_be_bytes()));
    v.extend_from_slice(data);
    v
}

#[track_caller]
fn mnist_error(name: &str, images: Vec<u8>, labels: Vec<u8>) -> String {
    let dir = temp_dir(name);
    std::fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels).unwrap();
    let e = load_mnist(&dir, Split::Train, 10).unwrap_err().to_string();
    assert!(e.contains(dir.to_str().unwrap()), "the error names the file: {e}");
    std::fs::remove_dir_all(&dir).ok();
    e
}

#[test]
fn idx_gaps() {
    let images = idx(3, &[2, 1, 1], &[5, 6]);
    // An image file given as the labels: 3 dimensions where 1 is expected.
    let e = mnist_error("labels-magic", images.clone(), images.clone());
    assert!(e.contains("train-labels-idx1-ubyte") && e.contains("bad magic number [00, 00, 08, 03]"), "{e}");
    assert!(e.contains("expected [00, 00, 08, 01]"), "{e}");
    // More data than the header announces.
    let e = mnist_error("trailing", idx(3, &[2, 1, 1], &[5, 6, 7]), idx(1, &[2], &[0, 1]));
    assert!(e.contains("trailing bytes") && e.contains("need 2 bytes") && e.contains("has 3"), "{e}");
    // More labels than images: both counts named.
    let e = mnist_error("count", images.clone(), idx(1, &[3], &[0, 1, 2]));
    assert!(e.contains("3 labels, but") && e.contains("has 2 images"), "{e}");
    // A gzip stream cut short.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&idx(1, &[2], &[0, 1])).unwrap();
    let mut gz = gz.finish().unwrap();
    gz.truncate(gz.len() - 6);
    let e = mnist_error("gzip", images, gz);
    assert!(e.contains("corrupt gzip data"), "{e}");
}

#[test]
fn every_format_names_the_file() {
    let dir = temp_dir("all");
    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let check = |path: &Path, e: String, needle: &str| {
        assert!(e.contains(path.to_str().unwrap()) && e.contains(needle), "expected {needle:?} and the path in: {e}");
    };
    let p = write("test_batch.bin", &[0u8; 3000]);
    check(&p, load_cifar(&dir, Cifar::Ten, Split::Test).unwrap_err().to_string(), "3000 bytes");
    let p = write("t.csv", b"x,y\n1,2\n3\n");
    check(&p, load_csv(&p, &CsvOptions::default()).unwrap_err().to_string(), "line 3: 1 fields, expected 2");
    let p = write("t.txt", b"\xff");
    check(&p, read_tokens(&p, Tokens::Chars).unwrap_err().to_string(), "byte offset 0");
    let p = dir.join("absent.csv");
    check(&p, load_csv(&p, &CsvOptions::default()).unwrap_err().to_string(), "cannot read");
    std::fs::remove_dir_all(&dir).ok();
}
