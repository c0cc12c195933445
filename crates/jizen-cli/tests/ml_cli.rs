//! `jizen ml` end to end on the embedded UCI digits (1,438 training and 359 test examples of 64
//! features): fit, eval and predict round trips for every algorithm with accuracy floors
//! measured on this split, the PCA report and plot, and bad input that must exit non-zero with a
//! clear message rather than a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jizen")).args(args).output().expect("the jizen binary runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jizen-ml-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `args`, which must succeed, and returns its standard output.
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    stdout(&o)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Fits `algo` with `extra` flags into `dir`, evaluates it on the test split and predicts five
/// examples; returns fit.json and the evaluation's JSON after checking what all algorithms share.
fn round_trip(algo: &str, extra: &[&str], dir: &Path) -> (serde_json::Value, serde_json::Value, Vec<String>) {
    let mut args = vec!["ml", "fit", "--algo", algo, "--data", "digits", "--out", s(dir)];
    args.extend_from_slice(extra);
    let text = ok(&args);
    assert!(text.contains(&format!("jizen ml fit: {algo} on digits (1438 examples x 64 features")), "{text}");
    assert!(dir.join("model.safetensors").is_file());
    let fit = json(&dir.join("fit.json"));
    assert_eq!(fit["algo"], algo);
    assert_eq!(fit["data"], "digits");
    assert_eq!((fit["n_train"].as_u64(), fit["n_features"].as_u64()), (Some(1438), Some(64)));
    assert!(fit["fit_seconds"].as_f64().unwrap() >= 0.0);

    let report = dir.join("eval.json");
    let text = ok(&["ml", "eval", "--model", s(dir), "--json", s(&report)]);
    assert!(text.contains("on digits (test split, 359 examples)"), "{text}");
    let eval = json(&report);
    assert_eq!(eval["examples"], 359);

    let csv = dir.join("p.csv");
    ok(&["ml", "predict", "--model", s(dir), "--limit", "5", "--out", s(&csv)]);
    let lines: Vec<String> = std::fs::read_to_string(&csv).unwrap().lines().map(String::from).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    (fit, eval, lines)
}

/// Checks a classifier's evaluation: the accuracy floor, the macro scores, the per-class table
/// and the confusion matrix all describe the same 359 predictions.
fn check_classifier(eval: &serde_json::Value, floor: f64) {
    let accuracy = eval["accuracy"].as_f64().unwrap();
    assert!(accuracy >= floor, "accuracy {accuracy} below {floor}");
    let counts: Vec<Vec<u64>> = serde_json::from_value(eval["confusion"]["counts"].clone()).unwrap();
    assert_eq!(counts.len(), 10);
    let total: u64 = counts.iter().flatten().sum();
    let diagonal: u64 = (0..10).map(|i| counts[i][i]).sum();
    assert_eq!(total, 359);
    assert!((diagonal as f64 / 359.0 - accuracy).abs() < 1e-12);
    let per_class = eval["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 10);
    let support: u64 = per_class.iter().map(|c| c["support"].as_u64().unwrap()).sum();
    assert_eq!(support, 359);
    let mean_f1 = per_class.iter().map(|c| c["f1"].as_f64().unwrap()).sum::<f64>() / 10.0;
    assert!((mean_f1 - eval["macro"]["f1"].as_f64().unwrap()).abs() < 1e-12);
    assert!(eval["macro"]["precision"].as_f64().unwrap() > floor - 0.02);
}

#[test]
fn svm_fit_eval_predict_round_trip() {
    let dir = tmp("svm");
    let (fit, eval, lines) = round_trip("svm", &[], &dir);
    // Defaults: scikit-learn's SVC() on standardised features.
    assert_eq!(fit["preprocessing"]["standardize"], true);
    assert!(dir.join("scaler.safetensors").is_file());
    assert_eq!(fit["hyper_parameters"]["kernel"], "rbf");
    assert_eq!(fit["hyper_parameters"]["gamma"], "scale");
    assert_eq!(fit["hyper_parameters"]["C"], 1.0);
    assert!(fit["train_accuracy"].as_f64().unwrap() > 0.99);
    // Measured: 98.3% on this split.
    check_classifier(&eval, 0.97);
    assert_eq!(lines[0], "index,label,predicted");

    // The train split and a polynomial kernel with explicit settings.
    let text = ok(&["ml", "eval", "--model", s(&dir), "--split", "train", "--limit", "100"]);
    assert!(text.contains("train split, 100 examples"), "{text}");
    let poly = dir.join("poly");
    let args = ["--kernel", "poly", "--degree", "2", "--gamma", "auto", "--c", "10", "--max-iter", "100000"];
    let (fit, eval, _) = round_trip("svm", &args, &poly);
    assert_eq!(
        (fit["hyper_parameters"]["degree"].as_u64(), fit["hyper_parameters"]["C"].as_f64()),
        (Some(2), Some(10.0))
    );
    assert_eq!(fit["hyper_parameters"]["gamma_value"].as_f64(), Some(1.0 / 64.0));
    check_classifier(&eval, 0.95);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn logreg_and_linear_svm_round_trips() {
    let dir = tmp("logreg");
    let (fit, eval, lines) = round_trip("logreg", &[], &dir);
    assert_eq!(fit["hyper_parameters"]["penalty"], "l2");
    assert_eq!(fit["converged"], true);
    // Measured: 97.2%.
    check_classifier(&eval, 0.96);
    // Probabilities of the ten classes, summing to 1, the largest the predicted class.
    assert_eq!(lines[0], "index,label,predicted,p_0,p_1,p_2,p_3,p_4,p_5,p_6,p_7,p_8,p_9");
    for line in &lines[1..] {
        let f: Vec<&str> = line.split(',').collect();
        let p: Vec<f64> = f[3..].iter().map(|v| v.parse().unwrap()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{line}");
        let best = (0..10).fold(0, |b, c| if p[c] > p[b] { c } else { b });
        assert_eq!(best.to_string(), f[2], "{line}");
    }

    let l1 = dir.join("l1");
    let (fit, eval, _) = round_trip("logreg", &["--penalty", "l1", "--c", "0.5"], &l1);
    assert_eq!(fit["hyper_parameters"]["solver"], "fista");
    check_classifier(&eval, 0.94);

    let lsvm = dir.join("linear-svm");
    let (fit, eval, lines) = round_trip("linear-svm", &["--loss", "hinge", "--seed", "3"], &lsvm);
    assert_eq!(fit["hyper_parameters"]["loss"], "hinge");
    assert_eq!(fit["hyper_parameters"]["random_state"], 3);
    // Measured: 95.0% with the default squared hinge.
    check_classifier(&eval, 0.92);
    assert_eq!(lines[0], "index,label,predicted");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn knn_round_trip_with_and_without_standardisation() {
    let dir = tmp("knn");
    let (fit, eval, lines) = round_trip("knn", &[], &dir);
    assert_eq!(fit["hyper_parameters"]["n_neighbors"], 5);
    assert!(fit.get("converged").is_none());
    // Measured: 98.9%.
    check_classifier(&eval, 0.97);
    assert!(lines[0].starts_with("index,label,predicted,p_0,"));

    let raw = dir.join("raw");
    let (fit, eval, _) = round_trip("knn", &["--no-standardize", "--k", "3", "--weights", "distance"], &raw);
    assert_eq!(fit["preprocessing"]["standardize"], false);
    assert_eq!(fit["hyper_parameters"]["weights"], "distance");
    assert!(!raw.join("scaler.safetensors").exists());
    // Distance weighting puts every training point's own vote first.
    assert_eq!(fit["train_accuracy"], 1.0);
    check_classifier(&eval, 0.97);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn gmm_reports_likelihood_not_accuracy() {
    let dir = tmp("gmm");
    let (fit, eval, lines) =
        round_trip("gmm", &["--components", "10", "--covariance", "spherical", "--max-iter", "200"], &dir);
    assert_eq!(fit["preprocessing"]["standardize"], false);
    assert!(fit.get("train_accuracy").is_none() && fit.get("accuracy").is_none());
    let (ll, bic) = (fit["mean_log_likelihood"].as_f64().unwrap(), fit["bic"].as_f64().unwrap());
    assert!(ll.is_finite());
    // BIC = -2 n ll + p ln n with p = 10·64 means + 10 variances + 9 weights.
    let p = 10.0 * 64.0 + 10.0 + 9.0;
    assert!((bic - (-2.0 * 1438.0 * ll + p * 1438f64.ln())).abs() < 1e-6 * bic.abs().max(1.0), "{fit}");

    assert!(eval.get("accuracy").is_none());
    let test_ll = eval["mean_log_likelihood"].as_f64().unwrap();
    assert!(test_ll.is_finite() && eval["aic"].as_f64().unwrap().is_finite());
    assert_eq!(eval["n_parameters"], 659);
    let text = ok(&["ml", "eval", "--model", s(&dir)]);
    assert!(text.contains("mean log-likelihood") && text.contains("BIC") && !text.contains("accuracy"), "{text}");

    assert!(lines[0].starts_with("index,label,component,p_component_0,"));
    for line in &lines[1..] {
        let p: f64 = line.split(',').skip(3).map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-4, "{line}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pca_prints_decreasing_ratios_and_draws_the_scatter() {
    let dir = tmp("pca");
    let (png, report) = (dir.join("pca.png"), dir.join("pca.json"));
    let text = ok(&["ml", "pca", "--data", "digits", "--components", "10", "--plot", s(&png), "--json", s(&report)]);
    assert!(text.contains("component") && text.contains("cumulative"), "{text}");
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let r = json(&report);
    let ratios: Vec<f64> = serde_json::from_value(r["explained_variance_ratio"].clone()).unwrap();
    assert_eq!(ratios.len(), 10);
    assert!(ratios.iter().all(|&v| v > 0.0));
    assert!(ratios.windows(2).all(|w| w[0] >= w[1]), "{ratios:?}");
    let total: f64 = ratios.iter().sum();
    assert!(total <= 1.0 + 1e-12 && total > 0.5, "{total}");

    // Standardised, on a limit, as SVG.
    let svg = dir.join("pca.svg");
    let text = ok(&["ml", "pca", "--data", "digits", "--limit", "300", "--standardize", "--plot", s(&svg)]);
    assert!(text.contains("300 train examples x 64 features") && text.contains("standardised"), "{text}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `args`, which must fail with a message containing `want` and no panic.
fn fails(args: &[&str], want: &str) {
    let o = run(args);
    assert!(!o.status.success(), "{args:?} should fail");
    let err = stderr(&o);
    assert!(err.contains(want), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tmp("bad");
    let out = dir.join("m");
    let o = s(&out);
    fails(&["ml", "fit", "--algo", "forest", "--data", "digits", "--out", o], "invalid value 'forest' for '--algo");
    fails(
        &["ml", "fit", "--algo", "knn", "--data", "digits", "--kernel", "rbf", "--out", o],
        "--kernel does not apply to --algo knn (it is a setting of svm)",
    );
    fails(
        &["ml", "fit", "--algo", "svm", "--data", "digits", "--k", "3", "--out", o],
        "--k does not apply to --algo svm",
    );
    fails(
        &["ml", "fit", "--algo", "svm", "--data", "digits", "--degree", "2", "--out", o],
        "--degree applies to the poly kernel only",
    );
    fails(&["ml", "fit", "--algo", "logreg", "--data", "digits", "--c", "-1", "--out", o], "C must be positive");
    fails(
        &["ml", "fit", "--algo", "knn", "--data", "digits", "--k", "5000", "--out", o],
        "k = 5000 is too large: the data has only 1438 samples",
    );
    fails(
        &["ml", "fit", "--algo", "gmm", "--data", "digits", "--limit", "5", "--components", "10", "--out", o],
        "n_components = 10 is too large: the data has only 5 samples",
    );
    fails(
        &["ml", "pca", "--data", "digits", "--components", "65", "--plot", s(&dir.join("p.png"))],
        "n_components = 65 is too large: the data has only 64 features",
    );
    fails(&["ml", "pca", "--data", "digits", "--plot", s(&dir.join("p.gif"))], "must end in .png or .svg");
    fails(&["ml", "eval", "--model", "/nonexistent/model"], "/nonexistent/model: no such model directory");
    fails(&["ml", "predict", "--model", s(&dir)], "fit.json: cannot read");

    // NaN in a feature column: the row and column are named.
    let nan = dir.join("nan.csv");
    let mut text = String::from("a,b,label\n");
    for i in 0..20 {
        text += &format!("{},{},{}\n", if i % 2 == 0 { "nan".to_string() } else { i.to_string() }, i * 2, i % 2);
    }
    std::fs::write(&nan, text).unwrap();
    fails(
        &["ml", "fit", "--algo", "logreg", "--data", s(&nan), "--out", o],
        "has the non-finite feature NaN in column 0",
    );
    assert!(!out.join("fit.json").exists());

    // A model for 64 features does not take 4-feature rows.
    let (knn, svm) = (dir.join("knn"), dir.join("svm"));
    ok(&["ml", "fit", "--algo", "knn", "--data", "digits", "--limit", "200", "--out", s(&knn)]);
    ok(&["ml", "fit", "--algo", "svm", "--data", "digits", "--limit", "200", "--out", s(&svm)]);
    let four = dir.join("four.csv");
    std::fs::write(&four, "a,b,c,d,label\n1,2,3,4,0\n5,6,7,8,1\n1,1,1,1,0\n2,2,2,2,1\n3,3,3,3,0\n").unwrap();
    fails(&["ml", "eval", "--model", s(&knn), "--data", s(&four)], "the model was fitted on 64 features but");
    fails(&["ml", "predict", "--model", s(&knn), "--data", s(&four)], "has 4 per example");

    // The estimator file of another algorithm in a model directory.
    std::fs::copy(knn.join("model.safetensors"), svm.join("model.safetensors")).unwrap();
    fails(&["ml", "eval", "--model", s(&svm)], "holds a Knn, not a Svc");
    // A fit.json that is not one.
    std::fs::write(knn.join("fit.json"), "{\"algo\": \"knn\"}").unwrap();
    fails(&["ml", "eval", "--model", s(&knn)], "not a fit record of `jizen ml fit`");
    std::fs::remove_dir_all(&dir).ok();
}
