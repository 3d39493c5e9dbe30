//! Greedy decoding (HF `_sample` with `do_sample=False`).

use burn::prelude::*;

use crate::fused::FusedOps;

use super::GenerationConfig;
use crate::adapter::Adapters;
use crate::model::T5ForConditionalGeneration;

/// Greedy decoding of a padded batch; returns each row's new tokens up to and including EOS.
/// Async because reading tokens back from a GPU is, in the browser (see [`super::generate`]).
///
/// # Shapes
/// - ids, mask: `[batch, src]`
pub async fn greedy<B: FusedOps>(
    model: &T5ForConditionalGeneration<B>,
    ids: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Int>,
    config: &GenerationConfig,
    adapters: Option<&Adapters<'_, B>>,
) -> Vec<Vec<u32>> {
    let device = model.device();
    let batch = ids.dims()[0];
    let mut cache = model.start_decoding(ids, mask, adapters);
    let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); batch];
    let mut finished = vec![false; batch];
    let mut next = vec![config.decoder_start_token_id as i64; batch];
    for step in 0..config.max_new_tokens {
        let input =
            Tensor::<B, 2, Int>::from_data(TensorData::new(next.clone(), [batch, 1]), &device);
        let mut logits = model.decode_step(input, &mut cache, adapters);
        if let Some(eos) = config.eos_token_id.filter(|_| step < config.min_new_tokens) {
            let eos = eos as usize;
            logits = logits.slice_assign(
                [0..batch, eos..eos + 1],
                Tensor::full([batch, 1], f32::NEG_INFINITY, &device),
            );
        }
        let tokens: Vec<i64> = super::read(logits.argmax(1))
            .await
            .convert::<i64>()
            .into_vec()
            .expect("i64 data");
        for (row, &token) in tokens.iter().enumerate() {
            if finished[row] {
                // HF feeds pad to finished rows; their outputs are ignored.
                next[row] = config.pad_token_id as i64;
                continue;
            }
            next[row] = token;
            outputs[row].push(token as u32);
            if Some(token as u32) == config.eos_token_id {
                finished[row] = true;
            }
        }
        if finished.iter().all(|&f| f) {
            break;
        }
    }
    outputs
}
