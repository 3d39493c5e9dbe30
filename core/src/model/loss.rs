//! The sequence-to-sequence loss: mean token cross-entropy over labels that are not -100, with
//! optional label smoothing (PyTorch's `CrossEntropyLoss(ignore_index=-100, label_smoothing)`).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Label value that contributes nothing to the loss (padding).
pub const IGNORE_INDEX: i64 = -100;

/// # Shapes
/// - logits: `[batch, tgt, vocab]`
/// - labels: `[batch, tgt]`, `-100` where ignored
/// - output: `[1]`, the mean over non-ignored tokens
pub fn cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    label_smoothing: f64,
) -> Tensor<B, 1> {
    let [b, t, v] = logits.dims();
    let n = b * t;
    let log_probs = log_softmax(logits.reshape([n, v]), 1);
    let labels = labels.reshape([n]);
    let ignored = labels.clone().equal_elem(IGNORE_INDEX);
    let keep = ignored.clone().bool_not().float(); // [n]
    let count = keep.clone().sum().clamp_min(1.0);
    let safe = labels.mask_fill(ignored, 0).reshape([n, 1]);
    let nll = -log_probs.clone().gather(1, safe).reshape([n]);
    let nll = (nll * keep.clone()).sum() / count.clone();
    if label_smoothing == 0.0 {
        return nll;
    }
    let smooth = -log_probs.mean_dim(1).reshape([n]);
    let smooth = (smooth * keep).sum() / count;
    nll * (1.0 - label_smoothing) + smooth * label_smoothing
}
