//! The `jizen` binary end to end on the embedded digit sets: a run killed with SIGKILL and
//! resumed ends with the same weights as one that never stopped, and bad input exits non-zero
//! with one clear line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn jizen() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jizen"));
    // Bitwise equality holds for one thread count; fix it for every run of the test.
    c.env("JIZEN_THREADS", "2");
    c
}

fn run(args: &[&str]) -> Output {
    jizen().args(args).output().expect("the jizen binary runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jizen-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The model tensors of a checkpoint, as raw bytes by name.
fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = jizen_tensor::safetensors::load(path)
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let bytes = match t.dtype() {
                jizen_tensor::DType::I64 => t.to_vec::<i64>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
                jizen_tensor::DType::F64 => t.to_vec::<f64>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
                _ => t.to_vec::<f32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            (k, bytes)
        })
        .collect();
    out.sort();
    out
}

const TRAIN: [&str; 14] = [
    "train",
    "--model",
    "cnn",
    "--data",
    "mnist8x8",
    "--epochs",
    "3",
    "--val",
    "1000",
    "--checkpoint-every",
    "40",
    "--quiet",
    "--seed",
    "3",
];

#[test]
fn a_run_killed_with_sigkill_resumes_to_the_same_bits() {
    let whole = tmp("whole");
    let o = jizen().args(TRAIN).arg("--out").arg(&whole).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let killed = tmp("killed");
    let mut child =
        jizen().args(TRAIN).arg("--out").arg(&killed).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    let checkpoints = killed.join("checkpoints");
    loop {
        let steps = jizen_train::checkpoint::list_steps(&checkpoints);
        if steps.last().is_some_and(|(s, _)| *s >= 120) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(child.try_wait().unwrap().is_none(), "the run must still be going when it is killed");
    child.kill().unwrap(); // SIGKILL on Unix: no chance to clean up
    child.wait().unwrap();
    assert!(!killed.join("final.safetensors").exists(), "the killed run must not have finished");

    let o = run(&["train", "--out", killed.to_str().unwrap(), "--resume", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("resuming"));
    let (a, b) = (tensors(&whole.join("final.safetensors")), tensors(&killed.join("final.safetensors")));
    assert_eq!(a.len(), b.len());
    for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert!(va == vb, "{ka} differs after resuming");
    }
    std::fs::remove_dir_all(&whole).ok();
    std::fs::remove_dir_all(&killed).ok();
}

#[test]
fn eval_predict_and_summary_work_on_a_trained_checkpoint() {
    let out = tmp("eval");
    let o = run(&[
        "train",
        "--model",
        "mlp",
        "--data",
        "digits",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ck = out.join("final.safetensors");
    let o = run(&["eval", ck.to_str().unwrap(), "--top-k", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("examples 359") && text.contains("top-3") && text.contains("confusion"), "{text}");

    let csv = out.join("p.csv");
    let o = run(&["predict", ck.to_str().unwrap(), "--limit", "5", "--out", csv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = std::fs::read_to_string(&csv).unwrap().lines().map(String::from).collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0], "index,label,predicted,probability,top_k");

    let o = run(&["summary", ck.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("activations held for backward"));
    let o = run(&["summary", "resnet-cifar", "--input", "3,32,32"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("parameters: 272,474"));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn bad_input_exits_non_zero_with_one_clear_line() {
    let cases: [(&[&str], &str); 7] = [
        (&["train", "--model", "vgg", "--data", "digits"], "unknown model \"vgg\""),
        (
            &["train", "--model", "cnn", "--data", "mnist", "--data-dir", "/nonexistent/mnist"],
            "no data at /nonexistent/mnist",
        ),
        (&["train", "--model", "cnn", "--data", "digits", "--lr", "-1"], "learning rate must be positive"),
        (&["train", "--model", "cnn", "--data", "imagenet"], "unknown data set \"imagenet\""),
        (&["eval", "/nonexistent/ck.safetensors"], "/nonexistent/ck.safetensors: no such checkpoint file"),
        (&["summary", "cnn", "--input", "784"], "needs a [C, H, W] input"),
        (
            &["pretrain", "--model", "mlp", "--data", "digits", "--greedy-epochs", "2"],
            "--greedy-epochs needs --objective autoencoder or denoising",
        ),
    ];
    for (args, want) in cases {
        let o = run(args);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = stderr(&o);
        assert!(err.starts_with("jizen: error: ") && err.contains(want), "{args:?}: {err}");
    }
    // A checkpoint trained on 1×8×8 images does not take 4-feature rows.
    let out = tmp("mismatch");
    let o = run(&[
        "train",
        "--model",
        "mlp",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = out.join("four.csv");
    std::fs::write(&csv, "a,b,c,d,label\n1,2,3,4,0\n5,6,7,8,1\n1,1,1,1,0\n2,2,2,2,1\n3,3,3,3,0\n").unwrap();
    let o = run(&["eval", out.join("final.safetensors").to_str().unwrap(), "--data", csv.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("takes samples of shape [1, 8, 8] but the data has [4]"), "{}", stderr(&o));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn pretrain_finetune_and_info_follow_the_lineage() {
    let pre = tmp("pre");
    let o = run(&[
        "pretrain",
        "--objective",
        "denoising",
        "--model",
        "mlp",
        "--data",
        "mnist8x8",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        pre.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ck = pre.join("final.safetensors");

    // A pattern that matches nothing is an error naming the closest keys; nothing trains.
    let ft = tmp("ft");
    let o = run(&[
        "finetune",
        "--from",
        ck.to_str().unwrap(),
        "--data",
        "digits",
        "--freeze",
        "1.weigth",
        "--out",
        ft.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("freeze \"1.weigth\" matches no model key (closest: [\"1.weight\""), "{}", stderr(&o));

    let o = run(&[
        "finetune",
        "--from",
        ck.to_str().unwrap(),
        "--data",
        "digits",
        "--labels-per-class",
        "5",
        "--epochs",
        "3",
        "--freeze",
        "1.*",
        "--quiet",
        "--out",
        ft.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("skipped: 5.bias, 5.weight, 7.bias, 7.weight"), "{out}");
    assert!(out.contains("(50 train,"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ft.join("load_report.json")).unwrap()).unwrap();
    assert_eq!(report["loaded"].as_array().unwrap().len(), 4);
    // The frozen first layer still holds the pre-trained weights.
    let (a, b) = (tensors(&ck), tensors(&ft.join("final.safetensors")));
    let w = |v: &[(String, Vec<u8>)]| v.iter().find(|(k, _)| k == "1.weight").unwrap().1.clone();
    assert_eq!(w(&a), w(&b));

    let o = run(&["info", ft.join("final.safetensors").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("trained on digits (supervised)"), "{text}");
    assert!(text.contains("mlp-autoencoder on mnist8x8, denoising-autoencoder (noise 0.3)"), "{text}");
    assert!(text.contains("<- random initialisation (seed 0)"), "{text}");
    std::fs::remove_dir_all(&pre).ok();
    std::fs::remove_dir_all(&ft).ok();
}

#[test]
fn compare_writes_the_head_start_report() {
    let pre = tmp("cmp-pre");
    let o = run(&[
        "pretrain",
        "--model",
        "mlp",
        "--data",
        "mnist8x8",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        pre.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = tmp("cmp");
    let o = run(&[
        "compare",
        "--from",
        pre.join("final.safetensors").to_str().unwrap(),
        "--data",
        "digits",
        "--labels",
        "1,all",
        "--seeds",
        "2",
        "--steps",
        "20",
        "--eval-every",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    // Accuracy at steps 0, 10 and 20 for each arm; both arms see the same examples.
    assert_eq!(runs[0]["scratch_curve"].as_array().unwrap().len(), 3);
    assert_eq!(runs[0]["pretrained_curve"][0][0], 0);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| all |") && md.contains("| 1 | 0 |"), "{md}");
    for f in ["curves-k1.svg", "accuracy-vs-labels.svg"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    std::fs::remove_dir_all(&pre).ok();
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn bench_quick_prints_one_json_line_per_workload() {
    for (workload, unit) in [("mlp", "ms/step"), ("lstm", "ms/step"), ("infer", "us/call"), ("gemm", "GFLOP/s")] {
        let o = run(&["bench", workload, "--quick"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let line = String::from_utf8_lossy(&o.stdout);
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["workload"], workload);
        assert_eq!(v["unit"], unit);
        assert_eq!(v["threads"], 2);
        assert!(v["median"].as_f64().unwrap() > 0.0 && v["p10"].as_f64() <= v["p90"].as_f64());
        assert!(v["peak_rss_mib"].as_f64().unwrap() > 0.0);
        assert!(["avx512", "avx2", "base"].contains(&v["isa"].as_str().unwrap()), "{v}");
    }
}

#[test]
fn bench_counts_can_be_set_and_the_series_printed_in_order() {
    let o = run(&["bench", "infer", "--warmup", "1", "--steps", "7", "--series"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(v["samples"], 7);
    let series: Vec<f64> = v["series"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(series.len(), 7);
    // The median is the middle of the sorted series (nearest rank over 7 samples).
    let mut sorted = series.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(v["median"].as_f64().unwrap(), sorted[3]);
    assert!(series.iter().all(|&x| x > 0.0));
    // The cores' round trip before and after: a positive time each, or null where it could not
    // be measured (one CPU, or threads stalled by other work on the cores).
    let c2c = v["core_to_core_ns"].as_array().unwrap();
    assert_eq!(c2c.len(), 2, "{v}");
    assert!(c2c.iter().all(|x| x.is_null() || x.as_f64().is_some_and(|ns| ns > 0.0 && ns < 1e6)), "{v}");
    // Without --series the line has no series; a count of 0 timed samples is refused.
    let o = run(&["bench", "infer", "--quick"]);
    let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert!(v.get("series").is_none(), "{v}");
    let o = run(&["bench", "infer", "--steps", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--steps must be at least 1"), "{}", stderr(&o));
}

#[test]
fn lm_train_and_sample_on_a_tiny_character_corpus() {
    let dir = tmp("lm-corpus");
    std::fs::create_dir_all(&dir).unwrap();
    let text = "First Citizen:\nWe are accounted poor citizens.\n\n".repeat(60);
    std::fs::write(dir.join("input.txt"), &text).unwrap();
    let out = tmp("lm-run");
    let o = run(&[
        "lm",
        "train",
        "--data",
        "tinyshakespeare",
        "--data-dir",
        dir.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("bits per character"), "{stdout}");
    // The vocabulary keeps its newline and space tokens, so sampling joins characters directly.
    let o = run(&["lm", "sample", out.to_str().unwrap(), "--prompt", "We", "--tokens", "20", "--seed", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sample = String::from_utf8_lossy(&o.stdout);
    assert!(sample.starts_with("We") && !sample.starts_with("W e"), "{sample}");
    let o = run(&["lm", "sample", out.to_str().unwrap(), "--prompt", "We", "--temperature", "0"]);
    assert!(!o.status.success() && stderr(&o).contains("temperature"), "{}", stderr(&o));
    let o = run(&["lm", "train", "--data", "ptb", "--data-dir", "/nonexistent/ptb"]);
    assert!(!o.status.success() && stderr(&o).contains("no data at /nonexistent/ptb"), "{}", stderr(&o));
    // --resume continues after the saved epoch, with the run's own settings.
    let resume = |data_dir: &std::path::Path, epochs: &str| {
        let args = ["lm", "train", "--data", "tinyshakespeare", "--data-dir", data_dir.to_str().unwrap()];
        run(&[&args[..], &["--resume", "--epochs", epochs, "--out", out.to_str().unwrap()]].concat())
    };
    let o = resume(&dir, "2");
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("resuming") && stdout.contains("after epoch 1") && stdout.contains("epoch 2:"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("lm.json")).unwrap()).unwrap();
    assert_eq!(report["epochs"].as_array().unwrap().len(), 2);
    // Another corpus has another vocabulary: a clear error, and the run is left as it was.
    let other = tmp("lm-other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("input.txt"), "xyz xyz qq\n".repeat(200)).unwrap();
    let o = resume(&other, "3");
    assert!(!o.status.success() && stderr(&o).contains("is not the one this data gives"), "{}", stderr(&o));
    let o = run(&[
        "lm",
        "train",
        "--data",
        "tinyshakespeare",
        "--data-dir",
        dir.to_str().unwrap(),
        "--resume",
        "--config",
        "medium",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    for d in [&dir, &out, &other] {
        std::fs::remove_dir_all(d).ok();
    }
}
