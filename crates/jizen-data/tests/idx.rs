//! IDX reading: small files written by the tests (raw and gzip), broken files, and — when
//! `JIZEN_DATA` points at the staged data sets — the real MNIST and Fashion-MNIST files.

use std::io::Write;
use std::path::{Path, PathBuf};

use jizen_data::{load_mnist, Split};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jizen-idx-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx(magic_type: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, magic_type, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes a 3-image 2x2 training split; `labels` and `images` may be broken on purpose.
fn write_split(dir: &Path, images: &[u8], labels: &[u8], compress: bool) {
    let (img, lbl) = if compress {
        (("train-images-idx3-ubyte.gz", gz(images)), ("train-labels-idx1-ubyte.gz", gz(labels)))
    } else {
        (("train-images-idx3-ubyte", images.to_vec()), ("train-labels-idx1-ubyte", labels.to_vec()))
    };
    std::fs::write(dir.join(img.0), img.1).unwrap();
    std::fs::write(dir.join(lbl.0), lbl.1).unwrap();
}

fn good_images() -> Vec<u8> {
    idx(8, &[3, 2, 2], &[0, 255, 10, 20, 1, 2, 3, 4, 9, 9, 9, 9])
}

#[test]
fn reads_raw_and_gzip() {
    for compress in [false, true] {
        let dir = temp_dir(if compress { "gz" } else { "raw" });
        write_split(&dir, &good_images(), &idx(8, &[3], &[7, 0, 9]), compress);
        let set = load_mnist(&dir, Split::Train, 10).unwrap();
        assert_eq!((set.len(), set.rows, set.cols), (3, 2, 2));
        assert_eq!(set.labels, vec![7, 0, 9]);
        let (x, y) = set.tensors(&[0, 2], jizen_tensor::DType::F32).unwrap();
        assert_eq!(x.shape(), &[2, 4]);
        assert_eq!(x.to_vec::<f32>().unwrap()[..2], [0.0, 1.0]);
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![7, 9]);
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[track_caller]
fn expect_error(name: &str, images: Vec<u8>, labels: Vec<u8>, needle: &str) {
    let dir = temp_dir(name);
    write_split(&dir, &images, &labels, false);
    let e = load_mnist(&dir, Split::Train, 10).unwrap_err().to_string();
    assert!(e.contains(needle), "{name}: {e}");
    assert!(e.contains(dir.to_str().unwrap()), "{name}: the error names the file: {e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn broken_files_are_clear_errors() {
    let labels = idx(8, &[3], &[1, 2, 3]);
    expect_error("magic", idx(9, &[3, 2, 2], &[0; 12]), labels.clone(), "bad magic number");
    expect_error("short", vec![0, 0, 8], labels.clone(), "too short for an IDX header");
    let mut truncated = good_images();
    truncated.pop();
    expect_error("truncated", truncated, labels.clone(), "truncated: the header's dimensions [3, 2, 2] need 12 bytes");
    expect_error("count", good_images(), idx(8, &[2], &[1, 2]), "2 labels, but");
    expect_error("range", good_images(), idx(8, &[3], &[1, 12, 3]), "label 12 of example 1 is out of range 0..10");
    let dir = temp_dir("missing");
    let e = load_mnist(&dir, Split::Test, 10).unwrap_err().to_string();
    assert!(e.contains("t10k-images-idx3-ubyte.gz"), "{e}");
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), [0x1f, 0x8b, 1, 2, 3]).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(8, &[0], &[])).unwrap();
    let e = load_mnist(&dir, Split::Test, 10).unwrap_err().to_string();
    assert!(e.contains("corrupt gzip data"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn real_mnist_and_fashion_mnist_load() {
    let Some(root) = std::env::var_os("JIZEN_DATA") else {
        println!("skipped: JIZEN_DATA is not set (point it at the staged data sets to run this test)");
        return;
    };
    let root = PathBuf::from(root);
    for name in ["mnist", "fashion-mnist"] {
        let train = load_mnist(&root.join(name), Split::Train, 10).unwrap();
        let test = load_mnist(&root.join(name), Split::Test, 10).unwrap();
        assert_eq!((train.len(), train.rows, train.cols), (60_000, 28, 28), "{name}");
        assert_eq!(test.len(), 10_000, "{name}");
        let mut counts = [0usize; 10];
        train.labels.iter().for_each(|&l| counts[l as usize] += 1);
        println!("{name}: train label counts {counts:?}");
        if name == "mnist" {
            // The published class counts of the MNIST training set.
            assert_eq!(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
        } else {
            assert!(counts.iter().all(|&c| c == 6000), "Fashion-MNIST is balanced: {counts:?}");
        }
    }
}
