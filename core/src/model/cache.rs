//! Key/value caches for incremental decoding, kept outside the modules (as llama-burn does) so
//! that one model serves many concurrent generations.

use burn::prelude::*;

/// Keys and values of one attention, `[batch, seq, num_heads * d_kv]` each.
#[derive(Clone, Debug)]
pub struct KeyValue<B: Backend> {
    pub key: Tensor<B, 3>,
    pub value: Tensor<B, 3>,
}

impl<B: Backend> KeyValue<B> {
    fn select(self, rows: &Tensor<B, 1, Int>) -> Self {
        Self {
            key: self.key.select(0, rows.clone()),
            value: self.value.select(0, rows.clone()),
        }
    }
}

/// The decoder's state between steps: self-attention keys/values grow by one position per
/// step; cross-attention keys/values are computed once from the encoder output.
#[derive(Clone, Debug)]
pub struct DecoderCache<B: Backend> {
    /// Per decoder layer; empty until the first step.
    pub self_attention: Vec<Option<KeyValue<B>>>,
    /// Per decoder layer.
    pub cross_attention: Vec<KeyValue<B>>,
    /// Additive encoder padding mask for cross-attention, `[batch, src_len]`.
    pub cross_bias: Tensor<B, 2>,
    /// Number of decoder positions already processed.
    pub len: usize,
}

impl<B: Backend> DecoderCache<B> {
    /// Keeps rows `rows` (in that order) of every cached tensor: used by beam search to follow
    /// the surviving beams, and to drop finished rows.
    pub fn select_rows(self, rows: &Tensor<B, 1, Int>) -> Self {
        Self {
            self_attention: self
                .self_attention
                .into_iter()
                .map(|kv| kv.map(|kv| kv.select(rows)))
                .collect(),
            cross_attention: self
                .cross_attention
                .into_iter()
                .map(|kv| kv.select(rows))
                .collect(),
            cross_bias: self.cross_bias.select(0, rows.clone()),
            len: self.len,
        }
    }
}
