//! Support vector machines: [`LinearSvc`] (dual coordinate descent, one-vs-rest) and [`Svc`]
//! (kernel SVM by SMO with second-order working-set selection, shrinking and a kernel-row
//! cache; one-vs-one). Both follow scikit-learn's `LinearSVC(dual=True)` and `SVC`, which
//! `tests/svm_parity.rs` checks against `scripts/fixtures/sklearn_svm.py`.
//!
//! ```
//! use jizen_ml::{matrix_from_rows, Gamma, Kernel, SvcConfig};
//! let x = matrix_from_rows(4, 1, &[0.0, 0.5, 3.0, 3.5]).unwrap();
//! let svc = SvcConfig::with_kernel(Kernel::Rbf { gamma: Gamma::Value(1.0) }).fit(&x, &[0, 0, 1, 1]).unwrap();
//! assert_eq!(svc.predict(&matrix_from_rows(2, 1, &[0.2, 3.2]).unwrap()).unwrap(), vec![0, 1]);
//! ```

mod cache;
mod kernel;
mod linear_svc;
mod smo;
mod svc;

pub use kernel::{Gamma, Kernel};
pub use linear_svc::{LinearSvc, LinearSvcConfig, SvmLoss};
pub use svc::{Svc, SvcConfig};
