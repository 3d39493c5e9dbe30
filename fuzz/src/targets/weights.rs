//! Safetensors files (`Weights::from_buffers`), PyTorch `.bin` files
//! (`Weights::from_torch_buffers`) and sharded checkpoints' indexes (`index_shards`).

use std::sync::Arc;

use safetensors::SafeTensors;
use t5_core::backend::Cpu;
use t5_core::weights::{index_shards, Weights};

use crate::input::{message, with_file};
use crate::Outcome;

/// A safetensors file, then every tensor in it read as a loader that expects its shape would:
/// to f32, and 2-D ones also as a PyTorch `Linear` weight.
pub fn safetensors(data: &[u8]) -> Outcome {
    let mut weights = Weights::from_buffers(vec![("model.safetensors".into(), Arc::from(data))])
        .map_err(message)?;
    weights.names();
    weights.origin();
    // `from_buffers` accepted the header, so safetensors reads it too.
    let (_, metadata) = SafeTensors::read_metadata(data).map_err(message)?;
    let device = Default::default();
    let mut outcome = Ok(());
    for (name, info) in metadata.tensors() {
        let read = weights
            .take_values(&name, &info.shape)
            .and_then(|_| match info.shape[..] {
                [out, inp] => weights
                    .take_linear::<Cpu>(&name, inp, out, &device)
                    .map(drop),
                _ => Ok(()),
            });
        if let Err(e) = read {
            outcome = outcome.and(Err(message(e)));
        }
    }
    weights.untaken();
    outcome
}

/// A PyTorch `pytorch_model.bin` (zip or legacy container, a restricted pickle), then every
/// tensor in it read to f32 at the shape it was stored with.
pub fn torch_bin(data: &[u8]) -> Outcome {
    let mut weights =
        Weights::from_torch_buffers(vec![("pytorch_model.bin".into(), Arc::from(data))])
            .map_err(message)?;
    let mut outcome = Ok(());
    for name in weights
        .names()
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
    {
        let shape = weights
            .shape(&name)
            .map(<[usize]>::to_vec)
            .unwrap_or_default();
        if let Err(e) = weights.take_values(&name, &shape) {
            outcome = outcome.and(Err(message(e)));
        }
    }
    outcome
}

/// A `model.safetensors.index.json`: the shard files it names.
pub fn shard_index(data: &[u8]) -> Outcome {
    with_file(".json", data, index_shards)
        .map(drop)
        .map_err(message)
}
