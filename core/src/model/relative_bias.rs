//! T5's relative position bias: distances between query and key positions fall into
//! logarithmic buckets, each bucket has a learned bias per head. Only the first block of each
//! stack owns the table; the other blocks reuse its output.

use burn::module::{Initializer, Param};
use burn::nn::Embedding;
use burn::prelude::*;

use crate::error::Result;
use crate::weights::Weights;

/// HF's `T5Attention._relative_position_bucket` for one distance `key - query`.
///
/// `bidirectional` (encoder) gives half the buckets to keys after the query; the causal decoder
/// maps every later key to bucket 0 (they are masked anyway).
pub fn relative_position_bucket(
    relative_position: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut num_buckets = num_buckets as i64;
    let mut bucket = 0i64;
    let distance = if bidirectional {
        num_buckets /= 2;
        if relative_position > 0 {
            bucket += num_buckets;
        }
        relative_position.abs()
    } else {
        (-relative_position).max(0)
    };
    let max_exact = num_buckets / 2;
    if distance < max_exact {
        bucket += distance;
    } else {
        // Same f32 arithmetic and truncation as torch, so the bucket edges agree exactly.
        let scale = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
        let large = ((distance as f32 / max_exact as f32).ln() / scale
            * (num_buckets - max_exact) as f32) as i64;
        bucket += (max_exact + large).min(num_buckets - 1);
    }
    bucket as usize
}

/// The bucket of each (query, key) pair, row-major `[query_len, key_len]`; queries sit at
/// positions `query_offset..query_offset + query_len` (the offset is the cache length when
/// decoding incrementally).
pub fn bucket_table(
    query_len: usize,
    key_len: usize,
    query_offset: usize,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> Vec<usize> {
    let mut table = Vec::with_capacity(query_len * key_len);
    for q in 0..query_len {
        let q = (q + query_offset) as i64;
        for k in 0..key_len as i64 {
            table.push(relative_position_bucket(
                k - q,
                bidirectional,
                num_buckets,
                max_distance,
            ));
        }
    }
    table
}

/// The learned bias table of the first block, HF's `relative_attention_bias`.
#[derive(Module, Debug)]
pub struct RelativeAttentionBias<B: Backend> {
    /// `[num_buckets, num_heads]`.
    pub relative_attention_bias: Embedding<B>,
    pub num_buckets: usize,
    pub max_distance: usize,
    pub bidirectional: bool,
}

impl<B: Backend> RelativeAttentionBias<B> {
    pub fn init(
        num_buckets: usize,
        max_distance: usize,
        num_heads: usize,
        bidirectional: bool,
        std: f64,
        device: &B::Device,
    ) -> Self {
        let weight = Initializer::Normal { mean: 0.0, std }.init([num_buckets, num_heads], device);
        Self {
            relative_attention_bias: Embedding { weight },
            num_buckets,
            max_distance,
            bidirectional,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn load(
        w: &mut Weights,
        name: &str,
        num_buckets: usize,
        max_distance: usize,
        num_heads: usize,
        bidirectional: bool,
        device: &B::Device,
    ) -> Result<Self> {
        let t = w.take(&format!("{name}.weight"), [num_buckets, num_heads], device)?;
        Ok(Self {
            relative_attention_bias: Embedding {
                weight: Param::from_tensor(t),
            },
            num_buckets,
            max_distance,
            bidirectional,
        })
    }

    /// The additive bias for queries at `query_offset..query_offset+query_len` over keys
    /// `0..key_len`.
    ///
    /// # Shapes
    /// - output: `[1, num_heads, query_len, key_len]`
    pub fn forward(&self, query_len: usize, key_len: usize, query_offset: usize) -> Tensor<B, 4> {
        let device = self.relative_attention_bias.weight.device();
        let table = bucket_table(
            query_len,
            key_len,
            query_offset,
            self.bidirectional,
            self.num_buckets,
            self.max_distance,
        );
        let table: Vec<i64> = table.into_iter().map(|b| b as i64).collect();
        let idx =
            Tensor::<B, 1, Int>::from_data(TensorData::new(table, [query_len * key_len]), &device);
        let values = self.relative_attention_bias.weight.val().select(0, idx); // [q*k, heads]
        let heads = values.dims()[1];
        values
            .reshape([query_len, key_len, heads])
            .permute([2, 0, 1])
            .unsqueeze::<4>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_distances_are_exact() {
        // t5-small: 32 buckets, 128 max distance; bidirectional halves to 16, exact below 8.
        for d in 0..8 {
            assert_eq!(relative_position_bucket(-d, true, 32, 128), d as usize);
            assert_eq!(
                relative_position_bucket(d, true, 32, 128),
                if d == 0 { 0 } else { 16 + d as usize }
            );
            assert_eq!(relative_position_bucket(-d, false, 32, 128), d as usize);
        }
        // The causal direction puts every future key in bucket 0.
        assert_eq!(relative_position_bucket(5, false, 32, 128), 0);
    }

    #[test]
    fn far_distances_saturate() {
        assert_eq!(relative_position_bucket(-1000, true, 32, 128), 15);
        assert_eq!(relative_position_bucket(1000, true, 32, 128), 31);
        assert_eq!(relative_position_bucket(-1000, false, 32, 128), 31);
        // Monotone in distance.
        let b: Vec<usize> = (0..300)
            .map(|d| relative_position_bucket(-d, false, 32, 128))
            .collect();
        assert!(b.windows(2).all(|w| w[0] <= w[1]));
    }
}
