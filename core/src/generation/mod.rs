//! Incremental decoding with a KV cache: greedy and beam search with the semantics of HF
//! transformers' `generate` (4.57).

mod beam;
mod greedy;
pub mod limits;

use burn::prelude::*;

use crate::fused::FusedOps;
use serde::{Deserialize, Serialize};

use crate::adapter::{Adapters, Routing};
use crate::error::{Error, Result};
use crate::model::inputs::{attention_mask, pad_rows};
use crate::model::T5ForConditionalGeneration;

pub use beam::beam_search;
pub use greedy::greedy;

/// HF's `early_stopping` for beam search.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EarlyStopping {
    /// `False`: stop when the best running beam cannot beat the worst finished one (heuristic).
    #[default]
    Heuristic,
    /// `True`: stop a batch item as soon as `num_beams` hypotheses are finished.
    Stop,
    /// `"never"`: the canonical beam search.
    Never,
}

/// How to generate. Defaults follow HF's `GenerationConfig` with T5's ids.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// Upper bound on generated tokens (the decoder start token is not counted).
    pub max_new_tokens: usize,
    /// EOS cannot be chosen before this many tokens.
    pub min_new_tokens: usize,
    /// 1 = greedy.
    pub num_beams: usize,
    /// Finished beams are scored `sum_logprobs / len^length_penalty`.
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    /// `None` never stops early (benchmarks).
    pub eos_token_id: Option<u32>,
    pub pad_token_id: u32,
    pub decoder_start_token_id: u32,
}

impl GenerationConfig {
    /// Defaults for a model: 20 new tokens, greedy, T5's EOS/pad/start ids from its config.
    pub fn for_model(config: &crate::T5Config) -> Self {
        Self {
            max_new_tokens: 20,
            min_new_tokens: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            eos_token_id: Some(config.eos_token_id as u32),
            pad_token_id: config.pad_token_id as u32,
            decoder_start_token_id: config.decoder_start_token_id() as u32,
        }
    }
}

impl GenerationConfig {
    /// Each option in its range: `Err((key, rule))`, e.g. `("length_penalty", "must be a
    /// finite number, got NaN")`, for the caller to name the option its own way (the CLI's
    /// `--length-penalty`).
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        use limits::{MAX_NUM_BEAMS, MAX_TOKENS};
        if !(1..=MAX_NUM_BEAMS).contains(&self.num_beams) {
            let rule = format!("must be in 1..={MAX_NUM_BEAMS}, got {}", self.num_beams);
            return Err(("num_beams", rule));
        }
        if !self.length_penalty.is_finite() {
            let rule = format!("must be a finite number, got {}", self.length_penalty);
            return Err(("length_penalty", rule));
        }
        for (key, n) in [
            ("max_new_tokens", self.max_new_tokens),
            ("min_new_tokens", self.min_new_tokens),
        ] {
            if n > MAX_TOKENS {
                return Err((key, format!("must be at most {MAX_TOKENS}, got {n}")));
            }
        }
        Ok(())
    }
}

/// Right-pads token ids into `[batch, len]` ids and attention mask tensors.
pub fn pad_batch<B: Backend>(
    inputs: &[Vec<u32>],
    pad: u32,
    device: &B::Device,
) -> Result<(Tensor<B, 2, Int>, Tensor<B, 2, Int>)> {
    let len = inputs.iter().map(Vec::len).max().unwrap_or(0);
    if inputs.is_empty() || len == 0 {
        return Err(Error::Invalid("generate: no input tokens".into()));
    }
    if inputs.iter().any(Vec::is_empty) {
        return Err(Error::Invalid("generate: an input has no tokens".into()));
    }
    let ids = pad_rows(inputs.iter().map(Vec::as_slice), len, pad as i64);
    let mask = attention_mask(inputs.iter().map(Vec::len), len);
    let shape = [inputs.len(), len];
    Ok((
        Tensor::from_data(TensorData::new(ids, shape), device),
        Tensor::from_data(TensorData::new(mask, shape), device),
    ))
}

/// Generates for each input (token ids, with `</s>`) and returns the new tokens of each row,
/// without the decoder start token, up to and including EOS.
///
/// Blocks on the tensor reads; in the browser on WebGPU, where nothing may block, use
/// [`generate_async`] (on the CPU backend this works everywhere).
pub fn generate<B: FusedOps>(
    model: &T5ForConditionalGeneration<B>,
    inputs: &[Vec<u32>],
    config: &GenerationConfig,
    adapters: Option<&Adapters<B>>,
) -> Result<Vec<Vec<u32>>> {
    burn::tensor::try_read_sync(generate_async(model, inputs, config, adapters)).unwrap_or_else(
        || {
            Err(Error::Invalid(
                "generate: this backend cannot read tensors synchronously here; use generate_async"
                    .into(),
            ))
        },
    )
}

/// [`generate`], awaiting each read of the chosen tokens instead of blocking.
pub async fn generate_async<B: FusedOps>(
    model: &T5ForConditionalGeneration<B>,
    inputs: &[Vec<u32>],
    config: &GenerationConfig,
    adapters: Option<&Adapters<'_, B>>,
) -> Result<Vec<Vec<u32>>> {
    if let Some(Routing::Rows(rows)) = adapters.map(|a| &a.routing) {
        if rows.len() != inputs.len() {
            return Err(Error::Invalid(format!(
                "{} inputs but {} adapter routes",
                inputs.len(),
                rows.len()
            )));
        }
    }
    let vocab = model.config.vocab_size;
    for (i, row) in inputs.iter().enumerate() {
        if let Some(&bad) = row.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Invalid(format!(
                "input {i}: token id {bad} is outside the vocabulary ({vocab})"
            )));
        }
    }
    config
        .validate()
        .map_err(|(key, rule)| Error::Invalid(format!("generate: `{key}` {rule}")))?;
    if config.max_new_tokens == 0 {
        return Ok(vec![Vec::new(); inputs.len()]);
    }
    let (ids, mask) = pad_batch::<B>(inputs, config.pad_token_id, &model.device())?;
    if config.num_beams == 1 {
        Ok(greedy(model, ids, mask, config, adapters).await)
    } else {
        Ok(beam_search(model, ids, mask, config, adapters).await)
    }
}

/// Deterministic pseudo-random inputs for benchmarks: `batch` rows of `len - 1` ids from a
/// 64-bit LCG (avoiding the special ids 0..3) and `</s>`. The same rows natively and in the
/// browser, so both time the same workload.
pub fn synthetic_inputs(batch: usize, len: usize, vocab: usize, seed: u64) -> Vec<Vec<u32>> {
    let step = |s: u64| {
        s.wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
    };
    let mut state = step(seed);
    (0..batch)
        .map(|_| {
            let mut row: Vec<u32> = (0..len.saturating_sub(1))
                .map(|_| {
                    state = step(state);
                    3 + ((state >> 33) as usize % (vocab - 3)) as u32
                })
                .collect();
            row.push(1);
            row
        })
        .collect()
}

/// Reads a tensor to the host. A failed read means the device is gone: nothing to recover.
pub(crate) async fn read<B: Backend, const D: usize, K: burn::tensor::BasicOps<B>>(
    tensor: Tensor<B, D, K>,
) -> TensorData {
    tensor
        .into_data_async()
        .await
        .expect("reading a tensor from the device")
}

/// Reads a `[batch, vocab]` score tensor to the host.
pub(crate) async fn to_host<B: Backend>(scores: Tensor<B, 2>) -> Vec<f32> {
    read(scores)
        .await
        .convert::<f32>()
        .into_vec()
        .expect("f32 data")
}
