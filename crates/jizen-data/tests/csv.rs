//! Numeric CSV tables: small files written by the tests (raw and gzip, good and broken), and —
//! when `JIZEN_DATA` points at the staged data sets — Iris and the UCI 8x8 digits.

use std::io::Write;
use std::path::PathBuf;

use jizen_data::{load_csv, CsvOptions, Dataset, LabelColumn};

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jizen-csv-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

const TABLE: &str = "a,species,b\n1.5,2,-3\r\n\n0,0,1e2\n";

#[test]
fn reads_named_label_column_raw_and_gzip() {
    for (name, bytes) in [("t.csv", TABLE.as_bytes().to_vec()), ("t.csv.gz", gz(TABLE.as_bytes()))] {
        let p = temp_file(name, &bytes);
        let set = load_csv(&p, &CsvOptions { header: true, label: LabelColumn::Name("species".into()) }).unwrap();
        assert_eq!(set.feature_names, vec!["a", "b"]);
        assert_eq!(set.label_name, "species");
        assert_eq!(set.features, vec![1.5, -3.0, 0.0, 100.0]);
        assert_eq!(set.labels, vec![2, 0]);
        assert_eq!(set.classes(), 3);
        let (x, y) = set.batch(&[1]).unwrap();
        assert_eq!(x.shape(), &[1, 2]);
        assert_eq!(x.to_vec::<f32>().unwrap(), vec![0.0, 100.0]);
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![0]);
        std::fs::remove_file(&p).ok();
    }
}

#[test]
fn last_column_and_headerless_files() {
    let p = temp_file("noheader.csv", b"1,2,3\n4,5,6\n");
    let set = load_csv(&p, &CsvOptions { header: false, label: LabelColumn::Last }).unwrap();
    assert_eq!((set.len(), set.dim()), (2, 2));
    assert_eq!(set.labels, vec![3, 6]);
    assert_eq!(set.feature_names, vec!["col0", "col1"]);
    let set = load_csv(&p, &CsvOptions { header: false, label: LabelColumn::Index(0) }).unwrap();
    assert_eq!(set.labels, vec![1, 4]);
    assert_eq!(set.features, vec![2.0, 3.0, 5.0, 6.0]);
    std::fs::remove_file(&p).ok();
}

#[track_caller]
fn expect_error(name: &str, text: &str, options: CsvOptions, needles: &[&str]) {
    let p = temp_file(name, text.as_bytes());
    let e = load_csv(&p, &options).unwrap_err().to_string();
    for n in needles {
        assert!(e.contains(n), "expected {n:?} in: {e}");
    }
    assert!(e.contains(p.to_str().unwrap()), "the error names the file: {e}");
    std::fs::remove_file(&p).ok();
}

#[test]
fn broken_csv_files_are_clear_errors() {
    let d = CsvOptions::default;
    expect_error("nan.csv", "x,y\n1,0\n2,oops\n", d(), &["line 3", "column 2 (y)", "\"oops\" is not a number"]);
    expect_error("fields.csv", "x,y\n1,0\n\n2,1,5\n", d(), &["line 4", "3 fields, expected 2"]);
    expect_error("label.csv", "x,y\n1,0.5\n", d(), &["line 2", "label \"0.5\" is not a non-negative integer"]);
    expect_error("neg.csv", "x,y\n1,-1\n", d(), &["line 2", "label \"-1\""]);
    expect_error("empty.csv", "", d(), &["no lines"]);
    expect_error("header-only.csv", "x,y\n", d(), &["no data rows"]);
    expect_error("one-col.csv", "x\n1\n", d(), &["1 column"]);
    let named = CsvOptions { header: true, label: LabelColumn::Name("label".into()) };
    expect_error("noname.csv", "x,y\n1,0\n", named, &["no column named \"label\"", "[\"x\", \"y\"]"]);
    let index = CsvOptions { header: true, label: LabelColumn::Index(5) };
    expect_error("noindex.csv", "x,y\n1,0\n", index, &["label column 5 does not exist", "2 columns"]);
    let p = temp_file("latin1.csv", b"x,y\n1,0\n\xff,1\n");
    let e = load_csv(&p, &CsvOptions::default()).unwrap_err().to_string();
    assert!(e.contains("not UTF-8") && e.contains("offset 8"), "{e}");
    std::fs::remove_file(&p).ok();
}

#[test]
fn real_iris_and_digits_load() {
    let Some(root) = std::env::var_os("JIZEN_DATA") else {
        println!("skipped: JIZEN_DATA unset (point it at the staged data sets to run this test)");
        return;
    };
    let root = PathBuf::from(root);
    // scikit-learn's iris.csv: a header line of counts and class names, then 4 features + label.
    let iris = load_csv(&root.join("iris/iris.csv"), &CsvOptions::default()).unwrap();
    assert_eq!((iris.len(), iris.dim(), iris.classes()), (150, 4, 3));
    assert_eq!(iris.features[..4], [5.1, 3.5, 1.4, 0.2]);
    let mut counts = [0usize; 3];
    iris.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [50, 50, 50]);
    // The UCI 8x8 digits: gzip, no header, 64 pixels + label.
    let digits =
        load_csv(&root.join("digits-8x8/digits.csv.gz"), &CsvOptions { header: false, label: LabelColumn::Last })
            .unwrap();
    assert_eq!((digits.len(), digits.dim(), digits.classes()), (1797, 64, 10));
    let mut counts = [0usize; 10];
    digits.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    assert!(digits.features.iter().all(|&v| (0.0..=16.0).contains(&v)));
    println!("iris {} x {}, digits {} x {}", iris.len(), iris.dim(), digits.len(), digits.dim());
}
