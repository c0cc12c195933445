//! Measuring the head start: fine-tune a pre-trained network and train the same network from
//! scratch with identical budgets (examples, steps, optimizer), over several seeds and label
//! budgets, and report each arm's accuracy, the gain, and how many steps the pre-trained arm
//! needed to reach the scratch arm's final accuracy. `jizen compare` runs it on any checkpoint
//! and data set; `jizen demo` runs it on the embedded digits.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use jizen_data::Dataset;
use jizen_models::{Model, ModelSpec};
use jizen_tensor::{DType, Tensor};
use serde::Serialize;

use crate::config::TrainConfig;
use crate::metrics::read_records;
use crate::plot::{Chart, Series, COLORS};
use crate::stats::mean_std;
use crate::transfer::{TransferManifest, TransferReport};
use crate::{Result, Trainer};

/// One seed at one label budget: both arms' final accuracies and curves.
#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    pub labels_per_class: usize,
    pub seed: u64,
    pub scratch: f64,
    pub pretrained: f64,
    /// Test accuracy at steps 0, eval_every, 2*eval_every, ..., finetune_steps.
    pub scratch_curve: Vec<(usize, f64)>,
    pub pretrained_curve: Vec<(usize, f64)>,
    /// First recorded step at which the pre-trained arm reached the scratch arm's final accuracy.
    pub steps_to_match: Option<usize>,
}

/// Aggregate over seeds for one label budget.
#[derive(Clone, Debug, Serialize)]
pub struct BudgetSummary {
    pub labels_per_class: usize,
    pub scratch_mean: f64,
    pub scratch_std: f64,
    pub pretrained_mean: f64,
    pub pretrained_std: f64,
    pub gain_mean: f64,
    pub gain_std: f64,
    pub wins: usize,
    pub seeds: usize,
    /// Mean of `steps_to_match` over the seeds where it was reached.
    pub steps_to_match_mean: Option<f64>,
    /// How many seeds' pre-trained arms reached their scratch arm's final accuracy.
    pub matched_seeds: usize,
}

/// Mean ± std over seeds of each label budget's runs.
pub fn summarise(runs: &[SeedResult], budgets: &[usize]) -> Vec<BudgetSummary> {
    budgets
        .iter()
        .map(|&k| {
            let rs: Vec<&SeedResult> = runs.iter().filter(|r| r.labels_per_class == k).collect();
            let s: Vec<f64> = rs.iter().map(|r| r.scratch).collect();
            let p: Vec<f64> = rs.iter().map(|r| r.pretrained).collect();
            let g: Vec<f64> = rs.iter().map(|r| r.pretrained - r.scratch).collect();
            let matched: Vec<f64> = rs.iter().filter_map(|r| r.steps_to_match.map(|v| v as f64)).collect();
            let ((sm, ss), (pm, ps), (gm, gs)) = (mean_std(&s), mean_std(&p), mean_std(&g));
            BudgetSummary {
                labels_per_class: k,
                scratch_mean: sm,
                scratch_std: ss,
                pretrained_mean: pm,
                pretrained_std: ps,
                gain_mean: gm,
                gain_std: gs,
                wins: g.iter().filter(|&&d| d > 0.0).count(),
                seeds: rs.len(),
                steps_to_match_mean: (!matched.is_empty()).then(|| mean_std(&matched).0),
                matched_seeds: matched.len(),
            }
        })
        .collect()
}

/// The plots of a comparison, as `(file name, chart)`: test accuracy against fine-tuning steps
/// for each label budget (mean with a ±1 std band over seeds), and final accuracy against the
/// number of labels per class.
pub fn charts(
    runs: &[SeedResult],
    summary: &[BudgetSummary],
    budgets: &[usize],
    seeds: usize,
    steps: usize,
) -> Vec<(String, Chart)> {
    let mut out = Vec::new();
    let arm_curve = |k: usize, pretrained: bool| -> (Vec<(f64, f64)>, Vec<f64>) {
        let curves: Vec<&Vec<(usize, f64)>> = runs
            .iter()
            .filter(|r| r.labels_per_class == k)
            .map(|r| if pretrained { &r.pretrained_curve } else { &r.scratch_curve })
            .collect();
        let steps: Vec<usize> = curves.first().map(|c| c.iter().map(|p| p.0).collect()).unwrap_or_default();
        let mut pts = Vec::new();
        let mut band = Vec::new();
        for (i, &step) in steps.iter().enumerate() {
            let v: Vec<f64> = curves.iter().map(|c| 100.0 * c[i].1).collect();
            let (m, sd) = mean_std(&v);
            pts.push((step as f64, m));
            band.push(sd);
        }
        (pts, band)
    };
    for &k in budgets {
        let series = [(false, "from scratch", COLORS[0]), (true, "pre-trained", COLORS[1])]
            .into_iter()
            .map(|(pre, name, color)| {
                let (points, band) = arm_curve(k, pre);
                Series { name: name.into(), color, points, band: Some(band) }
            })
            .collect();
        out.push((
            format!("curves-k{k}.svg"),
            Chart {
                title: format!("{k} label(s) per class: test accuracy while fine-tuning ({} seeds)", seeds),
                x_label: "fine-tuning step".into(),
                y_label: "test accuracy (%)".into(),
                series,
                log_x: false,
            },
        ));
    }
    let by_budget = |pre: bool| -> Series {
        let (points, band) = summary
            .iter()
            .map(|b| {
                let (m, sd) = if pre { (b.pretrained_mean, b.pretrained_std) } else { (b.scratch_mean, b.scratch_std) };
                ((b.labels_per_class as f64, 100.0 * m), 100.0 * sd)
            })
            .unzip();
        let (name, color) = if pre { ("pre-trained", COLORS[1]) } else { ("from scratch", COLORS[0]) };
        Series { name: name.into(), color, points, band: Some(band) }
    };
    out.push((
        "accuracy-vs-labels.svg".into(),
        Chart {
            title: format!("final test accuracy after {} steps", steps),
            x_label: "labels per class (log scale)".into(),
            y_label: "test accuracy (%)".into(),
            series: vec![by_budget(false), by_budget(true)],
            log_x: true,
        },
    ));
    out
}

/// The summary table and the every-seed table, as Markdown.
pub fn tables_markdown(summary: &[BudgetSummary], runs: &[SeedResult], steps: usize) -> String {
    let pct = |v: f64| format!("{:.1}", 100.0 * v);
    let mut s = String::new();
    s += "| labels/class | from scratch | pre-trained | gain (points) | wins | steps to match scratch |\n";
    s += "|---:|---:|---:|---:|---:|---:|\n";
    for b in summary {
        s += &format!(
            "| {} | {} ± {} | {} ± {} | {:+.1} ± {:.1} | {}/{} | {} |\n",
            b.labels_per_class,
            pct(b.scratch_mean),
            pct(b.scratch_std),
            pct(b.pretrained_mean),
            pct(b.pretrained_std),
            100.0 * b.gain_mean,
            100.0 * b.gain_std,
            b.wins,
            b.seeds,
            match b.steps_to_match_mean {
                // A mean over fewer seeds than ran says so: the others never got there.
                Some(v) if b.matched_seeds < b.seeds => {
                    format!("{v:.0} of {steps} ({} of {} seeds reached it)", b.matched_seeds, b.seeds)
                }
                Some(v) => format!("{v:.0} of {steps}"),
                None => "—".into(),
            }
        );
    }
    s += "\nEvery seed (test accuracy %, wins and losses alike):\n\n";
    s += "| labels/class | seed | from scratch | pre-trained | gain |\n|---:|---:|---:|---:|---:|\n";
    for r in runs {
        s += &format!(
            "| {} | {} | {} | {} | {:+.1} |\n",
            r.labels_per_class,
            r.seed,
            pct(r.scratch),
            pct(r.pretrained),
            100.0 * (r.pretrained - r.scratch)
        );
    }
    s
}

/// What a comparison runs. Both arms of each (label budget, seed) pair get the same examples,
/// the same data order, the same initialisation of the parts not loaded, the same optimizer and
/// the same number of steps.
#[derive(Clone, Debug, Serialize)]
pub struct CompareConfig {
    /// Labels per class of each budget (`usize::MAX`: all).
    pub labels_per_class: Vec<usize>,
    /// Seeds: each picks the labelled examples, the data order and the initialisation.
    pub seeds: Vec<u64>,
    /// Optimizer steps per run.
    pub steps: u64,
    /// Test accuracy is measured every this many steps (and at step 0).
    pub eval_every: u64,
    /// Optimizer, batch size, schedule, augmentation (its length settings are replaced).
    pub train: TrainConfig,
}

/// What a comparison measured.
#[derive(Clone, Debug, Serialize)]
pub struct CompareReport {
    /// The settings.
    pub config: CompareConfig,
    /// The pre-trained checkpoint.
    pub checkpoint: String,
    /// The target data set.
    pub target: String,
    /// The network both arms train.
    pub model: ModelSpec,
    /// What loading the checkpoint did.
    pub load_report: TransferReport,
    /// Wall time of all runs.
    pub seconds: f64,
    /// Every run.
    pub runs: Vec<SeedResult>,
    /// Per label budget.
    pub summary: Vec<BudgetSummary>,
}

/// The inputs of a comparison.
pub struct CompareTask<'a> {
    /// The network both arms train.
    pub spec: &'a ModelSpec,
    /// The pre-trained checkpoint's path (for the report) and model tensors.
    pub checkpoint: (&'a Path, &'a std::collections::BTreeMap<String, Tensor>),
    /// How the checkpoint loads (and which parts train how).
    pub manifest: &'a TransferManifest,
    /// The target's name, labelled training pool and test set.
    pub target: (&'a str, Arc<dyn Dataset>, Arc<dyn Dataset>),
}

/// Runs every (budget, seed, arm) under `out/runs/` and gathers the report.
pub fn compare(
    task: &CompareTask,
    cfg: &CompareConfig,
    out: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<CompareReport> {
    let start = Instant::now();
    let (name, pool, test) = (task.target.0, task.target.1.clone(), task.target.2.clone());
    let mut runs = Vec::new();
    let mut load_report = TransferReport::default();
    for &k in &cfg.labels_per_class {
        for &seed in &cfg.seeds {
            let train: Arc<dyn Dataset> = Arc::new(jizen_data::per_class(pool.clone(), k, seed)?);
            let run_cfg = TrainConfig {
                seed,
                epochs: cfg.steps,
                max_steps: Some(cfg.steps),
                eval_every: cfg.eval_every,
                log_every: cfg.eval_every,
                save_best: false,
                keep_checkpoints: 0,
                progress: false,
                early_stopping: None,
                ..cfg.train.clone()
            };
            let label = if k == usize::MAX { "all".to_string() } else { k.to_string() };
            let mut curve = |pretrained: bool| -> Result<Vec<(usize, f64)>> {
                let arm = if pretrained { "pretrained" } else { "scratch" };
                let dir = out.join("runs").join(format!("k{label}-seed{seed}-{arm}"));
                let model = Model::build(task.spec, DType::F32, 1000 + seed)?;
                let mut trainer = Trainer::new(run_cfg.clone(), &dir)?;
                if pretrained {
                    load_report = task.manifest.load(&model, task.checkpoint.1)?;
                    trainer = trainer.transfer(task.manifest.clone());
                }
                trainer.fit(&model, train.clone(), Some(test.clone()), None)?;
                Ok(read_records(&dir.join("metrics.jsonl"))?
                    .into_iter()
                    .filter(|r| r.split == "val")
                    .filter_map(|r| r.accuracy.map(|a| (r.step as usize, a)))
                    .collect())
            };
            let (sc, pc) = (curve(false)?, curve(true)?);
            let (s_final, p_final) = (sc.last().map_or(f64::NAN, |p| p.1), pc.last().map_or(f64::NAN, |p| p.1));
            let steps_to_match = pc.iter().find(|(_, a)| *a >= s_final).map(|(s, _)| *s);
            log(&format!(
                "{label} labels/class, seed {seed}: scratch {:.1}%, pre-trained {:.1}% ({:+.1}){}",
                100.0 * s_final,
                100.0 * p_final,
                100.0 * (p_final - s_final),
                steps_to_match.map_or(String::new(), |s| format!(", scratch's final accuracy reached at step {s}"))
            ));
            runs.push(SeedResult {
                labels_per_class: k,
                seed,
                scratch: s_final,
                pretrained: p_final,
                scratch_curve: sc,
                pretrained_curve: pc,
                steps_to_match,
            });
        }
    }
    let summary = summarise(&runs, &cfg.labels_per_class);
    Ok(CompareReport {
        config: cfg.clone(),
        checkpoint: task.checkpoint.0.display().to_string(),
        target: name.to_string(),
        model: task.spec.clone(),
        load_report,
        seconds: start.elapsed().as_secs_f64(),
        runs,
        summary,
    })
}

impl CompareReport {
    /// The plots (see [`charts`]).
    pub fn charts(&self) -> Vec<(String, Chart)> {
        charts(
            &self.runs,
            &self.summary,
            &self.config.labels_per_class,
            self.config.seeds.len(),
            self.config.steps as usize,
        )
    }

    /// The report as Markdown: what ran, the summary and every seed.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from("# Head start from pre-training\n\n");
        s += &format!(
            "Fine-tuned `{}` from `{}` on {} and trained the same network from scratch: {} steps each, \
             batch {}, {:?}, test accuracy every {} steps, seeds {:?} ({:.1} s in all). The checkpoint loaded \
             {} tensors ({} re-initialised, {} skipped).\n\n",
            self.model.name,
            self.checkpoint,
            self.target,
            self.config.steps,
            self.config.train.batch_size,
            self.config.train.optimizer,
            self.config.eval_every,
            self.config.seeds,
            self.seconds,
            self.load_report.loaded.len(),
            self.load_report.reinitialised.len(),
            self.load_report.skipped.len()
        );
        s += &tables_markdown(&self.summary, &self.runs, self.config.steps as usize);
        s.replace("| 18446744073709551615 |", "| all |")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, scratch: f64, pretrained: f64, steps_to_match: Option<usize>) -> SeedResult {
        SeedResult {
            labels_per_class: 100,
            seed,
            scratch,
            pretrained,
            scratch_curve: vec![(0, 0.1), (300, scratch)],
            pretrained_curve: vec![(0, 0.2), (300, pretrained)],
            steps_to_match,
        }
    }

    #[test]
    fn steps_to_match_says_how_many_seeds_it_averages() {
        // Seed 2's pre-trained arm never reached scratch's accuracy: the mean of the other two
        // (100 and 125) must not pass for all three.
        let runs = [run(0, 0.944, 0.955, Some(100)), run(1, 0.940, 0.946, Some(125)), run(2, 0.947, 0.944, None)];
        let summary = summarise(&runs, &[100]);
        assert_eq!((summary[0].matched_seeds, summary[0].seeds, summary[0].wins), (2, 3, 2));
        assert_eq!(summary[0].steps_to_match_mean, Some(112.5));
        let table = tables_markdown(&summary, &runs, 300);
        assert!(table.contains("| 112 of 300 (2 of 3 seeds reached it) |"), "{table}");

        let all = [run(0, 0.944, 0.955, Some(75)), run(1, 0.940, 0.951, Some(125))];
        let table = tables_markdown(&summarise(&all, &[100]), &all, 300);
        assert!(table.contains("| 100 of 300 |"), "{table}");
    }
}
