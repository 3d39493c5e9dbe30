//! `T5Config`: Hugging Face's `config.json` for T5, T5 v1.1, flan-T5 and mT5, read as is.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The activation of the feed-forward sublayer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    /// Exact GELU (erf).
    Gelu,
    /// The tanh approximation HF calls `gelu_new` (T5 v1.1, flan-T5, mT5).
    GeluNew,
    /// SiLU, a.k.a. swish.
    Silu,
    Tanh,
}

impl Activation {
    /// Parses HF's activation names (`ACT2FN` keys).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "relu" => Self::Relu,
            "gelu" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Self::GeluNew,
            "silu" | "swish" => Self::Silu,
            "tanh" => Self::Tanh,
            _ => return None,
        })
    }
}

/// The model's hyper-parameters, field for field as in HF's `T5Config`.
///
/// Keys of `config.json` that do not shape the network (`architectures`, `task_specific_params`,
/// `transformers_version`, ...) are ignored, as transformers does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct T5Config {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    #[serde(default = "d::vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "d::d_model")]
    pub d_model: usize,
    #[serde(default = "d::d_kv")]
    pub d_kv: usize,
    #[serde(default = "d::d_ff")]
    pub d_ff: usize,
    #[serde(default = "d::num_layers")]
    pub num_layers: usize,
    /// Defaults to `num_layers`.
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    #[serde(default = "d::num_heads")]
    pub num_heads: usize,
    #[serde(default = "d::num_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "d::max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "d::dropout_rate")]
    pub dropout_rate: f64,
    #[serde(default = "d::layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "d::initializer_factor")]
    pub initializer_factor: f64,
    /// `relu`, `gated-gelu`, `gated-silu`, ... (HF's syntax: `[gated-]<activation>`).
    #[serde(default = "d::feed_forward_proj")]
    pub feed_forward_proj: String,
    #[serde(default = "d::tie_word_embeddings")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default = "d::eos_token_id")]
    pub eos_token_id: usize,
    /// Defaults to `pad_token_id`, as in HF.
    #[serde(default)]
    pub decoder_start_token_id: Option<usize>,
}

fn default_model_type() -> String {
    "t5".into()
}

mod d {
    pub fn vocab_size() -> usize {
        32128
    }
    pub fn d_model() -> usize {
        512
    }
    pub fn d_kv() -> usize {
        64
    }
    pub fn d_ff() -> usize {
        2048
    }
    pub fn num_layers() -> usize {
        6
    }
    pub fn num_heads() -> usize {
        8
    }
    pub fn num_buckets() -> usize {
        32
    }
    pub fn max_distance() -> usize {
        128
    }
    pub fn dropout_rate() -> f64 {
        0.1
    }
    pub fn layer_norm_epsilon() -> f64 {
        1e-6
    }
    pub fn initializer_factor() -> f64 {
        1.0
    }
    pub fn feed_forward_proj() -> String {
        "relu".into()
    }
    pub fn tie_word_embeddings() -> bool {
        true
    }
    pub fn eos_token_id() -> usize {
        1
    }
}

/// The feed-forward variant `feed_forward_proj` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedForwardKind {
    /// `wi_0`/`wi_1` gated (v1.1) rather than a single `wi` (v1.0).
    pub gated: bool,
    pub activation: Activation,
}

impl T5Config {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: Self = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.into(),
            source,
        })?;
        config.validate().map_err(|msg| Error::config(path, msg))?;
        Ok(config)
    }

    /// Checks that the config describes a network this crate can build.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self.model_type.as_str() {
            "t5" | "mt5" => {}
            "umt5" => {
                return Err(
                    "model_type `umt5` (per-layer position biases) is not supported; \
                            supported: t5, mt5"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "model_type `{other}` is not a T5 checkpoint; supported: t5, mt5"
                ))
            }
        }
        self.feed_forward()?;
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("d_kv", self.d_kv),
            ("d_ff", self.d_ff),
            ("num_heads", self.num_heads),
            (
                "relative_attention_num_buckets",
                self.relative_attention_num_buckets,
            ),
        ] {
            if value == 0 {
                return Err(format!("`{name}` must be positive"));
            }
        }
        if self.num_heads.checked_mul(self.d_kv).is_none() {
            return Err(format!(
                "`num_heads` × `d_kv` ({} × {}) is too large",
                self.num_heads, self.d_kv
            ));
        }
        if !(0.0..1.0).contains(&self.dropout_rate) {
            return Err(format!(
                "`dropout_rate` must be in [0, 1), got {}",
                self.dropout_rate
            ));
        }
        Ok(())
    }

    /// Parses `feed_forward_proj` the way HF does (`gated-gelu` means gated `gelu_new`).
    pub fn feed_forward(&self) -> std::result::Result<FeedForwardKind, String> {
        let proj = self.feed_forward_proj.as_str();
        let parts: Vec<&str> = proj.split('-').collect();
        let (gated, act) = match parts.as_slice() {
            [act] => (false, *act),
            ["gated", act] => (true, *act),
            _ => {
                return Err(format!(
                    "`feed_forward_proj`: `{proj}` is not `gated-<activation>` or `<activation>`"
                ))
            }
        };
        // HF keeps `gated-gelu` for backwards compatibility and means the tanh approximation.
        let act = if proj == "gated-gelu" {
            "gelu_new"
        } else {
            act
        };
        let activation = Activation::parse(act).ok_or_else(|| {
            format!(
                "`feed_forward_proj`: unknown activation `{act}` in `{proj}`; \
                 known: relu, gelu, gelu_new, silu, swish, tanh (optionally `gated-`)"
            )
        })?;
        Ok(FeedForwardKind { gated, activation })
    }

    pub fn num_decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    pub fn decoder_start_token_id(&self) -> usize {
        self.decoder_start_token_id.unwrap_or(self.pad_token_id)
    }

    /// Inner dimension of attention: `num_heads * d_kv`.
    pub fn inner_dim(&self) -> usize {
        self.num_heads * self.d_kv
    }

    /// t5-small's shape (the v1.0 defaults of HF's `T5Config`).
    pub fn t5_small() -> Self {
        serde_json::from_str("{}").expect("defaults deserialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_proj(proj: &str) -> T5Config {
        let mut c = T5Config::t5_small();
        c.feed_forward_proj = proj.into();
        c
    }

    #[test]
    fn feed_forward_proj_parses_like_hf() {
        let ff = with_proj("relu").feed_forward().unwrap();
        assert_eq!(
            ff,
            FeedForwardKind {
                gated: false,
                activation: Activation::Relu
            }
        );
        let ff = with_proj("gated-gelu").feed_forward().unwrap();
        assert_eq!(
            ff,
            FeedForwardKind {
                gated: true,
                activation: Activation::GeluNew
            }
        );
        let ff = with_proj("gated-silu").feed_forward().unwrap();
        assert_eq!(
            ff,
            FeedForwardKind {
                gated: true,
                activation: Activation::Silu
            }
        );
        let ff = with_proj("gelu").feed_forward().unwrap();
        assert_eq!(ff.activation, Activation::Gelu);
    }

    #[test]
    fn bad_feed_forward_proj_is_named() {
        let err = with_proj("gated-wiggle").feed_forward().unwrap_err();
        assert!(err.contains("wiggle"), "{err}");
        assert!(with_proj("a-b-c").feed_forward().is_err());
    }

    #[test]
    fn other_architectures_are_refused() {
        let mut c = T5Config::t5_small();
        c.model_type = "bert".into();
        assert!(c.validate().unwrap_err().contains("bert"));
    }

    #[test]
    fn defaults_are_t5_small() {
        let c = T5Config::t5_small();
        assert_eq!(
            (c.d_model, c.num_layers, c.num_heads, c.vocab_size),
            (512, 6, 8, 32128)
        );
        assert_eq!(c.num_decoder_layers(), 6);
        assert_eq!(c.decoder_start_token_id(), 0);
    }
}
