//! `RunConfig`: the JSON file that describes a training/evaluation run, in the seed project's
//! vocabulary (its `configs/*.json`, i.e. HF `TrainingArguments` plus the seed's model, data and
//! adapter arguments).
//!
//! Parsing is stricter than the seed's `HfArgumentParser`, which silently dropped misspelled keys
//! and silently kept the last of two duplicated keys:
//! - an unknown key is an error that lists the valid keys (with a "did you mean" when one is close);
//! - keys of the seed that we deliberately do not implement (ruse-only hypernetwork variants,
//!   Adafactor, ...) are errors that say so;
//! - a duplicated key keeps its last value, as in the seed, at any depth, but with a warning that
//!   names it and its lines (the seed's published HyperFormer configs repeat a key);
//! - a value of the wrong type names its key, what was expected, and the line and column;
//! - keys that are accepted but have no effect (the hypernetwork keys with
//!   `adapter_config_name: "adapter"`, as the seed did) leave a warning.
//!
//! See `configs/README.md` for every key, its default and how it differs from the seed.
//!
//! One concern per file: `run` is the schema (every key, its default, and what the trainer asks
//! of a config), `strict` the JSON reader, `keys` the valid and refused keys, `check` the
//! values' checks and warnings. [`RunConfig::load_str`] runs them in that order.

mod check;
mod keys;
mod run;
mod strict;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
pub use run::{EvaluationStrategy, LrScheduler, RunConfig};

/// A run config as read from a file, with the warnings its reading left: duplicated keys and
/// keys without effect. Callers show the warnings; the config is usable either way.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    pub config: RunConfig,
    /// One line each, without the file name.
    pub warnings: Vec<String>,
}

impl RunConfig {
    /// Reads, parses and validates a run config file.
    pub fn load(path: impl AsRef<Path>) -> Result<LoadedConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::load_str(&text, path)
    }

    /// Parses and validates a run config; `path` only labels the errors.
    pub fn load_str(text: &str, path: impl AsRef<Path>) -> Result<LoadedConfig> {
        let path = path.as_ref();
        // 1. Well-formed JSON, as a tree (a duplicated key keeps its last value).
        let parsed = strict::parse_strict(text).map_err(|source| {
            if source.is_data() {
                Error::config(path, source.to_string())
            } else {
                Error::Json {
                    path: path.into(),
                    source,
                }
            }
        })?;
        // 2. Only known keys.
        let Value::Object(object) = &parsed.value else {
            return Err(Error::config(
                path,
                "a run config must be a JSON object of `key: value` pairs",
            ));
        };
        keys::check_keys(object, &parsed.places).map_err(|msg| Error::config(path, msg))?;
        // 3. Types, naming the key at fault. From the tree, not the text: serde's derive refuses
        //    a duplicated field, and the tree has resolved those.
        let config = RunConfig::deserialize(&parsed.value).map_err(|err| {
            Error::config(
                path,
                strict::type_error_message(object, &parsed.places, &err),
            )
        })?;
        // 4. Values.
        config.check().map_err(|msg| Error::config(path, msg))?;
        let mut warnings = parsed.warnings;
        warnings.extend(config.warnings());
        Ok(LoadedConfig { config, warnings })
    }

    /// Checks that the values make a coherent run. Task names are not looked up here (the
    /// task registry does that).
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(Error::Invalid)
    }
}
