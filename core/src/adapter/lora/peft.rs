//! HF PEFT's LoRA directories: `adapter_config.json` (`peft_type: "LORA"`) and
//! `adapter_model.safetensors`, whose tensors are `base_model.model.{module}.lora_A.weight`
//! (`[r, d_in]`) and `.lora_B.weight` (`[d_out, r]`).

use std::path::Path;

use burn::module::Param;
use burn::prelude::*;
use serde_json::{json, Map, Value};

use super::config::{LoraConfig, Modules};
use super::linear::LoraLinear;
use super::site::num_sites;
use crate::adapter::set::AdapterFormat;
use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::weights::Weights;

pub use crate::files::PEFT_WEIGHTS;
pub(crate) const PREFIX: &str = "base_model.model.";

/// Keys that carry no computation (or that we read); any other key must hold its default.
const READ_OR_INERT: [&str; 17] = [
    "peft_type",
    "r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "exclude_modules",
    "use_rslora",
    "rank_pattern",
    "alpha_pattern",
    "init_lora_weights",
    "base_model_name_or_path",
    "revision",
    "task_type",
    "inference_mode",
    "peft_version",
    "auto_mapping",
    "ensure_weight_tying",
];
/// Inert keys whose values are not defaults but say nothing about the math.
const INERT_VALUES: [&str; 2] = ["megatron_core", "qalora_group_size"];

/// Whether an `adapter_config.json` is PEFT's.
pub fn is_peft(config: &Value) -> bool {
    config.get("peft_type").is_some()
}

/// The LoRA settings of a PEFT config; options that change the computation and are not
/// implemented are refused by name.
pub fn parse_peft_config(value: &Value) -> std::result::Result<LoraConfig, String> {
    let Value::Object(map) = value else {
        return Err("not a JSON object".into());
    };
    match map.get("peft_type").and_then(Value::as_str) {
        Some("LORA") => {}
        Some(other) => return Err(format!("`peft_type` {other} is not a LoRA")),
        None => return Err("`peft_type` is not a string".into()),
    }
    refuse_non_defaults(map, &READ_OR_INERT, "only plain LoRA on linear layers is")?;
    match map.get("init_lora_weights") {
        None | Some(Value::Bool(_)) => {}
        Some(Value::String(s)) if s == "gaussian" => {}
        Some(other) => {
            return Err(format!(
                "`init_lora_weights` {other} is not supported: such an initialization changes the base weights too"
            ))
        }
    }
    let mut c = LoraConfig::default();
    c.r = field(map, "r")?.unwrap_or(c.r);
    c.lora_alpha = field(map, "lora_alpha")?.unwrap_or(c.lora_alpha);
    c.lora_dropout = field(map, "lora_dropout")?.unwrap_or(c.lora_dropout);
    c.target_modules = field::<Modules>(map, "target_modules")?.unwrap_or(c.target_modules);
    c.exclude_modules = field(map, "exclude_modules")?;
    c.use_rslora = field(map, "use_rslora")?.unwrap_or(false);
    c.rank_pattern = field(map, "rank_pattern")?.unwrap_or_default();
    c.alpha_pattern = field(map, "alpha_pattern")?.unwrap_or_default();
    Ok(c)
}

/// Every key of a PEFT config that is neither `read` nor inert must hold its default (null,
/// false, empty, `bias: "none"`): anything else changes the computation in a way not
/// implemented here, and is refused by name (`what` says what is supported).
pub(crate) fn refuse_non_defaults(
    map: &Map<String, Value>,
    read: &[&str],
    what: &str,
) -> std::result::Result<(), String> {
    for (key, v) in map {
        if read.contains(&key.as_str()) || INERT_VALUES.contains(&key.as_str()) {
            continue;
        }
        let default = match v {
            Value::Null | Value::Bool(false) => true,
            Value::Object(o) => o.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::String(s) => key == "bias" && s == "none",
            _ => false,
        };
        if !default {
            return Err(format!("`{key}`: {v} is not supported ({what})"));
        }
    }
    Ok(())
}

/// `key` of `map` as a `T`, `None` when absent or null.
pub(crate) fn field<T: serde::de::DeserializeOwned>(
    map: &Map<String, Value>,
    key: &str,
) -> std::result::Result<Option<T>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("`{key}`: {e}")),
    }
}

/// The file name of a LoRA tensor at `module` in `format` (`which`: `A` or `B`).
pub fn tensor_name(format: &AdapterFormat, module: &str, which: &str) -> String {
    match format {
        AdapterFormat::AdapterHub { name, .. } => {
            super::adapterhub::tensor_name(module, name, which)
        }
        _ => format!("{PREFIX}{module}.lora_{which}.weight"),
    }
}

/// The LoRA pairs of `config` on `model` from the tensors in `w` (named as `format` names
/// them), indexed by site.
pub fn take_lora<B: Backend>(
    w: &mut Weights,
    config: &LoraConfig,
    format: &AdapterFormat,
    model: &T5Config,
    device: &B::Device,
) -> Result<Vec<Option<LoraLinear<B>>>> {
    let sites = config.sites(model).map_err(Error::Invalid)?;
    let mut linears: Vec<Option<LoraLinear<B>>> = (0..num_sites(model)).map(|_| None).collect();
    for s in sites {
        let (d_in, d_out) = super::site::site_dims(model, s.site);
        let a = w.take_linear(&tensor_name(format, &s.name, "A"), d_in, s.r, device)?;
        let b = w.take_linear(&tensor_name(format, &s.name, "B"), s.r, d_out, device)?;
        let mut linear = LoraLinear::init(d_in, d_out, s.r, s.scaling, config.lora_dropout, device);
        linear.a = Param::from_tensor(a);
        linear.b = Param::from_tensor(b);
        linears[s.site] = Some(linear);
    }
    Ok(linears)
}

/// The file names (PEFT's, or AdapterHub's for `format`) and burn layout (`[in, out]`, the
/// transpose of the file's) of every LoRA tensor, in site order.
pub fn lora_tensors<B: Backend>(
    linears: &[Option<LoraLinear<B>>],
    format: &AdapterFormat,
    model: &T5Config,
) -> Vec<(String, Tensor<B, 2>)> {
    let mut out = Vec::new();
    for (site, linear) in linears.iter().enumerate() {
        let (Some(linear), Some(name)) = (linear, super::site::site_name(model, site)) else {
            continue;
        };
        out.push((tensor_name(format, &name, "A"), linear.a.val()));
        out.push((tensor_name(format, &name, "B"), linear.b.val()));
    }
    out
}

/// A PEFT `adapter_config.json` for a LoRA made here (so that PEFT loads it).
pub fn new_peft_config(config: &LoraConfig, base_model: Option<&str>) -> Value {
    let mut map = Map::new();
    for (key, value) in [
        ("peft_type", json!("LORA")),
        ("task_type", json!("SEQ_2_SEQ_LM")),
        ("base_model_name_or_path", json!(base_model)),
        ("r", json!(config.r)),
        ("lora_alpha", json!(config.lora_alpha)),
        ("lora_dropout", json!(config.lora_dropout)),
        ("target_modules", json!(config.target_modules)),
        ("exclude_modules", json!(config.exclude_modules)),
        ("use_rslora", json!(config.use_rslora)),
        ("rank_pattern", json!(config.rank_pattern)),
        ("alpha_pattern", json!(config.alpha_pattern)),
        ("bias", json!("none")),
        ("use_dora", json!(false)),
        ("init_lora_weights", json!(true)),
        ("inference_mode", json!(true)),
    ] {
        map.insert(key.into(), value);
    }
    Value::Object(map)
}

/// The task name of a PEFT adapter directory (PEFT stores none): the directory's name, or
/// PEFT's `default` for an adapter read from bytes.
pub fn task_name(dir: Option<&Path>) -> String {
    dir.and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into())
}
