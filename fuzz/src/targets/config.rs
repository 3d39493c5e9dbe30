//! Run configs (`RunConfig::load_str`) and a model's `config.json` (`T5Config::from_file`).

use t5_core::train::config::RunConfig;
use t5_core::T5Config;

use crate::input::{message, with_file};
use crate::Outcome;

/// A run config as `native train` reads it; once accepted, what the trainer computes from it
/// before it allocates anything (steps, the resolved config it saves, each task's adapter).
pub fn run_config(data: &[u8]) -> Outcome {
    // `RunConfig::load` reads the file to a `String`: other bytes never reach the parser.
    let text = std::str::from_utf8(data).map_err(message)?;
    let loaded = RunConfig::load_str(text, "run.json").map_err(message)?;
    let config = &loaded.config;
    let json = config.resolved_json();
    RunConfig::load_str(&json, "resolved.json")
        .map_err(|e| format!("the resolved config does not parse back: {e}"))?;
    for examples in [0, 1, 10_000] {
        config.steps_per_epoch(examples);
        config.total_steps(examples);
    }
    config.effective_data_seed();
    for task in config.eval_task_names() {
        config.adapter_for(task);
        config.custom_task(task);
    }
    Ok(())
}

/// A model's `config.json`, and what the model is built from once it is accepted.
pub fn model_config(data: &[u8]) -> Outcome {
    let config = with_file(".json", data, |path| T5Config::from_file(path)).map_err(message)?;
    config.feed_forward()?;
    config.inner_dim();
    config.num_decoder_layers();
    config.decoder_start_token_id();
    Ok(())
}
