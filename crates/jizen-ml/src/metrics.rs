//! Classification metrics.

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};

fn check_pair(what: &'static str, y_true: &[usize], y_pred: &[usize]) -> Result<()> {
    if y_true.len() != y_pred.len() {
        return Err(MlError::ShapeMismatch {
            what,
            detail: format!("y_true has {} labels but y_pred has {}", y_true.len(), y_pred.len()),
        });
    }
    if y_true.is_empty() {
        return Err(MlError::Empty { what, rows: 0, cols: 1 });
    }
    Ok(())
}

/// The fraction of predictions equal to the truth, in [0, 1] (scikit-learn's `accuracy_score`).
///
/// ```
/// assert_eq!(jizen_ml::accuracy(&[0, 1, 1, 2], &[0, 1, 2, 2]).unwrap(), 0.75);
/// ```
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    check_pair("accuracy", y_true, y_pred)?;
    let hits = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(hits as f64 / y_true.len() as f64)
}

/// Counts of (true label, predicted label) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    /// The sorted labels seen in either input; row and column `i` belong to `labels[i]`.
    pub labels: Vec<usize>,
    /// `counts[i][j]`: samples of true label `labels[i]` predicted as `labels[j]`.
    pub counts: Vec<Vec<usize>>,
}

/// The confusion matrix of `y_pred` against `y_true` (scikit-learn's `confusion_matrix`: rows are
/// the truth, columns the prediction, labels the sorted union of both inputs).
///
/// ```
/// let cm = jizen_ml::confusion_matrix(&[0, 0, 1], &[0, 1, 1]).unwrap();
/// assert_eq!(cm.counts, vec![vec![1, 1], vec![0, 1]]);
/// ```
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize]) -> Result<ConfusionMatrix> {
    check_pair("confusion_matrix", y_true, y_pred)?;
    let mut labels: Vec<usize> = y_true.iter().chain(y_pred).copied().collect();
    labels.sort_unstable();
    labels.dedup();
    let mut counts = vec![vec![0; labels.len()]; labels.len()];
    let pos = |l: &usize| labels.binary_search(l).expect("label was collected");
    for (t, p) in y_true.iter().zip(y_pred) {
        counts[pos(t)][pos(p)] += 1;
    }
    Ok(ConfusionMatrix { labels, counts })
}

/// How per-class scores are combined into one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Average {
    /// The unweighted mean of the per-class scores (every class counts the same).
    Macro,
    /// The score of the pooled counts: true positives, false positives and false negatives summed
    /// over the classes (for single-label data, precision = recall = F1 = accuracy).
    Micro,
    /// The mean of the per-class scores weighted by each class's support (its true count).
    Weighted,
}

/// Per-class precision, recall, F1 and support (scikit-learn's
/// `precision_recall_fscore_support(average=None)`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationReport {
    /// The sorted labels seen in either input; entry `i` of every other field belongs to
    /// `labels[i]`.
    pub labels: Vec<usize>,
    /// `tp / (tp + fp)`: of the samples predicted as the class, the share that is right.
    pub precision: Vec<f64>,
    /// `tp / (tp + fn)`: of the samples of the class, the share that was found.
    pub recall: Vec<f64>,
    /// `2 tp / (2 tp + fp + fn)`, the harmonic mean of precision and recall.
    pub f1: Vec<f64>,
    /// How many samples of each class `y_true` holds.
    pub support: Vec<usize>,
    /// Pooled counts for the micro average: (tp, fp, fn) summed over the classes.
    micro_counts: (usize, usize, usize),
}

/// `num / den`, or 0 when `den` is 0: scikit-learn's default `zero_division="warn"` gives 0
/// (and a warning) for a class that is never predicted (precision) or never present (recall).
fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Precision, recall, F1 and support of every class of `y_pred` against `y_true`, over the sorted
/// union of the labels of both inputs. A ratio with a zero denominator is 0 (scikit-learn's
/// default `zero_division` behaviour, without the warning); F1 is `2 tp / (2 tp + fp + fn)`, so it
/// is 0 when precision and recall are both 0.
///
/// ```
/// let r = jizen_ml::classification_report(&[0, 0, 1, 1], &[0, 1, 1, 1]).unwrap();
/// assert_eq!(r.precision, vec![1.0, 2.0 / 3.0]);
/// assert_eq!(r.recall, vec![0.5, 1.0]);
/// ```
pub fn classification_report(y_true: &[usize], y_pred: &[usize]) -> Result<ClassificationReport> {
    let cm = confusion_matrix(y_true, y_pred).map_err(|e| match e {
        MlError::ShapeMismatch { detail, .. } => MlError::ShapeMismatch { what: "classification_report", detail },
        MlError::Empty { rows, cols, .. } => MlError::Empty { what: "classification_report", rows, cols },
        other => other,
    })?;
    let k = cm.labels.len();
    let tp: Vec<usize> = (0..k).map(|i| cm.counts[i][i]).collect();
    let predicted: Vec<usize> = (0..k).map(|j| (0..k).map(|i| cm.counts[i][j]).sum()).collect();
    let support: Vec<usize> = (0..k).map(|i| cm.counts[i].iter().sum()).collect();
    let precision = (0..k).map(|c| ratio(tp[c], predicted[c])).collect();
    let recall = (0..k).map(|c| ratio(tp[c], support[c])).collect();
    let f1 = (0..k).map(|c| ratio(2 * tp[c], predicted[c] + support[c])).collect();
    let tp_all: usize = tp.iter().sum();
    let micro_counts = (tp_all, y_pred.len() - tp_all, y_true.len() - tp_all);
    Ok(ClassificationReport { labels: cm.labels, precision, recall, f1, support, micro_counts })
}

impl ClassificationReport {
    /// `(precision, recall, f1)` combined by `average`. A weighted average over classes of zero
    /// total support cannot happen here (`y_true` is never empty).
    pub fn average(&self, average: Average) -> (f64, f64, f64) {
        match average {
            Average::Micro => {
                let (tp, fp, fn_) = self.micro_counts;
                (ratio(tp, tp + fp), ratio(tp, tp + fn_), ratio(2 * tp, 2 * tp + fp + fn_))
            }
            Average::Macro | Average::Weighted => {
                let w: Vec<f64> = match average {
                    Average::Macro => vec![1.0; self.labels.len()],
                    _ => self.support.iter().map(|&s| s as f64).collect(),
                };
                let total: f64 = w.iter().sum();
                let mean = |v: &[f64]| v.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() / total;
                (mean(&self.precision), mean(&self.recall), mean(&self.f1))
            }
        }
    }
}

/// Precision averaged by `average` (scikit-learn's `precision_score`).
pub fn precision_score(y_true: &[usize], y_pred: &[usize], average: Average) -> Result<f64> {
    Ok(classification_report(y_true, y_pred)?.average(average).0)
}

/// Recall averaged by `average` (scikit-learn's `recall_score`).
pub fn recall_score(y_true: &[usize], y_pred: &[usize], average: Average) -> Result<f64> {
    Ok(classification_report(y_true, y_pred)?.average(average).1)
}

/// F1 averaged by `average` (scikit-learn's `f1_score`; the macro and weighted averages are means
/// of the per-class F1, not the F1 of the averaged precision and recall).
pub fn f1_score(y_true: &[usize], y_pred: &[usize], average: Average) -> Result<f64> {
    Ok(classification_report(y_true, y_pred)?.average(average).2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_uses_the_union_of_labels() {
        let cm = confusion_matrix(&[2, 5, 5, 2], &[2, 5, 7, 5]).unwrap();
        assert_eq!(cm.labels, vec![2, 5, 7]);
        assert_eq!(cm.counts, vec![vec![1, 1, 0], vec![0, 1, 1], vec![0, 0, 0]]);
        let total: usize = cm.counts.iter().flatten().sum();
        assert_eq!(total, 4);
    }

    #[test]
    fn mismatched_or_empty_inputs_are_errors() {
        assert!(matches!(accuracy(&[1], &[1, 2]), Err(MlError::ShapeMismatch { .. })));
        assert!(matches!(accuracy(&[], &[]), Err(MlError::Empty { .. })));
        assert!(confusion_matrix(&[1, 2], &[1]).is_err());
        assert!(matches!(classification_report(&[], &[]), Err(MlError::Empty { what: "classification_report", .. })));
        assert!(f1_score(&[1, 2], &[1], Average::Macro).is_err());
    }

    #[test]
    fn per_class_scores_and_averages_by_hand() {
        // Truth 0 0 0 1 1 2, prediction 0 0 1 1 2 3: label 3 is only predicted (support 0,
        // recall 0/0 -> 0), label 2 is never predicted right.
        let (t, p) = ([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 3]);
        let r = classification_report(&t, &p).unwrap();
        assert_eq!(r.labels, vec![0, 1, 2, 3]);
        assert_eq!(r.support, vec![3, 2, 1, 0]);
        assert_eq!(r.precision, vec![1.0, 0.5, 0.0, 0.0]);
        assert_eq!(r.recall, vec![2.0 / 3.0, 0.5, 0.0, 0.0]);
        assert_eq!(r.f1, vec![0.8, 0.5, 0.0, 0.0]);
        let (mp, mr, mf) = r.average(Average::Micro);
        assert!((mp - 0.5).abs() < 1e-15 && (mr - 0.5).abs() < 1e-15 && (mf - 0.5).abs() < 1e-15);
        assert!((r.average(Average::Macro).2 - 1.3 / 4.0).abs() < 1e-15);
        assert!((r.average(Average::Weighted).0 - 4.0 / 6.0).abs() < 1e-15);
        assert_eq!(precision_score(&t, &p, Average::Macro).unwrap(), r.average(Average::Macro).0);
        assert_eq!(recall_score(&t, &p, Average::Weighted).unwrap(), r.average(Average::Weighted).1);
    }
}
