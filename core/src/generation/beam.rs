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

/// One input's beam search: its running beams and its finished hypotheses.
struct Item {
    running: Vec<Vec<u32>>,
    running_scores: Vec<f32>,
    finished: Vec<Vec<u32>>,
    finished_scores: Vec<f32>,
    is_finished: Vec<bool>,
    improvable: bool,
}

/// What every item's step shares.
struct Step<'a> {
    config: &'a GenerationConfig,
    k: usize,
    vocab: usize,
    /// Continuations considered per item (`2 * num_beams`).
    keep: usize,
    /// Tokens so far, the decoder start token included.
    cur_len: usize,
    max_length: usize,
    /// The length penalty's divisor for hypotheses that finish now.
    denominator: f32,
}

impl Item {
    /// Before the first token: one live beam (the others at minus infinity so that the first
    /// step does not pick the same continuation `k` times).
    fn new(k: usize) -> Self {
        Self {
            running: vec![Vec::new(); k],
            running_scores: (0..k).map(|i| if i == 0 { 0.0 } else { NEG }).collect(),
            finished: vec![Vec::new(); k],
            finished_scores: vec![NEG; k],
            is_finished: vec![false; k],
            improvable: true,
        }
    }

    /// Extends the beams of item `b` by one token from their log-probabilities (`[k, vocab]`):
    /// pushes onto `reorder` the cache row each new running beam continues, and returns whether
    /// every continuation considered hit EOS or the length limit.
    fn advance(
        &mut self,
        b: usize,
        log_probs: &[f32],
        step: &Step,
        reorder: &mut Vec<i64>,
    ) -> bool {
        let (k, vocab) = (step.k, step.vocab);
        // Accumulated scores of every (beam, token) continuation.
        let mut acc = Vec::with_capacity(k * vocab);
        for beam in 0..k {
            let row = &log_probs[beam * vocab..(beam + 1) * vocab];
            let base = self.running_scores[beam];
            acc.extend(row.iter().map(|&p| p + base));
        }
        let top = top_k(&acc, step.keep);
        let cand: Vec<(f32, usize, Vec<u32>, bool)> = top
            .iter()
            .map(|&i| {
                let (beam, token) = (i / vocab, (i % vocab) as u32);
                let mut seq = self.running[beam].clone();
                seq.push(token);
                let hit =
                    Some(token) == step.config.eos_token_id || step.cur_len + 1 >= step.max_length;
                (acc[i], beam, seq, hit)
            })
            .collect();
        let all_hit = cand.iter().all(|c| c.3);

        // Running beams: the best continuations that did not just finish.
        let running_scores: Vec<f32> = cand
            .iter()
            .map(|c| c.0 + if c.3 { NEG } else { 0.0 })
            .collect();
        let next = top_k(&running_scores, k);
        self.running = next.iter().map(|&j| cand[j].2.clone()).collect();
        self.running_scores = next.iter().map(|&j| running_scores[j]).collect();
        reorder.extend(next.iter().map(|&j| (b * k + cand[j].1) as i64));

        self.keep_finished(&cand, step);
        all_hit
    }

    /// Merges the just-finished top `k` of the candidates with the kept hypotheses.
    fn keep_finished(&mut self, cand: &[(f32, usize, Vec<u32>, bool)], step: &Step) {
        let k = step.k;
        let full = self.is_finished.iter().all(|&f| f)
            && step.config.early_stopping == EarlyStopping::Stop;
        let mut merged_scores = self.finished_scores.clone();
        let mut merged_flags = self.is_finished.clone();
        for (j, c) in cand.iter().enumerate() {
            let just_finished = c.3 && j < k;
            let mut s = c.0 / step.denominator;
            s += if full { NEG } else { 0.0 };
            s += if self.improvable { 0.0 } else { NEG };
            s += if just_finished { 0.0 } else { NEG };
            merged_scores.push(s);
            merged_flags.push(just_finished);
        }
        let best = top_k(&merged_scores, k);
        let seq_of = |m: usize| {
            if m < k {
                self.finished[m].clone()
            } else {
                cand[m - k].2.clone()
            }
        };
        let finished: Vec<Vec<u32>> = best.iter().map(|&m| seq_of(m)).collect();
        self.finished = finished;
        self.finished_scores = best.iter().map(|&m| merged_scores[m]).collect();
        self.is_finished = best.iter().map(|&m| merged_flags[m]).collect();
    }

    /// Whether the best running beam can still beat the worst finished hypothesis, scored with
    /// the divisor `best_denominator`; once it cannot, it never can again.
    fn update_improvable(&mut self, best_denominator: f32) {
        let best_possible = self.running_scores[0] / best_denominator;
        let worst = self
            .finished_scores
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min);
        let beatable = self
            .is_finished
            .iter()
            .any(|&f| best_possible > if f { worst } else { NEG });
        self.improvable &= beatable;
    }
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
    let mut items: Vec<Item> = (0..batch).map(|_| Item::new(k)).collect();

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

        let step = Step {
            config,
            k,
            vocab,
            keep: 2 * k, // max(2, 1 + number of EOS ids) * num_beams
            cur_len,
            max_length,
            denominator: ((cur_len + 1 - prompt_len) as f64).powf(lp) as f32,
        };
        let mut reorder = Vec::with_capacity(batch * k);
        let mut all_hit = true;
        for (b, item) in items.iter_mut().enumerate() {
            let item_log_probs = &log_probs[b * k * vocab..(b + 1) * k * vocab];
            all_hit &= item.advance(b, item_log_probs, &step, &mut reorder);
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
            item.update_improvable(best_denominator);
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
