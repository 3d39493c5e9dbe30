//! What an adapter computes, in AdapterHub's vocabulary ([`BottleneckConfig`]); the seed
//! project's `adapter` is one setting of it, described by the seed's own options
//! ([`SeedAdapterConfig`], see [`BottleneckConfig::seed`]).

use serde::{Deserialize, Serialize};

use crate::config::{Activation, T5Config};

/// The seed project's adapter options, under its option names: the keys a run config sets to
/// train adapters, and what this project's `adapter_config.json` stores for an adapter of kind
/// `seed` (both files write them as top-level keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedAdapterConfig {
    /// Bottleneck width = d_model / reduction_factor.
    pub reduction_factor: usize,
    /// The adapter activation (relu, swish/silu, gelu, gelu_new, tanh).
    pub non_linearity: String,
    /// An adapter after each feed-forward sublayer.
    pub add_adapter_in_feed_forward: bool,
    /// An adapter after each self-attention sublayer.
    pub add_adapter_in_self_attention: bool,
    /// Adapters in the decoder as well as the encoder.
    pub add_adapters_in_decoder: bool,
    /// A LayerNorm on the adapter input.
    pub add_layer_norm_before_adapter: bool,
    /// A LayerNorm on the adapter output.
    pub add_layer_norm_after_adapter: bool,
}

impl Default for SeedAdapterConfig {
    /// The seed's defaults.
    fn default() -> Self {
        Self {
            reduction_factor: 16,
            non_linearity: "swish".into(),
            add_adapter_in_feed_forward: true,
            add_adapter_in_self_attention: true,
            add_adapters_in_decoder: true,
            add_layer_norm_before_adapter: false,
            add_layer_norm_after_adapter: true,
        }
    }
}

impl SeedAdapterConfig {
    /// Checks what can be checked without a backbone ([`BottleneckConfig::validate`] checks the
    /// rest against one).
    pub fn check(&self) -> Result<(), String> {
        if self.reduction_factor == 0 {
            return Err("`reduction_factor` must be at least 1".into());
        }
        non_linearity(&self.non_linearity)?;
        Ok(())
    }
}

/// The activation an adapter's `non_linearity` names (case-insensitive).
pub fn non_linearity(name: &str) -> Result<Activation, String> {
    Activation::parse(&name.to_lowercase()).ok_or_else(|| {
        format!(
            "`non_linearity` `{name}` is not supported (relu, swish, silu, gelu, gelu_new, tanh)"
        )
    })
}

/// Where a bottleneck adapter sits and how it combines with the residual stream.
///
/// With `x` the sublayer input and `h = sublayer(layer_norm(x))`:
/// ```text
/// residual = h                       if residual_before_ln
/// h        = h + x                   if original_ln_before
/// residual = h                       if !residual_before_ln
/// z = up(act(down(ln_before?(h)))) * scaling
/// z = ln_after(z + residual) or ln_after(z) + residual   (adapter_residual_before_ln)
/// out = z + x                        if original_ln_after, else z
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BottleneckConfig {
    /// Bottleneck width is `d_model / reduction_factor` (rounded down).
    pub reduction_factor: f64,
    /// relu, swish/silu, gelu, gelu_new, tanh.
    pub non_linearity: String,
    /// An adapter after each self-attention sublayer.
    pub mh_adapter: bool,
    /// An adapter after each feed-forward sublayer.
    pub output_adapter: bool,
    pub original_ln_before: bool,
    pub original_ln_after: bool,
    pub residual_before_ln: bool,
    pub adapter_residual_before_ln: bool,
    /// A LayerNorm (with bias) on the adapter input.
    pub ln_before: bool,
    /// A LayerNorm (with bias) on the adapter output.
    pub ln_after: bool,
    pub scaling: f64,
    /// Dropout on the adapter output (training only).
    pub dropout: f64,
    /// Blocks without adapters: encoder block `i` is `i`, decoder block `i` is `num_layers + i`.
    pub leave_out: Vec<usize>,
    /// The seed's placement of dropout: `x + dropout(h + A(h))` instead of AdapterHub's
    /// `x + dropout(h) + A(dropout(h))`. The same in evaluation.
    pub dropout_after_adapter: bool,
    /// PHM projections instead of linear ones (Compacter, Compacter++).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phm: Option<super::phm::PhmConfig>,
}

impl BottleneckConfig {
    /// The seed project's `adapter` (its `AdapterController` over a T5 sublayer): after
    /// self-attention and feed-forward, `out = x + dropout(h + post_ln(up(act(down(pre_ln?(h))))))`.
    pub fn seed(options: &SeedAdapterConfig, model: &T5Config) -> Self {
        let leave_out = if options.add_adapters_in_decoder {
            Vec::new()
        } else {
            (model.num_layers..model.num_layers + model.num_decoder_layers()).collect()
        };
        Self {
            reduction_factor: options.reduction_factor as f64,
            non_linearity: options.non_linearity.clone(),
            mh_adapter: options.add_adapter_in_self_attention,
            output_adapter: options.add_adapter_in_feed_forward,
            original_ln_before: false,
            original_ln_after: true,
            residual_before_ln: true,
            adapter_residual_before_ln: false,
            ln_before: options.add_layer_norm_before_adapter,
            ln_after: options.add_layer_norm_after_adapter,
            scaling: 1.0,
            dropout: 0.0,
            leave_out,
            dropout_after_adapter: true,
            phm: None,
        }
    }

    /// AdapterHub's Houlsby (`double_seq_bn`) defaults.
    pub fn houlsby() -> Self {
        Self {
            reduction_factor: 16.0,
            non_linearity: "swish".into(),
            mh_adapter: true,
            output_adapter: true,
            original_ln_before: false,
            original_ln_after: true,
            residual_before_ln: true,
            adapter_residual_before_ln: false,
            ln_before: false,
            ln_after: false,
            scaling: 1.0,
            dropout: 0.0,
            leave_out: Vec::new(),
            dropout_after_adapter: false,
            phm: None,
        }
    }

    /// AdapterHub's Pfeiffer (`seq_bn`) defaults.
    pub fn pfeiffer() -> Self {
        Self {
            non_linearity: "relu".into(),
            mh_adapter: false,
            original_ln_before: true,
            ..Self::houlsby()
        }
    }

    /// The `adapters` library's `CompacterConfig` (Houlsby placement) or, `plus_plus`,
    /// `CompacterPlusPlusConfig` (Pfeiffer placement): PHM projections, gelu, reduction 32.
    pub fn compacter(plus_plus: bool) -> Self {
        let base = if plus_plus {
            Self::pfeiffer()
        } else {
            Self::houlsby()
        };
        Self {
            reduction_factor: 32.0,
            non_linearity: "gelu".into(),
            phm: Some(super::phm::PhmConfig::default()),
            ..base
        }
    }

    /// No bottleneck adapter anywhere (the bottleneck part of an adapter that is a LoRA).
    pub fn none() -> Self {
        Self {
            mh_adapter: false,
            output_adapter: false,
            ..Self::pfeiffer()
        }
    }

    pub fn activation(&self) -> Result<Activation, String> {
        non_linearity(&self.non_linearity)
    }

    /// The seed's options this setting came from, when it is one of the seed's settings
    /// (the inverse of [`BottleneckConfig::seed`]).
    pub fn seed_options(&self, model: &T5Config) -> Option<SeedAdapterConfig> {
        self.dropout_after_adapter.then(|| SeedAdapterConfig {
            reduction_factor: self.reduction_factor as usize,
            non_linearity: self.non_linearity.clone(),
            add_adapter_in_feed_forward: self.output_adapter,
            add_adapter_in_self_attention: self.mh_adapter,
            add_adapters_in_decoder: !self.leave_out.contains(&model.num_layers),
            add_layer_norm_before_adapter: self.ln_before,
            add_layer_norm_after_adapter: self.ln_after,
        })
    }

    pub fn bottleneck(&self, d_model: usize) -> usize {
        (d_model as f64 / self.reduction_factor).floor() as usize
    }

    /// Checks the config against a backbone.
    pub fn validate(&self, model: &T5Config) -> Result<(), String> {
        self.activation()?;
        if self.reduction_factor.is_nan()
            || self.reduction_factor <= 0.0
            || self.bottleneck(model.d_model) == 0
        {
            return Err(format!(
                "reduction_factor {} leaves no bottleneck for d_model {}",
                self.reduction_factor, model.d_model
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        let total = model.num_layers + model.num_decoder_layers();
        if let Some(bad) = self.leave_out.iter().find(|&&l| l >= total) {
            return Err(format!(
                "leave_out names layer {bad} but the model has {total} (encoder + decoder) layers"
            ));
        }
        if let Some(phm) = &self.phm {
            phm.check(model.d_model, self.bottleneck(model.d_model))?;
        }
        Ok(())
    }
}
