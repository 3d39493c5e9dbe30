//! Several adapters of one model combined into a new adapter directory, as the Python libraries
//! do it: LoRAs by PEFT's `add_weighted_adapter` ([`lora`]), bottleneck adapters by the
//! `adapters` library's `average_adapter` ([`average`]). Native builds only (the SVD uses
//! nalgebra).

pub mod average;
pub mod lora;
pub mod svd;
pub mod task_arithmetic;

use std::path::Path;

use burn::prelude::*;

pub use average::{average_bottlenecks, average_weights};
pub use lora::{merge_loras, Combination, LoraMerge, MergedLora, NamedMasks};
pub use task_arithmetic::{MajoritySign, Method};

use crate::adapter::{save_adapter, AdapterSet, TaskAdapter};
use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::files::{ADAPTER_CONFIG, PEFT_WEIGHTS};
use crate::rng::SplitMix64;
use crate::weights::write_safetensors;

/// DARE's keep-masks from a seeded generator: each entry kept with probability `density`.
/// PEFT draws them with `torch.bernoulli` from torch's generator, which this does not
/// reproduce: a DARE merge here equals PEFT's for the same masks, not for the same seed.
pub fn seeded_masks(seed: u64, density: f64) -> impl FnMut(&str, usize) -> Vec<bool> {
    let mut rng = SplitMix64::new(seed);
    move |_, n| (0..n).map(|_| rng.next_f64() < density).collect()
}

/// Writes a merged LoRA as a PEFT directory (`adapter_config.json`,
/// `adapter_model.safetensors`), each file atomically.
pub fn save_merged_lora(merged: &MergedLora, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_safetensors(&dir.join(PEFT_WEIGHTS), &merged.tensors, None)?;
    let text = serde_json::to_string_pretty(&merged.config).expect("serializable");
    crate::io::write_atomic(&dir.join(ADAPTER_CONFIG), text.as_bytes())
}

/// Writes an averaged bottleneck adapter in its format (see [`save_adapter`]).
pub fn save_averaged<B: Backend>(
    adapter: TaskAdapter<B>,
    model: &T5Config,
    dir: &Path,
) -> Result<()> {
    let name = adapter.name.clone();
    let mut set = AdapterSet::default();
    set.insert(adapter);
    save_adapter(&set, &name, model, dir)
}
