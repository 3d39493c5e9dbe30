//! One T5 block: self-attention, cross-attention (decoder only) and feed-forward sublayers,
//! each pre-normed with its own layer norm and added back to the residual stream.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;

use super::attention::Attention;
use super::cache::KeyValue;
use super::feed_forward::DenseActDense;
use super::layer_norm::LayerNorm;
use crate::adapter::{set::position, Adapters, Sublayer};
use crate::config::T5Config;
use crate::error::Result;
use crate::fused::{AttentionMask, FusedOps};
use crate::weights::Weights;

/// HF `T5LayerSelfAttention`: `x + dropout(SelfAttention(layer_norm(x)))`.
#[derive(Module, Debug)]
pub struct LayerSelfAttention<B: Backend> {
    pub self_attention: Attention<B>,
    pub layer_norm: LayerNorm<B>,
    pub dropout: Dropout,
}

/// HF `T5LayerCrossAttention`: `x + dropout(EncDecAttention(layer_norm(x), encoder))`.
#[derive(Module, Debug)]
pub struct LayerCrossAttention<B: Backend> {
    pub enc_dec_attention: Attention<B>,
    pub layer_norm: LayerNorm<B>,
    pub dropout: Dropout,
}

/// HF `T5LayerFF`: `x + dropout(DenseReluDense(layer_norm(x)))`.
#[derive(Module, Debug)]
pub struct LayerFF<B: Backend> {
    pub dense_relu_dense: DenseActDense<B>,
    pub layer_norm: LayerNorm<B>,
    pub dropout: Dropout,
}

/// HF `T5Block`.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// `layer.0`.
    pub self_attention: LayerSelfAttention<B>,
    /// `layer.1` in the decoder.
    pub cross_attention: Option<LayerCrossAttention<B>>,
    /// `layer.1` in the encoder, `layer.2` in the decoder.
    pub feed_forward: LayerFF<B>,
}

fn norm<B: Backend>(c: &T5Config, device: &B::Device) -> LayerNorm<B> {
    LayerNorm::init(
        c.d_model,
        c.layer_norm_epsilon,
        c.initializer_factor,
        device,
    )
}

fn load_norm<B: Backend>(
    w: &mut Weights,
    name: &str,
    c: &T5Config,
    device: &B::Device,
) -> Result<LayerNorm<B>> {
    LayerNorm::load(
        w,
        &format!("{name}.layer_norm"),
        c.d_model,
        c.layer_norm_epsilon,
        device,
    )
}

/// `x + dropout(h)`, or the adapted combination when a bottleneck adapter follows sublayer
/// `sub` of layer `at.1`.
fn residual<B: FusedOps>(
    x: Tensor<B, 3>,
    h: Tensor<B, 3>,
    dropout: &Dropout,
    at: Option<(&Adapters<B>, usize)>,
    sub: Sublayer,
) -> Tensor<B, 3> {
    match at {
        Some((adapters, layer)) => adapters.apply(position(layer, sub), x, h, dropout),
        None => x + dropout.forward(h),
    }
}

impl<B: FusedOps> LayerSelfAttention<B> {
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - mask: position bias `[1, heads, seq, k_len]` (with the causal mask in the decoder) and
    ///   padding `[batch, k_len]`
    /// - past: keys/values of earlier positions when decoding incrementally
    /// - at: the adapters and this block's layer number
    /// - output: `[batch, seq, d_model]` and the keys/values including this step
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        mask: AttentionMask<B>,
        past: Option<KeyValue<B>>,
        at: Option<(&Adapters<B>, usize)>,
    ) -> (Tensor<B, 3>, KeyValue<B>) {
        let normed = self.layer_norm.forward(x.clone());
        let (key, value) = self.self_attention.project_kv(normed.clone(), at, false);
        let kv = match past {
            Some(past) => KeyValue {
                key: Tensor::cat(vec![past.key, key], 1),
                value: Tensor::cat(vec![past.value, value], 1),
            },
            None => KeyValue { key, value },
        };
        let h =
            self.self_attention
                .forward(normed, kv.key.clone(), kv.value.clone(), mask, at, false);
        (
            residual(x, h, &self.dropout, at, Sublayer::SelfAttention),
            kv,
        )
    }
}

impl<B: FusedOps> LayerCrossAttention<B> {
    /// # Shapes
    /// - x: `[batch, tgt, d_model]`; encoder: keys/values of the encoder output
    /// - padding: additive encoder padding mask `[batch, src]`
    /// - at: the adapters and this block's layer number (LoRA only: bottleneck adapters never
    ///   follow cross-attention)
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        encoder: &KeyValue<B>,
        padding: Tensor<B, 2>,
        at: Option<(&Adapters<B>, usize)>,
    ) -> Tensor<B, 3> {
        let normed = self.layer_norm.forward(x.clone());
        let mask = AttentionMask {
            padding: Some(padding),
            ..Default::default()
        };
        let h = self.enc_dec_attention.forward(
            normed,
            encoder.key.clone(),
            encoder.value.clone(),
            mask,
            at,
            true,
        );
        x + self.dropout.forward(h)
    }
}

impl<B: FusedOps> LayerFF<B> {
    /// # Shapes
    /// - x: `[batch, seq, d_model]` -> `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>, at: Option<(&Adapters<B>, usize)>) -> Tensor<B, 3> {
        let h = self
            .dense_relu_dense
            .forward(self.layer_norm.forward(x.clone()), at);
        residual(x, h, &self.dropout, at, Sublayer::FeedForward)
    }
}

impl<B: Backend> Block<B> {
    /// A randomly initialized block; `first` blocks own the position-bias table.
    pub fn init(c: &T5Config, decoder: bool, first: bool, device: &B::Device) -> Self {
        let dropout = || DropoutConfig::new(c.dropout_rate).init();
        Self {
            self_attention: LayerSelfAttention {
                self_attention: Attention::init(c, first.then_some(!decoder), device),
                layer_norm: norm(c, device),
                dropout: dropout(),
            },
            cross_attention: decoder.then(|| LayerCrossAttention {
                enc_dec_attention: Attention::init(c, None, device),
                layer_norm: norm(c, device),
                dropout: dropout(),
            }),
            feed_forward: LayerFF {
                dense_relu_dense: DenseActDense::init(c, device),
                layer_norm: norm(c, device),
                dropout: dropout(),
            },
        }
    }

    /// Loads `{name}.layer.{0,1,2}...` as HF names them.
    pub fn load(
        w: &mut Weights,
        name: &str,
        c: &T5Config,
        decoder: bool,
        first: bool,
        device: &B::Device,
    ) -> Result<Self> {
        let dropout = || DropoutConfig::new(c.dropout_rate).init();
        let l0 = format!("{name}.layer.0");
        let self_attention = LayerSelfAttention {
            self_attention: Attention::load(
                w,
                &format!("{l0}.SelfAttention"),
                c,
                first.then_some(!decoder),
                device,
            )?,
            layer_norm: load_norm(w, &l0, c, device)?,
            dropout: dropout(),
        };
        let cross_attention = if decoder {
            let l1 = format!("{name}.layer.1");
            Some(LayerCrossAttention {
                enc_dec_attention: Attention::load(
                    w,
                    &format!("{l1}.EncDecAttention"),
                    c,
                    None,
                    device,
                )?,
                layer_norm: load_norm(w, &l1, c, device)?,
                dropout: dropout(),
            })
        } else {
            None
        };
        let lf = format!("{name}.layer.{}", if decoder { 2 } else { 1 });
        let feed_forward = LayerFF {
            dense_relu_dense: DenseActDense::load(w, &format!("{lf}.DenseReluDense"), c, device)?,
            layer_norm: load_norm(w, &lf, c, device)?,
            dropout: dropout(),
        };
        Ok(Self {
            self_attention,
            cross_attention,
            feed_forward,
        })
    }
}

impl<B: FusedOps> Block<B> {
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - self_mask: position bias `[1, heads, seq, k_len]` and padding `[batch, k_len]`
    /// - cross: encoder keys/values of this layer and the encoder padding `[batch, src]`
    ///   (decoder only)
    /// - adapters: the adapters and this block's layer number (see [`crate::adapter::set::position`])
    /// - output: `[batch, seq, d_model]` and this layer's self-attention keys/values
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        self_mask: AttentionMask<B>,
        past: Option<KeyValue<B>>,
        cross: Option<(&KeyValue<B>, Tensor<B, 2>)>,
        adapters: Option<(&Adapters<B>, usize)>,
    ) -> (Tensor<B, 3>, KeyValue<B>) {
        let (mut x, kv) = self.self_attention.forward(x, self_mask, past, adapters);
        if let (Some(layer), Some((encoder, padding))) = (&self.cross_attention, cross) {
            x = layer.forward(x, encoder, padding, adapters);
        }
        (self.feed_forward.forward(x, adapters), kv)
    }
}
