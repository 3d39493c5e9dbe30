//! T5 (v1.0, v1.1/flan-T5, mT5) on burn, with per-task adapters, HF checkpoint loading,
//! KV-cached generation and multi-task training. Generic over the burn backend: wgpu
//! (Vulkan/Metal/DX12, WebGPU in the browser) and a CPU backend.
//!
//! The modules form layers; each imports only from the layers below it (`ARCHITECTURE.md` at the
//! repository root draws them):
//! - leaves: [`error`], [`io`], [`files`] (file names), [`rng`];
//! - backends: [`backend`], [`kernels`] (CPU kernels), [`fused`] (the fused-operations backend
//!   extension);
//! - formats: [`config`] (HF's `config.json`), [`tokenizer`], [`weights`] (safetensors),
//!   [`data`] (JSONL/TSV/parquet records), [`metrics`];
//! - the network: [`layers`] (shared by the model and the adapters), [`adapter`], [`model`];
//! - using it: [`generation`], [`model_dir`] (model directories), [`hub`] (downloads), [`tasks`];
//! - [`train`]: run configs, data preparation, the trainer, evaluation.
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod adapter;
pub mod backend;
pub mod config;
pub mod data;
pub mod error;
pub mod files;
pub mod fused;
pub mod generation;
#[cfg(feature = "hub")]
pub mod hub;
pub mod import;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod model_dir;
pub mod rng;
pub mod tasks;
pub mod tokenizer;
pub mod train;
pub mod weights;

/// [`model_dir`] under its former name, for code written against it.
pub use model_dir as checkpoint;

pub use config::T5Config;
pub use error::{Error, Result};
pub use model::T5ForConditionalGeneration;
pub use tokenizer::T5Tokenizer;
