//! LoRA settings in PEFT's vocabulary (`LoraConfig`), and which of a model's layers they adapt
//! with which rank and alpha, matched as PEFT matches them.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::site::sites;
use crate::config::T5Config;

/// `target_modules` (or `exclude_modules`): names matched as suffixes, or one regex that must
/// match a whole module name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Modules {
    Names(Vec<String>),
    Regex(String),
}

impl Modules {
    /// PEFT's `check_target_module_exists`: a name in the list or ending in `.{name}`; or a
    /// regex matching the whole key.
    pub(crate) fn matches(&self, key: &str) -> Result<bool, String> {
        Ok(match self {
            Modules::Names(names) => names
                .iter()
                .any(|n| key == n || key.ends_with(&format!(".{n}"))),
            Modules::Regex(pattern) => whole(pattern)?.is_match(key),
        })
    }
}

fn whole(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("`{pattern}` is not a regular expression this build reads: {e}"))
}

/// What a LoRA adapts and how (the PEFT `LoraConfig` fields implemented here).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub target_modules: Modules,
    pub exclude_modules: Option<Modules>,
    /// Scale by `lora_alpha / sqrt(r)` instead of `lora_alpha / r`.
    pub use_rslora: bool,
    /// Per-module rank (keys are regexes matched against the end of the module name).
    pub rank_pattern: BTreeMap<String, usize>,
    pub alpha_pattern: BTreeMap<String, f64>,
}

impl Default for LoraConfig {
    /// PEFT's defaults, with T5's attention query and value as targets (PEFT's own choice
    /// for T5 when `target_modules` is not given).
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: Modules::Names(vec!["q".into(), "v".into()]),
            exclude_modules: None,
            use_rslora: false,
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
        }
    }
}

/// One adapted layer: its site, HF name, rank and scaling.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraSite {
    pub site: usize,
    pub name: String,
    pub r: usize,
    pub scaling: f64,
}

impl LoraConfig {
    /// The layers of `model` this config adapts, or why it cannot adapt it.
    pub fn sites(&self, model: &T5Config) -> Result<Vec<LoraSite>, String> {
        self.check()?;
        let mut out = Vec::new();
        for (site, name) in sites(model) {
            if !self.target_modules.matches(&name)? {
                continue;
            }
            if let Some(exclude) = &self.exclude_modules {
                if exclude.matches(&name)? {
                    continue;
                }
            }
            let r = pattern_value(&self.rank_pattern, &name)?.unwrap_or(self.r);
            let alpha = pattern_value(&self.alpha_pattern, &name)?.unwrap_or(self.lora_alpha);
            if r == 0 {
                return Err(format!("`rank_pattern` gives {name} rank 0"));
            }
            let scaling = if self.use_rslora {
                alpha / (r as f64).sqrt()
            } else {
                alpha / r as f64
            };
            out.push(LoraSite {
                site,
                name,
                r,
                scaling,
            });
        }
        if out.is_empty() {
            return Err(format!(
                "`target_modules` {} matches none of the model's linear layers (q, k, v, o, wi/wi_0, wi_1, wo)",
                serde_json::to_string(&self.target_modules).unwrap_or_default()
            ));
        }
        Ok(out)
    }

    /// What can be checked without a model (also `sites` does, first).
    pub fn check(&self) -> Result<(), String> {
        if self.r == 0 {
            return Err("`r` must be at least 1".into());
        }
        if !self.lora_alpha.is_finite() {
            return Err(format!(
                "`lora_alpha` must be finite, got {}",
                self.lora_alpha
            ));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(format!(
                "`lora_dropout` must be in [0, 1), got {}",
                self.lora_dropout
            ));
        }
        if self.alpha_pattern.values().any(|a| !a.is_finite()) {
            return Err("`alpha_pattern` values must be finite".into());
        }
        Ok(())
    }

    /// Trainable parameters per adapted layer, summed over `model`.
    pub fn num_params(&self, model: &T5Config) -> Result<usize, String> {
        Ok(self
            .sites(model)?
            .iter()
            .map(|s| {
                let (i, o) = super::site::site_dims(model, s.site);
                s.r * (i + o)
            })
            .sum())
    }
}

/// PEFT's `get_pattern_key`: the first key `k` (in the file's order, which PEFT keeps; here
/// sorted) with `(.*\.)?(k)$` matching the module name.
fn pattern_value<T: Copy>(patterns: &BTreeMap<String, T>, name: &str) -> Result<Option<T>, String> {
    for (key, value) in patterns {
        let re = Regex::new(&format!("^(?:.*\\.)?(?:{key})$")).map_err(|e| {
            format!("pattern `{key}` is not a regular expression this build reads: {e}")
        })?;
        if re.is_match(name) {
            return Ok(Some(*value));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> T5Config {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/t5-v1_0/config.json"
        );
        T5Config::from_file(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn names_match_as_suffixes_and_patterns_set_rank_and_alpha() {
        let mut c = LoraConfig {
            r: 4,
            lora_alpha: 8.0,
            target_modules: Modules::Names(vec!["q".into(), "wo".into()]),
            ..Default::default()
        };
        c.rank_pattern
            .insert("decoder.block.0.layer.1.EncDecAttention.q".into(), 2);
        c.alpha_pattern.insert("wo".into(), 3.0);
        let sites = c.sites(&model()).unwrap();
        // q in 2 encoder + 2 decoder self-attentions, 2 cross-attentions; wo in 4 blocks.
        assert_eq!(sites.len(), 10);
        let cross = sites
            .iter()
            .find(|s| s.name.ends_with("block.0.layer.1.EncDecAttention.q"))
            .unwrap();
        assert_eq!((cross.r, cross.scaling), (2, 4.0));
        let wo = sites.iter().find(|s| s.name.ends_with("wo")).unwrap();
        assert_eq!((wo.r, wo.scaling), (4, 0.75));
    }

    #[test]
    fn a_regex_matches_whole_names_and_nothing_matched_is_an_error() {
        let c = LoraConfig {
            target_modules: Modules::Regex(r".*decoder.*\.(k|o)".into()),
            use_rslora: true,
            r: 4,
            lora_alpha: 6.0,
            ..Default::default()
        };
        let sites = c.sites(&model()).unwrap();
        assert_eq!(sites.len(), 8);
        assert!(sites
            .iter()
            .all(|s| s.name.starts_with("decoder") && s.scaling == 3.0));
        let none = LoraConfig {
            target_modules: Modules::Names(vec!["query".into()]),
            ..Default::default()
        };
        assert!(none.sites(&model()).unwrap_err().contains("matches none"));
    }

    /// Trainable parameters at t5-small / t5-base shapes: r 8 on q and v (PEFT's T5 default;
    /// PEFT prints 884,736 for t5-base), and on every linear layer.
    #[test]
    fn counts_at_t5_small_and_t5_base() {
        let small = T5Config::t5_small();
        let base = T5Config::t5_base();
        let qv = LoraConfig::default();
        let all = LoraConfig {
            target_modules: Modules::Names(
                ["q", "k", "v", "o", "wi", "wo"].map(String::from).to_vec(),
            ),
            ..Default::default()
        };
        assert_eq!(qv.num_params(&small).unwrap(), 294_912);
        assert_eq!(qv.num_params(&base).unwrap(), 884_736);
        assert_eq!(all.num_params(&small).unwrap(), 1_081_344);
        assert_eq!(all.num_params(&base).unwrap(), 3_244_032);
    }
}
