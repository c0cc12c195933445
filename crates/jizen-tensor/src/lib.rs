//! # jizen-tensor
//!
//! The engine under jizen: strided tensors (`f32`, `f64`, and `i64` for indices) whose views
//! never copy, a small set of primitive operations ([`Op`]) with CPU kernels, reverse-mode
//! autodiff whose backward rules are themselves tensor operations (so gradients can be
//! differentiated again), a finite-difference gradient checker, and safetensors I/O.
//!
//! ```
//! use jizen_tensor::{Tensor, DType, Rng};
//! let mut rng = Rng::new(0);
//! let w = Tensor::randn(&[3, 2], DType::F32, &mut rng).requires_grad_(true);
//! let x = Tensor::ones(&[4, 3], DType::F32);
//! let loss = x.matmul(&w)?.relu()?.sum_all()?;
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&w).unwrap().shape(), &[3, 2]);
//! # Ok::<(), jizen_tensor::Error>(())
//! ```

pub mod alloc;
pub mod autograd;
mod display;
pub mod dtype;
pub mod error;
pub mod fastmath;
pub mod functional;
pub mod gradcheck;
pub mod layout;
pub mod op;
pub mod ops;
mod ops_traits;
pub mod parallel;
pub mod rng;
pub mod safetensors;
pub mod simd;
pub mod storage;
mod tensor;

pub use alloc::AlignedAlloc;
// The engine's own tests run on the allocator its programs use.
#[cfg(test)]
#[global_allocator]
static ALLOC: AlignedAlloc = AlignedAlloc;
pub use autograd::{grad, graph_memory, is_grad_enabled, no_grad, Gradients, GraphMemory, NoGradGuard};
pub use dtype::{DType, Element, Float};
pub use error::{Error, Result};
pub use functional::{
    binary_cross_entropy_with_logits, cross_entropy, dropout_mask, mse_loss, multi_margin_loss, nll_loss,
    CrossEntropyOptions, Reduction,
};
pub use layout::Layout;
pub use op::Op;
pub use ops::conv::ConvOptions;
pub use ops::lstm::lstm_sequence_composite;
pub use ops::norm::batch_norm_train;
pub use parallel::num_threads;
pub use rng::Rng;
pub use tensor::{all_finite, Tensor, TensorId};
