//! What an adapter computes, in AdapterHub's vocabulary; the seed project's `adapter` is one
//! setting of it (see [`BottleneckConfig::seed`]).

use serde::{Deserialize, Serialize};

use crate::config::{Activation, T5Config};

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
}

impl BottleneckConfig {
    /// The seed project's `adapter` (its `AdapterController` over a T5 sublayer): after
    /// self-attention and feed-forward, `out = x + dropout(h + post_ln(up(act(down(pre_ln?(h))))))`.
    #[allow(clippy::too_many_arguments)]
    pub fn seed(
        reduction_factor: usize,
        non_linearity: &str,
        add_adapter_in_feed_forward: bool,
        add_adapter_in_self_attention: bool,
        add_adapters_in_decoder: bool,
        add_layer_norm_before_adapter: bool,
        add_layer_norm_after_adapter: bool,
        model: &T5Config,
    ) -> Self {
        let leave_out = if add_adapters_in_decoder {
            Vec::new()
        } else {
            (model.num_layers..model.num_layers + model.num_decoder_layers()).collect()
        };
        Self {
            reduction_factor: reduction_factor as f64,
            non_linearity: non_linearity.to_string(),
            mh_adapter: add_adapter_in_self_attention,
            output_adapter: add_adapter_in_feed_forward,
            original_ln_before: false,
            original_ln_after: true,
            residual_before_ln: true,
            adapter_residual_before_ln: false,
            ln_before: add_layer_norm_before_adapter,
            ln_after: add_layer_norm_after_adapter,
            scaling: 1.0,
            dropout: 0.0,
            leave_out,
            dropout_after_adapter: true,
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

    pub fn activation(&self) -> Result<Activation, String> {
        Activation::parse(&self.non_linearity.to_lowercase()).ok_or_else(|| {
            format!(
                "non_linearity `{}` is not supported (relu, swish, silu, gelu, gelu_new, tanh)",
                self.non_linearity
            )
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
        Ok(())
    }
}
