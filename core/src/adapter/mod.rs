//! Per-task adapter layers on a frozen, shared backbone: the seed project's adapter,
//! AdapterHub's bottleneck adapters (Houlsby, Pfeiffer, Compacter), LoRA and (IA)³ (HF PEFT's
//! and AdapterHub's formats), loaded, saved, merged, switched by name, and routed per row.

pub mod bottleneck;
pub mod config;
pub mod format;
pub mod hyper;
pub mod ia3;
pub mod linear_format;
pub mod lora;
#[cfg(not(target_arch = "wasm32"))]
pub mod merge;
pub mod phm;
pub mod phm_files;
pub mod set;

pub use bottleneck::{AdapterLayerNorm, AdapterNorms, Bottleneck, Projection};
pub use config::{BottleneckConfig, SeedAdapterConfig};
pub use format::{load_adapter, load_adapter_from_bytes, named_tensors, save_adapter, NamedTensor};
pub use set::{AdapterFormat, AdapterSet, Adapters, Routing, Sublayer, TaskAdapter};
