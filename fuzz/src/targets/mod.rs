//! The targets, grouped as `core` groups the parsers they call.

mod adapter;
mod config;
mod data;
mod text;
mod weights;

pub use adapter::{adapter, hypernetwork, npy};
pub use config::{model_config, run_config};
pub use data::{jsonl, parquet, tsv};
pub use text::{tokenizer, tokenizer_json};
pub use weights::{safetensors, shard_index, torch_bin};
