//! T5 (v1.0, v1.1/flan-T5, mT5) on burn, with per-task adapters, HF checkpoint loading,
//! KV-cached generation and multi-task training. Generic over the burn backend: wgpu
//! (Vulkan/Metal/DX12, WebGPU in the browser) and a CPU backend.
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod adapter;
pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod fused;
pub mod generation;
#[cfg(feature = "hub")]
pub mod hub;
pub mod io;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod tasks;
pub mod tokenizer;
pub mod train;

pub use config::T5Config;
pub use error::{Error, Result};
pub use model::T5ForConditionalGeneration;
pub use tokenizer::T5Tokenizer;
