//! The `adapters` library's (AdapterHub) (IA)³ for T5: a LoRA config with `composition_mode:
//! "scale"` (`IA3Config`: `r` 1, the `attn_matrices` `k`, `v` of self- and cross-attention and
//! the intermediate layer), one tensor `{module}.loras.{name}.lora_B` (`[d_out, 1]`) per layer
//! in `adapter.safetensors`. The layer's output is multiplied by `alpha · lora_B`; the placement
//! keys choose layers as for its LoRA ([`crate::adapter::lora::adapterhub`]).

use serde_json::Value;

use super::config::Ia3Config;
use crate::adapter::lora::adapterhub::{
    chosen_modules, name_and_config, number, refuse_unsupported,
};
use crate::adapter::lora::Modules;
use crate::config::T5Config;

/// Whether an AdapterHub config is an (IA)³.
pub fn is_adapterhub_ia3(value: &Value) -> bool {
    value["config"]["architecture"].as_str() == Some("lora")
        && value["config"]["composition_mode"].as_str() == Some("scale")
}

/// The (IA)³ of an AdapterHub config on `model`: the task name and the settings, the scaled
/// layers listed by name (outputs only: the library scales no inputs).
pub fn parse_adapterhub_ia3(
    value: &Value,
    model: &T5Config,
) -> Result<(String, Ia3Config), String> {
    let (name, c) = name_and_config(value)?;
    refuse_unsupported(c, "scale")?;
    if number(c, "r", 1.0)? != 1.0 {
        return Err("`config.r` must be 1 with `composition_mode: \"scale\"`".into());
    }
    if number(c, "dropout", 0.0)? != 0.0 {
        return Err("`config.dropout` must be 0 for (IA)³ (the library refuses it too)".into());
    }
    let config = Ia3Config {
        target_modules: Some(Modules::Names(chosen_modules(c, model)?)),
        exclude_modules: None,
        feedforward_modules: Some(Modules::Names(Vec::new())),
        alpha: number(c, "alpha", 1.0)?,
    };
    Ok((name, config))
}
