//! The head-start experiment end to end, at a small size: the checkpoint round trip works and
//! pre-training on converted MNIST helps on UCI digits with one label per class.

use jizen_train::headstart::{run, HeadStartConfig};

#[test]
fn pretraining_gives_a_head_start_on_one_label_per_class() {
    let cfg = HeadStartConfig {
        pretrain_epochs: 2,
        finetune_steps: 100,
        eval_every: 50,
        labels_per_class: vec![1],
        seeds: vec![0, 1],
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("jizen-headstart-test-{}", std::process::id()));
    let report = run(&cfg, &dir, &mut |_| {}).unwrap();
    assert!(report.checkpoint.exists());
    let s = &report.summary[0];
    println!("{}", report.to_markdown());
    // PyTorch reference (scripts/data/demo_reference.py, 2 epochs): 59.9% -> 83.5% at k=1.
    assert_eq!(s.wins, 2, "pre-trained should win every seed at 1 label/class: {s:?}");
    assert!(s.gain_mean > 0.10, "gain {:.3} too small", s.gain_mean);
    assert!(report.pretrained_zero_shot > 0.6, "zero-shot {:.3}", report.pretrained_zero_shot);
    assert_eq!(report.runs[0].scratch_curve.len(), 3);
    let charts = report.charts();
    let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["curves-k1.svg", "accuracy-vs-labels.svg"]);
    assert!(charts[0].1.to_svg().contains("pre-trained"));
    std::fs::remove_dir_all(&dir).ok();
}
