//! CIFAR-10/100 binary files: small files written by the tests (good and broken), and loading
//! through the `DataLoader`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jizen_data::cifar::IMAGE_BYTES;
use jizen_data::{load_cifar, Cifar, DataLoader, LoaderConfig, Split};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jizen-cifar-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One record: the label byte(s), then pixels that encode the record's number and the channel.
fn record(labels: &[u8], seed: u8) -> Vec<u8> {
    let mut r = labels.to_vec();
    for c in 0..3u8 {
        r.extend((0..1024).map(|i| seed.wrapping_add(c * 80).wrapping_add((i % 7) as u8)));
    }
    r
}

fn write(dir: &Path, name: &str, records: &[Vec<u8>]) {
    std::fs::write(dir.join(name), records.concat()).unwrap();
}

#[test]
fn cifar10_train_and_test_load_in_order() {
    let root = temp_dir("ten");
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for b in 1..=5u8 {
        write(&dir, &format!("data_batch_{b}.bin"), &[record(&[b], b), record(&[9], 100 + b)]);
    }
    write(&dir, "test_batch.bin", &[record(&[3], 7)]);
    // Either the folder holding the extracted archive or the extracted folder itself.
    for d in [&root, &dir] {
        let train = load_cifar(d, Cifar::Ten, Split::Train).unwrap();
        assert_eq!((train.len(), train.channels, train.height, train.width), (10, 3, 32, 32));
        assert_eq!(train.labels, vec![1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
        assert_eq!(train.image(2), &record(&[2], 2)[1..]);
        assert_eq!(train.classes[3], "cat");
    }
    let test = load_cifar(&root, Cifar::Ten, Split::Test).unwrap();
    assert_eq!(test.labels, vec![3]);
    let loader = DataLoader::new(
        Arc::new(test),
        LoaderConfig { batch_size: 4, shuffle: false, prefetch: 0, ..Default::default() },
    )
    .unwrap();
    let (x, y) = loader.epoch(0, 0).next().unwrap().unwrap();
    assert_eq!(x.shape(), &[1, 3, 32, 32]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![3]);
    let x = x.to_vec::<f32>().unwrap();
    // Channel-major: the first value of the green plane is record value 7 + 80.
    assert_eq!(x[0], 7.0 / 255.0);
    assert_eq!(x[1024], 87.0 / 255.0);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn cifar100_fine_and_coarse_labels() {
    let root = temp_dir("hundred");
    let dir = root.join("cifar-100-binary");
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir, "train.bin", &[record(&[19, 99], 1), record(&[0, 5], 2)]);
    let fine = load_cifar(&root, Cifar::HundredFine, Split::Train).unwrap();
    let coarse = load_cifar(&root, Cifar::HundredCoarse, Split::Train).unwrap();
    assert_eq!(fine.labels, vec![99, 5]);
    assert_eq!(coarse.labels, vec![19, 0]);
    assert_eq!(fine.pixels, coarse.pixels);
    assert_eq!(fine.image(1), &record(&[0, 5], 2)[2..]);
    std::fs::remove_dir_all(&root).ok();
}

#[track_caller]
fn expect_error(kind: Cifar, name: &str, bytes: Vec<u8>, needles: &[&str]) {
    let dir = temp_dir(&format!("bad-{}", name.replace('.', "-")));
    std::fs::write(dir.join(name), bytes).unwrap();
    let split = if name.starts_with("test") { Split::Test } else { Split::Train };
    let e = load_cifar(&dir, kind, split).unwrap_err().to_string();
    for n in needles {
        assert!(e.contains(n), "expected {n:?} in: {e}");
    }
    assert!(e.contains(dir.join(name).to_str().unwrap()), "the error names the file: {e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn broken_cifar_files_are_clear_errors() {
    let mut truncated = [record(&[1], 0), record(&[2], 0)].concat();
    truncated.truncate(3073 + 100);
    expect_error(
        Cifar::Ten,
        "test_batch.bin",
        truncated,
        &["3173 bytes", "3073-byte records", "1 records and 100 bytes left over"],
    );
    // A CIFAR-100 file read as CIFAR-10 has the wrong record size.
    expect_error(Cifar::Ten, "test_batch.bin", record(&[1, 2], 0), &["3074 bytes", "3073-byte records"]);
    expect_error(
        Cifar::Ten,
        "test_batch.bin",
        [record(&[1], 0), record(&[10], 0)].concat(),
        &["record 1: label 10 is out of range 0..10"],
    );
    expect_error(
        Cifar::HundredFine,
        "test.bin",
        record(&[20, 3], 0),
        &["record 0: coarse label 20 is out of range 0..20"],
    );
    expect_error(
        Cifar::HundredCoarse,
        "train.bin",
        record(&[2, 100], 0),
        &["record 0: fine label 100 is out of range 0..100"],
    );
    expect_error(Cifar::Ten, "test_batch.bin", Vec::new(), &["empty"]);
    assert_eq!(IMAGE_BYTES, 3072);
    // A missing batch names what was expected.
    let dir = temp_dir("missing");
    let e = load_cifar(&dir, Cifar::Ten, Split::Train).unwrap_err().to_string();
    assert!(e.contains("data_batch_1.bin") && e.contains("missing"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
