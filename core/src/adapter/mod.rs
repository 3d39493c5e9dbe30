//! Per-task adapter layers on a frozen, shared backbone: the seed project's adapter,
//! AdapterHub's bottleneck adapters (Houlsby, Pfeiffer) and LoRA (HF PEFT's format), loaded,
//! saved, switched by name, and routed per row.

pub mod bottleneck;
pub mod config;
pub mod format;
pub mod hyper;
pub mod lora;
#[cfg(not(target_arch = "wasm32"))]
pub mod merge;
pub mod set;

pub use bottleneck::{AdapterLayerNorm, AdapterNorms, Bottleneck};
pub use config::{BottleneckConfig, SeedAdapterConfig};
pub use format::{load_adapter, load_adapter_from_bytes, named_tensors, save_adapter, NamedTensor};
pub use set::{AdapterFormat, AdapterSet, Adapters, Routing, Sublayer, TaskAdapter};
