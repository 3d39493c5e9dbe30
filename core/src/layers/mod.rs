//! Building blocks shared by the model and the adapters, and nothing else: linear projections
//! (with the CPU fast path) and activations. Both [`crate::model`] and [`crate::adapter`] import
//! from here, so neither needs the other's helpers.

pub mod activation;
pub mod linear;

pub use activation::activate;
pub use linear::{init_linear, load_linear, project};
