//! `jizen summary`: layers, parameters, FLOPs, and the activation memory that training holds.

use std::fmt;

use jizen_nn::Module;
use jizen_tensor::{graph_memory, DType, Result, Rng, Tensor};

use crate::build::{LayerInfo, Model};

/// A model's size and cost per sample. The activation memory is measured, not estimated: two
/// training-mode forward passes (batches of 2 and 4 random samples) are recorded and the
/// buffers their graphs hold are counted ([`jizen_tensor::graph_memory`]); half the difference
/// is what each extra sample in a batch costs until `backward` frees it.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The model's name.
    pub name: String,
    /// Per-sample input shape.
    pub input: Vec<usize>,
    /// Per-layer rows.
    pub layers: Vec<LayerInfo>,
    /// Parameter elements.
    pub params: usize,
    /// Bytes of parameters (and buffers).
    pub param_bytes: usize,
    /// Forward FLOPs per sample.
    pub flops: u64,
    /// Bytes the backward pass holds per sample of a batch.
    pub activation_bytes_per_sample: usize,
}

impl Summary {
    /// Summarises `model` (its training mode is restored afterwards to training).
    pub fn of(model: &Model) -> Result<Summary> {
        let dtype = model.parameters().first().map(|p| p.dtype()).unwrap_or(DType::F32);
        model.set_training(true);
        let mut rng = Rng::new(0);
        let mut held = |n: usize| -> Result<usize> {
            let mut shape = vec![n];
            shape.extend_from_slice(&model.spec().input);
            let x = Tensor::randn(&shape, dtype, &mut rng);
            let y = model.forward(&x)?;
            Ok(graph_memory(&y).activation_bytes)
        };
        let (two, four) = (held(2)?, held(4)?);
        let state_bytes = jizen_nn::state_dict(model).values().map(|t| t.numel() * t.dtype().size_in_bytes()).sum();
        Ok(Summary {
            name: model.spec().name.clone(),
            input: model.spec().input.clone(),
            layers: model.layers().to_vec(),
            params: model.num_parameters(),
            param_bytes: state_bytes,
            flops: model.flops(),
            activation_bytes_per_sample: four.saturating_sub(two) / 2,
        })
    }
}

/// A count with thousands separators: `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: usize) -> String {
    format!("{:.2} MiB", bytes as f64 / (1 << 20) as f64)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} (input [N, {}])",
            self.name,
            self.input.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        )?;
        writeln!(f, "{:<22} {:<18} {:>16} {:>12} {:>14}", "layer", "type", "output", "params", "FLOPs")?;
        for l in &self.layers {
            let name = format!("{}{}", "  ".repeat(l.depth), l.name);
            let out = format!("{:?}", l.output);
            writeln!(
                f,
                "{name:<22} {:<18} {out:>16} {:>12} {:>14}",
                l.kind,
                thousands(l.params as u64),
                thousands(l.flops)
            )?;
        }
        writeln!(f, "parameters: {} ({} with buffers)", thousands(self.params as u64), mib(self.param_bytes))?;
        writeln!(f, "forward FLOPs per sample: {}", thousands(self.flops))?;
        write!(
            f,
            "activations held for backward, per sample: {} (a batch of 64 holds {})",
            mib(self.activation_bytes_per_sample),
            mib(64 * self.activation_bytes_per_sample)
        )
    }
}
