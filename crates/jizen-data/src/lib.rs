//! # jizen-data
//!
//! Data sets and formats. For now: the 8×8 digit sets embedded in the binary for `jizen demo`
//! (see `assets/README.md` for their origin, format and licences).

pub mod digits;

pub use digits::{Digits, DigitsError};
