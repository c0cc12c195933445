//! Representation probes: freeze a network, take the features of the layer before its head, and
//! ask classical learners how good they are.
//!
//! For a checkpoint's weights and for the same network at its random initialisation (the
//! "before pre-training" baseline), [`probe`] computes the features of a seeded sample of
//! training and test examples (inference mode, no graph), standardises them, fits a multinomial
//! [`LogisticRegression`](jizen_ml::LogisticRegression) and a 5-nearest-neighbour classifier on
//! the training features, scores both on the test features, and draws a 2-D PCA of the test
//! features coloured by class, before and after, as `probe-pca.svg` and `probe-pca.png`.
//!
//! The feature extractor is the spec's first `k` layers built as a model of their own: parameter
//! names follow layer indices, so the checkpoint's tensors for those layers load into it under
//! the same names.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use jizen_data::Dataset;
use jizen_ml::{KnnConfig, LogisticRegressionConfig, Matrix, PcaConfig, StandardScalerConfig};
use jizen_models::{Layer, Model, ModelSpec};
use jizen_nn::Module;
use jizen_tensor::{no_grad, DType, Rng, Tensor};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::Objective;
use crate::{Error, Result};

/// The most feature values (examples × dimensions) one split may hold in memory (800 MB of f64).
const MAX_VALUES: usize = 100_000_000;

/// What a probe measures and on how much data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Leading layers that form the feature extractor (`None`: [`default_layers`]).
    pub layers: Option<usize>,
    /// Training examples the probes are fitted on (at most; fewer if the split is smaller).
    pub n_train: usize,
    /// Test examples the probes are scored on (at most).
    pub n_test: usize,
    /// Seeds the order the examples are drawn in.
    pub seed: u64,
    /// Neighbours of the k-NN probe.
    pub knn_k: usize,
    /// Examples per forward pass.
    pub batch_size: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig { layers: None, n_train: 5000, n_test: 2000, seed: 0, knn_k: 5, batch_size: 256 }
    }
}

/// One arm of a probe: the features of one set of weights and what the learners made of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    /// `random initialisation` or `pre-trained`.
    pub name: String,
    /// Test accuracy of the logistic-regression probe, in [0, 1].
    pub logistic_accuracy: f64,
    /// Whether L-BFGS reached its tolerance within its iterations.
    pub logistic_converged: bool,
    /// Test accuracy of the k-NN probe, in [0, 1].
    pub knn_accuracy: f64,
    /// Seconds spent computing the features (training and test examples).
    pub features_s: f64,
    /// Seconds spent fitting the scaler and the logistic regression.
    pub logistic_fit_s: f64,
    /// Seconds spent fitting the k-NN classifier.
    pub knn_fit_s: f64,
    /// Seconds spent classifying the test examples with k-NN.
    pub knn_predict_s: f64,
    /// The fraction of the standardised test features' variance along the two plotted axes.
    pub pca_explained_variance_ratio: Vec<f64>,
}

/// What [`probe`] measured, for both arms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The model's name.
    pub model: String,
    /// The checkpoint probed, if known.
    pub checkpoint: Option<String>,
    /// The data set the features were computed on, if known.
    pub data: Option<String>,
    /// Leading layers kept as the feature extractor.
    pub layers: usize,
    /// The model's total number of layers.
    pub model_layers: usize,
    /// The kept layers' types, in order (`Linear`, `ReLU`, ...).
    pub kept: Vec<String>,
    /// Dimension of the flattened features.
    pub feature_dim: usize,
    /// Training examples the probes were fitted on.
    pub n_train: usize,
    /// Test examples the probes were scored on.
    pub n_test: usize,
    /// Neighbours of the k-NN probe.
    pub knn_k: usize,
    /// The inverse regularisation strength of the logistic regression.
    pub logistic_c: f64,
    /// The seed of the random initialisation (the baseline arm).
    pub init_seed: u64,
    /// The seed of the example order.
    pub seed: u64,
    /// The network at its random initialisation.
    pub random: ArmReport,
    /// The network with the checkpoint's weights.
    pub trained: ArmReport,
}

impl ProbeReport {
    /// A Markdown rendering: what was probed, then one table row per arm.
    pub fn to_markdown(&self) -> String {
        let mut s = format!("# Representation probe: {}\n\n", self.model);
        if let Some(c) = &self.checkpoint {
            s += &format!("- checkpoint: `{c}`\n");
        }
        if let Some(d) = &self.data {
            s += &format!("- data: {d}\n");
        }
        s += &format!(
            "- features: the first {} of {} layers ({}), {} dimensions\n",
            self.layers,
            self.model_layers,
            self.kept.join(", "),
            self.feature_dim
        );
        s += &format!(
            "- probes: standardised features, logistic regression (multinomial, C = {}) and {}-NN; fitted on {} \
             training examples, scored on {} test examples (order seed {})\n",
            self.logistic_c, self.knn_k, self.n_train, self.n_test, self.seed
        );
        s += &format!("- baseline: the same network at its random initialisation (seed {})\n\n", self.init_seed);
        s += "| weights | logistic regression | k-NN | features (s) | logistic fit (s) | k-NN fit + predict (s) |\n";
        s += "|---|---:|---:|---:|---:|---:|\n";
        for a in [&self.random, &self.trained] {
            s += &format!(
                "| {} | {:.2}%{} | {:.2}% | {:.2} | {:.2} | {:.2} |\n",
                a.name,
                100.0 * a.logistic_accuracy,
                if a.logistic_converged { "" } else { " (not converged)" },
                100.0 * a.knn_accuracy,
                a.features_s,
                a.logistic_fit_s,
                a.knn_fit_s + a.knn_predict_s
            );
        }
        s += &format!(
            "\nGain from the weights: {:+.2} points (logistic regression), {:+.2} points (k-NN).\n",
            100.0 * (self.trained.logistic_accuracy - self.random.logistic_accuracy),
            100.0 * (self.trained.knn_accuracy - self.random.knn_accuracy)
        );
        s += "\n`probe-pca.svg` / `probe-pca.png`: the first two principal components of the standardised test \
              features, coloured by class.\n";
        s
    }
}

/// The default feature extractor of `spec`: the first `e` layers for a checkpoint trained as an
/// autoencoder with an `e`-layer encoder, else every layer before the last `Linear` (the head).
pub fn default_layers(spec: &ModelSpec, objective: Option<&Objective>) -> Result<usize> {
    if let Some(Objective::Autoencoder { encoder_layers: Some(e), .. }) = objective {
        return Ok(*e);
    }
    let head = spec.layers.iter().rposition(|l| matches!(l, Layer::Linear { .. })).ok_or_else(|| {
        Error::Msg(format!("{} has no Linear head to probe below; choose the feature layers with --layers", spec.name))
    })?;
    if head == 0 {
        return Err(Error::Msg(format!(
            "{}'s head is its first layer, so there are no features before it; choose --layers",
            spec.name
        )));
    }
    Ok(head)
}

/// The spec of `spec`'s first `k` layers, checked: `k` must be between 1 and the number of layers.
pub fn truncated_spec(spec: &ModelSpec, k: usize) -> Result<ModelSpec> {
    let n = spec.layers.len();
    if k == 0 || k > n {
        return Err(Error::Msg(format!(
            "cannot keep {k} layers as the feature extractor: {} has {n} layer{} (choose 1 to {n})",
            spec.name,
            if n == 1 { "" } else { "s" }
        )));
    }
    Ok(ModelSpec {
        name: format!("{}[..{k}]", spec.name),
        input: spec.input.clone(),
        layers: spec.layers[..k].to_vec(),
    })
}

/// The feature extractor: `spec`'s first `k` layers, built in `dtype` and loaded with the tensors
/// of `state` that belong to those layers (names beginning with a kept layer's index). Every kept
/// parameter and buffer must be in `state` with its shape; otherwise an error lists what is not.
pub fn feature_extractor(spec: &ModelSpec, k: usize, state: &BTreeMap<String, Tensor>, dtype: DType) -> Result<Model> {
    let sub = truncated_spec(spec, k)?;
    let model = Model::build(&sub, dtype, 0)?;
    let kept: BTreeMap<String, Tensor> = state
        .iter()
        .filter(|(name, _)| name.split('.').next().and_then(|i| i.parse::<usize>().ok()).is_some_and(|i| i < k))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    let report = jizen_nn::load_state_dict(&model, &kept, false)?;
    if !report.missing.is_empty() || !report.shape_mismatched.is_empty() {
        let mismatched: Vec<String> =
            report.shape_mismatched.iter().map(|(n, m, s)| format!("{n}: model {m:?}, weights {s:?}")).collect();
        return Err(Error::Msg(format!(
            "the weights do not fit the first {k} layers of {}: missing {:?}, mismatched [{}]",
            spec.name,
            report.missing,
            mismatched.join("; ")
        )));
    }
    model.set_training(false);
    Ok(model)
}

/// The flattened features `[n, d]` of the examples `indices` of `data` (in that order) and their
/// labels, computed in inference mode with no graph.
pub fn features(
    model: &Model,
    data: &dyn Dataset,
    indices: &[usize],
    batch_size: usize,
) -> Result<(Matrix, Vec<usize>)> {
    if indices.is_empty() {
        return Err(Error::Msg("no examples to compute features of".into()));
    }
    model.set_training(false);
    let d: usize = model.output_shape().iter().product();
    if indices.len().saturating_mul(d) > MAX_VALUES {
        return Err(Error::Msg(format!(
            "{} examples of {d} features each are too many to hold ({} values, at most {MAX_VALUES}); \
             probe fewer examples or a deeper layer",
            indices.len(),
            indices.len().saturating_mul(d)
        )));
    }
    let mut values: Vec<f64> = Vec::with_capacity(indices.len() * d);
    let mut labels = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(batch_size.max(1)) {
        let (x, y) = data.batch(chunk)?;
        let f = no_grad(|| -> jizen_tensor::Result<Tensor> {
            let out = model.forward(&x.to_dtype(dtype_of(model))?)?; // [b, ...]
            out.reshape(&[chunk.len(), d])?.to_dtype(DType::F64)
        })?;
        values.extend(f.to_vec::<f64>()?);
        for l in y.to_vec::<i64>()? {
            let l = usize::try_from(l).map_err(|_| Error::Msg(format!("label {l} is negative")))?;
            labels.push(l);
        }
    }
    let x = jizen_ml::matrix_from_rows(indices.len(), d, &values).map_err(ml)?;
    Ok((x, labels))
}

/// The dtype of a model's parameters (F32 for a model without any).
fn dtype_of(model: &Model) -> DType {
    model.parameters().first().map_or(DType::F32, |p| p.dtype())
}

fn ml(e: jizen_ml::MlError) -> Error {
    Error::Msg(e.to_string())
}

/// The first `n` examples of `0..len` in a seeded order.
fn sample(len: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    Rng::new(seed).shuffle(&mut order);
    order.truncate(n.min(len));
    order
}

/// The task of a probe: a network, the weights to probe, and the data.
pub struct ProbeTask<'a> {
    /// The full network (with its head).
    pub spec: &'a ModelSpec,
    /// The trained weights (parameter and buffer names as the model's).
    pub weights: &'a BTreeMap<String, Tensor>,
    /// How the weights were trained, which decides the default feature layers.
    pub objective: Option<&'a Objective>,
    /// The seed of the random initialisation of the baseline arm (a run's `TrainConfig.seed`).
    pub init_seed: u64,
    /// Examples the probes are fitted on.
    pub train: Arc<dyn Dataset>,
    /// Examples the probes are scored on.
    pub test: Arc<dyn Dataset>,
    /// The checkpoint's path, for the report.
    pub checkpoint: Option<String>,
    /// The data set's name, for the report.
    pub data: Option<String>,
}

/// Probes the features of the trained weights against those of the random initialisation and
/// writes `probe-pca.svg` and `probe-pca.png` into `out` (created if needed).
pub fn probe(task: &ProbeTask, config: &ProbeConfig, out: &Path) -> Result<ProbeReport> {
    let spec = task.spec;
    let k = match config.layers {
        Some(k) => k,
        None => default_layers(spec, task.objective)?,
    };
    truncated_spec(spec, k)?;
    if config.n_train == 0 || config.n_test == 0 {
        return Err(Error::Msg("the probe needs at least one training and one test example".into()));
    }
    if task.train.is_empty() || task.test.is_empty() {
        return Err(Error::Msg("the probe's training and test sets must not be empty".into()));
    }
    let dtype = task.weights.values().find(|t| t.dtype() != DType::I64).map_or(DType::F32, |t| t.dtype());
    let train_idx = sample(task.train.len(), config.n_train, config.seed);
    let test_idx = sample(task.test.len(), config.n_test, config.seed ^ 0x7E57);
    if train_idx.len() < config.knn_k {
        return Err(Error::Msg(format!(
            "the k-NN probe needs at least {} training examples, got {}",
            config.knn_k,
            train_idx.len()
        )));
    }

    // The baseline: the whole network built from the seed, so its kept layers hold exactly the
    // initialisation a run with that seed started from.
    let init = jizen_nn::state_dict(&Model::build(spec, dtype, task.init_seed)?);
    let arms = [("random initialisation", &init), ("pre-trained", task.weights)];
    let mut reports = Vec::new();
    let mut projections = Vec::new();
    let (mut feature_dim, mut kept) = (0, Vec::new());
    for (name, weights) in arms {
        let model = feature_extractor(spec, k, weights, dtype)?;
        feature_dim = model.output_shape().iter().product();
        kept = model.layers().iter().filter(|l| l.depth == 0).map(|l| l.kind.clone()).collect();
        let (arm, points) = probe_arm(name, &model, task, config, &train_idx, &test_idx)?;
        reports.push(arm);
        projections.push(points);
    }
    let trained = reports.pop().expect("two arms");
    let random = reports.pop().expect("two arms");
    let titles = [
        format!(
            "random initialisation: logistic {:.1}%, {}-NN {:.1}%",
            100.0 * random.logistic_accuracy,
            config.knn_k,
            100.0 * random.knn_accuracy
        ),
        format!(
            "pre-trained: logistic {:.1}%, {}-NN {:.1}%",
            100.0 * trained.logistic_accuracy,
            config.knn_k,
            100.0 * trained.knn_accuracy
        ),
    ];
    write_pca_plot(out, &projections, &titles)?;
    Ok(ProbeReport {
        model: spec.name.clone(),
        checkpoint: task.checkpoint.clone(),
        data: task.data.clone(),
        layers: k,
        model_layers: spec.layers.len(),
        kept,
        feature_dim,
        n_train: train_idx.len(),
        n_test: test_idx.len(),
        knn_k: config.knn_k,
        logistic_c: LogisticRegressionConfig::default().c,
        init_seed: task.init_seed,
        seed: config.seed,
        random,
        trained,
    })
}

/// The 2-D PCA of one arm's test features: `(x, y, label)` per example.
type Projection = Vec<(f64, f64, usize)>;

fn probe_arm(
    name: &str,
    model: &Model,
    task: &ProbeTask,
    config: &ProbeConfig,
    train_idx: &[usize],
    test_idx: &[usize],
) -> Result<(ArmReport, Projection)> {
    let t = Instant::now();
    let (x_train, y_train) = features(model, task.train.as_ref(), train_idx, config.batch_size)?;
    let (x_test, y_test) = features(model, task.test.as_ref(), test_idx, config.batch_size)?;
    let features_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let scaler = StandardScalerConfig::default().fit(&x_train).map_err(ml)?;
    let (z_train, z_test) = (scaler.transform(&x_train).map_err(ml)?, scaler.transform(&x_test).map_err(ml)?);
    let logistic = LogisticRegressionConfig::default().fit(&z_train, &y_train).map_err(ml)?;
    let logistic_fit_s = t.elapsed().as_secs_f64();
    let logistic_accuracy = logistic.score(&z_test, &y_test).map_err(ml)?;

    let t = Instant::now();
    let knn = KnnConfig::new(config.knn_k).fit(&z_train, &y_train).map_err(ml)?;
    let knn_fit_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let knn_accuracy = knn.score(&z_test, &y_test).map_err(ml)?;
    let knn_predict_s = t.elapsed().as_secs_f64();

    // Two components need two test examples and two features; a 1-D feature plots on a line.
    let components = 2.min(z_test.nrows()).min(z_test.ncols());
    let pca = PcaConfig::new(components).fit(&z_test).map_err(ml)?;
    let p = pca.transform(&z_test).map_err(ml)?;
    let points = (0..p.nrows()).map(|i| (p[(i, 0)], if components > 1 { p[(i, 1)] } else { 0.0 }, y_test[i])).collect();
    let arm = ArmReport {
        name: name.to_string(),
        logistic_accuracy,
        logistic_converged: logistic.converged(),
        knn_accuracy,
        features_s,
        logistic_fit_s,
        knn_fit_s,
        knn_predict_s,
        pca_explained_variance_ratio: pca.explained_variance_ratio().to_vec(),
    };
    Ok((arm, points))
}

/// Ten colours told apart by most readers (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0x79, 0x70, 0x6E),
];

/// Draws the two arms' projections side by side into `out/probe-pca.svg` and `out/probe-pca.png`.
fn write_pca_plot(out: &Path, projections: &[Projection], titles: &[String; 2]) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::Io { path: out.to_path_buf(), source: e })?;
    crate::curves::register_font();
    let size = (1200, 560);
    let svg = out.join("probe-pca.svg");
    draw(SVGBackend::new(&svg, size).into_drawing_area(), projections, titles).map_err(|e| plot_error(&svg, e))?;
    let png = out.join("probe-pca.png");
    let tmp = out.join("probe-pca.tmp.png");
    draw(BitMapBackend::new(&tmp, size).into_drawing_area(), projections, titles).map_err(|e| plot_error(&png, e))?;
    std::fs::rename(&tmp, &png).map_err(|e| Error::Io { path: png, source: e })
}

/// Draws one 2-D projection, `(x, y, label)` per point, coloured by label as the probe's panels
/// are, into `path`: SVG for a `.svg` name, else PNG. The chart is drawn under a temporary name
/// in the same folder and renamed over `path`, so a failed draw leaves no half-written file.
/// `jizen ml pca` draws its scatter with it.
pub fn write_scatter(path: &Path, points: &[(f64, f64, usize)], title: &str) -> Result<()> {
    if points.is_empty() {
        return Err(Error::Msg(format!("{}: no points to draw", path.display())));
    }
    crate::curves::register_font();
    let size = (760, 640);
    let svg = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    let name = path.file_name().map_or_else(|| "scatter".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}.{}", std::process::id(), if svg { "svg" } else { "png" }));
    let drawn = if svg {
        single(SVGBackend::new(&tmp, size).into_drawing_area(), points, title)
    } else {
        single(BitMapBackend::new(&tmp, size).into_drawing_area(), points, title)
    };
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Msg(format!("{}: cannot draw the scatter plot: {e}", path.display())));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })
}

fn single<B: DrawingBackend>(root: DrawingArea<B, Shift>, points: &[(f64, f64, usize)], title: &str) -> DrawResult
where
    B::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    panel(&root, points, title)?;
    root.present()?;
    Ok(())
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Msg(format!("{}: cannot draw the probe's PCA plot: {e}", path.display()))
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw<B: DrawingBackend>(root: DrawingArea<B, Shift>, projections: &[Projection], titles: &[String; 2]) -> DrawResult
where
    B::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    for ((area, points), title) in panels.iter().zip(projections).zip(titles) {
        panel(area, points, title)?;
    }
    root.present()?;
    Ok(())
}

fn panel<B: DrawingBackend>(area: &DrawingArea<B, Shift>, points: &[(f64, f64, usize)], title: &str) -> DrawResult
where
    B::ErrorType: 'static,
{
    let range = |v: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let pad = ((hi - lo) * 0.05).max(1e-3);
        (lo - pad)..(hi + pad)
    };
    let xs = range(&mut points.iter().map(|p| p.0));
    let ys = range(&mut points.iter().map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(xs, ys)?;
    chart
        .configure_mesh()
        .x_desc("PC 1")
        .y_desc("PC 2")
        .label_style(("sans-serif", 12))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let mut classes: Vec<usize> = points.iter().map(|p| p.2).collect();
    classes.sort_unstable();
    classes.dedup();
    for c in classes {
        let color = PALETTE[c % PALETTE.len()];
        chart
            .draw_series(
                points.iter().filter(|p| p.2 == c).map(|p| Circle::new((p.0, p.1), 2, color.mix(0.75).filled())),
            )?
            .label(c.to_string())
            .legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}
