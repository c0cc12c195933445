//! `jizen demo`: the head-start experiment on the embedded digit sets.

use std::path::Path;
use std::time::Instant;

use jizen_train::headstart::{self, HeadStartConfig};

pub fn run(out: &Path, seeds: u64, quick: bool) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut cfg = HeadStartConfig { seeds: (0..seeds).collect(), ..Default::default() };
    if quick {
        cfg.pretrain_epochs = 2;
        cfg.finetune_steps = 100;
        cfg.seeds = (0..seeds.min(2)).collect();
    }
    println!(
        "jizen demo: pre-train an MLP {:?} on 20,000 MNIST digits (converted to 8x8), fine-tune on \
         UCI 8x8 digits with {:?} labels per class, {} seeds, {} threads",
        cfg.sizes,
        cfg.labels_per_class,
        cfg.seeds.len(),
        jizen_tensor::num_threads()
    );
    let report = headstart::run(&cfg, out, &mut |line| println!("  {line}"))?;
    let md = report.to_markdown();
    println!("\n{md}");
    let write = |name: &str, text: String| -> Result<(), Box<dyn std::error::Error>> {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(())
    };
    write("report.md", md)?;
    write("report.json", serde_json::to_string_pretty(&report)?)?;
    let mut plots = Vec::new();
    for (name, chart) in report.charts() {
        write(&name, chart.to_svg())?;
        plots.push(name);
    }
    println!(
        "wrote {0}/report.md, {0}/report.json, {0}/pretrained.safetensors and plots {1} in {2:.1} s",
        out.display(),
        plots.join(", "),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
