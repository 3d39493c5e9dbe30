//! T5's multi-head attention (HF `T5Attention`): no biases on the projections and no
//! 1/sqrt(d_kv) scaling (T5 folds it into the initialization).

use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::relative_bias::RelativeAttentionBias;
use crate::adapter::lora::Target;
use crate::adapter::{set::project_adapted, Adapters};
use crate::config::T5Config;
use crate::error::Result;
use crate::fused::{self, AttentionMask, FusedOps};
use crate::layers::{init_linear, load_linear};
use crate::weights::Weights;

/// Projections `q`, `k`, `v`, `o` and, in the first block of a stack, the position-bias table.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[d_model, inner]` (burn stores `[in, out]`; HF `q.weight` is `[inner, d_model]`).
    pub q: Linear<B>,
    pub k: Linear<B>,
    pub v: Linear<B>,
    /// `[inner, d_model]`.
    pub o: Linear<B>,
    /// Only in block 0 of each stack's self-attention.
    pub relative_attention_bias: Option<RelativeAttentionBias<B>>,
    /// On the attention weights, active in training only.
    pub dropout: Dropout,
    pub num_heads: usize,
    pub d_kv: usize,
}

impl<B: Backend> Attention<B> {
    /// HF's `_init_weights` for `T5Attention`.
    pub fn init(c: &T5Config, bias: Option<bool>, device: &B::Device) -> Self {
        let (d, inner, f) = (c.d_model, c.inner_dim(), c.initializer_factor);
        Self {
            q: init_linear(d, inner, f * ((d * c.d_kv) as f64).powf(-0.5), device),
            k: init_linear(d, inner, f * (d as f64).powf(-0.5), device),
            v: init_linear(d, inner, f * (d as f64).powf(-0.5), device),
            o: init_linear(inner, d, f * (inner as f64).powf(-0.5), device),
            relative_attention_bias: bias.map(|bidirectional| {
                RelativeAttentionBias::init(
                    c.relative_attention_num_buckets,
                    c.relative_attention_max_distance,
                    c.num_heads,
                    bidirectional,
                    f * (d as f64).powf(-0.5),
                    device,
                )
            }),
            dropout: DropoutConfig::new(c.dropout_rate).init(),
            num_heads: c.num_heads,
            d_kv: c.d_kv,
        }
    }

    /// Loads `{name}.{q,k,v,o}.weight` (and `{name}.relative_attention_bias.weight` when `bias`
    /// is `Some(bidirectional)`).
    pub fn load(
        w: &mut Weights,
        name: &str,
        c: &T5Config,
        bias: Option<bool>,
        device: &B::Device,
    ) -> Result<Self> {
        let (d, inner) = (c.d_model, c.inner_dim());
        Ok(Self {
            q: load_linear(w, &format!("{name}.q"), d, inner, device)?,
            k: load_linear(w, &format!("{name}.k"), d, inner, device)?,
            v: load_linear(w, &format!("{name}.v"), d, inner, device)?,
            o: load_linear(w, &format!("{name}.o"), inner, d, device)?,
            relative_attention_bias: match bias {
                None => None,
                Some(bidirectional) => Some(RelativeAttentionBias::load(
                    w,
                    &format!("{name}.relative_attention_bias"),
                    c.relative_attention_num_buckets,
                    c.relative_attention_max_distance,
                    c.num_heads,
                    bidirectional,
                    device,
                )?),
            },
            dropout: DropoutConfig::new(c.dropout_rate).init(),
            num_heads: c.num_heads,
            d_kv: c.d_kv,
        })
    }
}

impl<B: FusedOps> Attention<B> {
    /// Keys and values of `states` (computed once per input for cross-attention), heads packed
    /// in the last dimension; `at` is the adapters and the layer number, `cross` whether this
    /// is cross-attention (LoRA targets differ).
    ///
    /// # Shapes
    /// - states: `[batch, seq, d_model]` -> two `[batch, seq, num_heads * d_kv]`
    pub fn project_kv(
        &self,
        states: Tensor<B, 3>,
        at: Option<(&Adapters<B>, usize)>,
        cross: bool,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        (
            project_adapted(&self.k, states.clone(), at, Target::K.cross(cross)),
            project_adapted(&self.v, states, at, Target::V.cross(cross)),
        )
    }

    /// Attends from `hidden` to precomputed keys and values.
    ///
    /// # Shapes
    /// - hidden: `[batch, q_len, d_model]`
    /// - key, value: `[batch, k_len, num_heads * d_kv]`
    /// - mask: position bias and padding (see [`AttentionMask`]; its dropout is set here)
    /// - at, cross: as for [`Self::project_kv`]
    /// - output: `[batch, q_len, d_model]`
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        key: Tensor<B, 3>,
        value: Tensor<B, 3>,
        mut mask: AttentionMask<B>,
        at: Option<(&Adapters<B>, usize)>,
        cross: bool,
    ) -> Tensor<B, 3> {
        let query = project_adapted(&self.q, hidden, at, Target::Q.cross(cross));
        mask.dropout = self.dropout_multipliers(&query, &key);
        let out = fused::attention(query, key, value, mask, self.num_heads);
        project_adapted(&self.o, out, at, Target::O.cross(cross))
    }

    /// The dropout on the attention weights as multipliers (0 or `1 / (1 - p)`), when training
    /// with a non-zero rate (as burn's `Dropout`: only when autodiff is on).
    fn dropout_multipliers(
        &self,
        query: &Tensor<B, 3>,
        key: &Tensor<B, 3>,
    ) -> Option<Tensor<B, 4>> {
        let p = self.dropout.prob;
        if !B::ad_enabled(&query.device()) || p == 0.0 {
            return None;
        }
        let [b, q_len, _] = query.dims();
        let k_len = key.dims()[1];
        let shape = [b, self.num_heads, q_len, k_len];
        let keep = Tensor::<B, 4>::random(shape, Distribution::Bernoulli(1.0 - p), &query.device());
        Some(keep * (1.0 / (1.0 - p)))
    }
}
