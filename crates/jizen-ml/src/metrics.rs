//! Classification metrics.

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
    }
}
