//! Evaluation of a classifier on a labelled data set: loss, accuracy, top-k accuracy, per-class
//! accuracy and the confusion matrix, with the model in inference mode and no graph recorded.

use std::sync::Arc;

use jizen_data::{DataLoader, Dataset, LoaderConfig};
use jizen_nn::Module;
use jizen_tensor::{cross_entropy, no_grad, CrossEntropyOptions, Reduction, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A [`Dataset`] behind an `Arc<dyn Dataset>`, so loaders can hold data sets chosen at run time.
#[derive(Clone)]
pub struct SharedDataset(pub Arc<dyn Dataset>);

impl Dataset for SharedDataset {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn batch(&self, indices: &[usize]) -> jizen_tensor::Result<(Tensor, Tensor)> {
        self.0.batch(indices)
    }
    fn set_epoch(&self, epoch: u64) {
        self.0.set_epoch(epoch)
    }
}

/// What an evaluation measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Examples evaluated.
    pub examples: usize,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Top-1 accuracy in [0, 1].
    pub accuracy: f64,
    /// The `k` of the top-k accuracy.
    pub top_k: usize,
    /// Fraction of examples whose label is among the `k` highest scores.
    pub top_k_accuracy: f64,
    /// Accuracy of each class (NaN for a class with no examples).
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

impl EvalReport {
    /// A plain-text rendering: the headline numbers, per-class accuracy, the confusion matrix.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "examples {}  loss {:.4}  accuracy {:.2}%  top-{} {:.2}%\n",
            self.examples,
            self.loss,
            100.0 * self.accuracy,
            self.top_k,
            100.0 * self.top_k_accuracy
        );
        s += "per-class accuracy:";
        for (c, a) in self.per_class_accuracy.iter().enumerate() {
            s += &format!(" {c}:{:.1}%", 100.0 * a);
        }
        s += "\nconfusion (rows: true class, columns: predicted):\n";
        for (c, row) in self.confusion.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>5}")).collect();
            s += &format!("{c:>3} {}\n", cells.join(""));
        }
        s
    }
}

/// Evaluates classifiers batch by batch.
#[derive(Clone, Copy, Debug)]
pub struct Evaluator {
    /// Examples per forward pass.
    pub batch_size: usize,
    /// The `k` of the top-k accuracy.
    pub top_k: usize,
}

impl Default for Evaluator {
    fn default() -> Self {
        Evaluator { batch_size: 512, top_k: 5 }
    }
}

impl Evaluator {
    /// Evaluates `model` on `data` (in evaluation mode; the caller switches it back to training).
    pub fn evaluate(&self, model: &dyn Module, data: Arc<dyn Dataset>) -> Result<EvalReport> {
        if data.is_empty() {
            return Err(Error::Msg("evaluation needs at least one example".into()));
        }
        let config =
            LoaderConfig { batch_size: self.batch_size.max(1), shuffle: false, drop_last: false, seed: 0, prefetch: 2 };
        let loader = DataLoader::new(Arc::new(SharedDataset(data)), config)?;
        model.set_training(false);
        let mut acc = Accumulator::default();
        for batch in loader.epoch(0, 0) {
            let (x, y) = batch?;
            let logits = no_grad(|| model.forward(&x))?;
            acc.add(&logits, &y, self.top_k)?;
        }
        acc.report(self.top_k)
    }
}

/// Running sums of an evaluation.
#[derive(Default)]
struct Accumulator {
    n: usize,
    loss_sum: f64,
    correct: usize,
    top_k_correct: usize,
    confusion: Vec<Vec<u64>>,
}

impl Accumulator {
    fn add(&mut self, logits: &Tensor, y: &Tensor, k: usize) -> Result<()> {
        let options = CrossEntropyOptions { reduction: Reduction::Sum, ..Default::default() };
        self.loss_sum += cross_entropy(logits, y, options)?.item()?;
        let classes = logits.shape()[1];
        if self.confusion.len() < classes {
            self.confusion.resize(classes, vec![0; classes]);
            self.confusion.iter_mut().for_each(|r| r.resize(classes, 0));
        }
        let scores = logits.to_dtype(jizen_tensor::DType::F64)?.to_vec::<f64>()?;
        let labels = y.to_vec::<i64>()?;
        for (row, &label) in scores.chunks(classes).zip(&labels) {
            let label = label as usize;
            let ranked = top_k_indices(row, k.min(classes));
            self.correct += usize::from(ranked[0] == label);
            self.top_k_correct += usize::from(ranked.contains(&label));
            self.confusion[label][ranked[0]] += 1;
        }
        self.n += labels.len();
        Ok(())
    }

    fn report(self, k: usize) -> Result<EvalReport> {
        let per_class =
            self.confusion.iter().enumerate().map(|(c, row)| row[c] as f64 / row.iter().sum::<u64>() as f64).collect();
        Ok(EvalReport {
            examples: self.n,
            loss: self.loss_sum / self.n as f64,
            accuracy: self.correct as f64 / self.n as f64,
            top_k: k,
            top_k_accuracy: self.top_k_correct as f64 / self.n as f64,
            per_class_accuracy: per_class,
            confusion: self.confusion,
        })
    }
}

/// Indices of the `k` largest scores, largest first (ties: lower index first).
pub fn top_k_indices(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k.max(1));
    idx
}
