//! A run's hypernetwork (`adapter_config_name: "meta-adapter"`): fresh, with HyperFormer's
//! initialization, or a trained one to start from (`hypernetwork`); an embedding per training
//! task (tasks may share one through `task_embeddings`), drawn N(0, 1) or read from ruse's
//! `task_embedding_dir`; and what of it trains.

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::Distribution;

use super::adapters::{distinct, GeneratedAdapters};
use super::config::RunConfig;
use crate::adapter::hyper::npy::read_npy;
use crate::adapter::hyper::{load_hypernetwork, HyperNetwork, HyperNetworkConfig};
use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::files::HYPER_CONFIG;
use crate::fused::FusedOps;

/// The hypernetwork of `config`'s training tasks over `model`.
pub fn hypernetwork<B: FusedOps>(
    config: &RunConfig,
    model: &T5Config,
    device: &B::Device,
) -> Result<GeneratedAdapters<B>> {
    let h = &config.hyper;
    let tasks: Vec<(String, String)> = config
        .tasks
        .iter()
        .map(|t| (t.clone(), h.embedding_of(t).to_string()))
        .collect();
    let names: Vec<String> = distinct(tasks.iter().map(|(_, e)| e.clone()));
    let wanted = HyperNetworkConfig::new(h, &config.adapter, model, names.clone());
    let mut hyper = match &h.hypernetwork {
        Some(dir) => {
            let hyper = load_hypernetwork::<B>(dir, model, device)?;
            same_settings(&hyper.config, &wanted)
                .map_err(|msg| Error::config(dir.join(HYPER_CONFIG), msg))?;
            hyper
        }
        None => HyperNetwork::init(wanted, device)?,
    };
    let t = hyper.config.task_embedding_dim;
    for name in &names {
        if let Some(dir) = &h.task_embedding_dir {
            let path = dir.join(format!("{name}.npy"));
            let values = read_npy(&path)?;
            if values.len() != t {
                return Err(Error::checkpoint(
                    &path,
                    format!(
                        "holds {} values, but `task_embedding_dim` is {t}",
                        values.len()
                    ),
                ));
            }
            let value = Tensor::from_data(TensorData::new(values, [t]), device);
            hyper.embeddings.insert(name, value);
        } else if hyper.embeddings.index(name).is_err() {
            // A task new to a trained hypernetwork: a fresh embedding, as HyperFormer draws.
            let value = Tensor::random([t], Distribution::Normal(0.0, 1.0), device);
            hyper.embeddings.insert(name, value);
        }
    }
    hyper.config.tasks = hyper.embeddings.names.clone();
    let trainable = h.embeddings_trainable();
    hyper.config.parametric_task_embedding = trainable;
    hyper.embeddings = hyper.embeddings.set_trainable(trainable);
    if h.freeze_model_but_task_embeddings {
        // HyperFormer's `freezing_params`: only the raw task embeddings train (not even the
        // task projector).
        hyper.body = hyper.body.no_grad();
        hyper.embeddings.task_projector = hyper.embeddings.task_projector.map(|p| p.no_grad());
    }
    Ok(GeneratedAdapters { hyper, tasks })
}

/// A trained hypernetwork continues only under the settings it was trained with: the run
/// config's keys must agree with its `hypernetwork_config.json` (tasks aside).
fn same_settings(
    loaded: &HyperNetworkConfig,
    wanted: &HyperNetworkConfig,
) -> std::result::Result<(), String> {
    let as_map = |c: &HyperNetworkConfig| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (loaded, wanted) = (as_map(loaded), as_map(wanted));
    for (key, value) in &wanted {
        if matches!(key.as_str(), "tasks" | "parametric_task_embedding") {
            continue;
        }
        if loaded.get(key) != Some(value) {
            let theirs = loaded.get(key).map_or("nothing".into(), |v| v.to_string());
            return Err(format!(
                "`{key}` is {theirs}, but the run config asks for {value}; a trained \
                 hypernetwork continues with the settings it was trained with"
            ));
        }
    }
    Ok(())
}
