//! T5's multi-head attention (HF `T5Attention`): no biases on the projections and no
//! 1/sqrt(d_kv) scaling (T5 folds it into the initialization).

use burn::module::Initializer;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::linear::project;
use super::relative_bias::RelativeAttentionBias;
use crate::checkpoint::Weights;
use crate::config::T5Config;
use crate::error::Result;

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

fn linear<B: Backend>(d_in: usize, d_out: usize, std: f64, device: &B::Device) -> Linear<B> {
    Linear {
        weight: Initializer::Normal { mean: 0.0, std }.init([d_in, d_out], device),
        bias: None,
    }
}

fn load_linear<B: Backend>(
    w: &mut Weights,
    name: &str,
    d_in: usize,
    d_out: usize,
    device: &B::Device,
) -> Result<Linear<B>> {
    let weight = w.take_linear(&format!("{name}.weight"), d_in, d_out, device)?;
    Ok(Linear {
        weight: burn::module::Param::from_tensor(weight),
        bias: None,
    })
}

impl<B: Backend> Attention<B> {
    /// HF's `_init_weights` for `T5Attention`.
    pub fn init(c: &T5Config, bias: Option<bool>, device: &B::Device) -> Self {
        let (d, inner, f) = (c.d_model, c.inner_dim(), c.initializer_factor);
        Self {
            q: linear(d, inner, f * ((d * c.d_kv) as f64).powf(-0.5), device),
            k: linear(d, inner, f * (d as f64).powf(-0.5), device),
            v: linear(d, inner, f * (d as f64).powf(-0.5), device),
            o: linear(inner, d, f * (inner as f64).powf(-0.5), device),
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

    /// Splits the last dimension into heads.
    ///
    /// # Shapes
    /// - x: `[batch, seq, num_heads * d_kv]` -> `[batch, num_heads, seq, d_kv]`
    fn split_heads(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let [b, s, _] = x.dims();
        x.reshape([b, s, self.num_heads, self.d_kv]).swap_dims(1, 2)
    }

    /// Keys and values of `states` (computed once per input for cross-attention).
    ///
    /// # Shapes
    /// - states: `[batch, seq, d_model]` -> two `[batch, num_heads, seq, d_kv]`
    pub fn project_kv(&self, states: Tensor<B, 3>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        (
            self.split_heads(project(&self.k, states.clone())),
            self.split_heads(project(&self.v, states)),
        )
    }

    /// Attends from `hidden` to precomputed keys and values.
    ///
    /// # Shapes
    /// - hidden: `[batch, q_len, d_model]`
    /// - key, value: `[batch, num_heads, k_len, d_kv]`
    /// - bias: additive position bias and masks, broadcastable to `[batch, num_heads, q_len, k_len]`
    /// - output: `[batch, q_len, d_model]`
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        key: Tensor<B, 4>,
        value: Tensor<B, 4>,
        bias: Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let [b, q_len, _] = hidden.dims();
        let query = self.split_heads(project(&self.q, hidden));
        let scores = query.matmul(key.swap_dims(2, 3)) + bias;
        let weights = self.dropout.forward(softmax(scores, 3));
        let out =
            weights
                .matmul(value)
                .swap_dims(1, 2)
                .reshape([b, q_len, self.num_heads * self.d_kv]);
        project(&self.o, out)
    }
}
