//! (IA)³ settings in PEFT's vocabulary (`IA3Config`), and which of a model's linear layers
//! they scale, and on which side, matched as PEFT matches them.

use serde::Serialize;

use crate::adapter::lora::site::sites;
use crate::adapter::lora::Modules;
use crate::config::T5Config;

/// What an (IA)³ adapter scales (the PEFT `IA3Config` fields implemented here; serialized
/// as those keys).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ia3Config {
    /// `None`: PEFT's choice for the model type (T5: `k`, `v`, `wo`; mT5: `k`, `v`, `wi_1`).
    pub target_modules: Option<Modules>,
    pub exclude_modules: Option<Modules>,
    /// The targets whose *input* is scaled (PEFT's feed-forward modules); every other target
    /// scales its output. `None`: PEFT's choice (T5: `wo`; mT5: none).
    pub feedforward_modules: Option<Modules>,
    /// A constant factor on every vector: the `adapters` library's `alpha` (PEFT has none: 1).
    #[serde(skip)]
    pub alpha: f64,
}

impl Default for Ia3Config {
    /// PEFT's defaults.
    fn default() -> Self {
        Self {
            target_modules: None,
            exclude_modules: None,
            feedforward_modules: None,
            alpha: 1.0,
        }
    }
}

/// One scaled layer: its site, HF name, and whether the vector scales its input.
#[derive(Clone, Debug, PartialEq)]
pub struct Ia3Site {
    pub site: usize,
    pub name: String,
    pub feedforward: bool,
}

impl Ia3Config {
    /// `target_modules` and `feedforward_modules` with PEFT's defaults for `model` filled in
    /// (`TRANSFORMERS_MODELS_TO_IA3_*_MODULES_MAPPING`).
    pub fn resolved(&self, model: &T5Config) -> (Modules, Modules) {
        let names = |n: &[&str]| Modules::Names(n.iter().map(|s| s.to_string()).collect());
        let mt5 = model.model_type == "mt5";
        let targets = self.target_modules.clone().unwrap_or_else(|| {
            names(if mt5 {
                &["k", "v", "wi_1"]
            } else {
                &["k", "v", "wo"]
            })
        });
        let feedforward = self
            .feedforward_modules
            .clone()
            .unwrap_or_else(|| names(if mt5 { &[] } else { &["wo"] }));
        (targets, feedforward)
    }

    /// The layers of `model` this config scales, or why it cannot.
    pub fn sites(&self, model: &T5Config) -> Result<Vec<Ia3Site>, String> {
        let (targets, feedforward) = self.resolved(model);
        if let (Modules::Names(t), Modules::Names(f)) = (&targets, &feedforward) {
            if let Some(extra) = f.iter().find(|n| !t.contains(n)) {
                return Err(format!(
                    "`feedforward_modules` names `{extra}`, which is not in `target_modules` \
                     (PEFT requires a subset)"
                ));
            }
        }
        let mut out = Vec::new();
        for (site, name) in sites(model) {
            if !targets.matches(&name)? {
                continue;
            }
            if let Some(exclude) = &self.exclude_modules {
                if exclude.matches(&name)? {
                    continue;
                }
            }
            out.push(Ia3Site {
                site,
                feedforward: is_feedforward(&feedforward, &name)?,
                name,
            });
        }
        if out.is_empty() {
            return Err(format!(
                "`target_modules` {} matches none of the model's linear layers (q, k, v, o, wi/wi_0, wi_1, wo)",
                serde_json::to_string(&targets).unwrap_or_default()
            ));
        }
        Ok(out)
    }

    /// Trainable parameters summed over `model`: one value per scaled feature.
    pub fn num_params(&self, model: &T5Config) -> Result<usize, String> {
        Ok(self
            .sites(model)?
            .iter()
            .map(|s| {
                let (i, o) = crate::adapter::lora::site_dims(model, s.site);
                if s.feedforward {
                    i
                } else {
                    o
                }
            })
            .sum())
    }
}

/// PEFT's `_check_target_module_feedforward`: a regex matching the whole name, or a name the
/// module's name ends with (no dot needed, unlike `target_modules`).
fn is_feedforward(modules: &Modules, name: &str) -> Result<bool, String> {
    match modules {
        Modules::Names(names) => Ok(names.iter().any(|n| name.ends_with(n.as_str()))),
        regex => regex.matches(name),
    }
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
    fn peft_defaults_scale_k_v_outputs_and_the_input_of_wo() {
        let sites = Ia3Config::default().sites(&model()).unwrap();
        // k and v in 2 encoder + 2 decoder self-attentions and 2 cross-attentions; wo in 4 blocks.
        assert_eq!(sites.len(), 16);
        assert!(sites
            .iter()
            .all(|s| s.feedforward == s.name.ends_with(".wo")));
    }

    #[test]
    fn feedforward_modules_must_be_targets() {
        let c = Ia3Config {
            target_modules: Some(Modules::Names(vec!["k".into()])),
            feedforward_modules: Some(Modules::Names(vec!["wo".into()])),
            ..Default::default()
        };
        assert!(c.sites(&model()).unwrap_err().contains("subset"));
    }

    /// Trainable parameters at t5-small / t5-base shapes with PEFT's T5 defaults (PEFT 0.21.2
    /// counts 43,008 and 129,024).
    #[test]
    fn counts_at_t5_small_and_t5_base() {
        let small = T5Config::t5_small();
        let base = T5Config::t5_base();
        let c = Ia3Config::default();
        // t5-small: 6+6 blocks, k,v (512 each) in 18 attentions, wo input (2048) in 12 blocks.
        assert_eq!(c.num_params(&small).unwrap(), 18 * 2 * 512 + 12 * 2048);
        assert_eq!(c.num_params(&base).unwrap(), 36 * 2 * 768 + 24 * 3072);
    }
}
