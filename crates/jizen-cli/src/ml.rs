//! `jizen ml fit | eval | predict | pca`: the classical estimators of `jizen-ml` (kernel and
//! linear SVMs, logistic regression, k-NN, Gaussian mixtures, PCA) on the data sets the other
//! commands read.
//!
//! Every example is flattened to one row of f64 features holding the values the data set
//! yields: pixels divided by 255 (mnist, fashion-mnist, cifar10, image folders) or by 16 (digits,
//! mnist8x8), so in [0, 1]; a CSV file's feature columns as written. The splits are those of the
//! other commands with no validation hold-out: the official test set, or for digits, mnist8x8
//! and CSV files a fixed fifth of the examples. `fit` standardises the features by default for
//! the supervised algorithms (a `StandardScaler` fitted on the training rows; `--no-standardize`
//! turns it off) and not for `gmm` (`--standardize` turns it on); the scaler is saved beside the
//! model, so `eval` and `predict` apply the same transform.
//!
//! A model directory holds `model.safetensors` (the estimator, saved by [`Persist`]),
//! `scaler.safetensors` when the features were standardised, and `fit.json` (what was fitted on
//! what, with which settings, and how well). Every file is written atomically and `fit.json`
//! last, so its presence marks a complete directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use jizen_data::Dataset;
use jizen_ml::{
    classification_report, confusion_matrix, Average, CovarianceType, Gamma, GaussianMixture, GaussianMixtureConfig,
    Kernel, Knn, KnnConfig, KnnWeights, LinearSvc, LinearSvcConfig, LogisticRegression, LogisticRegressionConfig,
    Matrix, PcaConfig, Penalty, Persist, Solver, StandardScaler, StandardScalerConfig, Svc, SvcConfig, SvmLoss,
};
use jizen_train::AugmentConfig;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::datasets;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The estimator's file in a model directory.
const MODEL_FILE: &str = "model.safetensors";
/// The standardiser's file, present when the features were standardised.
const SCALER_FILE: &str = "scaler.safetensors";
/// The description of the fit, written last.
const FIT_FILE: &str = "fit.json";
/// The value of `format` in `fit.json`.
const FIT_FORMAT: &str = "jizen-ml-fit/1";
/// Examples flattened per call to [`Dataset::batch`].
const CHUNK: usize = 2048;

/// Arguments of `jizen ml`.
#[derive(Args)]
pub struct MlArgs {
    #[command(subcommand)]
    command: MlCommand,
}

#[derive(Subcommand)]
enum MlCommand {
    /// Fit a classical estimator on flattened examples and save it with its scaler and fit.json.
    #[command(after_help = "Examples:\n  \
        jizen ml fit --algo svm --data digits --out runs/svm\n  \
        jizen ml fit --algo svm --data fashion-mnist --limit 10000 --c 10 --gamma scale --out runs/fm-svm\n  \
        jizen ml fit --algo logreg --data mnist --limit 5000 --penalty l1 --c 0.1 --out runs/mnist-l1\n  \
        jizen ml fit --algo linear-svm --data digits --loss hinge --max-iter 5000 --out runs/lsvm\n  \
        jizen ml fit --algo knn --data fashion-mnist --limit 10000 --k 5 --weights distance --out runs/fm-knn\n  \
        jizen ml fit --algo gmm --data digits --components 10 --covariance diag --out runs/gmm\n\n\
        Features are the data set's values (pixels / 255, digits / 16, CSV columns as written). They are\n\
        standardised (StandardScaler on the training rows) by default except for gmm; the scaler is saved\n\
        with the model. Flags take scikit-learn's meaning and defaults; a flag the algorithm does not use\n\
        is an error.")]
    Fit(Box<FitArgs>),
    /// Evaluate a fitted model: accuracy, macro precision/recall/F1, per class, confusion matrix
    /// (for gmm: mean log-likelihood, BIC and AIC).
    #[command(after_help = "Examples:\n  jizen ml eval --model runs/svm\n  \
        jizen ml eval --model runs/svm --split train --json train-eval.json\n  \
        jizen ml eval --model runs/fm-svm --data-dir /data/fashion-mnist --limit 2000")]
    Eval(EvalArgs),
    /// Predict with a fitted model: index, true label, prediction (and probabilities where the
    /// estimator has them: logreg, knn, gmm), as CSV.
    #[command(after_help = "Examples:\n  jizen ml predict --model runs/svm --limit 10\n  \
        jizen ml predict --model runs/logreg --out predictions.csv")]
    Predict(PredictArgs),
    /// Principal components of a data set: explained variance ratios and a 2-D scatter by class.
    #[command(after_help = "Examples:\n  jizen ml pca --data digits --plot pca.png\n  \
        jizen ml pca --data fashion-mnist --limit 10000 --standardize --components 10 --plot fm-pca.png --json pca.json\n\n\
        The analysis is fitted on the training split (its first --limit examples); the scatter shows\n\
        those examples on the first two components. A .svg name draws SVG, else PNG.")]
    Pca(PcaArgs),
}

/// The estimators `jizen ml fit` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algo {
    /// Kernel SVM (scikit-learn's `SVC`, one-vs-one).
    Svm,
    /// Linear SVM (scikit-learn's `LinearSVC`, one-vs-rest).
    LinearSvm,
    /// Logistic regression (multinomial for more than two classes).
    Logreg,
    /// k-nearest neighbours.
    Knn,
    /// Gaussian mixture (unsupervised: labels are not used).
    Gmm,
}

impl Algo {
    /// The name `--algo` takes.
    fn name(self) -> &'static str {
        match self {
            Algo::Svm => "svm",
            Algo::LinearSvm => "linear-svm",
            Algo::Logreg => "logreg",
            Algo::Knn => "knn",
            Algo::Gmm => "gmm",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KernelArg {
    Rbf,
    Poly,
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PenaltyArg {
    L2,
    L1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LossArg {
    Hinge,
    SquaredHinge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WeightsArg {
    Uniform,
    Distance,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CovarianceArg {
    Full,
    Diag,
    Tied,
    Spherical,
}

/// The split `eval`, `predict` and `pca` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SplitArg {
    Test,
    Train,
}

/// `--gamma`: `scale`, `auto` or a positive number.
fn parse_gamma(text: &str) -> std::result::Result<Gamma, String> {
    match text {
        "scale" => Ok(Gamma::Scale),
        "auto" => Ok(Gamma::Auto),
        _ => match text.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(Gamma::Value(v)),
            _ => Err(format!("expected scale, auto or a positive number, got {text:?}")),
        },
    }
}

fn gamma_text(g: Gamma) -> String {
    match g {
        Gamma::Scale => "scale".into(),
        Gamma::Auto => "auto".into(),
        Gamma::Value(v) => v.to_string(),
    }
}

/// Arguments of `jizen ml fit`. The estimator settings are options so that one the algorithm
/// does not use can be reported instead of ignored; unset, they take scikit-learn's defaults.
#[derive(Args)]
pub struct FitArgs {
    /// The estimator.
    #[arg(long, value_enum)]
    algo: Algo,
    /// The data set: mnist, fashion-mnist, cifar10, digits, mnist8x8, a .csv file or an image folder.
    #[arg(long)]
    data: String,
    /// Where the data set's files are (default: $JIZEN_DATA/NAME, else data/NAME).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The model directory: model.safetensors, scaler.safetensors and fit.json go here.
    #[arg(long)]
    out: PathBuf,
    /// Fit on the first N training examples only.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Standardise the features (default for svm, linear-svm, logreg and knn).
    #[arg(long, conflicts_with = "no_standardize")]
    standardize: bool,
    /// Use the features as the data set yields them (default for gmm).
    #[arg(long)]
    no_standardize: bool,
    /// [svm, linear-svm, logreg] Inverse regularisation strength C (default 1).
    #[arg(long, allow_negative_numbers = true, value_name = "C")]
    c: Option<f64>,
    /// [svm] The kernel (default rbf).
    #[arg(long, value_enum)]
    kernel: Option<KernelArg>,
    /// [svm, rbf and poly kernels] Kernel width: scale, auto or a positive number (default scale).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_gamma)]
    gamma: Option<Gamma>,
    /// [svm, poly kernel] Degree of the polynomial kernel (default 3).
    #[arg(long)]
    degree: Option<u32>,
    /// [logreg, linear-svm] The penalty on the weights (default l2; linear-svm has only l2).
    #[arg(long, value_enum)]
    penalty: Option<PenaltyArg>,
    /// [linear-svm] The loss on the margin (default squared-hinge).
    #[arg(long, value_enum)]
    loss: Option<LossArg>,
    /// [knn] Neighbours that vote (default 5).
    #[arg(long)]
    k: Option<usize>,
    /// [knn] How the votes are weighted (default uniform).
    #[arg(long, value_enum)]
    weights: Option<WeightsArg>,
    /// [gmm] Mixture components (default 1).
    #[arg(long)]
    components: Option<usize>,
    /// [gmm] Covariance type (default full).
    #[arg(long, value_enum)]
    covariance: Option<CovarianceArg>,
    /// [svm, linear-svm, logreg, gmm] The most iterations (default: svm no limit, linear-svm
    /// 1000, logreg 100, gmm 100).
    #[arg(long)]
    max_iter: Option<usize>,
    /// [linear-svm, gmm] Seed of the coordinate order (linear-svm) or initialisation (gmm)
    /// (default 0).
    #[arg(long)]
    seed: Option<u64>,
}

/// The model and the examples `jizen ml eval` and `jizen ml predict` read.
#[derive(Args)]
pub struct ModelOnData {
    /// A model directory written by `jizen ml fit`.
    #[arg(long)]
    model: PathBuf,
    /// The data set (default: the one recorded in fit.json).
    #[arg(long)]
    data: Option<String>,
    /// Where the data set's files are (default: the one recorded in fit.json, else
    /// $JIZEN_DATA/NAME, else data/NAME).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// Use the first N examples of the split only.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

/// Arguments of `jizen ml eval`.
#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    on: ModelOnData,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Arguments of `jizen ml predict`.
#[derive(Args)]
pub struct PredictArgs {
    #[command(flatten)]
    on: ModelOnData,
    /// Write the CSV here (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `jizen ml pca`.
#[derive(Args)]
pub struct PcaArgs {
    /// The data set: mnist, fashion-mnist, cifar10, digits, mnist8x8, a .csv file or an image folder.
    #[arg(long)]
    data: String,
    /// Where the data set's files are (default: $JIZEN_DATA/NAME, else data/NAME).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Analyse the first N training examples only.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Divide every feature by its standard deviation first (PCA of the correlation matrix).
    #[arg(long)]
    standardize: bool,
    /// Components to compute (at least 1, at most the number of features).
    #[arg(long, default_value_t = 2)]
    components: usize,
    /// The scatter of the first two components, coloured by class (.png or .svg).
    #[arg(long)]
    plot: PathBuf,
    /// Also write the explained variances as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `jizen ml`.
pub fn run(a: &MlArgs) -> Result<()> {
    match &a.command {
        MlCommand::Fit(args) => fit(args),
        MlCommand::Eval(args) => eval(args),
        MlCommand::Predict(args) => predict(args),
        MlCommand::Pca(args) => pca(args),
    }
}

/// What the values of a data set's features are, for fit.json and the summary.
fn feature_scaling(name: &str) -> &'static str {
    match name {
        "digits" | "mnist8x8" => "pixel values / 16, in [0, 1]",
        n if n.ends_with(".csv") || n.ends_with(".csv.gz") => "the CSV file's values as written",
        _ => "pixel values / 255, in [0, 1]",
    }
}

/// Examples flattened to rows: the features and the labels.
struct Rows {
    x: Matrix,
    y: Vec<usize>,
}

/// Opens `name` without a validation hold-out (so the training split keeps every example that
/// is not in the test split).
fn open(name: &str, dir: Option<&Path>) -> Result<datasets::Data> {
    Ok(datasets::open(name, dir, Some(0), 0, &AugmentConfig::default())?)
}

/// The first `limit` examples (all without a limit) of `split`, flattened to f64 rows. A
/// non-finite feature is an error naming the example and the column.
fn rows(data: &datasets::Data, split: SplitArg, limit: Option<usize>) -> Result<Rows> {
    let (set, which): (Arc<dyn Dataset>, &str) = match split {
        SplitArg::Train => (data.train.clone(), "train"),
        SplitArg::Test => (data.test.clone(), "test"),
    };
    if limit == Some(0) {
        return Err("--limit must be at least 1".into());
    }
    let n = limit.map_or(set.len(), |l| l.min(set.len()));
    if n == 0 {
        return Err(format!("{}: the {which} split is empty", data.name).into());
    }
    let d: usize = data.input.iter().product();
    let mut x = Matrix::zeros(n, d);
    let mut y = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        let idx: Vec<usize> = (start..(start + CHUNK).min(n)).collect();
        let (features, labels) = set.batch(&idx)?;
        let values = features.to_f64_vec();
        if values.len() != idx.len() * d {
            return Err(format!(
                "{}: examples of the {which} split have {} values, expected {d}",
                data.name,
                values.len() / idx.len().max(1)
            )
            .into());
        }
        for (r, row) in values.chunks_exact(d).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if !v.is_finite() {
                    return Err(format!(
                        "{}: example {} of the {which} split has the non-finite feature {v} in column {j}; \
                         clean or impute the data first",
                        data.name,
                        start + r
                    )
                    .into());
                }
                x[(start + r, j)] = v;
            }
        }
        for l in labels.to_vec::<i64>()? {
            y.push(usize::try_from(l).map_err(|_| format!("{}: negative label {l}", data.name))?);
        }
    }
    Ok(Rows { x, y })
}

/// [`jizen_ml::persist::write_atomic`] (temporary file, fsync, rename), with the CLI's error type.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    jizen_ml::persist::write_atomic(path, bytes).map_err(|e| format!("{}: cannot write: {e}", path.display()).into())
}

/// The flags that belong to some algorithms only: (flag, whether it was given, the algorithms
/// that use it).
fn specific_flags(a: &FitArgs) -> [(&'static str, bool, &'static [Algo]); 12] {
    use Algo::*;
    [
        ("--c", a.c.is_some(), &[Svm, LinearSvm, Logreg]),
        ("--kernel", a.kernel.is_some(), &[Svm]),
        ("--gamma", a.gamma.is_some(), &[Svm]),
        ("--degree", a.degree.is_some(), &[Svm]),
        ("--penalty", a.penalty.is_some(), &[Logreg, LinearSvm]),
        ("--loss", a.loss.is_some(), &[LinearSvm]),
        ("--k", a.k.is_some(), &[Knn]),
        ("--weights", a.weights.is_some(), &[Knn]),
        ("--components", a.components.is_some(), &[Gmm]),
        ("--covariance", a.covariance.is_some(), &[Gmm]),
        ("--max-iter", a.max_iter.is_some(), &[Svm, LinearSvm, Logreg, Gmm]),
        ("--seed", a.seed.is_some(), &[LinearSvm, Gmm]),
    ]
}

/// Errors when a flag was given that `a.algo` does not use.
fn check_flags(a: &FitArgs) -> Result<()> {
    for (flag, given, algos) in specific_flags(a) {
        if given && !algos.contains(&a.algo) {
            let users: Vec<&str> = algos.iter().map(|x| x.name()).collect();
            return Err(format!(
                "{flag} does not apply to --algo {} (it is a setting of {})",
                a.algo.name(),
                users.join(", ")
            )
            .into());
        }
    }
    if a.algo == Algo::Svm {
        let kernel = a.kernel.unwrap_or(KernelArg::Rbf);
        if a.degree.is_some() && kernel != KernelArg::Poly {
            return Err("--degree applies to the poly kernel only (add --kernel poly)".into());
        }
        if a.gamma.is_some() && kernel == KernelArg::Linear {
            return Err("--gamma does not apply to the linear kernel (it sets the width of rbf and poly)".into());
        }
    }
    if a.algo == Algo::LinearSvm && a.penalty == Some(PenaltyArg::L1) {
        return Err(
            "--algo linear-svm supports only --penalty l2 (use --algo logreg --penalty l1 for sparse weights)".into()
        );
    }
    if a.max_iter == Some(0) {
        return Err("--max-iter must be at least 1".into());
    }
    Ok(())
}

/// A fitted estimator of any algorithm.
enum Fitted {
    Svm(Svc),
    LinearSvm(LinearSvc),
    Logreg(LogisticRegression),
    Knn(Knn),
    Gmm(GaussianMixture),
}

impl Fitted {
    fn save(&self, path: &Path) -> jizen_ml::Result<()> {
        match self {
            Fitted::Svm(m) => m.save(path),
            Fitted::LinearSvm(m) => m.save(path),
            Fitted::Logreg(m) => m.save(path),
            Fitted::Knn(m) => m.save(path),
            Fitted::Gmm(m) => m.save(path),
        }
    }

    fn load(algo: Algo, path: &Path) -> jizen_ml::Result<Fitted> {
        Ok(match algo {
            Algo::Svm => Fitted::Svm(Svc::load(path)?),
            Algo::LinearSvm => Fitted::LinearSvm(LinearSvc::load(path)?),
            Algo::Logreg => Fitted::Logreg(LogisticRegression::load(path)?),
            Algo::Knn => Fitted::Knn(Knn::load(path)?),
            Algo::Gmm => Fitted::Gmm(GaussianMixture::load(path)?),
        })
    }

    /// Class labels (for gmm: component indices).
    fn predict(&self, x: &Matrix) -> jizen_ml::Result<Vec<usize>> {
        match self {
            Fitted::Svm(m) => m.predict(x),
            Fitted::LinearSvm(m) => m.predict(x),
            Fitted::Logreg(m) => m.predict(x),
            Fitted::Knn(m) => m.predict(x),
            Fitted::Gmm(m) => m.predict(x),
        }
    }

    /// Probabilities and the label (component) of each column, where the estimator has them.
    fn proba(&self, x: &Matrix) -> jizen_ml::Result<Option<(Matrix, Vec<usize>)>> {
        Ok(match self {
            Fitted::Logreg(m) => Some((m.predict_proba(x)?, m.classes().to_vec())),
            Fitted::Knn(m) => Some((m.predict_proba(x)?, m.classes().to_vec())),
            Fitted::Gmm(m) => Some((m.predict_proba(x)?, (0..m.weights().len()).collect())),
            Fitted::Svm(_) | Fitted::LinearSvm(_) => None,
        })
    }
}

/// How the features were prepared, as fit.json records it.
#[derive(Serialize, Deserialize)]
struct Preprocessing {
    /// What the raw feature values are.
    features: String,
    /// Whether a StandardScaler (saved as scaler.safetensors) was applied.
    standardize: bool,
}

/// `fit.json`: what was fitted on what, with which settings, and how well.
#[derive(Serialize, Deserialize)]
struct FitRecord {
    format: String,
    algo: Algo,
    data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    limit: Option<usize>,
    preprocessing: Preprocessing,
    /// The estimator's settings under scikit-learn's names.
    hyper_parameters: serde_json::Value,
    /// What the fit found: iterations, support vectors, the neighbour search.
    #[serde(default)]
    fit_details: serde_json::Value,
    n_train: usize,
    n_features: usize,
    /// The labels the classifier knows (for gmm: the labels present in the training rows).
    classes: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    train_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mean_log_likelihood: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bic: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aic: Option<f64>,
    /// Whether the solver met its tolerance (absent for knn, which has no solver).
    #[serde(skip_serializing_if = "Option::is_none")]
    converged: Option<bool>,
    /// Seconds spent fitting the scaler and the estimator (loading the data excluded).
    fit_seconds: f64,
}

/// `jizen ml fit`.
pub fn fit(a: &FitArgs) -> Result<()> {
    check_flags(a)?;
    let standardize = if a.standardize {
        true
    } else if a.no_standardize {
        false
    } else {
        a.algo != Algo::Gmm
    };
    let data = open(&a.data, a.data_dir.as_deref())?;
    let Rows { x, y } = rows(&data, SplitArg::Train, a.limit)?;
    let (n, d) = (x.nrows(), x.ncols());
    let mut classes = y.clone();
    classes.sort_unstable();
    classes.dedup();

    let start = Instant::now();
    let scaler = if standardize { Some(StandardScalerConfig::default().fit(&x)?) } else { None };
    let z = match &scaler {
        Some(s) => s.transform(&x)?,
        None => x,
    };
    let seed = a.seed.unwrap_or(0);
    let (fitted, hyper, details, converged) = match a.algo {
        Algo::Svm => {
            let gamma = a.gamma.unwrap_or(Gamma::Scale);
            let degree = a.degree.unwrap_or(3);
            let kernel = match a.kernel.unwrap_or(KernelArg::Rbf) {
                KernelArg::Rbf => Kernel::Rbf { gamma },
                KernelArg::Poly => Kernel::Poly { degree, gamma, coef0: 0.0 },
                KernelArg::Linear => Kernel::Linear,
            };
            let config = SvcConfig { c: a.c.unwrap_or(1.0), kernel, max_iter: a.max_iter, ..Default::default() };
            let m = config.fit(&z, &y)?;
            let mut h =
                json!({ "C": config.c, "tol": config.tol, "max_iter": config.max_iter.map_or(-1, |v| v as i64) });
            match kernel {
                Kernel::Rbf { .. } => {
                    h["kernel"] = json!("rbf");
                    h["gamma"] = json!(gamma_text(gamma));
                    h["gamma_value"] = json!(m.gamma());
                }
                Kernel::Poly { .. } => {
                    h["kernel"] = json!("poly");
                    h["degree"] = json!(degree);
                    h["coef0"] = json!(0.0);
                    h["gamma"] = json!(gamma_text(gamma));
                    h["gamma_value"] = json!(m.gamma());
                }
                Kernel::Linear => h["kernel"] = json!("linear"),
            }
            let details = json!({ "n_support_vectors": m.support().len() });
            let conv = m.converged();
            (Fitted::Svm(m), h, details, Some(conv))
        }
        Algo::LinearSvm => {
            let loss = match a.loss.unwrap_or(LossArg::SquaredHinge) {
                LossArg::Hinge => SvmLoss::Hinge,
                LossArg::SquaredHinge => SvmLoss::SquaredHinge,
            };
            let config = LinearSvcConfig {
                c: a.c.unwrap_or(1.0),
                loss,
                max_iter: a.max_iter.unwrap_or(1000),
                seed,
                ..Default::default()
            };
            let m = config.fit(&z, &y)?;
            let h = json!({
                "C": config.c,
                "penalty": "l2",
                "loss": if loss == SvmLoss::Hinge { "hinge" } else { "squared_hinge" },
                "tol": config.tol,
                "max_iter": config.max_iter,
                "random_state": seed,
            });
            let details = json!({ "n_iter": m.n_iter() });
            let conv = m.converged();
            (Fitted::LinearSvm(m), h, details, Some(conv))
        }
        Algo::Logreg => {
            let (penalty, solver) = match a.penalty.unwrap_or(PenaltyArg::L2) {
                PenaltyArg::L2 => (Penalty::L2, Solver::Lbfgs),
                PenaltyArg::L1 => (Penalty::L1, Solver::Proximal),
            };
            let config = LogisticRegressionConfig {
                c: a.c.unwrap_or(1.0),
                penalty,
                solver,
                max_iter: a.max_iter.unwrap_or(100),
                ..Default::default()
            };
            let m = config.fit(&z, &y)?;
            let h = json!({
                "C": config.c,
                "penalty": if penalty == Penalty::L1 { "l1" } else { "l2" },
                "solver": if solver == Solver::Proximal { "fista" } else { "lbfgs" },
                "tol": config.tol,
                "max_iter": config.max_iter,
            });
            let details = json!({ "n_iter": m.n_iter() });
            let conv = m.converged();
            (Fitted::Logreg(m), h, details, Some(conv))
        }
        Algo::Knn => {
            let weights = match a.weights.unwrap_or(WeightsArg::Uniform) {
                WeightsArg::Uniform => KnnWeights::Uniform,
                WeightsArg::Distance => KnnWeights::Distance,
            };
            let config = KnnConfig { weights, ..KnnConfig::new(a.k.unwrap_or(5)) };
            let m = config.fit(&z, &y)?;
            let h = json!({
                "n_neighbors": config.k,
                "weights": if weights == KnnWeights::Distance { "distance" } else { "uniform" },
            });
            let details = json!({ "search": if m.uses_kd_tree() { "kd_tree" } else { "brute" } });
            (Fitted::Knn(m), h, details, None)
        }
        Algo::Gmm => {
            let covariance_type = match a.covariance.unwrap_or(CovarianceArg::Full) {
                CovarianceArg::Full => CovarianceType::Full,
                CovarianceArg::Diag => CovarianceType::Diag,
                CovarianceArg::Tied => CovarianceType::Tied,
                CovarianceArg::Spherical => CovarianceType::Spherical,
            };
            let config = GaussianMixtureConfig {
                max_iter: a.max_iter.unwrap_or(100),
                seed,
                ..GaussianMixtureConfig::new(a.components.unwrap_or(1), covariance_type)
            };
            let m = config.fit(&z)?;
            let h = json!({
                "n_components": config.n_components,
                "covariance_type": format!("{:?}", covariance_type).to_lowercase(),
                "tol": config.tol,
                "reg_covar": config.reg_covar,
                "max_iter": config.max_iter,
                "n_init": config.n_init,
                "init_params": "kmeans",
                "random_state": seed,
            });
            let details = json!({ "n_iter": m.n_iter(), "n_parameters": m.n_parameters() });
            let conv = m.converged();
            (Fitted::Gmm(m), h, details, Some(conv))
        }
    };
    let fit_seconds = start.elapsed().as_secs_f64();

    let (mut train_accuracy, mut mean_ll, mut bic, mut aic) = (None, None, None, None);
    if let Fitted::Gmm(m) = &fitted {
        mean_ll = Some(m.score(&z)?);
        bic = Some(m.bic(&z)?);
        aic = Some(m.aic(&z)?);
    } else {
        train_accuracy = Some(jizen_ml::accuracy(&y, &fitted.predict(&z)?)?);
    }

    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: cannot create the directory: {e}", a.out.display()))?;
    // A stale fit.json would describe the old model while the new files are written.
    let fit_path = a.out.join(FIT_FILE);
    if fit_path.exists() {
        std::fs::remove_file(&fit_path).map_err(|e| format!("{}: cannot replace: {e}", fit_path.display()))?;
    }
    fitted.save(&a.out.join(MODEL_FILE))?;
    let scaler_path = a.out.join(SCALER_FILE);
    match &scaler {
        Some(s) => s.save(&scaler_path)?,
        None if scaler_path.exists() => std::fs::remove_file(&scaler_path)
            .map_err(|e| format!("{}: cannot remove the old scaler: {e}", scaler_path.display()))?,
        None => {}
    }
    let record = FitRecord {
        format: FIT_FORMAT.into(),
        algo: a.algo,
        data: a.data.clone(),
        data_dir: a.data_dir.clone(),
        limit: a.limit,
        preprocessing: Preprocessing { features: feature_scaling(&a.data).into(), standardize },
        hyper_parameters: hyper,
        fit_details: details,
        n_train: n,
        n_features: d,
        classes,
        train_accuracy,
        mean_log_likelihood: mean_ll,
        bic,
        aic,
        converged,
        fit_seconds,
    };
    write_atomic(&fit_path, serde_json::to_string_pretty(&record)?.as_bytes())?;

    println!(
        "jizen ml fit: {} on {} ({} examples x {} features; {}{})",
        a.algo.name(),
        data.name,
        n,
        d,
        feature_scaling(&a.data),
        if standardize { ", standardised" } else { "" }
    );
    println!("  {}", settings_line(&record.hyper_parameters));
    match (train_accuracy, mean_ll) {
        (Some(acc), _) => println!("  train accuracy {:.2}%", 100.0 * acc),
        (None, Some(ll)) => println!(
            "  mean log-likelihood {ll:.4}, BIC {:.1}, AIC {:.1}",
            bic.unwrap_or(f64::NAN),
            aic.unwrap_or(f64::NAN)
        ),
        (None, None) => {}
    }
    let conv = match converged {
        Some(false) => " (did not converge within --max-iter)",
        _ => "",
    };
    println!("  fitted in {fit_seconds:.2} s{conv}");
    println!("wrote {}", a.out.display());
    Ok(())
}

/// `key=value` pairs of a JSON object, in its order.
fn settings_line(h: &serde_json::Value) -> String {
    h.as_object()
        .map(|m| {
            m.iter().map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"'))).collect::<Vec<_>>().join(" ")
        })
        .unwrap_or_default()
}

/// A model directory read back: its record, estimator and scaler.
struct Loaded {
    record: FitRecord,
    model: Fitted,
    scaler: Option<StandardScaler>,
}

fn load_dir(dir: &Path) -> Result<Loaded> {
    if !dir.is_dir() {
        return Err(format!("{}: no such model directory", dir.display()).into());
    }
    let fit_path = dir.join(FIT_FILE);
    let text = std::fs::read_to_string(&fit_path).map_err(|e| {
        format!(
            "{}: cannot read ({e}); is {} a directory written by `jizen ml fit`?",
            fit_path.display(),
            dir.display()
        )
    })?;
    let record: FitRecord = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a fit record of `jizen ml fit`: {e}", fit_path.display()))?;
    if record.format != FIT_FORMAT {
        return Err(format!("{}: format {:?}, expected {FIT_FORMAT:?}", fit_path.display(), record.format).into());
    }
    let model = Fitted::load(record.algo, &dir.join(MODEL_FILE)).map_err(|e| {
        format!("{e} (fit.json says --algo {}; was the directory mixed with another fit?)", record.algo.name())
    })?;
    let scaler =
        if record.preprocessing.standardize { Some(StandardScaler::load(dir.join(SCALER_FILE))?) } else { None };
    if let Some(s) = &scaler {
        if s.mean().len() != record.n_features {
            return Err(format!(
                "{}: the scaler has {} features but fit.json records {}",
                dir.display(),
                s.mean().len(),
                record.n_features
            )
            .into());
        }
    }
    Ok(Loaded { record, model, scaler })
}

/// The rows of `split` for a loaded model, standardised as at fit time; checks the feature count.
fn rows_for(loaded: &Loaded, on: &ModelOnData) -> Result<(datasets::Data, Rows)> {
    let (data, split, limit) = (&on.data, on.split, on.limit);
    let name = data.clone().unwrap_or_else(|| loaded.record.data.clone());
    let data_dir = on.data_dir.clone().or_else(|| if data.is_none() { loaded.record.data_dir.clone() } else { None });
    let set = open(&name, data_dir.as_deref())?;
    let d: usize = set.input.iter().product();
    if d != loaded.record.n_features {
        return Err(format!(
            "{}: the model was fitted on {} features but {} has {d} per example (a model for another data set?)",
            on.model.display(),
            loaded.record.n_features,
            set.name
        )
        .into());
    }
    let mut r = rows(&set, split, limit)?;
    if let Some(s) = &loaded.scaler {
        r.x = s.transform(&r.x)?;
    }
    Ok((set, r))
}

fn split_name(split: SplitArg) -> &'static str {
    match split {
        SplitArg::Test => "test",
        SplitArg::Train => "train",
    }
}

/// `jizen ml eval`.
pub fn eval(a: &EvalArgs) -> Result<()> {
    let on = &a.on;
    let loaded = load_dir(&on.model)?;
    let (data, Rows { x, y }) = rows_for(&loaded, on)?;
    let which = split_name(on.split);
    println!(
        "{} ({}) on {} ({which} split, {} examples)",
        on.model.display(),
        loaded.record.algo.name(),
        data.name,
        x.nrows()
    );
    let report = if let Fitted::Gmm(m) = &loaded.model {
        // Unsupervised: the labels say nothing about the components, so only the fit is reported.
        let (ll, bic, aic) = (m.score(&x)?, m.bic(&x)?, m.aic(&x)?);
        println!("mean log-likelihood {ll:.4}\nBIC {bic:.1}\nAIC {aic:.1}");
        println!("({} components, {} free parameters)", m.weights().len(), m.n_parameters());
        json!({
            "model": on.model, "algo": "gmm", "data": data.name, "split": which, "examples": x.nrows(),
            "mean_log_likelihood": ll, "bic": bic, "aic": aic,
            "n_components": m.weights().len(), "n_parameters": m.n_parameters(),
        })
    } else {
        let pred = loaded.model.predict(&x)?;
        let accuracy = jizen_ml::accuracy(&y, &pred)?;
        let r = classification_report(&y, &pred)?;
        let (p, rc, f1) = r.average(Average::Macro);
        let cm = confusion_matrix(&y, &pred)?;
        println!("accuracy {:.2}%", 100.0 * accuracy);
        println!("macro precision {p:.4}  recall {rc:.4}  F1 {f1:.4}\n");
        println!("{:>6} {:>10} {:>8} {:>8} {:>8}", "class", "precision", "recall", "F1", "support");
        for i in 0..r.labels.len() {
            println!(
                "{:>6} {:>10.4} {:>8.4} {:>8.4} {:>8}",
                r.labels[i], r.precision[i], r.recall[i], r.f1[i], r.support[i]
            );
        }
        println!("\nconfusion matrix (rows: true class, columns: predicted)");
        let width = cm.counts.iter().flatten().max().map_or(1, |m| m.to_string().len()).max(3);
        print!("{:>6}", "");
        for l in &cm.labels {
            print!(" {l:>width$}");
        }
        println!();
        for (l, row) in cm.labels.iter().zip(&cm.counts) {
            print!("{l:>6}");
            for c in row {
                print!(" {c:>width$}");
            }
            println!();
        }
        let per_class: Vec<serde_json::Value> = (0..r.labels.len())
            .map(|i| {
                json!({
                    "label": r.labels[i], "precision": r.precision[i], "recall": r.recall[i],
                    "f1": r.f1[i], "support": r.support[i],
                })
            })
            .collect();
        json!({
            "model": on.model, "algo": loaded.record.algo, "data": data.name, "split": which, "examples": x.nrows(),
            "accuracy": accuracy,
            "macro": { "precision": p, "recall": rc, "f1": f1 },
            "per_class": per_class,
            "confusion": { "labels": cm.labels, "counts": cm.counts },
        })
    };
    if let Some(path) = &a.json {
        write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `jizen ml predict`.
pub fn predict(a: &PredictArgs) -> Result<()> {
    let loaded = load_dir(&a.on.model)?;
    let (_, Rows { x, y }) = rows_for(&loaded, &a.on)?;
    let pred = loaded.model.predict(&x)?;
    let proba = loaded.model.proba(&x)?;
    let gmm = matches!(loaded.model, Fitted::Gmm(_));
    let mut csv = String::from(if gmm { "index,label,component" } else { "index,label,predicted" });
    if let Some((_, columns)) = &proba {
        let prefix = if gmm { "p_component_" } else { "p_" };
        for c in columns {
            csv += &format!(",{prefix}{c}");
        }
    }
    csv.push('\n');
    for (i, (p, l)) in pred.iter().zip(&y).enumerate() {
        csv += &format!("{i},{l},{p}");
        if let Some((m, _)) = &proba {
            for c in 0..m.ncols() {
                csv += &format!(",{:.6}", m[(i, c)]);
            }
        }
        csv.push('\n');
    }
    match &a.out {
        Some(path) => {
            write_atomic(path, csv.as_bytes())?;
            println!("wrote {} predictions to {}", pred.len(), path.display());
        }
        None => print!("{csv}"),
    }
    Ok(())
}

/// `jizen ml pca`.
pub fn pca(a: &PcaArgs) -> Result<()> {
    let ext = a.plot.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if !matches!(ext.as_deref(), Some("png" | "svg")) {
        return Err(format!("--plot {}: the name must end in .png or .svg", a.plot.display()).into());
    }
    let data = open(&a.data, a.data_dir.as_deref())?;
    let Rows { x, y } = rows(&data, SplitArg::Train, a.limit)?;
    let start = Instant::now();
    let config = PcaConfig { standardize: a.standardize, ..PcaConfig::new(a.components) };
    let model = config.fit(&x)?;
    let seconds = start.elapsed().as_secs_f64();
    let z = model.transform(&x)?;
    let ratios = model.explained_variance_ratio();
    println!(
        "jizen ml pca: {} ({} train examples x {} features; {}{}), {:?} solver, {seconds:.2} s",
        data.name,
        x.nrows(),
        x.ncols(),
        feature_scaling(&a.data),
        if a.standardize { ", standardised" } else { "" },
        model.solver()
    );
    println!("{:>9} {:>10} {:>11}", "component", "ratio", "cumulative");
    let mut total = 0.0;
    for (i, r) in ratios.iter().enumerate() {
        total += r;
        println!("{:>9} {:>10.4} {:>11.4}", i + 1, r, total);
    }
    let points: Vec<(f64, f64, usize)> =
        (0..z.nrows()).map(|i| (z[(i, 0)], if z.ncols() > 1 { z[(i, 1)] } else { 0.0 }, y[i])).collect();
    let shown = if z.ncols() > 1 { "PC 1 and 2 explain" } else { "PC 1 explains" };
    let title = format!("{}: {shown} {:.1}% of the variance", data.name, 100.0 * ratios.iter().take(2).sum::<f64>());
    if let Some(dir) = a.plot.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create the directory: {e}", dir.display()))?;
    }
    jizen_train::probe::write_scatter(&a.plot, &points, &title)?;
    println!("wrote {}", a.plot.display());
    if let Some(path) = &a.json {
        let report = json!({
            "data": data.name,
            "n_samples": x.nrows(),
            "n_features": x.ncols(),
            "features": feature_scaling(&a.data),
            "standardize": a.standardize,
            "n_components": a.components,
            "solver": format!("{:?}", model.solver()).to_lowercase(),
            "explained_variance": model.explained_variance(),
            "explained_variance_ratio": ratios,
            "fit_seconds": seconds,
        });
        write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
