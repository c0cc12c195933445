//! # jizen-nn
//!
//! Modules with named parameters (dotted paths that follow the module tree, as in PyTorch's
//! `state_dict`: `0.weight`, `encoder.2.bias`), layers, initialisers and optimizers.
//!
//! ```
//! use jizen_nn::{mlp, Module};
//! use jizen_tensor::{DType, Rng, Tensor};
//! let net = mlp(&[4, 8, 3], DType::F32, &mut Rng::new(0));
//! let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
//! let y = net.forward(&Tensor::ones(&[2, 4], DType::F32))?;
//! assert_eq!(y.shape(), &[2, 3]);
//! # Ok::<(), jizen_tensor::Error>(())
//! ```
//!
//! One training step (the README shows the same):
//!
//! ```
//! use jizen_nn::{mlp, Adam, AdamConfig, Module, Optimizer};
//! use jizen_tensor::{cross_entropy, DType, Rng, Tensor};
//!
//! fn one_step() -> jizen_tensor::Result<f64> {
//!     let model = mlp(&[64, 128, 10], DType::F32, &mut Rng::new(0));
//!     let mut opt = Adam::new(model.parameters(), AdamConfig::default());
//!     let (x, y) = (Tensor::zeros(&[32, 64], DType::F32), Tensor::zeros(&[32], DType::I64));
//!     opt.zero_grad();
//!     let loss = cross_entropy(&model.forward(&x)?, &y, Default::default())?;
//!     loss.backward()?;
//!     opt.step()?;
//!     loss.item()
//! }
//! assert!((one_step().unwrap() - 10f64.ln()).abs() < 0.5);
//! ```

pub mod activation;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod flatten;
pub mod init;
pub mod linear;
pub mod module;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod residual;
pub mod rnn;
pub mod sequential;

pub use activation::{Gelu, LeakyRelu, Relu, Sigmoid, Tanh};
pub use conv::{Conv2d, ConvTranspose2d};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use flatten::Flatten;
pub use linear::Linear;
pub use module::{load_state_dict, state_dict, LoadReport, Module};
pub use norm::{
    batch_norm_eval, batch_norm_train, layer_norm, BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig, LayerNorm,
};
pub use optim::{
    clip_grad_norm, clip_grad_value, Adam, AdamConfig, CosineWithWarmup, ExponentialLr, OneCycle, Optimizer,
    ParamGroup, PlateauConfig, RMSprop, RMSpropConfig, ReduceOnPlateau, Schedule, Sgd, SgdConfig, StepLr,
};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use residual::Residual;
pub use rnn::{Gru, GruCell, Lstm, LstmCell, LstmState, Rnn, RnnCell, RnnConfig};
pub use sequential::{mlp, Sequential};
