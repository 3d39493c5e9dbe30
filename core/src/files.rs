//! The file names of what this crate reads and writes, in one place, so that the hub download,
//! the model loader and the writers cannot disagree. A leaf module: it imports nothing.
//!
//! Three kinds of saved state, named apart:
//! - a **model directory** (Hugging Face's `save_pretrained` layout; [`crate::model_dir`]):
//!   [`CONFIG_FILE`], [`TOKENIZER_FILE`] and [`WEIGHTS_FILE`] (or [`WEIGHTS_INDEX_FILE`] and its
//!   shards; or PyTorch's [`TORCH_WEIGHTS_FILE`] / [`TORCH_WEIGHTS_INDEX_FILE`]);
//! - an **adapter directory** (one task's adapter; [`crate::adapter::format`]):
//!   [`ADAPTER_CONFIG`] and [`ADAPTER_WEIGHTS`];
//! - a **hypernetwork directory** (generators and task embeddings; [`crate::adapter::hyper`]):
//!   [`HYPER_CONFIG`], [`HYPER_WEIGHTS`] and [`TASK_EMBEDDINGS`];
//! - a **training checkpoint** (`output_dir/checkpoint-<step>/`, to resume a run;
//!   [`crate::train::checkpoint`]), whose files are private to the trainer.

/// A model's `config.json` (HF's `T5Config`).
pub const CONFIG_FILE: &str = "config.json";
/// The fast tokenizer's `tokenizer.json`.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The weights of an unsharded model.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded model's weights (`weight_map`: tensor name → shard file).
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";
/// PyTorch's weights of an unsharded model (`torch.save` of the state dict), read when there is
/// no [`WEIGHTS_FILE`].
pub const TORCH_WEIGHTS_FILE: &str = "pytorch_model.bin";
/// The index of PyTorch's sharded weights.
pub const TORCH_WEIGHTS_INDEX_FILE: &str = "pytorch_model.bin.index.json";

/// An adapter's `adapter_config.json` (this project's format or AdapterHub's).
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// An adapter's weights.
pub const ADAPTER_WEIGHTS: &str = "adapter.safetensors";
/// A PEFT adapter's weights (its config is [`ADAPTER_CONFIG`] too).
pub const PEFT_WEIGHTS: &str = "adapter_model.safetensors";

/// A hypernetwork's `hypernetwork_config.json`.
pub const HYPER_CONFIG: &str = "hypernetwork_config.json";
/// A hypernetwork's shared tensors (generators, layer and position embeddings, projectors).
pub const HYPER_WEIGHTS: &str = "hypernetwork.safetensors";
/// A hypernetwork's task embeddings, one tensor per task keyed by its name.
pub const TASK_EMBEDDINGS: &str = "task_embeddings.safetensors";
