//! `RunConfig`: the JSON file that describes a training/evaluation run, in the seed project's
//! vocabulary (its `configs/*.json`, i.e. HF `TrainingArguments` plus the seed's model, data and
//! adapter arguments).
//!
//! Parsing is stricter than the seed's `HfArgumentParser`, which silently dropped misspelled keys
//! and kept the last of two duplicated keys:
//! - an unknown key is an error that lists the valid keys (with a "did you mean" when one is close);
//! - keys of the seed that we deliberately do not implement (its meta-adapter/HyperFormer, ...) are
//!   errors that say so;
//! - a duplicated key is an error that names it, anywhere in the file;
//! - a value of the wrong type names its key, what was expected, and the line and column.
//!
//! See `configs/README.md` for every key, its default and how it differs from the seed.
//!
//! One concern per file: `run` is the schema (every key, its default, and what the trainer asks
//! of a config), `strict` the JSON reader, `keys` the valid and refused keys, `check` the
//! values' checks. [`RunConfig::from_str`] runs them in that order.

mod check;
mod keys;
mod run;
mod strict;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
pub use run::{EvaluationStrategy, LrScheduler, RunConfig};

impl RunConfig {
    /// Reads, parses and validates a run config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_str(&text, path)
    }

    /// Parses and validates a run config; `path` only labels the errors.
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        // 1. Well-formed JSON without duplicated keys, as a tree.
        let value = strict::parse_strict(text).map_err(|source| {
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
        let Value::Object(object) = &value else {
            return Err(Error::config(
                path,
                "a run config must be a JSON object of `key: value` pairs",
            ));
        };
        keys::check_keys(object, text).map_err(|msg| Error::config(path, msg))?;
        // 3. Types, naming the key at fault.
        let config: RunConfig = serde_json::from_str(text)
            .map_err(|err| Error::config(path, strict::type_error_message(object, text, &err)))?;
        // 4. Values.
        config.check().map_err(|msg| Error::config(path, msg))?;
        Ok(config)
    }

    /// Checks that the values make a coherent run. Task names are not looked up here (the
    /// task registry does that).
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(Error::Invalid)
    }
}
