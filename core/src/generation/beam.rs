//! Beam search, step for step as HF transformers 4.57's vectorized `_beam_search`: the top
//! `2 * num_beams` continuations per item, running beams chosen among those that did not just
//! finish, finished hypotheses kept by length-penalized score, and the same stopping rules.
//! The bookkeeping runs on the host; the model runs on the backend.

use burn::prelude::*;

use crate::fused::FusedOps;
use burn::tensor::activation::log_softmax;

use super::{to_host, EarlyStopping, GenerationConfig};
use crate::adapter::Adapters;
use crate::model::T5ForConditionalGeneration;

/// HF's stand-in for minus infinity in beam scores.
const NEG: f32 = -1.0e9;

struct Item {
    running: Vec<Vec<u32>>,
    running_scores: Vec<f32>,
    finished: Vec<Vec<u32>>,
    finished_scores: Vec<f32>,
    is_finished: Vec<bool>,
    improvable: bool,
}

/// Indices of the `k` largest values, largest first (stable for ties, like a sorted topk).
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    if k < values.len() {
        idx.select_nth_unstable_by(k, |&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        idx.truncate(k);
    }
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx
}

/// Beam search over a padded batch; returns each row's best hypothesis (new tokens, EOS
/// included when it ended with one).
///
/// # Shapes
/// - ids, mask: `[batch, src]`
pub async fn beam_search<B: FusedOps>(
    model: &T5ForConditionalGeneration<B>,
    ids: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Int>,
    config: &GenerationConfig,
    adapters: Option<&Adapters<'_, B>>,
) -> Vec<Vec<u32>> {
    let device = model.device();
    let k = config.num_beams;
    let batch = ids.dims()[0];
    let vocab = model.config.vocab_size;
    let keep = 2 * k; // max(2, 1 + number of EOS ids) * num_beams
    let prompt_len = 1usize;
    let max_length = prompt_len + config.max_new_tokens;
    let lp = config.length_penalty as f64;

    // Encode once, then repeat each row num_beams times.
    let rows: Vec<i64> = (0..batch)
        .flat_map(|b| std::iter::repeat_n(b as i64, k))
        .collect();
    let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [batch * k]), &device);
    let mut cache = model.start_decoding(ids, mask, adapters).select_rows(&rows);

    // Beams of one input stay within its rows, so each row keeps its input's adapter.
    let beam_adapters = adapters.map(|a| a.repeat_rows(k));
    let mut items: Vec<Item> = (0..batch)
        .map(|_| Item {
            running: vec![Vec::new(); k],
            running_scores: (0..k).map(|i| if i == 0 { 0.0 } else { NEG }).collect(),
            finished: vec![Vec::new(); k],
            finished_scores: vec![NEG; k],
            is_finished: vec![false; k],
            improvable: true,
        })
        .collect();

    let mut cur_len = prompt_len;
    loop {
        let last: Vec<i64> = items
            .iter()
            .flat_map(|it| {
                it.running
                    .iter()
                    .map(|s| s.last().copied().unwrap_or(config.decoder_start_token_id) as i64)
            })
            .collect();
        let input = Tensor::<B, 2, Int>::from_data(TensorData::new(last, [batch * k, 1]), &device);
        let logits = model.decode_step(input, &mut cache, beam_adapters.as_ref());
        let mut log_probs = to_host(log_softmax(logits, 1)).await;
        if let Some(eos) = config
            .eos_token_id
            .filter(|_| cur_len - prompt_len < config.min_new_tokens)
        {
            for row in 0..batch * k {
                log_probs[row * vocab + eos as usize] = f32::NEG_INFINITY;
            }
        }

        let mut reorder = Vec::with_capacity(batch * k);
        let mut all_hit = true;
        let denominator = ((cur_len + 1 - prompt_len) as f64).powf(lp) as f32;
        for (b, item) in items.iter_mut().enumerate() {
            // Accumulated scores of every (beam, token) continuation.
            let mut acc = Vec::with_capacity(k * vocab);
            for beam in 0..k {
                let row = &log_probs[(b * k + beam) * vocab..(b * k + beam + 1) * vocab];
                let base = item.running_scores[beam];
                acc.extend(row.iter().map(|&p| p + base));
            }
            let top = top_k(&acc, keep);
            let cand: Vec<(f32, usize, Vec<u32>, bool)> = top
                .iter()
                .map(|&i| {
                    let (beam, token) = (i / vocab, (i % vocab) as u32);
                    let mut seq = item.running[beam].clone();
                    seq.push(token);
                    let hit = Some(token) == config.eos_token_id || cur_len + 1 >= max_length;
                    (acc[i], beam, seq, hit)
                })
                .collect();
            all_hit &= cand.iter().all(|c| c.3);

            // Running beams: the best continuations that did not just finish.
            let running_scores: Vec<f32> = cand
                .iter()
                .map(|c| c.0 + if c.3 { NEG } else { 0.0 })
                .collect();
            let next = top_k(&running_scores, k);
            item.running = next.iter().map(|&j| cand[j].2.clone()).collect();
            item.running_scores = next.iter().map(|&j| running_scores[j]).collect();
            reorder.extend(next.iter().map(|&j| (b * k + cand[j].1) as i64));

            // Finished hypotheses: merge the just-finished top `k` with the kept ones.
            let full =
                item.is_finished.iter().all(|&f| f) && config.early_stopping == EarlyStopping::Stop;
            let mut merged_scores = item.finished_scores.clone();
            let mut merged_flags = item.is_finished.clone();
            for (j, c) in cand.iter().enumerate() {
                let just_finished = c.3 && j < k;
                let mut s = c.0 / denominator;
                s += if full { NEG } else { 0.0 };
                s += if item.improvable { 0.0 } else { NEG };
                s += if just_finished { 0.0 } else { NEG };
                merged_scores.push(s);
                merged_flags.push(just_finished);
            }
            let best = top_k(&merged_scores, k);
            let seq_of = |m: usize| {
                if m < k {
                    item.finished[m].clone()
                } else {
                    cand[m - k].2.clone()
                }
            };
            let finished: Vec<Vec<u32>> = best.iter().map(|&m| seq_of(m)).collect();
            item.finished = finished;
            item.finished_scores = best.iter().map(|&m| merged_scores[m]).collect();
            item.is_finished = best.iter().map(|&m| merged_flags[m]).collect();
        }

        let reorder =
            Tensor::<B, 1, Int>::from_data(TensorData::new(reorder, [batch * k]), &device);
        cache = cache.select_rows(&reorder);
        cur_len += 1;

        // Can a running beam still beat the worst finished one?
        let best_len = if config.early_stopping == EarlyStopping::Never && lp > 0.0 {
            max_length - prompt_len
        } else {
            cur_len - prompt_len
        };
        let best_denominator = (best_len as f64).powf(lp) as f32;
        for item in items.iter_mut() {
            let best_possible = item.running_scores[0] / best_denominator;
            let worst = item
                .finished_scores
                .iter()
                .copied()
                .fold(f32::INFINITY, f32::min);
            let beatable = item
                .is_finished
                .iter()
                .any(|&f| best_possible > if f { worst } else { NEG });
            item.improvable &= beatable;
        }
        let improvement_possible = items.iter().any(|it| it.improvable);
        let open = !(items.iter().all(|it| it.is_finished.iter().all(|&f| f))
            && config.early_stopping == EarlyStopping::Stop);
        if !(improvement_possible && open && !all_hit) {
            break;
        }
    }
    items
        .into_iter()
        .map(|mut it| std::mem::take(&mut it.finished[0]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::top_k;

    #[test]
    fn top_k_is_sorted_and_stable() {
        assert_eq!(top_k(&[0.1, 0.5, 0.3, 0.5], 3), vec![1, 3, 2]);
        assert_eq!(top_k(&[1.0, 2.0], 5), vec![1, 0]);
    }
}
