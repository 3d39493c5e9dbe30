//! The files of adapters on linear layers — LoRA and (IA)³, in PEFT's format (`peft_type`) and
//! in AdapterHub's (`architecture: "lora"`, `composition_mode` `add` or `scale`): which kind a
//! config is, and reading and writing one. Bottleneck adapters are [`super::format`]'s.

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;

use super::ia3::{self, Ia3Config};
use super::lora::{self, LoraConfig};
use super::set::{AdapterFormat, TaskAdapter};
use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::files::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_WEIGHTS};
use crate::weights::{write_safetensors, Weights};

/// The settings of a linear-layer adapter.
#[derive(Clone, Debug)]
pub enum LinearConfig {
    Lora(LoraConfig),
    Ia3(Ia3Config),
}

/// A linear-layer adapter's config: its task name (PEFT's has none), format, settings and
/// weights file.
pub struct LinearParts {
    pub name: Option<String>,
    pub format: AdapterFormat,
    pub config: LinearConfig,
    pub weights_file: &'static str,
}

/// The parts of a LoRA or (IA)³ config, checked against `model`; `None` for a bottleneck
/// adapter's config. `config_path` labels the errors.
pub fn linear_config(
    value: &Value,
    config_path: &Path,
    model: &T5Config,
) -> Result<Option<LinearParts>> {
    let bad = |e: String| Error::config(config_path, e);
    let (name, format, config, weights_file) = if lora::is_peft(value) {
        let format = AdapterFormat::Peft {
            config: value.clone(),
        };
        let config = match value.get("peft_type").and_then(Value::as_str) {
            Some("LORA") => LinearConfig::Lora(lora::parse_peft_config(value).map_err(bad)?),
            Some("IA3") => LinearConfig::Ia3(ia3::parse_peft_ia3(value).map_err(bad)?),
            Some(other) => {
                return Err(bad(format!(
                    "`peft_type` {other} is not supported (LORA and IA3 are)"
                )))
            }
            None => return Err(bad("`peft_type` is not a string".into())),
        };
        (None, format, config, PEFT_WEIGHTS)
    } else if lora::adapterhub::is_adapterhub_lora(value) {
        let (name, config) = lora::adapterhub::parse_adapterhub_lora(value, model).map_err(bad)?;
        let format = adapterhub_format(&name, value);
        (
            Some(name),
            format,
            LinearConfig::Lora(config),
            ADAPTER_WEIGHTS,
        )
    } else if ia3::adapterhub::is_adapterhub_ia3(value) {
        let (name, config) = ia3::adapterhub::parse_adapterhub_ia3(value, model).map_err(bad)?;
        let format = adapterhub_format(&name, value);
        (
            Some(name),
            format,
            LinearConfig::Ia3(config),
            ADAPTER_WEIGHTS,
        )
    } else {
        return Ok(None);
    };
    match &config {
        LinearConfig::Lora(c) => c.sites(model).map(|_| ()),
        LinearConfig::Ia3(c) => c.sites(model).map(|_| ()),
    }
    .map_err(bad)?;
    Ok(Some(LinearParts {
        name,
        format,
        config,
        weights_file,
    }))
}

fn adapterhub_format(name: &str, value: &Value) -> AdapterFormat {
    AdapterFormat::AdapterHub {
        name: name.to_string(),
        config: value.clone(),
    }
}

/// A LoRA or (IA)³ adapter from its config parts and weights (`weights_path` labels the
/// errors); tensors the config does not name are an error.
pub fn build_linear<B: Backend>(
    parts: LinearParts,
    name: &str,
    mut w: Weights,
    weights_path: &Path,
    model: &T5Config,
    device: &B::Device,
) -> Result<TaskAdapter<B>> {
    let adapter = match parts.config {
        LinearConfig::Lora(config) => {
            let linears = lora::take_lora(&mut w, &config, &parts.format, model, device)?;
            TaskAdapter::with_lora(name, config, linears, parts.format, model)
        }
        LinearConfig::Ia3(config) => {
            let scales = ia3::take_ia3(&mut w, &config, &parts.format, model, device)?;
            TaskAdapter::with_ia3(name, config, scales, parts.format, model)
        }
    };
    let leftover = w.untaken();
    if let Some(first) = leftover.first() {
        return Err(Error::checkpoint(
            weights_path,
            format!(
                "{} tensors that the config's `target_modules` do not name (e.g. `{first}`): an adapter of another model, or a config that does not belong to these weights",
                leftover.len()
            ),
        ));
    }
    Ok(adapter)
}

/// The file names and file layouts (`[out, in]` for LoRA pairs, PEFT's shapes for vectors) of
/// a linear-layer adapter's tensors.
pub fn linear_tensors<B: Backend>(
    adapter: &TaskAdapter<B>,
    model: &T5Config,
) -> Vec<(String, Tensor<B, 2>)> {
    let lora = lora::lora_tensors(&adapter.linears, &adapter.format, model)
        .into_iter()
        .map(|(n, t)| (n, t.transpose()));
    lora.chain(ia3::ia3_tensors(&adapter.scales, &adapter.format, model))
        .collect()
}

/// Writes a LoRA or (IA)³ adapter in the format it came from: PEFT's (`adapter_config.json`,
/// `adapter_model.safetensors`) or AdapterHub's (`adapter_config.json`, `adapter.safetensors`).
pub fn save_linear<B: Backend>(
    adapter: &TaskAdapter<B>,
    model: &T5Config,
    dir: &Path,
) -> Result<()> {
    let (file, config) = match &adapter.format {
        AdapterFormat::AdapterHub { config, .. } => (ADAPTER_WEIGHTS, config),
        AdapterFormat::Peft { config } => (PEFT_WEIGHTS, config),
        AdapterFormat::Native => {
            return Err(Error::Invalid(format!(
                "`{}`: a LoRA or (IA)³ adapter is saved in PEFT's or AdapterHub's format, and it has neither",
                adapter.name
            )))
        }
    };
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = linear_tensors(adapter, model)
        .into_iter()
        .map(|(name, t)| {
            let shape = t.dims().to_vec();
            let values = t.into_data().convert::<f32>().into_vec().expect("f32");
            (name, shape, values)
        })
        .collect();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_safetensors(&dir.join(file), &tensors, None)?;
    let text = serde_json::to_string_pretty(config).expect("serializable");
    crate::io::write_atomic(&dir.join(ADAPTER_CONFIG), text.as_bytes())
}
