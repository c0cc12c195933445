//! Greedy layer-wise pre-training of a stacked (denoising) autoencoder, after Vincent et al.
//! (JMLR 2010): before the whole stack trains end to end, each encoder layer is trained on its
//! own as a one-layer autoencoder of the codes that the layers below it (already trained)
//! produce from the clean data: masking noise on its input, its mirror decoder layer
//! reconstructing that input. Layer 1 reconstructs the pixels; layer 2 the first layer's codes;
//! and so on.
//!
//! Each stage is an ordinary [`Trainer`] run with the autoencoder objective on a data set of
//! codes, in its own directory (`layer-1/`, `layer-2/`, …, with metrics and checkpoints); the
//! stages' weights are then gathered under the names of the full autoencoder, ready to load
//! into it for the joint stage.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jizen_data::{DataLoader, Dataset, LoaderConfig};
use jizen_models::{Layer, Model, ModelSpec};
use jizen_nn::Module;
use jizen_tensor::{no_grad, DType, Tensor};

use crate::checkpoint::{Checkpoint, Lineage};
use crate::config::{Objective, TrainConfig};
use crate::evaluate::SharedDataset;
use crate::trainer::Trainer;
use crate::{Error, Result};

/// The layers one stage trains: a slice of the encoder and the slice of the decoder that
/// mirrors it (indices into the autoencoder's layer list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Encoder layers, from its `Linear` up to the next encoder `Linear` (the first stage also
    /// takes the layers before its `Linear`, such as a `Flatten`).
    pub encoder: Range<usize>,
    /// The mirror decoder layers, from its `Linear` up to the next decoder `Linear` or the end.
    pub decoder: Range<usize>,
}

/// The stages of the autoencoder `spec` whose first `encoder_layers` layers are the encoder and
/// whose remaining layers are a decoder with as many `Linear` layers, in mirror order.
pub fn stages(spec: &ModelSpec, encoder_layers: usize) -> Result<Vec<Stage>> {
    let linear =
        |r: Range<usize>| -> Vec<usize> { r.filter(|&i| matches!(spec.layers[i], Layer::Linear { .. })).collect() };
    if encoder_layers > spec.layers.len() {
        return Err(Error::Msg(format!(
            "{}: {encoder_layers} encoder layers, but the model has {}",
            spec.name,
            spec.layers.len()
        )));
    }
    let (enc, dec) = (linear(0..encoder_layers), linear(encoder_layers..spec.layers.len()));
    if enc.is_empty() || enc.len() != dec.len() {
        return Err(Error::Msg(format!(
            "{}: greedy layer-wise training needs a decoder that mirrors the encoder, one Linear for each; \
             found {} encoder and {} decoder Linear layers",
            spec.name,
            enc.len(),
            dec.len()
        )));
    }
    let l = enc.len();
    Ok((0..l)
        .map(|k| {
            let enc_start = if k == 0 { 0 } else { enc[k] };
            let enc_end = enc.get(k + 1).copied().unwrap_or(encoder_layers);
            let d = l - 1 - k;
            let dec_end = dec.get(d + 1).copied().unwrap_or(spec.layers.len());
            Stage { encoder: enc_start..enc_end, decoder: dec[d]..dec_end }
        })
        .collect())
}

/// Codes of a data set held in memory: `[N, D]` inputs with the original labels.
struct Codes {
    x: Tensor,
    y: Tensor,
}

impl Dataset for Codes {
    fn len(&self) -> usize {
        self.x.shape()[0]
    }

    fn batch(&self, indices: &[usize]) -> jizen_tensor::Result<(Tensor, Tensor)> {
        let idx = Tensor::from_vec(indices.iter().map(|&i| i as i64).collect::<Vec<_>>(), &[indices.len()])?;
        Ok((self.x.index_select(0, &idx)?, self.y.index_select(0, &idx)?))
    }
}

/// `encoder` applied to every example of `data` (inference mode, no graph).
fn encode(encoder: &Model, data: &Arc<dyn Dataset>) -> Result<Codes> {
    let config = LoaderConfig { batch_size: 512, shuffle: false, drop_last: false, seed: 0, prefetch: 2 };
    let loader = DataLoader::new(Arc::new(SharedDataset(data.clone())), config)?;
    encoder.set_training(false);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for batch in loader.epoch(0, 0) {
        let (x, y) = batch?;
        xs.push(no_grad(|| encoder.forward(&x))?);
        ys.push(y);
    }
    let cat = |v: &[Tensor]| Tensor::cat(&v.iter().collect::<Vec<_>>(), 0);
    Ok(Codes { x: cat(&xs)?, y: cat(&ys)? })
}

/// What greedy pre-training produced: the weights of every stage under the full autoencoder's
/// names, and each stage's final checkpoint (first stage first).
pub struct Greedy {
    /// Parameters and buffers of the whole autoencoder.
    pub state: BTreeMap<String, Tensor>,
    /// `layer-k/final.safetensors` of each stage.
    pub checkpoints: Vec<PathBuf>,
}

impl Greedy {
    /// The lineage of a run that starts from these weights: the stages' checkpoints, the last
    /// stage first (each stage trained on the codes of the ones before it).
    pub fn lineage(&self) -> Result<Lineage> {
        let mut ancestors = Vec::new();
        for path in self.checkpoints.iter().rev() {
            let ck = Checkpoint::load(path)?;
            ancestors.extend(Lineage::from_parent(path, &ck, Default::default(), Default::default())?.ancestors);
        }
        Ok(Lineage { ancestors, manifest: None, load_report: None })
    }
}

/// Trains the stages of the autoencoder `spec` (encoder `layers[..encoder_layers]`) one after
/// the other, `config.epochs` epochs each with its objective (which must be the autoencoder's),
/// stage `k` in `out/layer-k`. `log` hears one line per stage.
pub fn pretrain(
    spec: &ModelSpec,
    encoder_layers: usize,
    config: &TrainConfig,
    data_name: &str,
    train: Arc<dyn Dataset>,
    out: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Greedy> {
    if !matches!(config.objective, Objective::Autoencoder { .. }) {
        return Err(Error::Msg("greedy layer-wise pre-training needs the autoencoder objective".into()));
    }
    let stages = stages(spec, encoder_layers)?;
    let mut state = BTreeMap::new();
    let mut checkpoints = Vec::new();
    let mut input = spec.input.clone();
    for (k, stage) in stages.iter().enumerate() {
        // The data of stage k: the clean codes of the encoder layers trained so far.
        let data: Arc<dyn Dataset> = if k == 0 {
            train.clone()
        } else {
            let below = ModelSpec {
                name: format!("{}-encoder-{k}", spec.name),
                input: spec.input.clone(),
                layers: spec.layers[..stage.encoder.start].to_vec(),
            };
            let encoder = Model::build(&below, DType::F32, config.seed)?;
            jizen_nn::load_state_dict(&encoder, &state, false)?;
            Arc::new(encode(&encoder, &train)?)
        };
        let layers: Vec<Layer> =
            [stage.encoder.clone(), stage.decoder.clone()].into_iter().flat_map(|r| spec.layers[r].to_vec()).collect();
        let stage_spec = ModelSpec { name: format!("{}-layer{}", spec.name, k + 1), input: input.clone(), layers };
        let model = Model::build(&stage_spec, DType::F32, config.seed.wrapping_add(k as u64))?;
        let dir = out.join(format!("layer-{}", k + 1));
        log(&format!(
            "layer {} of {}: {} on {} examples of {:?}, {} epochs",
            k + 1,
            stages.len(),
            stage_spec.name,
            data.len(),
            input,
            config.epochs
        ));
        let described = match k {
            0 => data_name.to_string(),
            1 => format!("{data_name} (codes of layer 1)"),
            _ => format!("{data_name} (codes of layers 1-{k})"),
        };
        let report = Trainer::new(config.clone(), &dir)?.data_name(described).fit(&model, data, None, None)?;
        log(&format!("layer {}: {} steps in {:.1} s", k + 1, report.steps, report.elapsed_s));
        // Stage-local layer i is layer `encoder.start + i` of the autoencoder, then the decoder's.
        let n_enc = stage.encoder.len();
        for (name, t) in jizen_nn::state_dict(&model) {
            let (index, rest) = name.split_once('.').expect("sequential parameter names start with the layer index");
            let i: usize = index.parse().expect("a layer index");
            let full = if i < n_enc { stage.encoder.start + i } else { stage.decoder.start + i - n_enc };
            state.insert(format!("{full}.{rest}"), t);
        }
        checkpoints.push(dir.join("final.safetensors"));
        input = model.layers()[n_enc - 1].output.clone();
    }
    Ok(Greedy { state, checkpoints })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layers: Vec<Layer>) -> ModelSpec {
        ModelSpec { name: "ae".into(), input: vec![1, 4, 4], layers }
    }

    #[test]
    fn stages_pair_each_encoder_layer_with_its_mirror() {
        let lin = |out| Layer::Linear { out, bias: true };
        let ae = spec(vec![
            Layer::Flatten,
            lin(8),
            Layer::Relu,
            lin(4),
            Layer::Relu,
            lin(8),
            Layer::Relu,
            lin(16),
            Layer::Sigmoid,
        ]);
        let s = stages(&ae, 5).unwrap();
        assert_eq!(s, [Stage { encoder: 0..3, decoder: 7..9 }, Stage { encoder: 3..5, decoder: 5..7 }]);
        let lopsided = spec(vec![Layer::Flatten, lin(8), Layer::Relu, lin(16)]);
        assert!(stages(&lopsided, 2).is_ok());
        let err = stages(&spec(vec![Layer::Flatten, lin(8), lin(4), lin(16)]), 3).unwrap_err().to_string();
        assert!(err.contains("2 encoder and 1 decoder"), "{err}");
    }
}
