//! Adapter directories (`load_adapter_from_bytes`, both formats), hypernetwork directories
//! (`load_hypernetwork_from_bytes`) and ruse's `.npy` task embeddings (`parse_npy`), against
//! the tiny backbone of [`crate::input::tiny_model`].

use t5_core::adapter::format::load_adapter_from_bytes;
use t5_core::adapter::hyper::format::load_hypernetwork_from_bytes;
use t5_core::adapter::hyper::npy::parse_npy;
use t5_core::backend::Cpu;

use crate::input::{message, parts, tiny_model};
use crate::Outcome;

/// An adapter directory: `adapter_config.json` and `adapter.safetensors`, cut apart by
/// [`parts`].
pub fn adapter(data: &[u8]) -> Outcome {
    let files = parts(data, 2);
    let device = Default::default();
    load_adapter_from_bytes::<Cpu>(files[0], files[1].to_vec(), tiny_model(), &device)
        .map(drop)
        .map_err(message)
}

/// A hypernetwork directory: `hypernetwork_config.json`, `hypernetwork.safetensors` and
/// `task_embeddings.safetensors`, cut apart by [`parts`].
pub fn hypernetwork(data: &[u8]) -> Outcome {
    let files = parts(data, 3);
    let device = Default::default();
    load_hypernetwork_from_bytes::<Cpu>(
        files[0].to_vec(),
        files[1].to_vec(),
        files[2].to_vec(),
        tiny_model(),
        &device,
    )
    .map(drop)
    .map_err(message)
}

/// A `.npy` task embedding (ruse's `task_embedding_dir`).
pub fn npy(data: &[u8]) -> Outcome {
    parse_npy(data).map(drop)
}
