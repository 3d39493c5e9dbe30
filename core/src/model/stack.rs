//! HF `T5Stack`: the encoder or the decoder. Block 0 owns the position-bias table and its output
//! (plus masks) is shared by every block, as in HF.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;

use super::block::Block;
use super::cache::KeyValue;
use super::layer_norm::LayerNorm;
use crate::adapter::Adapters;
use crate::config::T5Config;
use crate::error::Result;
use crate::fused::{AttentionMask, FusedOps};
use crate::weights::Weights;

/// Additive mask value, as HF's `torch.finfo(float32).min`.
pub const MASK_VALUE: f32 = f32::MIN;

/// A stack of blocks with a final layer norm.
#[derive(Module, Debug)]
pub struct Stack<B: Backend> {
    /// `{encoder,decoder}.block.{i}`.
    pub block: Vec<Block<B>>,
    /// `{encoder,decoder}.final_layer_norm`.
    pub final_layer_norm: LayerNorm<B>,
    pub dropout: Dropout,
    pub is_decoder: bool,
}

impl<B: Backend> Stack<B> {
    pub fn init(c: &T5Config, is_decoder: bool, device: &B::Device) -> Self {
        let n = if is_decoder {
            c.num_decoder_layers()
        } else {
            c.num_layers
        };
        Self {
            block: (0..n)
                .map(|i| Block::init(c, is_decoder, i == 0, device))
                .collect(),
            final_layer_norm: LayerNorm::init(
                c.d_model,
                c.layer_norm_epsilon,
                c.initializer_factor,
                device,
            ),
            dropout: DropoutConfig::new(c.dropout_rate).init(),
            is_decoder,
        }
    }

    pub fn load(
        w: &mut Weights,
        name: &str,
        c: &T5Config,
        is_decoder: bool,
        device: &B::Device,
    ) -> Result<Self> {
        let n = if is_decoder {
            c.num_decoder_layers()
        } else {
            c.num_layers
        };
        let block = (0..n)
            .map(|i| {
                Block::load(
                    w,
                    &format!("{name}.block.{i}"),
                    c,
                    is_decoder,
                    i == 0,
                    device,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm = LayerNorm::load(
            w,
            &format!("{name}.final_layer_norm"),
            c.d_model,
            c.layer_norm_epsilon,
            device,
        )?;
        Ok(Self {
            block,
            final_layer_norm,
            dropout: DropoutConfig::new(c.dropout_rate).init(),
            is_decoder,
        })
    }
}

impl<B: FusedOps> Stack<B> {
    /// Position bias of block 0 for queries at `offset..offset+q_len` over `k_len` keys, plus the
    /// causal mask in the decoder.
    ///
    /// # Shapes
    /// - output: `[1, num_heads, q_len, k_len]`
    pub fn position_bias(&self, q_len: usize, k_len: usize, offset: usize) -> Tensor<B, 4> {
        let table = self.block[0]
            .self_attention
            .self_attention
            .relative_attention_bias
            .as_ref()
            .expect("block 0 owns the relative attention bias");
        let bias = table.forward(q_len, k_len, offset);
        if !self.is_decoder || offset + q_len <= 1 {
            return bias;
        }
        let mut causal = vec![0f32; q_len * k_len];
        for q in 0..q_len {
            for k in (offset + q + 1)..k_len {
                causal[q * k_len + k] = MASK_VALUE;
            }
        }
        if causal.iter().all(|&v| v == 0.0) {
            return bias;
        }
        let causal =
            Tensor::<B, 2>::from_data(TensorData::new(causal, [q_len, k_len]), &bias.device());
        bias + causal.unsqueeze::<4>()
    }

    /// The encoder.
    ///
    /// # Shapes
    /// - embeds: `[batch, seq, d_model]`
    /// - padding: `[batch, seq]` additive padding mask
    /// - output: `[batch, seq, d_model]`
    pub fn forward_encoder(
        &self,
        embeds: Tensor<B, 3>,
        padding: Tensor<B, 2>,
        adapters: Option<&Adapters<B>>,
    ) -> Tensor<B, 3> {
        let seq = embeds.dims()[1];
        let mask = AttentionMask {
            bias: Some(self.position_bias(seq, seq, 0)),
            padding: Some(padding),
            dropout: None,
        };
        let mut x = self.dropout.forward(embeds);
        for (i, block) in self.block.iter().enumerate() {
            x = block
                .forward(x, mask.clone(), None, None, adapters.map(|a| (a, i)))
                .0;
        }
        self.dropout.forward(self.final_layer_norm.forward(x))
    }

    /// The decoder over new positions `offset..offset+tgt`, given the keys/values of earlier
    /// positions (`past`, updated in place) and the encoder's keys/values per layer.
    ///
    /// # Shapes
    /// - embeds: `[batch, tgt, d_model]`
    /// - cross: per layer, `[batch, src, heads * d_kv]` keys and values
    /// - cross_padding: `[batch, src]` additive padding mask
    /// - adapters: the adapters and the layer number of this stack's first block
    /// - output: `[batch, tgt, d_model]`
    pub fn forward_decoder(
        &self,
        embeds: Tensor<B, 3>,
        cross: &[KeyValue<B>],
        cross_padding: Tensor<B, 2>,
        past: &mut [Option<KeyValue<B>>],
        offset: usize,
        adapters: Option<(&Adapters<B>, usize)>,
    ) -> Tensor<B, 3> {
        let tgt = embeds.dims()[1];
        let mask = AttentionMask {
            bias: Some(self.position_bias(tgt, offset + tgt, offset)),
            ..Default::default()
        };
        let mut x = self.dropout.forward(embeds);
        for (i, ((block, encoder), slot)) in self
            .block
            .iter()
            .zip(cross)
            .zip(past.iter_mut())
            .enumerate()
        {
            let at = adapters.map(|(a, first_layer)| (a, first_layer + i));
            let (y, kv) = block.forward(
                x,
                mask.clone(),
                slot.take(),
                Some((encoder, cross_padding.clone())),
                at,
            );
            *slot = Some(kv);
            x = y;
        }
        self.dropout.forward(self.final_layer_norm.forward(x))
    }
}
