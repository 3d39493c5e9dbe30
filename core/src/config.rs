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

/// The range of each size in `config.json` (key, least, most). The upper bounds are far above
/// any published T5 (t5-11b: d_ff 65536, 128 heads; mT5: vocabulary 250112) and keep the
/// products of sizes from overflowing; `relative_attention_num_buckets` needs two buckets for the
/// encoder's two directions.
pub const DIM_LIMITS: [(&str, usize, usize); 9] = [
    ("vocab_size", 1, 1 << 24),
    ("d_model", 1, 1 << 16),
    ("d_kv", 1, 1 << 16),
    ("d_ff", 1, 1 << 20),
    ("num_layers", 1, 1 << 10),
    ("num_decoder_layers", 1, 1 << 10),
    ("num_heads", 1, 1 << 12),
    ("relative_attention_num_buckets", 2, 1 << 16),
    ("relative_attention_max_distance", 1, 1 << 24),
];

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
        Self::from_json(&text, path)
    }

    /// Parses and validates the text of a `config.json`; `path` labels the errors, which name
    /// the key at fault (a wrong type with its line, a value out of range).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let config: Self = crate::io::parse_json(text, path)?;
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
        self.check_dims()?;
        if !(0.0..1.0).contains(&self.dropout_rate) {
            return Err(format!(
                "`dropout_rate` must be in [0, 1), got {}",
                self.dropout_rate
            ));
        }
        for (key, value) in [
            ("layer_norm_epsilon", self.layer_norm_epsilon),
            ("initializer_factor", self.initializer_factor),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("`{key}` must be a finite number >= 0, got {value}"));
            }
        }
        Ok(())
    }

    /// Every size within [`DIM_LIMITS`], the token ids inside the vocabulary, and no matrix
    /// too large to address: refused by key before anything is allocated.
    fn check_dims(&self) -> std::result::Result<(), String> {
        let value = |key: &str| match key {
            "vocab_size" => Some(self.vocab_size),
            "d_model" => Some(self.d_model),
            "d_kv" => Some(self.d_kv),
            "d_ff" => Some(self.d_ff),
            "num_layers" => Some(self.num_layers),
            "num_decoder_layers" => self.num_decoder_layers,
            "num_heads" => Some(self.num_heads),
            "relative_attention_num_buckets" => Some(self.relative_attention_num_buckets),
            "relative_attention_max_distance" => Some(self.relative_attention_max_distance),
            _ => None,
        };
        for (key, min, max) in DIM_LIMITS {
            match value(key) {
                Some(v) if !(min..=max).contains(&v) => {
                    return Err(format!("`{key}` must be in {min}..={max}, got {v}"))
                }
                _ => {}
            }
        }
        for (key, id) in [
            ("pad_token_id", self.pad_token_id),
            ("eos_token_id", self.eos_token_id),
            ("decoder_start_token_id", self.decoder_start_token_id()),
        ] {
            if id >= self.vocab_size {
                return Err(format!(
                    "`{key}` {id} is outside the vocabulary (`vocab_size` {})",
                    self.vocab_size
                ));
            }
        }
        // The largest matrices, in f32 bytes, must be addressable on this target (wasm32 too).
        let limit = isize::MAX as u128;
        let (d, v, ff, inner) = (
            self.d_model as u128,
            self.vocab_size as u128,
            self.d_ff as u128,
            self.num_heads as u128 * self.d_kv as u128,
        );
        for (what, elements) in [
            ("`vocab_size` × `d_model`", v * d),
            ("`d_model` × `d_ff`", d * ff),
            ("`d_model` × `num_heads` × `d_kv`", d * inner),
        ] {
            if elements * 4 > limit {
                return Err(format!(
                    "{what} = {elements} values is more than this machine can address"
                ));
            }
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

    /// t5-base's shape (t5-small's with d_model 768, d_ff 3072, 12 heads, 12 + 12 layers).
    pub fn t5_base() -> Self {
        Self {
            d_model: 768,
            d_ff: 3072,
            num_heads: 12,
            num_layers: 12,
            num_decoder_layers: Some(12),
            ..Self::t5_small()
        }
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
    fn zero_and_huge_sizes_are_refused_by_key() {
        for (key, value) in [
            ("num_layers", "0"),
            ("num_decoder_layers", "0"),
            ("d_model", "0"),
            ("num_heads", "0"),
            ("vocab_size", "0"),
            ("d_ff", "0"),
            ("d_model", "1000000000000"),
            ("vocab_size", "1000000000000"),
            ("num_layers", "100000"),
            ("relative_attention_num_buckets", "1"),
        ] {
            let text = format!("{{\"{key}\": {value}}}");
            let err = T5Config::from_json(&text, Path::new("config.json"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("config.json: ") && err.contains(&format!("`{key}`")),
                "{key}: {err}"
            );
            assert!(err.contains(value), "{err}");
        }
        let err = T5Config::from_json(r#"{"eos_token_id": 40000}"#, Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`eos_token_id` 40000") && err.contains("32128"),
            "{err}"
        );
        let err = T5Config::from_json(r#"{"layer_norm_epsilon": -1}"#, Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`layer_norm_epsilon`"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_the_key_and_its_line_once() {
        let text = "{\n  \"d_model\": 64,\n  \"num_layers\": \"two\"\n}";
        let err = T5Config::from_json(text, Path::new("m/config.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("m/config.json: `num_layers`: invalid type: string \"two\"")
                && err.contains("line 3"),
            "{err}"
        );
        assert_eq!(err.matches("line 3").count(), 1, "{err}");
        // Malformed JSON keeps serde's own message and place.
        let err = T5Config::from_json("{\"d_model\": 64,", Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("EOF") && err.contains("line 1"), "{err}");
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
