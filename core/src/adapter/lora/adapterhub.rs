//! The `adapters` library's (AdapterHub) LoRA for T5: `config.architecture: "lora"`, tensors
//! `{module}.loras.{name}.lora_A` (`[r, d_in]`) and `.lora_B` (`[d_out, r]`) in
//! `adapter.safetensors`. Its placement keys map onto T5's layers as the library wraps them:
//! `selfattn_lora` the `attn_matrices` (`q`, `k`, `v`) of self- *and* cross-attention,
//! `intermediate_lora` `wi` (`wi_1` in a gated feed-forward, not `wi_0`), `output_lora` `wo`;
//! `leave_out` numbers layers as the bottleneck adapters do (decoder block `i` is
//! `num_layers + i`). The math is PEFT's: `W x + (alpha / r) · B A dropout(x)`.

use serde_json::{Map, Value};

use super::config::{LoraConfig, Modules};
use super::site::{sites, Target, TARGETS};
use crate::config::T5Config;

/// Whether an AdapterHub config is a LoRA (`composition_mode` `add`, the default; `scale` is
/// (IA)³, [`crate::adapter::ia3::adapterhub`]).
pub fn is_adapterhub_lora(value: &Value) -> bool {
    value["config"]["architecture"].as_str() == Some("lora")
        && value["config"]["composition_mode"].as_str() != Some("scale")
}

/// The LoRA of an AdapterHub config on `model`: the task name and the settings, the adapted
/// layers listed by name. Options that change the computation and are not implemented are
/// refused by name.
pub fn parse_adapterhub_lora(
    value: &Value,
    model: &T5Config,
) -> Result<(String, LoraConfig), String> {
    let (name, c) = name_and_config(value)?;
    refuse_unsupported(c, "add")?;
    let names = chosen_modules(c, model)?;
    let r = number(c, "r", 8.0)?;
    if r < 1.0 || r.fract() != 0.0 {
        return Err(format!(
            "`config.r` must be a whole number of at least 1, got {r}"
        ));
    }
    let config = LoraConfig {
        r: r as usize,
        lora_alpha: number(c, "alpha", 8.0)?,
        lora_dropout: number(c, "dropout", 0.0)?,
        target_modules: Modules::Names(names),
        ..LoraConfig::default()
    };
    Ok((name, config))
}

/// The adapter's name and its `config` object.
pub(crate) fn name_and_config(value: &Value) -> Result<(String, &Map<String, Value>), String> {
    let c = value["config"]
        .as_object()
        .ok_or("`config` is not an object")?;
    let name = value["name"].as_str().ok_or("no adapter `name`")?;
    Ok((name.to_string(), c))
}

/// `config.{key}` as a number (`default` when absent or null).
pub(crate) fn number(c: &Map<String, Value>, key: &str, default: f64) -> Result<f64, String> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or(format!("`config.{key}` must be a number, got {v}")),
    }
}

/// The HF names of the layers the placement keys choose on `model`.
pub(crate) fn chosen_modules(
    c: &Map<String, Value>,
    model: &T5Config,
) -> Result<Vec<String>, String> {
    let flag = |key: &str, default: bool| c.get(key).and_then(Value::as_bool).unwrap_or(default);
    let list = |key: &str| -> Result<Vec<Value>, String> {
        match c.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(v) => Err(format!("`config.{key}` must be a list, got {v}")),
        }
    };
    let matrices: Vec<String> = list("attn_matrices")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let leave_out: Vec<usize> = list("leave_out")?
        .iter()
        .filter_map(|v| v.as_u64().map(|l| l as usize))
        .collect();
    let gated = model.feed_forward().map(|f| f.gated).unwrap_or(false);
    let (attn, intermediate, output) = (
        flag("selfattn_lora", true),
        flag("intermediate_lora", false),
        flag("output_lora", false),
    );
    let chosen = |site: usize| {
        let (layer, target) = (site / TARGETS.len(), TARGETS[site % TARGETS.len()]);
        let letter = match target {
            Target::Q | Target::CrossQ => "q",
            Target::K | Target::CrossK => "k",
            Target::V | Target::CrossV => "v",
            _ => "",
        };
        let wanted = match target {
            Target::Wi => intermediate && !gated,
            Target::Wi1 => intermediate && gated,
            Target::Wo => output,
            Target::O | Target::CrossO => false,
            _ => attn && matrices.iter().any(|m| m == letter),
        };
        wanted && !leave_out.contains(&layer)
    };
    Ok(sites(model)
        .filter(|(s, _)| chosen(*s))
        .map(|(_, n)| n)
        .collect())
}

/// Refuses what neither LoRA nor (IA)³ implements, and a `composition_mode` other than `mode`.
pub(crate) fn refuse_unsupported(c: &Map<String, Value>, mode: &str) -> Result<(), String> {
    let found = c
        .get("composition_mode")
        .and_then(Value::as_str)
        .unwrap_or("add");
    if found != mode {
        return Err(format!(
            "`config.composition_mode` `{found}` is not supported here (`add` is LoRA, `scale` is (IA)³)"
        ));
    }
    for key in ["use_gating", "use_dora"] {
        if c.get(key).and_then(Value::as_bool).unwrap_or(false) {
            return Err(format!("`config.{key}` is not supported"));
        }
    }
    for key in ["vera_d", "vera_b"] {
        if c.get(key).is_some_and(|v| !v.is_null()) {
            return Err(format!("`config.{key}` (VeRA) is not supported"));
        }
    }
    Ok(())
}

/// The file name of a LoRA tensor of AdapterHub adapter `adapter` at module `module`.
pub fn tensor_name(module: &str, adapter: &str, which: &str) -> String {
    format!("{module}.loras.{adapter}.lora_{which}")
}
