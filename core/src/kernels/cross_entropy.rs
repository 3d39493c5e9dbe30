//! The label-smoothed cross-entropy over the vocabulary, forward and backward, one pass over
//! each row of logits; the backward writes the gradient over the logits in place.

use rayon::prelude::*;

use super::vector::{exp, max, multiversion, sum_map};

/// Rows per parallel task (a row is a whole vocabulary: tens of thousands of elements).
const ROWS_PER_TASK: usize = 4;

/// Label of rows that do not count (`IGNORE_INDEX`).
const IGNORED: i64 = -100;

/// Whether `label` counts: not ignored and inside the vocabulary (a label outside it would
/// index past the row; such rows are left out like ignored ones).
fn counts(label: i64, vocab: usize) -> bool {
    label != IGNORED && (0..vocab as i64).contains(&label)
}

/// The mean loss over the rows that count, and the log-sum-exp of every row into `lse`.
pub fn forward(
    logits: &[f32],
    vocab: usize,
    labels: &[i64],
    smoothing: f32,
    lse: &mut [f32],
) -> f32 {
    let losses: Vec<(f64, usize)> = logits
        .par_chunks(ROWS_PER_TASK * vocab)
        .zip(labels.par_chunks(ROWS_PER_TASK))
        .zip(lse.par_chunks_mut(ROWS_PER_TASK))
        .map(|((z, labels), lse)| forward_rows(z, vocab, labels, smoothing, lse))
        .collect();
    let (sum, count) = losses
        .iter()
        .fold((0.0, 0), |(s, c), (ls, lc)| (s + ls, c + lc));
    (sum / count.max(1) as f64) as f32
}

multiversion! {
    fn forward_rows(z: &[f32], vocab: usize, labels: &[i64], smoothing: f32, lse: &mut [f32]) -> (f64, usize) {
        let (mut sum, mut count) = (0f64, 0usize);
        for ((z, &label), lse) in z.chunks_exact(vocab).zip(labels).zip(lse) {
            let m = max(z);
            *lse = m + sum_map(z, |x| exp(x - m)).ln();
            if counts(label, vocab) {
                let nll = *lse - z[label as usize];
                let smooth = *lse - sum_map(z, |x| x) / vocab as f32;
                sum += f64::from((1.0 - smoothing) * nll + smoothing * smooth);
                count += 1;
            }
        }
        (sum, count)
    }
}

/// Overwrites `logits` with the loss' gradient times `grad` (the upstream gradient of the mean).
pub fn backward(
    logits: &mut [f32],
    vocab: usize,
    labels: &[i64],
    lse: &[f32],
    smoothing: f32,
    grad: f32,
) {
    let count = labels.iter().filter(|&&l| counts(l, vocab)).count().max(1);
    let scale = grad / count as f32;
    logits
        .par_chunks_mut(ROWS_PER_TASK * vocab)
        .zip(labels.par_chunks(ROWS_PER_TASK))
        .zip(lse.par_chunks(ROWS_PER_TASK))
        .for_each(|((z, labels), lse)| backward_rows(z, vocab, labels, lse, smoothing, scale));
}

multiversion! {
    fn backward_rows(z: &mut [f32], vocab: usize, labels: &[i64], lse: &[f32], smoothing: f32, scale: f32) {
        let uniform = smoothing / vocab as f32;
        for ((z, &label), &lse) in z.chunks_exact_mut(vocab).zip(labels).zip(lse) {
            if !counts(label, vocab) {
                z.fill(0.0);
                continue;
            }
            // (softmax − (1 − ε)·onehot − ε / V) · scale
            for x in z.iter_mut() {
                *x = (exp(*x - lse) - uniform) * scale;
            }
            z[label as usize] -= (1.0 - smoothing) * scale;
        }
    }
}
