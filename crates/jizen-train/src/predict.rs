//! Prediction: a model rebuilt from a checkpoint, run in inference mode over batches, giving each
//! example's label, class probabilities and top-k classes.

use std::path::Path;
use std::sync::Arc;

use jizen_data::{DataLoader, Dataset, LoaderConfig};
use jizen_models::Model;
use jizen_nn::Module;
use jizen_tensor::{no_grad, DType, Tensor};

use crate::checkpoint::Checkpoint;
use crate::evaluate::{top_k_indices, SharedDataset};
use crate::{Error, Result};

/// One example's prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The most probable class.
    pub label: usize,
    /// The probability of every class (softmax of the logits).
    pub probabilities: Vec<f64>,
    /// The `k` most probable classes with their probabilities, most probable first.
    pub top_k: Vec<(usize, f64)>,
}

/// Batched inference with a trained model.
pub struct Predictor {
    model: Model,
    /// Examples per forward pass.
    pub batch_size: usize,
}

impl Predictor {
    /// A predictor over `model` (switched to inference mode).
    pub fn new(model: Model) -> Predictor {
        model.set_training(false);
        Predictor { model, batch_size: 256 }
    }

    /// Rebuilds the model a jizen checkpoint describes and loads its weights (all of them: a key
    /// that does not fit is an error).
    pub fn from_checkpoint(path: &Path) -> Result<Predictor> {
        let ck = Checkpoint::load(path)?;
        let spec = ck.meta(path)?.model.clone().ok_or_else(|| {
            Error::Msg(format!(
                "{}: the checkpoint does not describe its model, so it cannot be rebuilt",
                path.display()
            ))
        })?;
        let dtype = ck.model.values().next().map_or(DType::F32, |t| t.dtype());
        let model = Model::build(&spec, dtype, 0)?;
        ck.restore_model(&model, true).map_err(|e| Error::Msg(format!("{}: {e}", path.display())))?;
        Ok(Predictor::new(model))
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Predictions for a batch `x` (`[N, ...input]`).
    pub fn predict(&self, x: &Tensor, k: usize) -> Result<Vec<Prediction>> {
        let probs = no_grad(|| -> jizen_tensor::Result<Tensor> {
            let logits = self.model.forward(x)?;
            logits.to_dtype(DType::F64)?.softmax(-1)
        })?;
        let classes = *probs.shape().last().unwrap_or(&1);
        let values = probs.to_vec::<f64>()?;
        Ok(values
            .chunks(classes)
            .map(|p| {
                let top: Vec<(usize, f64)> = top_k_indices(p, k.min(classes)).into_iter().map(|c| (c, p[c])).collect();
                Prediction { label: top[0].0, probabilities: p.to_vec(), top_k: top }
            })
            .collect())
    }

    /// Predictions for every example of `data`, in order (the data set's labels are ignored).
    pub fn predict_dataset(&self, data: Arc<dyn Dataset>, k: usize) -> Result<Vec<Prediction>> {
        let config =
            LoaderConfig { batch_size: self.batch_size.max(1), shuffle: false, drop_last: false, seed: 0, prefetch: 2 };
        let loader = DataLoader::new(Arc::new(SharedDataset(data)), config)?;
        let mut out = Vec::new();
        for batch in loader.epoch(0, 0) {
            out.extend(self.predict(&batch?.0, k)?);
        }
        Ok(out)
    }
}
