//! # jizen-models
//!
//! Networks described as data. A [`ModelSpec`] names a per-sample input shape and a list of
//! [`Layer`]s; [`Model::build`] walks it once, inferring every layer's input size from the shape
//! before it (so a spec never repeats a channel count), creating the modules and a per-layer
//! [`LayerInfo`] (output shape, parameters, FLOPs) for `jizen summary`.
//!
//! Specs come from the built-in [`zoo`] (`mlp`, `cnn`, `lenet5`, `resnet-cifar`) or from a TOML
//! file ([`ModelSpec::from_toml`]); both produce the same parameter names, which follow the
//! layer list as a `torch.nn.Sequential` would (`0.weight`, `3.body.0.weight`).
//!
//! ```
//! use jizen_models::{zoo, Model};
//! use jizen_nn::Module;
//! use jizen_tensor::{DType, Tensor};
//! let spec = zoo("cnn", &[1, 28, 28], 10)?;
//! let model = Model::build(&spec, DType::F32, 0)?;
//! assert_eq!(model.num_parameters(), 421_834);
//! let y = model.forward(&Tensor::zeros(&[2, 1, 28, 28], DType::F32))?;
//! assert_eq!(y.shape(), &[2, 10]);
//! // A 3-channel image into this 1-channel network is a clear error, not a panic.
//! let err = model.forward(&Tensor::zeros(&[2, 3, 28, 28], DType::F32)).unwrap_err();
//! assert!(err.to_string().contains("expects input [N, 1, 28, 28]"));
//! # Ok::<(), jizen_tensor::Error>(())
//! ```

#![warn(missing_docs)]

mod build;
mod spec;
mod summary;

pub use build::{LayerInfo, Model};
pub use spec::{zoo, Layer, ModelSpec, ZOO};
pub use summary::{thousands, Summary};
