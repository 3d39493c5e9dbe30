//! The model a command runs: a model directory or a hub name, never a training preset.

use std::path::Path;

use anyhow::{bail, Context, Result};
use t5_core::model_dir::ModelDir;
use t5_core::train::setup::preset;

/// Opens `name` as a model directory, or fetches it from the hub. The training presets
/// (`t5-tiny`, `t5-mini`) are refused with the reason rather than looked up on the hub.
pub fn resolve_model(name: &str) -> Result<ModelDir> {
    if preset(name, 0).is_some() && !Path::new(name).exists() {
        bail!(
            "`{name}` is a built-in preset: an untrained model of that shape that `native train` \
             starts from (`model_name_or_path`), not a trained model; pass a model directory \
             (a full fine-tuning run's `output_dir/model`, or the backbone a run with adapters \
             started from) or a hub name such as `t5-small`"
        );
    }
    ModelDir::resolve(name).with_context(|| format!("loading model `{name}`"))
}
